"""m.simulate(newdata=...) and mm.simulate(formula, newdata, beta, theta, sigma): moments from first
principles (a random intercept shared within a level, independent across levels) and recovery of
the parameters by a refit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm


@pytest.fixture(scope="module")
def sleep() -> mm.LmerResult:
    return mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"))


def test_new_levels_share_a_fresh_effect(sleep):
    """Two rows of one new subject: Var(each) = σ_b² + σ², Cov = σ_b²; another subject is independent."""
    new = pd.DataFrame({"Days": [0.0, 0.0, 0.0], "Subject": ["new1", "new1", "new2"]})
    sims = sleep.simulate(nsim=6000, seed=1, newdata=new).to_numpy()
    sigma_b2, sigma2 = sleep.covariances[0][0, 0], sleep.sigma**2
    C = np.cov(sims)
    assert C[0, 0] == pytest.approx(sigma_b2 + sigma2, rel=0.06)
    assert C[0, 1] == pytest.approx(sigma_b2, rel=0.1)
    assert abs(C[0, 2]) < 0.05 * (sigma_b2 + sigma2)
    assert sims.mean(axis=1) == pytest.approx(np.full(3, sleep.fixef["(Intercept)"]), rel=0.01)


def test_conditional_simulation_centres_on_the_prediction(sleep):
    new = pd.DataFrame({"Days": [1.0, 5.0], "Subject": ["308", "brand new"]})
    sims = sleep.simulate(nsim=4000, seed=2, newdata=new, re_form=None, allow_new_levels=True)
    expected = sleep.predict(new, allow_new_levels=True).to_numpy()
    assert sims.mean(axis=1).to_numpy() == pytest.approx(expected, rel=0.01)
    assert sims.std(axis=1).to_numpy() == pytest.approx(np.full(2, sleep.sigma), rel=0.05)  # noise only
    assert list(sims.index) == list(new.index)
    with pytest.raises(mm.DataError, match="not seen when fitting"):
        sleep.simulate(newdata=new, re_form=None)


def test_reproducible_by_seed_and_the_fitted_rows_unchanged(sleep):
    new = pd.DataFrame({"Days": [3.0], "Subject": ["x"]})
    assert sleep.simulate(3, seed=5, newdata=new).equals(sleep.simulate(3, seed=5, newdata=new))
    assert sleep.simulate(2, seed=5).index.equals(sleep.rows_used)


def test_formula_simulation_recovers_the_parameters_in_lme4_order():
    """Crossed plate (24 levels) and sample (6): θ is given plate first, as lme4 orders it."""
    pen = mm.datasets.load("Penicillin")
    y = mm.simulate("~ 1 + (1 | plate) + (1 | sample)", pen, beta=[20.0], theta=[1.5, 0.2], sigma=0.5,
                    seed=3)["sim_1"]
    refit = mm.lmer("y ~ 1 + (1 | plate) + (1 | sample)", pen.assign(y=y.to_numpy()))
    sd = refit.varcorr.set_index("grp")["sdcor"]
    assert sd["plate"] > 3 * sd["sample"]
    assert sd["plate"] == pytest.approx(0.75, rel=0.35)
    assert refit.sigma == pytest.approx(0.5, rel=0.15)
    assert "y" not in pen.columns  # the caller's frame is not modified


def test_formula_simulation_without_variance_is_the_fixed_part():
    data = mm.datasets.load("sleepstudy")
    beta = pd.Series({"Days": 10.0, "(Intercept)": 250.0})  # by name, in any order
    y = mm.simulate("Reaction ~ Days + (Days | Subject)", data, beta=beta, theta=[0.0, 0.0, 0.0], sigma=1e-9,
                    nsim=2, seed=4)
    assert y["sim_2"].to_numpy() == pytest.approx(250.0 + 10.0 * data["Days"].to_numpy(), abs=1e-6)


def test_binomial_formula_simulation_gives_proportions_of_the_trials():
    cbpp = mm.datasets.load("cbpp")
    sims = mm.simulate("~ period + (1 | herd)", cbpp, beta=[-1.4, -1.0, -1.1, -1.6], theta=[0.6],
                       family="binomial", weights=cbpp["size"], nsim=20, seed=5).to_numpy()
    successes = sims * cbpp["size"].to_numpy()[:, None]
    assert np.allclose(successes, np.round(successes)) and sims.min() >= 0 and sims.max() <= 1


def test_errors_name_the_parameter():
    data = mm.datasets.load("sleepstudy")
    with pytest.raises(mm.DataError, match="theta has 1 values.*need 3"):
        mm.simulate("~ Days + (Days | Subject)", data, beta=[1, 2], theta=[1.0], sigma=1)
    with pytest.raises(mm.DataError, match="beta has 3 values"):
        mm.simulate("~ Days + (1 | Subject)", data, beta=[1, 2, 3], theta=[1.0], sigma=1)
    with pytest.raises(mm.DataError, match="needs sigma"):
        mm.simulate("~ Days + (1 | Subject)", data, beta=[1, 2], theta=[1.0])
    with pytest.raises(mm.FormulaError, match="random-effects term"):
        mm.simulate("~ Days", data, beta=[1, 2], theta=[], sigma=1)
