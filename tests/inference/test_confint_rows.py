"""confint's rows are lme4's confint(m, oldNames = FALSE): names, order and limits.

Per random-effects term the lower triangle of its covariance column by column (the SD of a
column, then the correlations of the later columns with it, named 'cor_<later>.<earlier>|<group>'),
then 'sigma' (lmer only), then β.  Reference: tests/fixtures/confint_rows/confint_rows.json,
written by confint_rows.R next to it (lme4 1.1-31): sleepstudy's correlated slope, a 3 × 3 term
(a factor slope), Penicillin's two crossed intercepts, the uncorrelated ``(Days || Subject)`` and
a glmer (cbpp: no sigma row).  Profile limits agree to 2e-3 of the interval's width (lme4 reads
them off a spline through ζ; we root-find on the profile).
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
from tests.reference import load_fixture_data

REF = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "confint_rows" / "confint_rows.json").read_text())
CASES = [k for k in REF if k != "versions"]


def fitted(case: str):
    ref = REF[case]
    data = load_fixture_data(ref["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        if ref["family"] == "gaussian":
            return mm.lmer(ref["formula"], data)
        return mm.glmer(ref["formula"], data, family=ref["family"])


def limits(values: list) -> np.ndarray:
    """R's NA (no Wald interval for a variance parameter) as NaN."""
    return np.array([np.nan if v == "NA" else v for v in values], dtype=float)


@pytest.mark.parametrize("case", CASES)
def test_parameters_and_wald_rows_are_lme4s(case):
    fit = fitted(case)
    ref = REF[case]["Wald"]
    assert list(fit.parameters().index) == ref["names"]
    wald = fit.confint(method="wald")
    assert list(wald.index) == ref["names"]
    # glmer: lme4 stops short of the optimum (β within 1e-3) and its Hessian-based SEs there are
    # about 1% below ours: its Wald limits are within 1% of the interval's width of ours
    k = len(fit.fixef)
    lower, upper = limits(ref["lower"]), limits(ref["upper"])
    assert np.isnan(lower[:-k]).all() and wald.iloc[:-k].isna().all().all()  # no Wald interval for variances
    tol = (1e-4 if REF[case]["family"] == "gaussian" else 1e-2) * (upper[-k:] - lower[-k:])
    assert np.all(np.abs(wald.iloc[-k:, 0].to_numpy() - lower[-k:]) <= tol)
    assert np.all(np.abs(wald.iloc[-k:, 1].to_numpy() - upper[-k:]) <= tol)


@pytest.mark.parametrize("case", CASES)
def test_profile_rows_and_limits_are_lme4s(case):
    fit = fitted(case)
    ref = REF[case]["profile"]
    ci = fit.confint(method="profile")
    assert list(ci.index) == ref["names"]
    for name, lo, hi in zip(ref["names"], ref["lower"], ref["upper"]):
        tol = 2e-3 * (hi - lo)
        assert ci.loc[name].iloc[0] == pytest.approx(lo, abs=tol), name
        assert ci.loc[name].iloc[1] == pytest.approx(hi, abs=tol), name


def test_the_profile_labels_its_parameters_by_the_same_names():
    fit = fitted("sleepstudy")
    assert sorted(parameter_labels(DevianceProfile(fit))) == sorted(REF["sleepstudy"]["profile"]["names"][:4])


def test_bootstrap_and_tidy_follow_the_same_order():
    """The bootstrap's default statistic is parameters(); broom.mixed's tidy(ran_pars) lists the same
    order with its own names (earlier column first)."""
    fit = fitted("factor_slope")
    boot = fit.bootstrap(nsim=3, seed=1, progress=False)
    assert list(boot.confint().index) == REF["factor_slope"]["Wald"]["names"]
    assert fit.tidy("ran_pars")["term"].tolist() == [
        "sd__(Intercept)", "cor__(Intercept).fb", "cor__(Intercept).fc", "sd__fb", "cor__fb.fc", "sd__fc",
        "sd__Observation"]


def test_two_terms_of_one_factor_sharing_a_column_keep_their_varcorr_labels():
    """lme4 repeats 'sd_(Intercept)|Subject' for (Days | Subject) + (1 | Subject); the names here stay
    unique: the second term's group as VarCorr prints it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer("Reaction ~ Days + (Days | Subject) + (1 | Subject)", load_fixture_data("sleepstudy"))
    assert list(fit.parameters().index[:4]) == [
        "sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sd_(Intercept)|Subject.1"]
    assert pd.Series(fit.parameters().index).is_unique


def test_methods_are_matched_as_lme4s_match_arg():
    """R's spellings ("Wald") and abbreviations ("prof") choose the method; anything else is the package's error."""
    fit = fitted(CASES[0])
    pd.testing.assert_frame_equal(fit.confint(method="Wald"), fit.confint(method="wald"))
    assert list(fit.confint(method="prof").index) == REF[CASES[0]]["Wald"]["names"]
    with pytest.raises(mm.MixedModelsError, match="'wald', 'profile', 'boot'"):
        fit.confint(method="bogus")
