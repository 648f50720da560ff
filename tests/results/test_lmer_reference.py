"""Every Gaussian reference model agrees with lme4 1.1-31.

Tolerances are those the project promises: objective within 1e-6 relative (or
lower), fixed effects within 2% of their SE, SEs within 2%, σ within 0.2%, every
VarCorr row within 2% (absolute 2% of the largest SD for near-zero entries),
conditional modes within 2% of their conditional SD, and conditional SDs within 2%.
"""

from __future__ import annotations

import warnings

import pytest

import mixedmodels as mm
from agreement import (check_conditional_modes, check_fixed_effects, check_icc_r2, check_objective,
                       check_sigma_and_theta, check_varcorr)
from reference import load_reference

GAUSSIAN = [
    "dyestuff_reml",
    "dyestuff_ml",
    "dyestuff2_singular",
    "sleepstudy_slope_reml",
    "sleepstudy_intercept_ml",
    "sleepstudy_slope_ml",
    "sleepstudy_uncorr_reml",
    "penicillin_crossed",
    "pastes_nested",
    "insteval_crossed",
]

_FITS: dict[str, tuple[dict, mm.LmerResult]] = {}


def fitted(ref_id: str) -> tuple[dict, mm.LmerResult]:
    """Fit each reference model once per test session."""
    if ref_id not in _FITS:
        ref = load_reference(ref_id)
        data = mm.datasets.load(ref["dataset"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mm.SingularFitWarning)
            fit = mm.lmer(ref["formula_py"], data, REML=ref["REML"])
        _FITS[ref_id] = (ref, fit)
    return _FITS[ref_id]


@pytest.fixture(params=GAUSSIAN)
def case(request):
    return fitted(request.param)


def test_objective_matches_or_beats_lme4(case):
    ref, fit = case
    check_objective(fit, ref)
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)


def test_sizes(case):
    ref, fit = case
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngrps"]
    assert fit.n_dropped == 0


def test_fixed_effects_and_standard_errors(case):
    ref, fit = case
    check_fixed_effects(fit, ref)


def test_sigma_and_theta(case):
    ref, fit = case
    check_sigma_and_theta(fit, ref)


def test_varcorr_rows(case):
    _, fit = case
    check_varcorr(fit, case[0])


def test_conditional_modes_and_sds(case):
    ref, fit = case
    check_conditional_modes(fit, ref)


def test_icc_and_r2(case):
    ref, fit = case
    check_icc_r2(fit, ref)


def test_uncorrelated_slope_counts_in_icc():
    """performance 0.10.2 ignores the || slope variance; we count it as for (Days | Subject)."""
    _, fit = fitted("sleepstudy_uncorr_reml")
    assert fit.icc()["adjusted"] == pytest.approx(0.72, abs=0.01)


def test_icc_per_grouping_factor():
    """With several grouping factors the ICC comes per factor too; the parts add up."""
    _, fit = fitted("penicillin_crossed")
    icc = fit.icc()
    parts = icc["by_group"]
    assert set(parts) == {"plate", "sample"}
    assert sum(p["adjusted"] for p in parts.values()) == pytest.approx(icc["adjusted"])
    vc = fit.varcorr.set_index("grp")["vcov"]
    total = vc.sum()
    assert parts["sample"]["adjusted"] == pytest.approx(vc["sample"] / total)
    assert "by_group" not in fitted("sleepstudy_slope_reml")[1].icc()
