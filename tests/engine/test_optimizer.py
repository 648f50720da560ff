"""The optimizer's convergence check, the Newton polish and the snap to bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from mixedmodels.engine.control import DEFAULT_CONTROL
from mixedmodels.engine.optimizer import (
    check_optimum,
    newton_polish,
    optimize,
    snap_to_bounds,
)

BOUNDARY = DEFAULT_CONTROL.boundary_tol
_floats = st.floats(-2.0, 2.0, allow_nan=False)


def _spd(n: int, entries: np.ndarray) -> np.ndarray:
    B = entries.reshape(n, n)
    return B @ B.T + n * np.eye(n)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), data=st.data())
def test_newton_polish_lands_on_a_quadratic_minimum(n, data):
    A = _spd(n, data.draw(arrays(float, n * n, elements=_floats)))
    xmin = data.draw(arrays(float, n, elements=st.floats(1.0, 3.0)))
    x = xmin + data.draw(arrays(float, n, elements=st.floats(-0.1, 0.1)))

    def f(z):
        return 0.5 * (z - xmin) @ A @ (z - xmin) + 10.0

    lower = np.zeros(n)
    ok, grad, gain, H = check_optimum(f, x, lower, f(x), DEFAULT_CONTROL)  # exact on a quadratic: no truncation error
    calls = []
    polished, value = newton_polish(lambda z: calls.append(1) or f(z), x, f(x), lower, H, grad)
    np.testing.assert_allclose(polished, xmin, atol=1e-8)
    assert value <= f(x)
    assert len(calls) == 1  # the check's gradient and Hessian: one evaluation, at the new point


def test_newton_polish_keeps_the_point_when_the_step_does_not_help():
    def f(z):  # concave: the Hessian is not positive definite
        return -float(z @ z)

    x = np.array([0.5, 0.5])
    H = -2 * np.eye(2)
    same, value = newton_polish(f, x, f(x), np.full(2, -np.inf), H, -2 * x)
    np.testing.assert_array_equal(same, x)
    assert value == f(x)


def test_newton_polish_accepts_a_rise_only_within_the_slack():
    def f(z):  # a quadratic whose Hessian the caller gets wrong by a factor 1/4: the step overshoots
        return float(z @ z)

    x = np.array([1.0])
    too_flat = np.array([[0.5]])  # the step −g/H = −4 lands at −3, where f = 9 > 1
    kept, value = newton_polish(f, x, f(x), np.array([-np.inf]), too_flat, 2 * x, slack=1e-12)
    np.testing.assert_array_equal(kept, x)
    moved, _ = newton_polish(f, x, f(x), np.array([-np.inf]), too_flat, 2 * x, slack=10.0)
    np.testing.assert_allclose(moved, [-3.0])


def test_optimize_respects_bounds_and_reports_convergence():
    def f(z):  # the unconstrained minimum (−1, 2) is outside z₀ ≥ 0
        return float((z[0] + 1) ** 2 + (z[1] - 2) ** 2)

    report = optimize(f, np.array([1.0, 1.0]), np.array([0.0, -np.inf]), DEFAULT_CONTROL)
    assert report.converged
    np.testing.assert_allclose(report.x, [0.0, 2.0], atol=1e-7)
    assert abs(report.fun - 1.0) < 1e-12


def test_snap_puts_a_parameter_a_hair_from_its_bound_on_it():
    def f(z):  # minimum on the bound z₀ = 0
        return float((z[0] + 1) ** 2 + (z[1] - 2) ** 2)

    x = np.array([2e-11, 2.0])
    snapped, value = snap_to_bounds(f, x, f(x), np.array([0.0, -np.inf]), slack=1e-12, distance=BOUNDARY)
    np.testing.assert_array_equal(snapped, [0.0, 2.0])
    assert value == f(snapped)


def test_snap_leaves_points_that_are_not_close_or_would_rise():
    lower = np.array([0.0])
    far = np.array([10 * BOUNDARY])
    calls = []

    def f(z):
        calls.append(z.copy())
        return float((z[0] - 1e-7) ** 2)

    assert snap_to_bounds(f, far, f(far), lower, slack=0.0, distance=BOUNDARY)[0] is far
    assert len(calls) == 1  # no evaluation when nothing is near a bound
    near = np.array([1e-7])  # the minimum itself, inside the snap distance: f(0) = 1e-14 > f(near) = 0
    np.testing.assert_array_equal(snap_to_bounds(f, near, f(near), lower, slack=1e-15, distance=BOUNDARY)[0], near)
    np.testing.assert_array_equal(snap_to_bounds(f, near, f(near), lower, slack=1e-13, distance=BOUNDARY)[0], [0.0])


def test_a_singular_fit_lands_exactly_on_the_bound():
    """Dyestuff2's between-batch variance is zero: θ = 0 exactly, as lme4 reports it."""
    import warnings

    import mixedmodels as mm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        m = mm.lmer("Yield ~ 1 + (1|Batch)", mm.datasets.load("Dyestuff2"))
    assert m.theta[0] == 0.0
    assert m.objective == pytest.approx(161.828277812288, rel=1e-12)  # lme4 1.1-31
