"""glmer and glmer_nb: response forms, families and links, residuals, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.engine.families import Binomial, NegativeBinomial, Poisson, get_family

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "glmer_nb"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp_fit():
    return mm.glmer(CBPP, mm.datasets.load("cbpp"), family="binomial")


def _long_cbpp() -> pd.DataFrame:
    """cbpp with one row per animal: the same likelihood up to the binomial coefficients."""
    d = mm.datasets.load("cbpp")
    rows = []
    for r in d.itertuples(index=False):
        k, n = int(r.incidence), int(r.size)
        rows += [(r.herd, r.period, 1)] * k + [(r.herd, r.period, 0)] * (n - k)
    out = pd.DataFrame(rows, columns=["herd", "period", "sick"])
    out["herd"] = out["herd"].astype(d["herd"].dtype)
    out["period"] = out["period"].astype(d["period"].dtype)
    return out


def test_proportions_with_trial_weights_equal_cbind(cbpp_fit):
    d = mm.datasets.load("cbpp")
    d["prop"] = d["incidence"] / d["size"]
    fit = mm.glmer("prop ~ period + (1 | herd)", d, family="binomial", weights="size")
    assert fit.objective == pytest.approx(cbpp_fit.objective, rel=1e-7)
    np.testing.assert_allclose(fit.fixef, cbpp_fit.fixef, rtol=1e-5)


@pytest.mark.parametrize("kind", ["int", "bool", "factor"])
def test_binary_response_forms_give_the_same_fit(cbpp_fit, kind):
    d = _long_cbpp()
    if kind == "bool":
        d["sick"] = d["sick"].astype(bool)
    elif kind == "factor":
        d["sick"] = pd.Categorical(np.where(d["sick"] == 1, "yes", "no"), categories=["no", "yes"])
    fit = mm.glmer("sick ~ period + (1 | herd)", d, family="binomial")
    np.testing.assert_allclose(fit.fixef, cbpp_fit.fixef, atol=2e-4)
    np.testing.assert_allclose(fit.theta, cbpp_fit.theta, atol=2e-4)
    assert fit.nobs == 842


def test_three_level_factor_response_is_rejected():
    d = _long_cbpp()
    d["sick"] = pd.Categorical(np.arange(len(d)) % 3)
    with pytest.raises(mm.DataError, match="3 levels"):
        mm.glmer("sick ~ period + (1 | herd)", d, family="binomial")


def test_family_objects_links_and_names():
    assert repr(get_family("binomial")) == "Binomial(link='logit')"
    assert get_family("Gamma").link.name == "inverse"
    assert get_family(Binomial(link="probit")).link.name == "probit"
    with pytest.raises(mm.FamilyError, match="unknown family 'binomal'.*Did you mean 'binomial'"):
        get_family("binomal")
    with pytest.raises(mm.FamilyError, match="link 'logit' is not available for the poisson family"):
        Poisson(link="logit")


def test_probit_link_is_used(cbpp_fit):
    fit = mm.glmer(CBPP, mm.datasets.load("cbpp"), family=mm.families.Binomial(link="probit"))
    assert fit.family.link.name == "probit"
    # probit coefficients are about logit / 1.6-1.8
    ratio = cbpp_fit.fixef["(Intercept)"] / fit.fixef["(Intercept)"]
    assert 1.5 < ratio < 1.9
    assert "( probit )" in str(fit.summary())


def test_residual_types_and_predictions(cbpp_fit):
    fit = cbpp_fit
    y, mu = fit.design.y, fit.fitted.to_numpy()
    np.testing.assert_allclose(fit.residuals_of("response"), y - mu)
    pearson = (y - mu) * np.sqrt(fit.design.weights) / np.sqrt(mu * (1 - mu))
    np.testing.assert_allclose(fit.residuals_of("pearson"), pearson)
    dev = fit.residuals_of("deviance").to_numpy()
    total = fit.family.deviance_residuals(y, mu, fit.design.weights).sum()
    assert (dev**2).sum() == pytest.approx(total)
    eta = fit.predict(type="link").to_numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-eta)), fit.predict(type="response"), rtol=1e-10)
    np.testing.assert_allclose(fit.residuals_of("working"), (y - mu) / (mu * (1 - mu)), rtol=1e-8)
    with pytest.raises(ValueError, match="type must be"):
        fit.residuals_of("raw")


def test_nagq_zero_matches_lme4(cbpp_fit):
    """lme4 1.1-31, glmer(..., nAGQ = 0): fixef, theta 0.64183856, -2 logLik 184.108693."""
    fast = mm.glmer(CBPP, mm.datasets.load("cbpp"), family="binomial", nAGQ=0)
    np.testing.assert_allclose(fast.fixef, [-1.36047573, -0.97617324, -1.11107278, -1.55967568], atol=1e-4)
    assert fast.theta[0] == pytest.approx(0.64183856, abs=1e-4)
    assert fast.objective <= 184.108693 * (1 + 1e-6)
    assert fast.objective >= cbpp_fit.objective - 1e-8  # no better than the full Laplace fit
    assert "nAGQ = 0" in str(fast.summary())


def test_agq_needs_one_scalar_term():
    d = mm.datasets.load("VerbAgg")
    with pytest.raises(mm.FamilyError, match="needs exactly one scalar random-effects term"):
        mm.glmer("r2 ~ Anger + (1|id) + (1|item)", d, family="binomial", nAGQ=5)


def test_poisson_offset_in_formula_equals_offset_argument():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(12), 10)
    exposure = rng.uniform(1, 5, g.size)
    b = rng.normal(0, 0.5, 12)
    y = rng.poisson(exposure * np.exp(0.3 + b[g]))
    d = pd.DataFrame({"y": y, "g": g, "exposure": exposure})
    a = mm.glmer("y ~ 1 + offset(log(exposure)) + (1 | g)", d, family="poisson")
    d["lo"] = np.log(d["exposure"])
    b2 = mm.glmer("y ~ 1 + (1 | g)", d, family="poisson", offset="lo")
    assert a.objective == pytest.approx(b2.objective, rel=1e-10)
    assert a.fixef["(Intercept)"] == pytest.approx(0.3, abs=0.4)


def test_invalid_responses_for_families():
    d = pd.DataFrame({"y": [-1.0, 2, 3, 1, 0, 2] * 3, "g": list("abcdef") * 3})
    with pytest.raises(mm.FamilyError, match="non-negative counts"):
        mm.glmer("y ~ 1 + (1 | g)", d, family="poisson")
    d["y"] = [0.5, 1, 0, 1, 0, 1] * 3
    with pytest.raises(mm.FamilyError, match="whole numbers of successes"):
        mm.glmer("y ~ 1 + (1 | g)", d, family="binomial")
    d["y"] = [2.0, 1, 0, 1, 0, 1] * 3
    with pytest.raises(mm.FamilyError, match="outside"):
        mm.glmer("y ~ 1 + (1 | g)", d, family="binomial")


def test_perfect_separation_is_reported():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(10), 20)
    x = rng.normal(size=g.size)
    d = pd.DataFrame({"y": (x > 0).astype(int), "x": x, "g": g})
    with pytest.warns(mm.ConvergenceWarning, match="separated"):
        mm.glmer("y ~ x + (1 | g)", d, family="binomial")


def test_glmer_nb_matches_lme4_glmer_nb():
    ref = json.loads((FIXTURES / "grouseticks_nb.json").read_text())
    d = pd.read_csv(FIXTURES / "grouseticks.csv", dtype={"YEAR": str, "LOCATION": str, "BROOD": str})
    fit = mm.glmer_nb(ref["formula"], d)
    assert isinstance(fit.family, NegativeBinomial)
    assert fit.objective <= ref["objective"] * (1 + 1e-6)
    assert fit.family.theta == pytest.approx(ref["nb_theta"], rel=0.01)
    assert fit.df == ref["df"]
    se = np.array(ref["se"])
    assert np.all(np.abs(fit.fixef.to_numpy() - ref["beta"]) <= 0.02 * se)
    np.testing.assert_allclose(fit.se, se, rtol=0.02)
    np.testing.assert_allclose(fit.theta, ref["theta"], rtol=0.02)


def test_empty_data_and_bad_nagq_are_clear_errors():
    empty = mm.datasets.load("cbpp").iloc[:0]
    with pytest.raises(mm.DataError, match="data has no rows"):
        mm.glmer(CBPP, empty, family="binomial")
    with pytest.raises(mm.DataError, match="data has no rows"):
        mm.lmer("Reaction ~ Days + (1|Subject)", mm.datasets.load("sleepstudy").iloc[:0])
    with pytest.raises(mm.MixedModelsError, match="nAGQ must be 0, 1 or a larger number"):
        mm.glmer(CBPP, mm.datasets.load("cbpp"), family="binomial", nAGQ=-1)
    with pytest.raises(mm.DataError, match="must be a pandas DataFrame, not dict"):
        mm.lmer("Reaction ~ Days + (1|Subject)", {"Reaction": [1.0]})
