"""m.hatvalues() and m.cooks_distance() against lme4 1.1-31 (tests/fixtures/toolbox/influence.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm

REF = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "toolbox" / "influence.json").read_text())


@pytest.mark.parametrize("name", sorted(REF))
def test_leverage_and_cooks_distance_match_lme4(name):
    ref = REF[name]
    fit = mm.lmer(ref["formula"], mm.datasets.load(ref["data"]), weights=ref.get("weights") or None)
    assert fit.hatvalues().to_numpy() == pytest.approx(ref["hat"], rel=1e-4)
    assert fit.cooks_distance().to_numpy() == pytest.approx(ref["cooks"], rel=2e-3)


def test_leverages_sum_to_the_effective_number_of_parameters():
    """trace(H) lies between p (no random effects) and p + q (unpenalised effects), and each hᵢ in (0, 1)."""
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    h = fit.hatvalues().to_numpy()
    assert np.all((h > 0) & (h < 1))
    assert 2 < h.sum() < 2 + 36


def test_balanced_random_intercept_leverage_from_first_principles():
    """Dyestuff (6 batches of 5): ŷᵢ = ȳ + s(ȳ_g − ȳ) with shrinkage s = kθ²/(1 + kθ²), so
    hᵢ = ∂ŷᵢ/∂yᵢ = 1/N + s(1/k − 1/N)."""
    fit = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("Dyestuff"))
    k, N, lam = 5, 30, fit.theta[0] ** 2
    s = k * lam / (1 + k * lam)
    assert fit.hatvalues().to_numpy() == pytest.approx(np.full(N, 1 / N + s * (1 / k - 1 / N)), rel=1e-10)
