"""The analytic gradient of the profiled deviance against central differences, and what uses it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.engine.gradient import reflect_bound_columns
from mixedmodels.engine.control import DEFAULT_CONTROL, Control
from mixedmodels.engine.lmm import LinearMixedModel
from mixedmodels.engine.optimizer import check_optimum_by_gradient, minimize_lbfgsb
from mixedmodels.formula.parse import parse_formula
from reference import (extra_reference_names, load_extra_reference, load_fixture_data, load_reference,
                       reference_names)


def _gaussian_references() -> list[tuple[str, dict, pd.DataFrame]]:
    cases = []
    for name in reference_names():
        ref = load_reference(name)
        if ref["family"] == "gaussian":
            cases.append((name, ref, mm.datasets.load(ref["dataset"])))
    for name in extra_reference_names():
        ref = load_extra_reference(name)
        if ref["family"] == "gaussian":
            cases.append((name, ref, load_fixture_data(ref["dataset"])))
    return cases


REFERENCES = [pytest.param(*case, id=case[0], marks=[pytest.mark.slow] if case[0].startswith("insteval") else [])
              for case in _gaussian_references()]  # InstEval's differences take over 5 s


def _model(ref: dict, data: pd.DataFrame, REML: bool) -> LinearMixedModel:
    weights = data[ref["weights"]].to_numpy() if ref.get("weights") else None
    offset = data[ref["offset"]].to_numpy() if ref.get("offset") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.DroppedRowsWarning)  # missing_rows
        design = build_design(parse_formula(ref["formula_py"]), data, weights=weights, offset=offset)
    return LinearMixedModel(design, REML=REML)


def _central_differences(model: LinearMixedModel, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    steps = h * np.maximum(np.abs(theta), 1.0)
    return np.array([(model.objective(theta + s * e) - model.objective(theta - s * e)) / (2 * s)
                     for s, e in zip(steps, np.eye(len(theta)))])


def _theta_near(model: LinearMixedModel, ref: dict) -> np.ndarray:
    """lme4's θ in the engine's order, moved off the bound so that central differences apply."""
    report = model.design.spec.report_order  # canonical positions in lme4's order
    sizes = [model.terms[k].ntheta for k in report]
    pieces = dict(zip(report, np.split(np.asarray(ref["theta"], dtype=float), np.cumsum(sizes)[:-1])))
    theta = np.concatenate([pieces[k] for k in range(len(model.terms))])
    return np.where(np.isfinite(model.theta_lower), np.maximum(theta, 0.05), theta) * 1.1


@pytest.mark.parametrize("name,ref,data", REFERENCES)
@pytest.mark.parametrize("REML", [True, False], ids=["REML", "ML"])
def test_gradient_matches_central_differences_on_every_reference_model(name, ref, data, REML):
    model = _model(ref, data, REML)
    theta = _theta_near(model, ref)
    value, grad = model.objective_and_gradient(theta)
    assert value == pytest.approx(model.objective(theta), rel=1e-13)
    fd = _central_differences(model, theta)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


@pytest.fixture(scope="module")
def sleepstudy_two_terms() -> LinearMixedModel:
    data = mm.datasets.load("sleepstudy")
    return LinearMixedModel(build_design(parse_formula("Reaction ~ Days + (Days | Subject) + (1 | Days)"), data))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.01, 3.0), min_size=4, max_size=4), st.floats(-2.0, 2.0), st.booleans())
def test_gradient_at_random_theta(sleepstudy_two_terms, diagonal, below, REML):
    model = sleepstudy_two_terms.with_REML(REML)
    theta = np.array([diagonal[0], below, diagonal[1], diagonal[2]])  # (Days|Subject) first: more effects
    _, grad = model.objective_and_gradient(theta)
    fd = _central_differences(model, theta)
    np.testing.assert_allclose(grad, fd, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(fd).max()))


def test_gradient_where_the_objective_cannot_be_evaluated_is_nan(sleepstudy_two_terms):
    with np.errstate(over="ignore", invalid="ignore"):
        value, grad = sleepstudy_two_terms.objective_and_gradient(np.full(4, 1e300))
    assert value == np.inf and np.isnan(grad).all()


def test_lbfgsb_counts_evaluations_and_respects_bounds():
    def fg(x):
        return float(((x + 1.0) ** 2).sum()), 2 * (x + 1.0)

    x, fun, nfev, reason = minimize_lbfgsb(fg, np.array([3.0, 2.0]), np.array([0.0, -np.inf]), DEFAULT_CONTROL)
    np.testing.assert_allclose(x, [0.0, -1.0], atol=1e-8)
    assert fun == pytest.approx(1.0) and 1 < nfev < 20 and isinstance(reason, str)


def test_check_by_gradient_finds_a_saddle_on_the_bound():
    """f = x² y² − x² + y²: on the bound x = 0 its x-derivative is 0, yet f falls inward."""
    def fg(z):
        x, y = z
        return x**2 * y**2 - x**2 + y**2, np.array([2 * x * y**2 - 2 * x, 2 * x**2 * y + 2 * y])

    ok, _, _, _, escape = check_optimum_by_gradient(fg, np.array([0.0, 0.0]), np.array([0.0, -np.inf]), 0.0,
                                                    DEFAULT_CONTROL)
    assert not ok and escape.tolist() == [True, False]
    ok, _, _, _, escape = check_optimum_by_gradient(fg, np.array([1.0, 0.0]), np.array([0.0, -np.inf]), -1.0,
                                                    DEFAULT_CONTROL)
    assert escape.tolist() == [False, False]


def test_reflection_negates_the_column_below_a_bound_diagonal(sleepstudy_two_terms):
    theta = np.array([0.0, 0.3, 0.2, 0.5])  # T = [[0, 0], [0.3, 0.2]] for (Days|Subject)
    flipped = reflect_bound_columns(sleepstudy_two_terms, theta, np.array([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(flipped, [0.0, -0.3, 0.2, 0.5])
    assert sleepstudy_two_terms.objective(flipped) == pytest.approx(sleepstudy_two_terms.objective(theta), rel=1e-13)
    assert reflect_bound_columns(sleepstudy_two_terms, theta, np.array([-1.0, 0.0, 0.0, 0.0])) is None


def test_small_models_use_the_gradient(sleepstudy_two_terms):
    assert sleepstudy_two_terms.uses_gradient()


def test_control_chooses_the_optimizer():
    data = mm.datasets.load("sleepstudy").assign(D2=lambda d: (d.Days - 4.5) ** 2 / 10)
    formula = "Reaction ~ Days + (Days | Subject)"
    auto = mm.lmer(formula, data)
    gradient = mm.lmer(formula, data, control=Control(optimizer="lbfgsb"))
    tiny = mm.lmer(formula, data, control=Control(optimizer="lbfgsb", gradient_max_entries=1))
    huge = LinearMixedModel(gradient.model.design, control=Control(gradient_max_entries=1))
    # 3 variance parameters: "auto" takes BOBYQA (44 evaluations, cheaper than 21 gradients)
    assert not auto.model.uses_gradient() and gradient.model.uses_gradient() and not huge.uses_gradient()
    assert auto.objective == pytest.approx(gradient.objective, rel=1e-10) == tiny.objective
    assert gradient.optimum.nfev < auto.optimum.nfev  # 21 against 44
    wide = mm.lmer("Reaction ~ Days + (1 + Days + D2 | Subject)", data)  # 6 parameters: the gradient
    assert wide.model.uses_gradient()
    assert wide.objective == pytest.approx(
        mm.lmer("Reaction ~ Days + (1 + Days + D2 | Subject)", data, control=Control(optimizer="bobyqa")).objective,
        rel=1e-9)


def test_lbfgsb_needs_a_gradient():
    """lme4's Laplace deviance has no analytic gradient (adaptive quadrature has: stage 1 takes BOBYQA)."""
    cbpp = mm.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.raises(mm.FitError, match="lbfgsb.*gradient"):
        mm.glmer(formula, cbpp, family="binomial", control=Control(optimizer="lbfgsb", laplace="lme4"))
    agq = mm.glmer(formula, cbpp, family="binomial", nAGQ=25, control=Control(optimizer="lbfgsb"))
    assert agq.objective == pytest.approx(100.0100305, abs=1e-6)  # tests/fixtures/reference/cbpp_agq25.json


