"""Structured random-effects terms (lme4 2.0's us, diag, cs, ar1) agree with glmmTMB 1.1.5 and with
lme4 2.0's published glmmTMB values (tests/fixtures/covstruct: make.R, glmmtmb.json, lme4_published.json).

Tolerances: the objective within 1e-6 relative (or lower), fixed effects within 2% of their SE,
SEs within 2%, σ within 0.2%, standard deviations within 2%, correlations within 0.01.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError, FormulaError, MixedModelsError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "covstruct"
GLMMTMB = json.loads((FIXTURES / "glmmtmb.json").read_text(encoding="utf-8"))
PUBLISHED = json.loads((FIXTURES / "lme4_published.json").read_text(encoding="utf-8"))

LMM_CASES = {  # fixture id: (data, formula, REML)
    "sleep_us_ML": ("sleep", "Reaction ~ Days + us(Days | Subject)", False),
    "sleep_us_REML": ("sleep", "Reaction ~ Days + us(Days | Subject)", True),
    "sleep_diag_ML": ("sleep", "Reaction ~ Days + diag(Days | Subject)", False),
    "sleep_diag_REML": ("sleep", "Reaction ~ Days + diag(Days | Subject)", True),
    "sleep_homcs_ML": ("sleep", "Reaction ~ Days + cs(Days | Subject, hom = TRUE)", False),
    "sleep_homcs_REML": ("sleep", "Reaction ~ Days + cs(Days | Subject, hom = TRUE)", True),
    "sleep_ar1_REML": ("sleep", "Reaction ~ Daysf + ar1(0 + Daysf | Subject)", True),
    "rep_ar1_ML": ("rep", "y_ar ~ timef + ar1(0 + timef | id)", False),
    "rep_ar1_REML": ("rep", "y_ar ~ timef + ar1(0 + timef | id)", True),
    "rep_cs_ML": ("rep", "y_cs ~ timef + cs(0 + timef | id)", False),
    "rep_cs_REML": ("rep", "y_cs ~ timef + cs(0 + timef | id)", True),
    "rep_homcs_ML": ("rep", "y_cs ~ timef + cs(0 + timef | id, hom = TRUE)", False),
    "rep_diag_ML": ("rep", "y_ar ~ timef + diag(0 + timef | id)", False),
    "rep_us_ML": ("rep", "y_ar ~ timef + us(0 + timef | id)", False),
    "rep_cs_on_ar_ML": ("rep", "y_ar ~ timef + cs(0 + timef | id)", False),
}
GLMM_CASES = {  # fixture id: (data, formula, family)
    "cbpp_ar1": ("cbpp", "cbind(incidence, size - incidence) ~ 1 + ar1(0 + period | herd)", "binomial"),
    "count_ar1": ("rep", "count ~ time + ar1(0 + timef | id)", "poisson"),
    "count_homcs": ("rep", "count ~ time + cs(0 + timef | id, hom = TRUE)", "poisson"),
}
_FITS: dict[str, mm.LmerResult | mm.GlmerResult] = {}


def data(name: str) -> pd.DataFrame:
    if name == "sleep":
        d = mm.datasets.load("sleepstudy")
        d["Daysf"] = pd.Categorical(d["Days"].astype(int))
        return d
    if name == "cbpp":
        return mm.datasets.load("cbpp")
    d = pd.read_csv(FIXTURES / "repeated.csv")
    d["id"], d["timef"] = pd.Categorical(d["id"]), pd.Categorical(d["timef"])
    return d


def fitted(case: str):
    if case not in _FITS:
        if case in LMM_CASES:
            name, formula, reml = LMM_CASES[case]
            _FITS[case] = mm.lmer(formula, data(name), REML=reml)
        else:
            name, formula, family = GLMM_CASES[case]
            _FITS[case] = mm.glmer(formula, data(name), family=family)
    return _FITS[case]


def structure_parameters(fit) -> tuple[np.ndarray, np.ndarray]:
    """The SD rows and the correlation rows of the (single) term's VarCorr."""
    vc = fit.varcorr[fit.varcorr["grp"] != "Residual"]
    sd = vc[vc["var2"].isna() | (vc["var2"] == "nan")]["sdcor"].to_numpy()
    cor = vc[~(vc["var2"].isna() | (vc["var2"] == "nan"))]["sdcor"].to_numpy()
    return sd, cor


