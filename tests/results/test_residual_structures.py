"""Residual correlation and variance structures agree with nlme 3.1-162's lme and gls
(tests/fixtures/resid_struct: make_fixtures.R writes the data sets and nlme_fits.json).

Orthodont and BodyWeight (nlme's data) and a simulated AR(1) growth curve (also its first four weeks with
some visits missing, for corSymm's patterns of times), by REML and ML:
−2 log-likelihood within 1e-6, fixed effects within 1e-4 of their SE, SEs and σ within 1e-4
relative, random-effect SDs within 1e-4 relative (2e-3 absolute at the singular fit), φ, ρ and
the variance functions' parameters within 1e-4, nlme's normalized residuals within 1e-4.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resid_struct"
NLME = json.loads((FIXTURES / "nlme_fits.json").read_text(encoding="utf-8"))


def load(name: str) -> pd.DataFrame:
    """A fixture's CSV with its factors' levels in R's order."""
    data = pd.read_csv(FIXTURES / f"{name}.csv")
    for column, levels in NLME["levels"][name].items():
        data[column] = pd.Categorical(data[column].astype(str), categories=[str(v) for v in levels])
    return data


DATA = {name: load(name) for name in ("orthodont", "bodyweight", "growth_ar1")}
DATA["growth_first4"] = DATA["growth_ar1"][DATA["growth_ar1"]["week"] < 4]  # some visits missing

CASES = {  # fixture id: (kind, data, formula, structure arguments)
    "orth_ar1": ("lmer", "orthodont", "distance ~ age + Sex + (1 | Subject)",
                 {"residual": mm.AR1(group="Subject")}),
    "orth_varident": ("lmer", "orthodont", "distance ~ age + Sex + (1 | Subject)", {"variance": mm.VarIdent("Sex")}),
    "orth_gls_cs": ("gls", "orthodont", "distance ~ age + Sex", {"residual": mm.CompSymm(group="Subject")}),
    "orth_gls_symm": ("gls", "orthodont", "distance ~ age * Sex",
                      {"residual": mm.Symm(group="Subject"), "variance": mm.VarIdent("Sex")}),
    "bw_car1": ("lmer", "bodyweight", "weight ~ Time * Diet + (1 | Rat)",
                {"residual": mm.CAR1(time="Time", group="Rat")}),
    "bw_varpower": ("lmer", "bodyweight", "weight ~ Time * Diet + (1 | Rat)", {"variance": mm.VarPower("Time")}),
    "sim_ar1": ("lmer", "growth_ar1", "y ~ week + arm + (1 | id)", {"residual": mm.AR1(time="week", group="id")}),
    "sim_ar1_slope_varident": ("lmer", "growth_ar1", "y ~ week + arm + (week | id)",
                               {"residual": mm.AR1(time="week", group="id"), "variance": mm.VarIdent("arm")}),
    "sim_gls_ar1": ("gls", "growth_ar1", "y ~ week + arm", {"residual": mm.AR1(time="week", group="id")}),
    "sim_gls_symm_missing": ("gls", "growth_first4", "y ~ week + arm", {"residual": mm.Symm(time="week", group="id")}),
}


def fit(key: str, REML: bool):
    kind, data, formula, structure = CASES[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)  # sim_ar1: nlme's intercept SD is 0.0008
        if kind == "gls":
            return mm.gls(formula, DATA[data], REML=REML, **structure)
        return mm.lmer(formula, DATA[data], REML=REML, **structure)


@pytest.fixture(scope="module")
def fits() -> dict[str, object]:
    return {f"{key}_{method}": fit(key, method == "REML") for key in CASES for method in ("REML", "ML")}


IDS = [f"{key}_{method}" for key in CASES for method in ("REML", "ML")]