@pytest.fixture(scope="module")
def sleepstudy_days() -> pd.DataFrame:
    data = mm.datasets.load("sleepstudy")
    for k in range(10):
        data[f"d{k}"] = (data["Days"] == k).astype(float)
    return data


ELEVEN_TERMS = "Reaction ~ Days + (1 + d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7 + d8 + d9 || Subject)"
#: the optimum; lme4 1.1-31 stops at 1755.589122 or 1763.240118 (warning: degenerate Hessian), docs/performance.md
ELEVEN_TERMS_OPTIMUM = 1755.5891208595


@pytest.mark.parametrize("scale", [None, 1e6, 1e8])
def test_misscaled_starts_recover_the_optimum_of_eleven_terms(sleepstudy_days, scale):
    theta = np.array([2.554728, 2.105634, 1.429543, 1.198310, 0.029833, 0.498086, 1.931001, 3.040473,
                      2.229134, 2.803399, 3.348508])  # lme4's θ
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        fit = mm.lmer(ELEVEN_TERMS, sleepstudy_days, start=None if scale is None else theta * scale)
    assert fit.optimum.converged
    assert fit.objective == pytest.approx(ELEVEN_TERMS_OPTIMUM, rel=1e-10)
    assert fit.optimum.nfev <= 300


@pytest.mark.parametrize("optimizer", ["lbfgsb", "bobyqa"])
@pytest.mark.parametrize("scale", [1e6, 1e8])
def test_misscaled_starts_recover_sleepstudy(scale, optimizer):
    data, control = mm.datasets.load("sleepstudy"), Control(optimizer=optimizer)
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data, control=control)
    again = mm.lmer("Reaction ~ Days + (Days | Subject)", data, start=np.asarray(fit.theta) * scale, control=control)
    assert again.objective == pytest.approx(fit.objective, rel=1e-12)
    if optimizer == "lbfgsb":
        np.testing.assert_allclose(again.theta, fit.theta, rtol=1e-6)
    else:  # BOBYQA's θ at this flat optimum moves by up to 2.2e-6 for 3e-10 of objective (lower)
        np.testing.assert_allclose(again.theta, fit.theta, rtol=0, atol=5e-6)
