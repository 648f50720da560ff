"""Profile-likelihood intervals agree with lme4 1.1-31's confint(method = "profile").

R: confint(lmer(...), method = "profile"); lme4 profiles the ML deviance also for
REML fits, and so do we.  Agreement: 0.2% of the interval's half-width scale.

glmer fits (Laplace deviance) and the variance scale (lme4's prof.scale =
"varcov") against tests/fixtures/toolbox/glmer_profile.json, written by
glmer_profile.R next to it: cbpp (binomial), grouseticks (Poisson, two crossed
intercepts, one SD's interval reaching 0), a simulated binomial model with a
correlated random slope and sleepstudy's covariance.  lme4
finds the limits on a spline through ζ; we find them by root-finding on the
profile, and the two agree to about 1e-4 of the interval's width.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference.profile import DevianceProfile, parameter_labels

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "toolbox"
GLMER = json.loads((FIXTURES / "glmer_profile.json").read_text())

LME4 = {
    ("sleepstudy", "Reaction ~ Days + (Days|Subject)", 0.95): {
        "sd_(Intercept)|Subject": (14.38141816, 37.71599532),
        "cor_Days.(Intercept)|Subject": (-0.48150076, 0.68498627),
        "sd_Days|Subject": (3.80116405, 8.75338075),
        "sigma": (22.89826688, 28.85799651),
        "(Intercept)": (237.68069551, 265.12951468),
        "Days": (7.35865328, 13.57591875),
    },
    ("Dyestuff", "Yield ~ 1 + (1|Batch)", 0.95): {
        "sd_(Intercept)|Batch": (12.198535, 84.063047),
        "sigma": (38.229985, 67.657696),
        "(Intercept)": (1486.451500, 1568.548494),
    },
    ("Dyestuff2", "Yield ~ 1 + (1|Batch)", 0.95): {
        "sd_(Intercept)|Batch": (0.0, 2.0840435),
        "sigma": (2.8928310, 4.8158326),
        "(Intercept)": (4.3121002, 7.0190923),
    },
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", 0.90): {
        "sd_(Intercept)|plate": (0.66208388, 1.11572236),
        "sd_(Intercept)|sample": (1.17167609, 3.11497385),
        "sigma": (0.49527699, 0.61543203),
        "(Intercept)": (21.60872242, 24.33572238),
    },
}


@pytest.mark.parametrize("key", list(LME4), ids=[k[0] for k in LME4])
def test_profile_intervals_match_lme4(key):
    dataset, formula, level = key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        fit = mm.lmer(formula, mm.datasets.load(dataset))
        ci = fit.confint(method="profile", level=level)
    assert list(ci.index) == list(fit.parameters().index)
    for name, (lo, hi) in LME4[key].items():
        tol = 2e-3 * (hi - lo)
        assert ci.loc[name].iloc[0] == pytest.approx(lo, abs=tol), name
        assert ci.loc[name].iloc[1] == pytest.approx(hi, abs=tol), name


def grouseticks() -> pd.DataFrame:
    """lme4's grouseticks as glmer_profile.R fits it: factors, height centred."""
    data = pd.read_csv(FIXTURES / "grouseticks.csv")
    for column in ("BROOD", "LOCATION", "YEAR"):
        data[column] = data[column].astype(str).astype("category")
    return data.assign(cHEIGHT=data["HEIGHT"] - data["HEIGHT"].mean())


def glmer_fit(case: str) -> mm.GlmerResult:
    ref = GLMER[case]
    if case == "binomial_slopes":
        data = pd.read_csv(FIXTURES / "binomial_slopes.csv").astype({"g": str}).astype({"g": "category"})
    else:
        data = mm.datasets.load("cbpp") if case == "cbpp" else grouseticks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        fit = mm.glmer(ref["formula"], data, family=ref["family"])
    np.testing.assert_allclose(fit.fixef, ref["fixef"], atol=1e-3)  # lme4 stops a little short of the optimum
    return fit


def assert_matches_lme4(ci: pd.DataFrame, ref: dict, fit, tol: float = 2e-3) -> None:
    """Rows named as parameters() (lme4's .sig01… in order, then β) against lme4's limits."""
    names = [n for n in ci.index if n not in fit.fixef.index] + list(fit.fixef.index)
    assert len(names) == len(ref["names"])
    for name, lo, hi in zip(names, ref["lower"], ref["upper"]):
        assert ci.loc[name].iloc[0] == pytest.approx(lo, abs=tol * (hi - lo)), name
        assert ci.loc[name].iloc[1] == pytest.approx(hi, abs=tol * (hi - lo)), name


def test_glmer_profile_intervals_match_lme4_binomial():
    fit = glmer_fit("cbpp")
    ci = fit.confint(method="profile")
    assert list(ci.index) == list(fit.parameters().index)
    assert_matches_lme4(ci, GLMER["cbpp"]["profile_95"], fit)
    sd = DevianceProfile(fit).interval("psi", 0, 0.90)
    assert sd == pytest.approx((GLMER["cbpp"]["profile_90"]["lower"][0], GLMER["cbpp"]["profile_90"]["upper"][0]),
                               abs=1e-3)