@pytest.mark.parametrize("case", [*LMM_CASES, *GLMM_CASES])
def test_agreement_with_glmmtmb(case):
    fit, ref = fitted(case), GLMMTMB[case]
    assert fit.objective <= ref["objective"] + 1e-6 * abs(ref["objective"])
    assert fit.objective == pytest.approx(ref["objective"], rel=1e-6)
    assert fit.df == ref["df"]
    se = np.array(list(ref["se"].values()))
    assert np.all(np.abs(fit.fixef.to_numpy() - np.array(list(ref["fixef"].values()))) <= 0.02 * se)
    np.testing.assert_allclose(fit.se.to_numpy(), se, rtol=0.02)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=0.002)
    sd, cor = structure_parameters(fit)
    structure = fit.reterms[0].structure
    np.testing.assert_allclose(sd, np.array(ref["sd"])[list(structure.sd_columns(fit.reterms[0].p))], rtol=0.02)
    R = np.array(ref["cor"]) if ref.get("cor") is not None else np.eye(1)
    expected = [R[a, b] for a, b in structure.correlation_pairs(fit.reterms[0].p)]
    np.testing.assert_allclose(cor, expected, atol=0.01)


def test_agreement_with_lme4_2_published_values():
    """lme4 2.0's test data: glmmTMB's ML fits of sleepstudy with us, cs (two columns: as us), diag and
    ar1 over the days as an ordered factor (polynomial contrasts in X; logLik, σ, the covariance matrix
    and vcov)."""
    d = data("sleep")
    d["Daysf"] = pd.Categorical(d["Days"].astype(int), ordered=True)
    for key, formula in [("fm1_us", "Reaction ~ Days + us(Days | Subject)"),
                         ("fm1_cs", "Reaction ~ Days + cs(Days | Subject)"),
                         ("fm1_diag", "Reaction ~ Days + diag(Days | Subject)"),
                         ("fm1_ar1", "Reaction ~ Daysf + ar1(0 + Daysf | Subject)")]:
        fit, ref = mm.lmer(formula, d, REML=False), PUBLISHED[key]
        assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-8), key
        assert fit.sigma == pytest.approx(ref["sigma"], rel=5e-4), key
        np.testing.assert_allclose(fit.covariances[0], np.array(ref["var"]), rtol=5e-4, atol=1e-3 * ref["var"][0][0])
        V = np.array(ref["vcov"])
        np.testing.assert_allclose(fit.vcov.to_numpy(), V, rtol=5e-4, atol=1e-6 * np.abs(V).max())


def test_glmer_agreement_with_lme4_2_published_values():
    """lme4 2.0's test data: glmmTMB's Laplace fits of Contraception with us, cs and diag (1 + urban | district)
    (logLik within 1e-8; the covariance within 5e-4 and vcov within 3e-3, lme4 2.0's own tolerances)."""
    d = mm.datasets.load("Contraception")
    for key, structure in [("gm_us", "us"), ("gm_cs", "cs"), ("gm_diag", "diag")]:
        fit, ref = mm.glmer(f"use ~ age + urban + {structure}(1 + urban | district)", d, family="binomial"), PUBLISHED[key]
        assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-8), key
        np.testing.assert_allclose(fit.covariances[0], np.array(ref["var"]), rtol=5e-4, atol=1e-6)
        np.testing.assert_allclose(fit.vcov.to_numpy(), np.array(ref["vcov"]), rtol=3e-3)


