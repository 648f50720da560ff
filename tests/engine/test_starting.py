"""The method-of-moments start of θ: near the truth on simulated data, and harmless to the optimum."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.formula.parse import parse_formula
from mixedmodels.engine.lmm import LinearMixedModel
from mixedmodels.engine.control import DEFAULT_CONTROL
from mixedmodels.engine.starting import THETA_CEILING, THETA_FLOOR, moment_start


def _model(formula: str, data: pd.DataFrame) -> LinearMixedModel:
    return LinearMixedModel(build_design(parse_formula(formula), data))


def _crossed(rng, sd_a: float, sd_b: float, sigma: float, na=60, nb=40, n=4000) -> pd.DataFrame:
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + sd_a * rng.normal(size=na)[a] + sd_b * rng.normal(size=nb)[b] + sigma * rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str)})


def test_start_is_near_the_simulated_relative_scales():
    rng = np.random.default_rng(5)
    m = _model("y ~ x + (1 | a) + (1 | b)", _crossed(rng, sd_a=2.0, sd_b=0.5, sigma=1.0, na=400, nb=300, n=40000))
    theta, step = moment_start(m.crossprod, m, m.n, m.p, DEFAULT_CONTROL.initial_step)
    truth = {"a": 2.0, "b": 0.5}
    for t, value in zip(m.terms, theta):
        assert value == pytest.approx(truth[t.group], rel=0.25)
    assert np.all(step > 0)


@settings(max_examples=15, deadline=None)
@given(sd_a=st.floats(0.0, 3.0), sd_b=st.floats(0.0, 3.0), sigma=st.floats(0.2, 3.0), seed=st.integers(0, 2**32 - 1))
def test_start_is_inside_the_box_and_the_fit_reaches_the_same_optimum(sd_a, sd_b, sigma, seed):
    rng = np.random.default_rng(seed)
    m = _model("y ~ x + (1 | a) + (1 | b)", _crossed(rng, sd_a, sd_b, sigma, na=12, nb=9, n=150))
    theta, _ = moment_start(m.crossprod, m, m.n, m.p, DEFAULT_CONTROL.initial_step)
    assert np.all((theta >= THETA_FLOOR) & (theta <= THETA_CEILING))
    from_moments = m.fit()
    from_ones = m.fit(theta0=m.theta_start)
    assert from_moments.fun <= from_ones.fun + 1e-8 * abs(from_ones.fun)


def test_vector_terms_keep_the_identity_start():
    m = _model("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    theta, step = moment_start(m.crossprod, m, m.n, m.p, DEFAULT_CONTROL.initial_step)
    np.testing.assert_array_equal(theta, m.theta_start)
    np.testing.assert_array_equal(step, [0.75, 1.0, 0.75])


def test_weights_enter_through_the_crossproducts():
    rng = np.random.default_rng(2)
    d = _crossed(rng, 1.0, 1.0, 1.0)
    d["w"] = 2.0
    plain, weighted = _model("y ~ x + (1 | a)", d), LinearMixedModel(
        build_design(parse_formula("y ~ x + (1 | a)"), d, weights="w"))
    # doubling every precision weight says the residual variance is σ²/2: the same data then
    # give σ² twice as large and σ_b² unchanged, so θ = σ_b/σ shrinks by √2 (as the fitted θ does)
    t_plain = moment_start(plain.crossprod, plain, plain.n, plain.p, DEFAULT_CONTROL.initial_step)[0]
    t_weighted = moment_start(weighted.crossprod, weighted, weighted.n, weighted.p, DEFAULT_CONTROL.initial_step)[0]
    np.testing.assert_allclose(t_weighted, t_plain / np.sqrt(2), rtol=1e-10)


NESTED = Path(__file__).resolve().parents[1] / "fixtures" / "nested_start"


def test_overlapping_terms_share_the_moments_instead_of_starting_at_the_ceiling():
    """(1 | school) + (1 | school:class) + (1 | rater): a class's sums carry its school's effect too.
    Counted as the class's own, the equations left nothing for σ² and θ started at (10, 10, 7.1); with
    the terms' overlaps ‖Zⱼᵀ W Zₖ‖²_F the start lies near lme4's optimum (tests/fixtures/nested_start)."""
    data = pd.read_csv(NESTED / "school_class_rater.csv")
    for fit in json.loads((NESTED / "lme4.json").read_text())["fits"]:
        m = _model(fit["formula"], data)
        theta, _ = moment_start(m.crossprod, m, m.n, m.p, DEFAULT_CONTROL.initial_step)
        lme4 = dict(zip((name.split(".")[0] for name in fit["theta_names"]), fit["theta"]))
        for t, value in zip(m.terms, theta):
            nested = t.group != "rater"  # the nested pair's moments are sharp, the 25 raters' rough
            assert value == pytest.approx(lme4[t.group], rel=0.1 if nested else 0.5)


def test_partially_nested_and_crossed_fits_reach_lme4():
    """The fits from that start end at lme4's optimum (objective to 1e-9 relative or below it, θ to 2e-4)."""
    data = pd.read_csv(NESTED / "school_class_rater.csv")
    for ref in json.loads((NESTED / "lme4.json").read_text())["fits"]:
        fit = mm.lmer(ref["formula"], data, REML=ref["REML"])
        assert fit.objective <= ref["objective"] * (1 + 1e-9)
        assert fit.objective == pytest.approx(ref["objective"], rel=1e-7)
        np.testing.assert_allclose(fit.theta, ref["theta"], rtol=2e-4)
        np.testing.assert_allclose(fit.fixef, ref["beta"], rtol=1e-4)
