"""mm.glm (R's glm) against R 4's glm, and mm.anova(glmer_fit, glm_fit) against lme4 1.1-31's
anova(gm, g) (tests/fixtures/toolbox/glm.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

REF = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "toolbox" / "glm.json").read_text())


@pytest.mark.parametrize("name", ["binomial", "poisson", "gamma"])
def test_estimates_and_likelihood_match_r(name):
    ref = REF[name]
    fit = mm.glm(ref["formula"], mm.datasets.load(ref["data"]), family=ref["family"], link=ref.get("link"))
    assert list(fit.fixef.index) == ref["names"]
    assert fit.fixef.to_numpy() == pytest.approx(ref["coef"], rel=1e-7)
    assert fit.se.to_numpy() == pytest.approx(ref["se"], rel=1e-5)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-9)
    assert fit.df == ref["df"]
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-9)
    assert fit.bic == pytest.approx(ref["bic"], rel=1e-9)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-8)
    assert fit.dispersion == pytest.approx(ref["dispersion"], rel=1e-8)


def test_anova_against_glmer_matches_lme4():
    ref = REF["anova"]
    cbpp = mm.datasets.load("cbpp")
    gm = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    b = mm.glm("cbind(incidence, size - incidence) ~ period", cbpp, family="binomial")
    out = mm.anova(gm, b, names=["gm", "b"])
    table = out.table
    assert list(table.index) == ref["rows"]
    assert table["npar"].tolist() == ref["npar"]
    assert table["logLik"].to_numpy() == pytest.approx(ref["logLik"], rel=1e-5)
    assert table["AIC"].to_numpy() == pytest.approx(ref["AIC"], rel=1e-5)
    assert table["Chisq"].iloc[1] == pytest.approx(ref["Chisq"][1], rel=1e-3)
    assert table["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["p"][1], rel=1e-2)
    printed = str(out).splitlines()
    assert printed[:4] == ref["printed"][:4]
    assert printed[4] == ref["printed"][4].rstrip()  # the header


def test_a_gaussian_glm_is_the_linear_model():
    data = mm.datasets.load("sleepstudy")
    g, l = mm.glm("Reaction ~ Days", data), mm.lm("Reaction ~ Days", data)
    assert g.fixef.to_numpy() == pytest.approx(l.fixef.to_numpy(), rel=1e-10)
    assert g.se.to_numpy() == pytest.approx(l.se.to_numpy(), rel=1e-10)
    assert g.loglik == pytest.approx(l.loglik, rel=1e-12)


def test_residuals_and_summary():
    fit = mm.glm(REF["poisson"]["formula"], mm.datasets.load("cbpp"), family="poisson")
    y, mu = fit.design.y, fit.fitted.to_numpy()
    assert fit.residuals_of("response").to_numpy() == pytest.approx(y - mu)
    assert fit.residuals_of("pearson").to_numpy() == pytest.approx((y - mu) / np.sqrt(mu))
    assert np.sum(fit.residuals.to_numpy() ** 2) == pytest.approx(fit.deviance, rel=1e-10)
    text = str(fit.summary())
    assert "z value Pr(>|z|)" in text and "(Dispersion parameter for poisson family taken to be 1)" in text
    gamma = mm.glm("Reaction ~ Days", mm.datasets.load("sleepstudy"), family="Gamma", link="log")
    assert "t value Pr(>|t|)" in str(gamma.summary())


def test_errors_name_the_fault():
    cbpp = mm.datasets.load("cbpp")
    before = cbpp.copy()
    with pytest.raises(mm.FormulaError, match="use glmer"):
        mm.glm("incidence ~ period + (1 | herd)", cbpp, family="poisson")
    with pytest.raises(mm.FamilyError, match="unknown family"):
        mm.glm("incidence ~ period", cbpp, family="poison")
    gm = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    with pytest.raises(mm.MixedModelsError, match="compare glmer with mm.glm"):
        mm.anova(gm, mm.lm("incidence ~ period", cbpp))
    pd.testing.assert_frame_equal(cbpp, before)  # the caller's data are not modified
