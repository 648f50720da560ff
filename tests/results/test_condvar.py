"""m.condvar(): the conditional covariance blocks of the random effects against lme4 1.1-31's
``attr(ranef(m, condVar = TRUE)$g, "postVar")`` (tests/fixtures/toolbox/condvar.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm

REF = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "toolbox" / "condvar.json").read_text())


def _fit(case: dict) -> mm.LmerResult | mm.GlmerResult:
    data = mm.datasets.load(case["data"])
    if case["data"] == "cbpp":
        return mm.glmer(case["formula"], data, family="binomial")
    return mm.lmer(case["formula"], data)


@pytest.mark.parametrize("name", sorted(REF))
def test_blocks_match_lme4(name):
    case = REF[name]
    fit = _fit(case)
    blocks = fit.condvar()
    assert list(blocks) == list(case["postVar"])
    for label, ref in case["postVar"].items():
        ours = blocks[label]
        expected = np.asarray(ref, dtype=float).reshape(ours.shape)
        assert ours.shape[0] == len(ref)
        assert ours == pytest.approx(expected, rel=2e-3 if name == "cbpp" else 1e-4)
        assert np.allclose(ours, ours.transpose(0, 2, 1))  # symmetric blocks


def test_diagonals_are_the_squared_conditional_sds():
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    blocks = fit.condvar()["Subject"]
    assert blocks.shape == (18, 2, 2)
    sd = fit.ranef_sd["Subject"].to_numpy()
    assert np.sqrt(np.diagonal(blocks, axis1=1, axis2=2)) == pytest.approx(sd, rel=1e-12)
    assert np.all(np.linalg.eigvalsh(blocks) > 0)  # positive definite
    blocks[0, 0, 0] = -1.0  # a copy: the fit is not changed
    assert fit.condvar()["Subject"][0, 0, 0] > 0


def test_one_level_block_from_first_principles():
    """A single random intercept in a balanced design: the conditional variance of each level's
    effect is (1/σ_b² + n_i/σ²)⁻¹: the normal–normal posterior with β known (condVar conditions on β̂)."""
    fit = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("Dyestuff"))
    sigma_b2 = fit.covariances[0][0, 0]
    expected = 1 / (1 / sigma_b2 + 5 / fit.sigma**2)
    assert fit.condvar()["Batch"][:, 0, 0] == pytest.approx(np.full(6, expected), rel=1e-10)