def test_us_is_the_plain_term_and_diag_the_double_bar():
    d = data("sleep")
    plain, us = mm.lmer("Reaction ~ Days + (Days | Subject)", d), mm.lmer("Reaction ~ Days + us(Days | Subject)", d)
    assert us.objective == plain.objective and us.theta.tolist() == plain.theta.tolist()
    double, diag = mm.lmer("Reaction ~ Days + (Days || Subject)", d), mm.lmer("Reaction ~ Days + diag(Days | Subject)", d)
    assert diag.objective == pytest.approx(double.objective, rel=1e-9)
    np.testing.assert_allclose(diag.fixef, double.fixef, rtol=1e-6)
    assert list(diag.varcorr["grp"]) == ["Subject", "Subject", "Residual"]  # one term, as lme4 2.0 reports it


def test_printed_as_lme4_2():
    """reformulas' formatVC: one SD and 'ρ (ar1)' for a homogeneous ar1; every SD and 'ρ (cs)' for cs."""
    text = str(fitted("sleep_ar1_REML").varcorr)
    assert text.splitlines()[:2] == [" Groups   Name   Std.Dev. Corr", " Subject  Daysf0 47.458   0.880 (ar1)"]
    summary = str(fitted("rep_cs_ML").summary())
    assert " id       timeft1 0.8401   0.9166   0.38 (cs)" in summary
    assert "          timeft2 0.9456   0.9724" in summary
    assert "Corr" not in str(fitted("rep_diag_ML").varcorr)


def test_varcorr_tidy_and_theta_hold_the_structure_parameters():
    fit = fitted("rep_ar1_ML")
    assert fit.varcorr.structures == {"id": "ar1"}
    assert fit.tidy("ran_pars")["term"].tolist() == ["sd__timeft1", "cor__timeft1.timeft2", "sd__Observation"]
    assert fit.parameters().index[:3].tolist() == ["sd_timeft1|id", "cor_timeft2.timeft1|id", "sigma"]
    assert fit.theta_names == ["id.timeft1", "id.a_rho"]
    rho = fit.reterms[0].structure.rho(fit.theta[1], 5)
    assert fit.varcorr["sdcor"][1] == pytest.approx(rho)
    # the covariance is the structure's: σ² τ² ρ^|i−j|
    S = fit.covariances[0]
    lag = np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    np.testing.assert_allclose(S, S[0, 0] * rho**lag, rtol=1e-10)


def test_likelihood_ratio_tests_count_the_structure_parameters():
    ar1, cs, us = fitted("rep_ar1_ML"), fitted("rep_cs_on_ar_ML"), fitted("rep_us_ML")
    table = mm.anova(ar1, us)
    assert table["npar"].tolist() == [8, 21]
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (us.loglik - ar1.loglik))
    assert table["Df"].iloc[1] == 13
    assert mm.anova(ar1, cs)["npar"].tolist() == [8, 12]


def test_confidence_intervals():
    fit = fitted("rep_ar1_ML")
    wald = fit.confint("wald")
    assert wald.loc[["sd_timeft1|id", "cor_timeft2.timeft1|id", "sigma"]].isna().all().all()
    profile = fit.confint("profile")
    estimates = fit.parameters()
    assert (profile.iloc[:, 0] < estimates).all() and (estimates < profile.iloc[:, 1]).all()
    # glmmTMB's profile intervals (of log SD, ρ's a and log σ², transformed back: profiles are invariant)
    ref = GLMMTMB["rep_ar1_ML"]["profile"]
    for name, key in [("sd_timeft1|id", "sd"), ("cor_timeft2.timeft1|id", "rho"), ("sigma", "sigma")]:
        np.testing.assert_allclose(profile.loc[name].to_numpy(), ref[key], rtol=1e-4)


@pytest.mark.slow
def test_bootstrap_intervals():
    fit = fitted("rep_ar1_ML")
    boot = fit.confint("boot", nsim=40, seed=1)
    assert list(boot.index) == list(fit.parameters().index)
    assert boot.notna().all().all()