def test_glmer_profile_of_poisson_sds_matches_lme4():
    """Two crossed intercepts; the LOCATION SD's lower limit is 0 (ζ stays below z there)."""
    fit = glmer_fit("grouseticks")
    prof = DevianceProfile(fit)
    ref = GLMER["grouseticks"]["profile_90"]
    assert parameter_labels(prof) == ["sd_(Intercept)|BROOD", "sd_(Intercept)|LOCATION"]
    for k, (lo, hi) in enumerate(zip(ref["lower"], ref["upper"])):
        assert prof.interval("psi", k, 0.90) == pytest.approx((lo, hi), abs=2e-3 * (hi - lo))
    assert prof.interval("psi", 1, 0.90)[0] == 0.0


def test_glmer_profile_of_a_correlated_random_slope_matches_lme4():
    """Two SDs and their correlation (simulated binomial data, 50 groups of 30)."""
    fit = glmer_fit("binomial_slopes")
    ci = fit.confint(method="profile")
    assert list(ci.index) == ["sd_(Intercept)|g", "cor_x.(Intercept)|g", "sd_x|g", "(Intercept)", "x"]
    assert_matches_lme4(ci, GLMER["binomial_slopes"]["profile_95"], fit)  # lme4's .sig01, .sig02, .sig03


@pytest.mark.slow
def test_glmer_profile_intervals_match_lme4_poisson():
    fit = glmer_fit("grouseticks")
    assert_matches_lme4(fit.confint(method="profile"), GLMER["grouseticks"]["profile_95"], fit)


def test_variance_scale_profiles_the_covariance_and_squares_the_sds():
    """lme4's prof.scale = "varcov": its covariance and σ² limits agree; a variance's limits are
    the SD's squared (the profile is the same function; both root-findings to 1e-6), which lme4's spline on the variance
    grid reproduces only to 2% (.sig01's lower limit 210.76 for 14.3814² = 206.82)."""
    fit = mm.lmer("Reaction ~ Days + (Days|Subject)", mm.datasets.load("sleepstudy"))
    sd = fit.confint(method="profile")
    var = fit.confint(method="profile", scale="variance")
    assert list(var.index) == ["var_(Intercept)|Subject", "cov_Days.(Intercept)|Subject", "var_Days|Subject",
                               "sigma^2", "(Intercept)", "Days"]
    for name in ("(Intercept)|Subject", "Days|Subject"):
        np.testing.assert_allclose(var.loc[f"var_{name}"], sd.loc[f"sd_{name}"] ** 2, rtol=1e-6)
    np.testing.assert_allclose(var.loc["sigma^2"], sd.loc["sigma"] ** 2, rtol=1e-6)
    ref = GLMER["sleepstudy_varcov"]["profile_95"]
    assert ref["names"] == [".sig01", ".sig02", ".sig03", ".sigma"]
    for name, k, tol in [("var_(Intercept)|Subject", 0, 2e-2), ("cov_Days.(Intercept)|Subject", 1, 2e-3),
                         ("var_Days|Subject", 2, 2e-2), ("sigma^2", 3, 2e-3)]:
        lo, hi = ref["lower"][k], ref["upper"][k]
        assert var.loc[name].tolist() == pytest.approx([lo, hi], abs=tol * (hi - lo)), name
    # a covariance profiled is not the correlation's limits times the SDs at the estimate
    cor = sd.loc["cor_Days.(Intercept)|Subject"] * np.sqrt(fit.covariances[0][0, 0] * fit.covariances[0][1, 1])
    assert abs(var.loc["cov_Days.(Intercept)|Subject"].iloc[0] - cor.iloc[0]) > 1.0


def test_glmer_variance_scale():
    fit = glmer_fit("cbpp")
    var = fit.confint(method="profile", scale="variance", level=0.90)
    ref = GLMER["cbpp"]["profile_90"]
    assert var.loc["var_(Intercept)|herd"].tolist() == pytest.approx(
        [ref["lower"][0] ** 2, ref["upper"][0] ** 2], abs=2e-3 * (ref["upper"][0] ** 2 - ref["lower"][0] ** 2))


def test_profile_refusals():
    cbpp = mm.datasets.load("cbpp")
    fit = mm.lmer("Reaction ~ Days + (1|Subject)", mm.datasets.load("sleepstudy"))
    with pytest.raises(ValueError, match="scale must be 'sd' or 'variance', not 'var'"):
        fit.confint(method="profile", scale="var")
    with pytest.raises(ValueError, match="is for method='profile'"):
        fit.confint(scale="variance")
    zero = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial", nAGQ=0)
    with pytest.raises(mm.FitError, match="nAGQ=1"):
        zero.confint(method="profile")
    sleep = mm.datasets.load("sleepstudy")
    gamma = mm.glmer("Reaction ~ Days + (1|Subject)", sleep, family=mm.families.Gamma("log"))
    with pytest.raises(mm.FitError, match="Gamma family .*method='boot'"):
        gamma.confint(method="profile")
