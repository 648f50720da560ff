"""simulate(), refit(), bootstrap() and confint(): first-principles checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedmodels as mm


@pytest.fixture(scope="module")
def sleep():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def cbpp():
    return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                    family="binomial")


def test_simulate_is_reproducible_and_shaped(sleep):
    a, b = sleep.simulate(4, seed=7), sleep.simulate(4, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert a.shape == (180, 4) and list(a.columns) == ["sim_1", "sim_2", "sim_3", "sim_4"]
    assert not a.equals(sleep.simulate(4, seed=8))


def test_simulated_moments_match_the_model(sleep):
    """Unconditional draws: mean Xβ, variance z'Σz + σ² for each observation."""
    sims = sleep.simulate(4000, seed=1).to_numpy()
    X = sleep.design.X
    mean = X @ sleep.fixef.to_numpy()
    S = sleep.covariances[0]
    z = sleep.reterms[0].matrix
    var = np.einsum("ia,ab,ib->i", z, S, z) + sleep.sigma**2
    se_mean = np.sqrt(var / 4000)
    assert np.all(np.abs(sims.mean(axis=1) - mean) < 5 * se_mean)
    np.testing.assert_allclose(sims.var(axis=1, ddof=1), var, rtol=0.15)


def test_simulate_conditional_on_modes(sleep):
    sims = sleep.simulate(2000, seed=2, re_form=None).to_numpy()
    np.testing.assert_allclose(sims.mean(axis=1), sleep.fitted, atol=5 * sleep.sigma / np.sqrt(2000))
    np.testing.assert_allclose(sims.std(axis=1, ddof=1), sleep.sigma, rtol=0.1)
    with pytest.raises(ValueError, match="re_form"):
        sleep.simulate(1, re_form="~(1|Subject)")


def test_refit_to_the_same_response_reproduces_the_fit(sleep, cbpp):
    again = sleep.refit(sleep.design.y)
    assert again.objective == pytest.approx(sleep.objective, rel=1e-10)
    np.testing.assert_allclose(again.fixef, sleep.fixef, rtol=1e-7)
    g = cbpp.refit(cbpp.design.y)
    assert g.objective == pytest.approx(cbpp.objective, rel=1e-8)
    with pytest.raises(mm.DataError, match="has 3 values; the model has 180"):
        sleep.refit([1.0, 2.0, 3.0])


def test_binomial_simulation_gives_whole_successes(cbpp):
    sims = cbpp.simulate(5, seed=3)
    trials = cbpp.design.weights
    successes = sims.to_numpy() * trials[:, None]
    np.testing.assert_allclose(successes, np.round(successes), atol=1e-9)
    assert sims.to_numpy().min() >= 0 and sims.to_numpy().max() <= 1


def test_wald_intervals_are_estimate_plus_minus_z_se(sleep):
    ci = sleep.confint(level=0.9)
    z = stats.norm.ppf(0.95)
    assert list(ci.columns) == ["5 %", "95 %"]
    np.testing.assert_allclose(ci.loc["Days", "5 %"], sleep.fixef["Days"] - z * sleep.se["Days"])
    assert np.isnan(ci.loc["sigma", "5 %"])
    assert list(ci.index) == list(sleep.parameters().index)
    with pytest.raises(ValueError, match="method must be"):
        sleep.confint(method="bayes")


def test_bootstrap_is_reproducible_and_covers_the_estimates(sleep):
    a = sleep.bootstrap(nsim=30, seed=11, progress=False)
    b = sleep.bootstrap(nsim=30, seed=11, progress=False)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)
    assert a.n_failed == 0 and len(a.replicates) == 30
    ci = a.confint()
    est = sleep.parameters()
    assert (ci["2.5 %"] <= est).all() and (est <= ci["97.5 %"]).all()
    summary = a.summary()
    assert list(summary.columns) == ["original", "bias", "std. error"]
    # the bootstrap SE of the slope is close to its model-based SE
    assert summary.loc["Days", "std. error"] == pytest.approx(sleep.se["Days"], rel=0.4)


def test_bootstrap_with_a_custom_statistic(cbpp):
    res = cbpp.bootstrap(nsim=5, seed=1, statistic=lambda f: pd.Series({"icc": f.icc()["adjusted"]}), progress=False)
    assert list(res.replicates.columns) == ["icc"]
    assert res.replicates["icc"].between(0, 1).all()