def test_reml_refit_and_persistence(tmp_path):
    fit = fitted("rep_cs_REML")
    assert fit.refit_ml().objective == pytest.approx(GLMMTMB["rep_cs_ML"]["objective"], rel=1e-6)
    for case in ("rep_cs_REML", "count_homcs"):
        path = tmp_path / f"{case}.npz"
        fitted(case).save(path)
        back = mm.load(path)
        assert back.objective == fitted(case).objective
        assert str(back.varcorr) == str(fitted(case).varcorr)
        assert back.parsed.random == fitted(case).parsed.random


def test_gradient_of_structured_terms_is_the_derivative():
    """The LMM's analytic gradient through the chain rule, against central differences."""
    d = data("rep")
    for formula in ("y_cs ~ timef + cs(0 + timef | id)", "y_ar ~ timef + ar1(0 + timef | id) + (1 | rep)",
                    "y_ar ~ timef + diag(0 + timef | id, hom = TRUE)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = mm.lmer(formula, d).model
        theta = model.theta_start + 0.3
        _, grad = model.objective_and_gradient(theta)
        h = 1e-6
        numeric = [(model.objective(theta + e) - model.objective(theta - e)) / (2 * h) for e in np.eye(len(theta)) * h]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["bobyqa", "lbfgsb"])
def test_both_optimizers_reach_glmmtmbs_optimum(optimizer):
    for case in ("rep_cs_ML", "rep_ar1_REML"):
        _, formula, reml = LMM_CASES[case]
        fit = mm.lmer(formula, data("rep"), REML=reml, control=mm.Control(optimizer=optimizer))
        assert fit.objective == pytest.approx(GLMMTMB[case]["objective"], rel=1e-8)
        assert fit.optimum.converged


def test_start_and_refit_keep_rho():
    """A given start is rescaled in its SDs only: ρ's parameter is not a scale."""
    fit = fitted("rep_ar1_ML")
    again = mm.lmer(LMM_CASES["rep_ar1_ML"][1], data("rep"), REML=False, start=fit.theta * np.array([1e6, 1.0]))
    assert again.objective == pytest.approx(fit.objective, rel=1e-9)


def test_methods_that_need_linear_parameters_refuse():
    fit = fitted("rep_ar1_REML")
    with pytest.raises(MixedModelsError, match=r"ar1\(0 \+ timef \| id\)"):
        fit.summary(ddf="Kenward-Roger")
    with pytest.raises(MixedModelsError, match="ranova reduces unstructured terms only"):
        mm.ranova(fit)


def test_misspelled_structure_is_named():
    with pytest.raises(FormulaError, match=r"ar\(\) is not a covariance structure.*us\(\), diag\(\), cs\(\), ar1\(\)"):
        mm.lmer("y_ar ~ timef + ar(0 + timef | id)", data("rep"))


def test_dask_fits_take_structures():
    dd = pytest.importorskip("dask.dataframe")
    parts = dd.from_pandas(data("rep"), npartitions=3)
    fit = mm.lmer(LMM_CASES["rep_ar1_ML"][1], parts, REML=False)
    assert fit.objective == pytest.approx(GLMMTMB["rep_ar1_ML"]["objective"], rel=1e-8)
    assert fit.varcorr.structures == {"id": "ar1"}
    glmm = mm.glmer(GLMM_CASES["count_ar1"][1], parts, family="poisson")
    assert glmm.objective == pytest.approx(GLMMTMB["count_ar1"]["objective"], rel=1e-8)


def test_simulation_from_given_parameters_takes_the_structures_theta():
    """mm.simulate's θ for a structured term is (τ…, a); a wrong length names the term as written."""
    d = data("rep")
    beta = [10.0, 0.5, 1.0, 1.5, 2.0]
    y = mm.simulate("~ timef + ar1(0 + timef | id)", d, beta=beta, theta=[1.5, 1.0], sigma=1.0, seed=3)
    assert y.shape == (600, 1)
    with pytest.raises(DataError, match=r"ar1\(0 \+ timef \| id\): 2"):
        mm.simulate("~ timef + ar1(0 + timef | id)", d, beta=beta, theta=[1.5], sigma=1.0, seed=3)
