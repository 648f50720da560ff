"""Terms of one grouping factor amalgamated into one for the evaluations: the same deviance, the same
gradient, θ in the model's order; and the stacked covariance structure they use."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.design.covstruct import UNSTRUCTURED, CovStructure, StackedStructure
from mixedmodels.engine.control import Control
from mixedmodels.engine.lmm import LinearMixedModel, deviance_from_factor
from mixedmodels.engine.optimizer import optimize
from mixedmodels.formula.parse import parse_formula


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    data = mm.datasets.load("sleepstudy")
    data["Daysf"] = pd.Categorical(data["Days"].map(lambda d: f"d{d}"))
    data["half"] = pd.Categorical(np.where(data["Days"] < 5, "early", "late"))
    return data


def _model(formula: str, data: pd.DataFrame, REML: bool = True) -> LinearMixedModel:
    return LinearMixedModel(build_design(parse_formula(formula), data), REML=REML)


STACKED = {  # formula: the stacked terms' grouping factors and numbers of parts, in their order
    "Reaction ~ Days + (1 + Days || Subject)": [("Subject", 2)],
    "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject) + (1 | half)": [("Subject", 2), ("half", 1)],
    "Reaction ~ Days + (Days | Subject) + (1 | half) + (0 + Days | half)": [("Subject", 1), ("half", 2)],
    "Reaction ~ Days + (1 | Subject) + ar1(0 + Daysf | Subject)": [("Subject", 2)],
}


@pytest.mark.parametrize("formula", list(STACKED))
@pytest.mark.parametrize("REML", [True, False])
def test_stacked_deviance_equals_the_terms_own(sleep, formula, REML):
    model = _model(formula, sleep, REML)
    merged = model.amalgamated
    assert [(t.group, len(t.structure.parts) if isinstance(t.structure, StackedStructure) else 1)
            for t in merged.terms.terms] == STACKED[formula]
    assert sorted(merged.order) == list(range(model.ntheta))
    rng = np.random.default_rng(7)
    for _ in range(3):
        theta = np.where(np.isfinite(model.theta_lower), rng.uniform(0.2, 2.0, model.ntheta), rng.normal(size=model.ntheta))
        own = deviance_from_factor(model.factor(theta), model.n, REML)
        assert model.objective(theta) == pytest.approx(own, rel=1e-12)
        value, grad = model.objective_and_gradient(theta)
        steps = 1e-6 * np.maximum(np.abs(theta), 1.0)
        central = [(model.objective(theta + s * e) - model.objective(theta - s * e)) / (2 * s)
                   for s, e in zip(steps, np.eye(len(theta)))]
        assert value == pytest.approx(own, rel=1e-12)
        np.testing.assert_allclose(grad, central, rtol=1e-5, atol=1e-4)


def test_models_without_shared_factors_are_left_alone(sleep):
    model = _model("Reaction ~ Days + (Days | Subject) + (1 | half)", sleep)
    assert model.amalgamated.order is None and model.amalgamated.crossprod is model.crossprod


def test_stacked_fit_and_report_keep_the_terms(sleep):
    """θ comes back in the terms' order: lme4's VarCorr of the same model (tests/fixtures/r_shaped)."""
    lme4 = json.loads((Path(__file__).parents[1] / "fixtures" / "r_shaped" / "r_shaped.json").read_text())
    intercept, days, residual = (row["sdcor"] for row in lme4["varcorr_lmer_uncorrelated_df"])
    m = mm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    np.testing.assert_allclose(m.theta, [intercept / residual, days / residual], rtol=1e-4)
    assert [t.group for t in m.reterms] == ["Subject", "Subject"]
    for optimizer in ("lbfgsb", "bobyqa"):
        other = mm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep,
                        control=Control(optimizer=optimizer))
        assert other.objective == pytest.approx(m.objective, abs=1e-6)


PARTS = (UNSTRUCTURED, 2), (CovStructure("ar1"), 3), (UNSTRUCTURED, 1), (CovStructure("cs", hom=True), 2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.05, 3.0), min_size=10, max_size=10))
def test_stacked_structure_is_the_parts_side_by_side(values):
    stacked = StackedStructure(parts=PARTS)
    p = sum(q for _, q in PARTS)
    theta = np.array(values[:stacked.ntheta(p)])
    T = stacked.factor(theta, p)
    at, col = 0, 0
    for structure, q in PARTS:
        k = structure.ntheta(q)
        np.testing.assert_array_equal(T[col:col + q, col:col + q], structure.factor(theta[at:at + k], q))
        assert not T[col:col + q, col + q:].any() and not T[col + q:, col:col + q].any()
        at, col = at + k, col + q
    dT = np.arange(p * p, dtype=float).reshape(p, p)
    np.testing.assert_allclose(stacked.pullback(theta, p, dT),
                               np.einsum("kij,ij->k", stacked.jacobian(theta, p), np.tril(dT)))
    assert stacked.lower(p).tolist() == [x for s, q in PARTS for x in s.lower(q).tolist()]


def test_unstructured_parts_put_theta_in_place():
    stacked = StackedStructure(parts=((UNSTRUCTURED, 1), (UNSTRUCTURED, 2)))
    np.testing.assert_array_equal(stacked.factor(np.array([2.0, 3.0, 4.0, 5.0]), 3),
                                  [[2.0, 0, 0], [0, 3.0, 0], [0, 4.0, 5.0]])
    dT = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(stacked.pullback(np.ones(4), 3, dT), [dT[0, 0], dT[1, 1], dT[2, 1], dT[2, 2]])


def test_a_parameter_that_leaves_its_bound_is_found_without_the_full_check():
    """f = x⁴ − x² + y² is flat on the bound x = 0 (zero gradient), falls inward: L-BFGS-B stops
    there, the escape (a gradient a step inside) sends it to x = 1/√2."""
    calls = []

    def fg(z: np.ndarray) -> tuple[float, np.ndarray]:
        calls.append(z.copy())
        x, y = z
        return x**4 - x**2 + y**2, np.array([4 * x**3 - 2 * x, 2 * y])

    report = optimize(lambda z: fg(z)[0], np.array([0.0, 1.0]), np.array([0.0, -np.inf]), Control(),
                      gradient=fg)
    assert report.converged
    np.testing.assert_allclose(report.x, [np.sqrt(0.5), 0.0], atol=1e-5)
    assert report.fun == pytest.approx(-0.25, abs=1e-10)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (Days || Subject)"])
def test_a_fit_is_freed_without_the_cycle_collector(formula):
    """The amalgamated terms must not refer back to their model: a reference cycle kept each fitted
    model's crossproducts alive until the cycle collector ran (InstEval's benchmark peak +30 MB)."""
    data = mm.datasets.load("sleepstudy")
    gc.disable()
    try:
        fit = mm.lmer(formula, data)
        assert fit.model.amalgamated is not None
        model, result = weakref.ref(fit.model), weakref.ref(fit)
        del fit
        assert model() is None and result() is None
    finally:
        gc.enable()
