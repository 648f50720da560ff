"""results/lmer.py's model_performance() against performance 0.10.2 (tests/fixtures/parity/helpers.R)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mixedmodels as mm
from parity import PARITY_DIR, close, orthodont

REF = json.loads((PARITY_DIR / "helpers.json").read_text())
COLUMNS = ["AIC", "AICc", "BIC", "R2_conditional", "R2_marginal", "ICC", "RMSE", "Sigma"]


@pytest.mark.parametrize("name", ["sleep", "orth"])
def test_lmer_fits(name):
    data = orthodont() if name == "orth" else mm.datasets.load("sleepstudy")
    formula = "distance ~ age * Sex + (1 | Subject)" if name == "orth" else "Reaction ~ Days + (Days | Subject)"
    ours = mm.lmer(formula, data).model_performance()
    assert list(ours.columns) == COLUMNS
    close(ours.iloc[0], [REF[name]["performance"][c] for c in COLUMNS], 2e-5)


def test_a_binomial_glmer_without_the_scoring_rules():
    """performance adds Log_loss (NA for a cbind response); the rest within the Laplace difference."""
    fit = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                   family="binomial")
    ours = fit.model_performance()
    assert list(ours.columns) == COLUMNS
    close(ours.iloc[0], [REF["cbpp"]["performance"][c] for c in COLUMNS], 2e-3)
    k, n = fit.df, fit.nobs
    assert ours["AICc"].iloc[0] == pytest.approx(fit.aic + 2 * k * (k + 1) / (n - k - 1))
    assert np.isfinite(ours.to_numpy()).all()
