"""Inputs that used to give silently wrong answers or raw tracebacks (issue 15 item 4).

Reference values from lme4 1.1-31 (tests/fixtures/safety/make_fixtures.R).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import (
    ConvergenceWarning,
    DataError,
    DroppedRowsWarning,
    FitError,
    MixedModelsWarning,
)

FIXTURES = Path(__file__).parent / "fixtures" / "safety"
REF = json.loads((FIXTURES / "reference.json").read_text())
SLEEP = mm.datasets.load("sleepstudy")


def test_glmer_gaussian_is_lmer_with_lme4s_warning():
    ref = REF["glmer_gaussian"]
    with pytest.warns(MixedModelsWarning) as caught:
        m = mm.glmer("Reaction ~ Days + (Days | Subject)", SLEEP, family="gaussian")
    assert [str(w.message) for w in caught if issubclass(w.category, MixedModelsWarning)] == [ref["warning"]]
    assert type(m).__name__ == "LmerResult" and m.REML is ref["REML"]
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-5)
    np.testing.assert_allclose(m.theta, ref["theta"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.fixef, ref["fixef"], rtol=1e-6)


def test_poisson_with_no_fixed_effects_fits_as_lme4():
    ref = REF["poisson_no_fixed"]
    data = pd.read_csv(FIXTURES / "poisson_no_fixed.csv").astype({"g": str})
    m = mm.glmer("y ~ 0 + (1 | g)", data, family="poisson")
    assert m.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    np.testing.assert_allclose(m.theta, [ref["theta"]], rtol=1e-4)
    modes = m.ranef["g"].iloc[:, 0]
    modes.index = modes.index.astype(int)
    np.testing.assert_allclose(modes.sort_index().to_numpy(), ref["ranef"], rtol=1e-3, atol=1e-4)


def test_c_levels_drops_other_rows_as_r_factor_levels_does():
    ref = REF["factor_levels"]
    data = SLEEP.assign(S=SLEEP["Subject"].astype(str))
    with pytest.warns(DroppedRowsWarning, match=r"160 with a value of 'S' outside its C\(levels=...\)"):
        m = mm.lm("Reaction ~ C(S, levels=['308', '309'])", data)
    assert m.nobs == ref["nobs"]
    np.testing.assert_allclose(m.coef if hasattr(m, "coef") else m.fixef, ref["coef"], rtol=1e-6)
    with pytest.warns(DroppedRowsWarning):
        assert mm.lmer("Reaction ~ C(S, levels=['308', '309']) + (1 | Days)", data).nobs == 20


@pytest.mark.parametrize("values", [["a"] * 180, pd.Categorical(["a"] * 180, categories=["a", "b"])])
def test_one_level_fixed_factor_is_rs_error_naming_the_column(values):
    assert "2 or more levels" in REF["one_level_error"]
    with pytest.raises(DataError, match="'f1' has a single level .* contrasts can be applied only to factors "
                                        "with 2 or more levels"):
        mm.lmer("Reaction ~ Days + f1 + (1 | Subject)", SLEEP.assign(f1=values))


@pytest.mark.parametrize("weight", [1e-20, 1e20])
def test_extreme_uniform_weights_are_refused(weight):
    with pytest.raises(DataError, match="weights are of the order of"):
        mm.lmer("Reaction ~ Days + (Days | Subject)", SLEEP, weights=np.full(180, weight))


def test_weights_scaled_by_their_mean_fit():
    w = np.full(180, 3.0)
    m, base = mm.lmer("Reaction ~ Days + (1 | Subject)", SLEEP, weights=w), mm.lmer("Reaction ~ Days + (1 | Subject)", SLEEP)
    np.testing.assert_allclose(m.theta, base.theta / np.sqrt(3.0), rtol=1e-4)  # θ scales with 1/√w, as in lme4
    assert m.sigma == pytest.approx(base.sigma * np.sqrt(3.0), rel=1e-4)


def test_exact_group_effects_warn():
    data = SLEEP.assign(y=pd.factorize(SLEEP["Subject"])[0] * 10.0)
    with pytest.warns(ConvergenceWarning, match="reproduce the response exactly") as caught:
        m = mm.lmer("y ~ 1 + (1 | Subject)", data, control=mm.Control(optimizer="lbfgsb"))
    # L-BFGS-B's failed line search is said in words, not as scipy's bare "ABNORMAL: "
    assert "line search could not lower the objective" in m.optimum.message
    assert not any("abnormal" in str(w.message).lower() for w in caught)


def test_duplicate_column_names_are_a_data_error():
    data = pd.concat([SLEEP, SLEEP[["Days"]]], axis=1)
    with pytest.raises(DataError, match="more than one column named 'Days'"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data)


def test_pandas_string_columns_are_factors_as_in_r():
    labels = np.where(SLEEP["Days"] > 4, "hi", "lo")
    as_string = mm.lmer("Reaction ~ Days + f + (1 | Subject)", SLEEP.assign(f=pd.array(labels, dtype="string")))
    as_object = mm.lmer("Reaction ~ Days + f + (1 | Subject)", SLEEP.assign(f=labels))
    pd.testing.assert_series_equal(as_string.fixef, as_object.fixef)
    assert "flo" in as_string.fixef.index


def test_a_factor_with_many_levels_in_a_bar_is_refused_before_the_optimizer():
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"y": rng.normal(size=5000), "f": [str(i % 200) for i in range(5000)],
                         "g": rng.integers(0, 60, 5000).astype(str)})
    with pytest.raises(DataError, match=r"20,100 covariance parameters.*\(f \| g\)"):
        mm.lmer("y ~ 1 + (f | g)", data)


def test_a_huge_fixed_factor_is_refused_before_allocating():
    n = 100_000
    data = pd.DataFrame({"y": np.zeros(n), "f": np.arange(n).astype(str), "g": np.arange(n) % 10})
    with pytest.raises(DataError, match="the factor 'f' has 100,000 levels"):
        mm.lmer("y ~ f + (1 | g)", data)


def test_no_fixed_effects_type3_anova_and_kenward_roger():
    m = mm.lmer("Reaction ~ 0 + (1 | Subject)", SLEEP)
    assert len(m.anova(type=3).table if hasattr(m.anova(type=3), "table") else m.anova(type=3)) == 0
    assert len(m.kenward_roger()) == 0


def test_glmer_profile_intervals_without_a_deviance_in_theta_and_beta_are_a_package_error():
    g = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"), "binomial",
                 nAGQ=0)
    with pytest.raises(FitError, match="nAGQ=1.*method='boot'"):
        g.confint(method="profile")


def test_refit_and_bootstrap_of_an_nagq0_fit():
    g = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"), "binomial",
                 nAGQ=0)
    again = g.refit(g.design.y)
    np.testing.assert_allclose(again.fixef, g.fixef, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = g.bootstrap(nsim=2, seed=1)
    assert np.isfinite(np.asarray(boot.estimate, dtype=float)).all()
