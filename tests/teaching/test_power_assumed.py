"""Power from assumed parameters (simr's makeLmer / makeGlmer), without a pilot fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedmodels as mm
from mixedmodels.errors import DataError, FamilyError, FormulaError


def trial_design(n_clusters: int, size: int) -> pd.DataFrame:
    """A cluster-randomised trial's covariates: half the clusters treated; no response column."""
    g = np.repeat(np.arange(n_clusters), size)
    return pd.DataFrame({"cluster": [f"c{k}" for k in g], "treat": (g % 2).astype(float)})


def exact_trial_power(effect: float, tau2: float, sigma2: float, n_clusters: int, size: int,
                      alpha: float = 0.05) -> float:
    """Balanced trial: the test is the t test of cluster means, var(mean) = τ² + σ²/m, J − 2 df."""
    se = np.sqrt(4 * (tau2 + sigma2 / size) / n_clusters)
    df, crit = n_clusters - 2, stats.t.ppf(1 - alpha / 2, n_clusters - 2)
    return float(stats.nct.sf(crit, df, effect / se) + stats.nct.cdf(-crit, df, effect / se))


def test_make_lmer_holds_the_assumed_values():
    design = trial_design(10, 5)
    before = design.copy()
    truth = mm.make_lmer("y ~ treat + (1 | cluster)", design, fixef={"(Intercept)": 10, "treat": 0.5},
                         varcorr={"cluster": 0.25}, sigma=1.5)
    pd.testing.assert_frame_equal(design, before)  # the placeholder response went into a copy
    assert list(truth.fixef) == [10.0, 0.5] and truth.sigma == 1.5 and truth.family is None
    np.testing.assert_array_equal(truth.covariances[0], [[0.25]])
    assert truth.design.n == 50 and truth.design.reterms[0].nlevels == 10
    assert "Assumed linear mixed model: y ~ treat + (1 | cluster)" in str(truth)
    assert "treat = 0.5" in str(truth) and "residual SD: 1.5" in str(truth)


def test_power_from_assumed_values_matches_the_noncentral_t():
    """τ² = 0.1, σ² = 1, effect 0.5, 20 clusters of 10: exact power from the t test of cluster means."""
    truth = mm.make_lmer("y ~ treat + (1 | cluster)", trial_design(20, 10), fixef={"(Intercept)": 0, "treat": 0.5},
                         varcorr={"cluster": 0.1}, sigma=1.0)
    result = mm.power(truth, "treat", nsim=120, seed=5)
    row = result.table.iloc[0]
    exact = exact_trial_power(0.5, 0.1, 1.0, 20, 10)  # 0.484
    assert row["failed"] <= 2
    assert row["ci_lower"] - 0.03 <= exact <= row["ci_upper"] + 0.03
    assert (row["n_groups"], row["n_per_group"]) == (20, 10)


def test_assumed_values_equal_to_a_fit_give_the_fits_power():
    rng = np.random.default_rng(8)
    design = trial_design(12, 6)
    data = design.assign(y=0.4 * design["treat"] + rng.normal(0, 0.5, 12)[np.repeat(np.arange(12), 6)]
                         + rng.normal(0, 1, 72))
    fit = mm.lmer("y ~ treat + (1 | cluster)", data)
    truth = mm.make_lmer("y ~ treat + (1 | cluster)", design, fixef=fit.fixef.to_dict(),
                         varcorr=[fit.covariances[0]], sigma=fit.sigma)
    a = mm.power(fit, "treat", nsim=15, n_groups=[8, 16], seed=3).table
    b = mm.power(truth, "treat", nsim=15, n_groups=[8, 16], seed=3).table
    pd.testing.assert_frame_equal(a, b)


def test_make_glmer_binary_outcome_power():
    design = trial_design(16, 12).assign(x=np.tile(np.linspace(-1, 1, 12), 16))
    truth = mm.make_glmer("passed ~ x + treat + (1 | cluster)", design, "binomial",
                          fixef={"(Intercept)": 0.0, "x": 2.5, "treat": 0.0}, varcorr={"cluster": 0.5})
    assert "binomial (logit link)" in str(truth) and "residual SD" not in str(truth)
    result = mm.power(truth, "x", nsim=12, seed=2)
    row = result.table.iloc[0]
    assert row["failed"] <= 1 and row["power"] >= 0.8  # a within-cluster slope of 2.5 on 192 rows


def test_random_slope_covariance_matrix_and_list_form():
    design = trial_design(8, 6).assign(t=np.tile(np.arange(6.0), 8))
    S = np.array([[1.0, 0.2], [0.2, 0.3]])
    truth = mm.make_lmer("y ~ t + (t | cluster)", design, fixef={"(Intercept)": 1, "t": 0.2},
                         varcorr={"cluster": S}, sigma=1)
    np.testing.assert_array_equal(truth.covariances[0], S)
    both = mm.make_lmer("y ~ t + (1 | cluster) + (0 + t | cluster)", design, fixef={"(Intercept)": 1, "t": 0.2},
                        varcorr=[1.0, 0.3], sigma=1)
    assert [c.shape for c in both.covariances] == [(1, 1), (1, 1)]


def test_errors_name_what_is_wrong():
    design = trial_design(6, 4)
    f = "y ~ treat + (1 | cluster)"
    with pytest.raises(DataError, match=r"missing 'treat'"):
        mm.make_lmer(f, design, fixef={"(Intercept)": 0}, varcorr={"cluster": 1}, sigma=1)
    with pytest.raises(DataError, match=r"unknown 'treatment'.*'treat'"):
        mm.make_lmer(f, design, fixef={"(Intercept)": 0, "treat": 1, "treatment": 1}, varcorr={"cluster": 1}, sigma=1)
    with pytest.raises(DataError, match=r"'cluster'"):
        mm.make_lmer(f, design, fixef={"(Intercept)": 0, "treat": 1}, varcorr={"clusters": 1}, sigma=1)
    with pytest.raises(DataError, match=r"must be 1 x 1"):
        mm.make_lmer(f, design, fixef={"(Intercept)": 0, "treat": 1}, varcorr={"cluster": np.eye(2)}, sigma=1)
    with pytest.raises(DataError, match="no negative variance"):
        mm.make_lmer("y ~ treat + (treat | cluster)", design, fixef={"(Intercept)": 0, "treat": 1},
                     varcorr={"cluster": [[1, 2], [2, 1]]}, sigma=1)
    with pytest.raises(DataError, match="sigma"):
        mm.make_lmer(f, design, fixef={"(Intercept)": 0, "treat": 1}, varcorr={"cluster": 1}, sigma=0)
    with pytest.raises(DataError, match="give varcorr as a list"):
        mm.make_lmer("y ~ treat + (1 | cluster) + (0 + treat | cluster)", design,
                     fixef={"(Intercept)": 0, "treat": 1}, varcorr={"cluster": 1}, sigma=1)
    with pytest.raises(FamilyError, match="binomial and Poisson"):
        mm.make_glmer(f, design, "Gamma", fixef={"(Intercept)": 0, "treat": 1}, varcorr={"cluster": 1})
    with pytest.raises(FormulaError, match="random-effects term"):
        mm.make_lmer("y ~ treat", design, fixef={"(Intercept)": 0, "treat": 1}, varcorr=[], sigma=1)
