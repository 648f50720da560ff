"""Invariances a linear mixed model fit must have, checked on random small data sets.

Each example is a simulated data set of 8-15 groups with 3-6 observations each,
fitted with a random intercept or a correlated random intercept and slope.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedmodels as mm

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FORMULAS = {
    "intercept": "y ~ x + (1 | g)",
    "slope": "y ~ x + (x | g)",
}


@st.composite
def datasets(draw):
    """A simulated grouped data set (DataFrame) and which random-effects structure to fit."""
    seed = draw(st.integers(0, 2**32 - 1))
    ngroups = draw(st.integers(8, 15))
    per_group = draw(st.integers(3, 6))
    kind = draw(st.sampled_from(sorted(FORMULAS)))
    rng = np.random.default_rng(seed)
    n = ngroups * per_group
    g = np.repeat(np.arange(ngroups), per_group)
    # x spread within every group (as Days in sleepstudy) keeps the slope variance
    # identifiable: near-singular fits have flat ridges on which any BOBYQA fit
    # (lme4's too) stops ~1e-6 relative short of the optimum, spoiling 1e-8 checks.
    x = np.tile(np.linspace(-1.0, 1.0, per_group), ngroups) + rng.normal(scale=0.2, size=n)
    u = rng.normal(scale=1.5, size=ngroups)
    v = rng.normal(scale=1.0, size=ngroups) if kind == "slope" else np.zeros(ngroups)
    y = 2.0 + 0.7 * x + u[g] + v[g] * x + rng.normal(scale=0.4, size=n)
    data = pd.DataFrame({"y": y, "x": x, "g": [f"G{k:02d}" for k in g]})
    return data, FORMULAS[kind], seed


def fit(formula: str, data: pd.DataFrame, REML: bool = True) -> mm.LmerResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        return mm.lmer(formula, data, REML=REML)


def assert_same_fixef(a: pd.Series, b: pd.Series, se: pd.Series, se_frac: float = 1e-6) -> None:
    """Fixed effects agree to 1e-6 relative, or to ``se_frac`` of their standard error.

    Transforming y (shift, scale) changes the rounding of the objective, so BOBYQA
    takes another path and stops elsewhere within its tolerance (ftol_abs = 1e-8, as
    lme4's nloptwrap): θ̂ then agrees to about 1e-4 relative, β̂ to about 1e-5 of its SE.
    """
    assert list(a.index) == list(b.index)
    tol = np.maximum(1e-6 * np.abs(b.to_numpy()), se_frac * se.to_numpy()) + 1e-10
    assert np.all(np.abs(a.to_numpy() - b.to_numpy()) <= tol), (a, b)


@SETTINGS
@given(datasets(), st.booleans())
def test_row_order_does_not_matter(case, REML):
    data, formula, seed = case
    base = fit(formula, data, REML)
    perm = np.random.default_rng(seed + 1).permutation(len(data))
    shuffled = fit(formula, data.iloc[perm], REML)
    assert shuffled.objective == pytest.approx(base.objective, rel=1e-8, abs=1e-8)
    assert_same_fixef(shuffled.fixef, base.fixef, base.se)
    assert shuffled.sigma == pytest.approx(base.sigma, rel=1e-5)
    # fitted values follow their rows
    pd.testing.assert_series_equal(
        shuffled.fitted.sort_index(), base.fitted.sort_index(), rtol=1e-5, atol=1e-6 * base.sigma
    )


@SETTINGS
@given(datasets())
def test_level_labels_do_not_matter(case):
    data, formula, seed = case
    base = fit(formula, data)
    rng = np.random.default_rng(seed + 2)
    old = sorted(data["g"].unique())
    new = [f"L{k}" for k in rng.permutation(len(old)) * 7 + 3]  # new names, new sort order
    relabelled = data.assign(g=data["g"].map(dict(zip(old, new))))
    other = fit(formula, relabelled)
    assert other.objective == pytest.approx(base.objective, rel=1e-8, abs=1e-8)
    assert_same_fixef(other.fixef, base.fixef, base.se, se_frac=1e-4)
    # the random effects move with their labels
    rename = dict(zip(old, new))
    moved = base.ranef["g"].rename(index=rename).sort_index()
    np.testing.assert_allclose(
        other.ranef["g"].sort_index().to_numpy(), moved.to_numpy(), rtol=1e-4, atol=1e-5 * base.sigma
    )


@SETTINGS
@given(datasets(), st.floats(0.01, 100.0))
def test_scaling_the_response(case, c):
    """y → c·y scales β̂ and σ̂ by c and adds 2·n·log c to −2 log L (n − p for REML)."""
    data, formula, _ = case
    scaled = data.assign(y=c * data["y"])
    for REML in (False, True):
        base = fit(formula, data, REML)
        other = fit(formula, scaled, REML)
        n_eff = base.nobs - (base.p if REML else 0)
        assert other.objective == pytest.approx(base.objective + 2 * n_eff * np.log(c), rel=1e-8, abs=1e-7)
        assert_same_fixef(other.fixef / c, base.fixef, base.se, se_frac=1e-4)
        assert other.sigma == pytest.approx(c * base.sigma, rel=1e-4)
        np.testing.assert_allclose(other.se / c, base.se, rtol=1e-4)
    assert other.loglik == pytest.approx(-0.5 * other.objective)


@SETTINGS
@given(datasets(), st.floats(-1e3, 1e3))
def test_shifting_the_response_changes_only_the_intercept(case, k):
    data, formula, _ = case
    base = fit(formula, data)
    other = fit(formula, data.assign(y=data["y"] + k))
    assert other.objective == pytest.approx(base.objective, rel=1e-8, abs=1e-8)
    shifted = base.fixef.copy()
    shifted["(Intercept)"] += k
    assert_same_fixef(other.fixef, shifted, base.se, se_frac=1e-4)
    assert other.sigma == pytest.approx(base.sigma, rel=1e-4)
    np.testing.assert_allclose(other.se, base.se, rtol=1e-4)


@SETTINGS
@given(datasets(), st.booleans())
def test_varcorr_residual_row_is_sigma(case, REML):
    data, formula, _ = case
    m = fit(formula, data, REML)
    vc = m.varcorr
    last = vc.iloc[-1]
    assert last["grp"] == "Residual"
    assert pd.isna(last["var1"]) and pd.isna(last["var2"])
    assert last["vcov"] == pytest.approx(m.sigma**2, rel=1e-12)
    assert last["sdcor"] == pytest.approx(m.sigma, rel=1e-12)
    assert (vc["grp"] == "Residual").sum() == 1
    # variances are non-negative and their sdcor is their square root
    variances = vc[vc["var2"].isna()]
    assert np.all(variances["vcov"] >= 0)
    np.testing.assert_allclose(np.sqrt(variances["vcov"]), variances["sdcor"], rtol=1e-12)
    corr = vc[vc["var2"].notna()]["sdcor"].dropna()
    assert np.all(np.abs(corr) <= 1 + 1e-12)


@SETTINGS
@given(datasets())
def test_residuals_and_fitted_add_up_to_the_response(case):
    data, formula, _ = case
    m = fit(formula, data)
    np.testing.assert_allclose(m.fitted + m.residuals, data["y"], rtol=1e-12, atol=1e-12)
    coef = m.coef["g"]
    # per-group coefficients reproduce the fitted values
    slope = coef["x"].to_numpy()[pd.factorize(data["g"], sort=True)[0]]
    icpt = coef["(Intercept)"].to_numpy()[pd.factorize(data["g"], sort=True)[0]]
    np.testing.assert_allclose(icpt + slope * data["x"].to_numpy(), m.fitted, rtol=1e-10, atol=1e-10)