@pytest.mark.parametrize("case", IDS)
def test_estimates_agree_with_nlme(fits, case):
    m, ref = fits[case], NLME[case]
    assert m.objective == pytest.approx(ref["objective"], abs=1e-6)
    assert m.df == ref["df"]
    assert m.aic == pytest.approx(ref["AIC"], abs=1e-6)
    assert m.bic == pytest.approx(ref["BIC"], abs=1e-6)  # nlme's REML BIC counts n − p observations
    se = np.array(list(ref["se"].values()))
    assert np.all(np.abs(m.fixef.to_numpy() - np.array(list(ref["beta"].values()))) < 1e-4 * se)
    np.testing.assert_allclose(m.se.to_numpy(), se, rtol=1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    correlation = ref.get("correlation")
    if correlation is not None:  # nlme names AR(1)'s parameter Phi1 when the time is a covariate
        expected = correlation if isinstance(correlation, list) else list(correlation.values())
        np.testing.assert_allclose(m.correlation_parameters.to_numpy(), expected, atol=1e-4)
    if "variance" in ref:
        ours = m.variance_parameters
        if "variance_reference" in ref:  # varIdent: nlme's ratios to its reference level
            ours = ours / ours[ref["variance_reference"]]
        for name, value in ref["variance"].items():
            assert ours[name] == pytest.approx(value, abs=1e-4), name
    np.testing.assert_allclose(m.residuals_of("normalized").to_numpy()[:10], ref["resid_normalized_head"], atol=1e-4)


@pytest.mark.parametrize("case", [c for c in IDS if CASES[c.rsplit("_", 1)[0]][0] == "lmer"])
def test_random_effect_sds_agree_with_nlme(fits, case):
    m, ref = fits[case], NLME[case]
    table = m.varcorr.table
    ours = table[(table["grp"] != "Residual") & table["var2"].isna()]
    for name, value in ref["re_sd"].items():
        got = float(ours.loc[ours["var1"] == name, "sdcor"].iloc[0])
        assert got == pytest.approx(value, rel=1e-4, abs=2e-3 if case.startswith("sim_ar1_") else 0), name


def test_summary_prints_the_structures_as_nlme(fits):
    text = str(fits["sim_ar1_slope_varident_REML"].summary())
    assert "Correlation Structure: AR(1)\n Formula: ~week | id \n Parameter estimate(s):" in text
    assert "Variance function:\n Structure: Different standard deviations per stratum\n Formula: ~1 | arm" in text
    assert "Correlation Structure: AR(1)" in str(fits["sim_ar1_slope_varident_REML"])  # print(m) too
    gls_text = str(fits["orth_gls_cs_REML"].summary())
    assert gls_text.startswith("Generalized least squares fit by REML") and "Correlation Structure: Compound symmetry" in gls_text


def test_varcorr_and_tidy_include_the_structure_parameters(fits):
    m = fits["sim_ar1_slope_varident_REML"]
    table = m.varcorr.table
    rows = table[(table["grp"] == "Residual") & table["var1"].notna()]
    assert list(rows["var1"]) == ["Phi", "varIdent.B"]
    assert rows["sdcor"].to_numpy() == pytest.approx([NLME["sim_ar1_slope_varident_REML"]["correlation"]["Phi1"],
                                                     NLME["sim_ar1_slope_varident_REML"]["variance"]["B"]], abs=1e-4)
    tidy = m.tidy("ran_pars")
    assert {"Phi", "varIdent.B", "sd__Observation"} <= set(tidy["term"])
    assert "Phi" not in str(m.varcorr)  # the printed VarCorr keeps lme4's layout


def test_anova_compares_models_with_and_without_the_structure(fits):
    """LRT of AR(1) residuals against independent ones: the refitted ML fits' likelihoods, one df."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.RefitWarning)
        plain = mm.lmer("y ~ week + arm + (week | id)", DATA["growth_ar1"], REML=False)
        table = mm.anova(plain, fits["sim_ar1_slope_varident_ML"])
    assert list(table["npar"]) == [7, 9]
    assert table["logLik"].iloc[1] == pytest.approx(-NLME["sim_ar1_slope_varident_ML"]["objective"] / 2, abs=1e-6)
    assert table["Df"].iloc[1] == 2 and table["Pr(>Chisq)"].iloc[1] < 1e-10


def test_refit_ml_of_a_reml_fit_is_the_ml_fit(fits):
    m = fits["bw_car1_REML"].refit_ml()
    assert m.objective == pytest.approx(NLME["bw_car1_ML"]["objective"], abs=1e-6)
    g = fits["orth_gls_cs_REML"].refit_ml()
    assert g.objective == pytest.approx(NLME["orth_gls_cs_ML"]["objective"], abs=1e-6)


def test_gls_without_a_structure_is_lm():
    data = DATA["orthodont"]
    g = mm.gls("distance ~ age + Sex", data, REML=False)
    lm = mm.lm("distance ~ age + Sex", data)
    assert g.loglik == pytest.approx(lm.loglik, abs=1e-9)
    np.testing.assert_allclose(g.fixef, lm.fixef, rtol=1e-12)
    np.testing.assert_allclose(g.se, lm.se, rtol=1e-12)


def test_predictions_and_residuals(fits):
    m = fits["sim_ar1_slope_varident_REML"]
    data = DATA["growth_ar1"]
    np.testing.assert_allclose(m.predict(), m.fitted, rtol=1e-12)
    np.testing.assert_allclose(m.residuals, data["y"] - m.fitted, atol=1e-12)
    np.testing.assert_allclose(m.predict(data.iloc[:5]), m.fitted.iloc[:5], rtol=1e-12)
    pearson = m.residuals_of("pearson")
    ratio = np.where(data["arm"] == "B", m.variance_parameters["B"], 1.0)
    np.testing.assert_allclose(pearson, m.residuals / (m.sigma * ratio), rtol=1e-12)
    g = fits["sim_gls_ar1_REML"]
    np.testing.assert_allclose(g.predict(data.iloc[:5]), g.fitted.iloc[:5], rtol=1e-12)


@pytest.mark.parametrize("key, type", [("plain_pearson", "pearson"), ("ar1_pearson", "pearson"),
                                       ("ar1_normalized", "normalized")])
def test_acf_agrees_with_nlme(fits, key, type):
    """nlme's ACF(m, maxLag = 5, resType = type), with and without the AR(1) structure."""
    if key.startswith("plain"):
        m = mm.lmer("y ~ week + arm + (week | id)", DATA["growth_ar1"])
        assert m.objective == pytest.approx(NLME["sim_slope_plain_REML"]["objective"], abs=1e-6)
    else:
        m = fits["sim_ar1_slope_varident_REML"]
    table = mm.acf(m, max_lag=5, type=type)
    ref = NLME["acf"][key]
    np.testing.assert_allclose(table["ACF"], ref["ACF"], atol=1e-5)
    assert list(table["n_used"]) == ref["n_used"]


def test_acf_errors(fits):
    plain = mm.lmer("y ~ week + arm + (week | id)", DATA["growth_ar1"])
    with pytest.raises(mm.MixedModelsError, match="normalized residuals need a fit with a residual structure"):
        mm.acf(plain, type="normalized")
    with pytest.raises(mm.DataError, match="max_lag must be between 0 and 7"):
        mm.acf(plain, max_lag=8)
    assert len(mm.acf(plain)) == 8  # nlme's default: min(7, floor(10 log10(8))) + 1 lags


def test_parameters_and_wald_intervals_name_the_structure_parameters(fits):
    m = fits["sim_ar1_slope_varident_REML"]
    params = m.parameters()
    assert list(params.index[3:6]) == ["sigma", "Phi", "varIdent.B"]
    assert params["Phi"] == pytest.approx(m.correlation_parameters["Phi"])
    ci = m.confint()
    np.testing.assert_allclose(ci.loc["week"], m.fixef["week"] + np.array([-1, 1]) * 1.959964 * m.se["week"], rtol=1e-6)


def test_icc_uses_the_mean_residual_variance(fits):
    m = fits["sim_ar1_slope_varident_REML"]
    g = np.where(DATA["growth_ar1"]["arm"] == "B", m.variance_parameters["B"], 1.0)
    resid = m.sigma**2 * np.mean(g**2)
    re = m.random_variances()["id"]
    assert m.icc()["adjusted"] == pytest.approx(re / (re + resid), rel=1e-12)


def test_summary_names_the_groups_taken_by_default():
    """Without group=, the model's one grouping factor is taken, and printed as nlme prints it."""
    data = pd.read_csv(FIXTURES / "orthodont.csv")
    m = mm.lmer("distance ~ age + (1 | Subject)", data, residual=mm.CAR1(time="age"))
    text = str(m.summary())
    assert "Correlation Structure: Continuous AR(1)\n Formula: ~age | Subject \n" in text
    assert text.startswith("Linear mixed model fit by REML ['lme']")  # nlme's class: not an lme4 model
