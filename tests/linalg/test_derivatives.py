"""Finite-difference derivatives (linalg.derivatives): exact where the truncation error vanishes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from mixedmodels.linalg.derivatives import (
    finite_difference_hessian,
    richardson_hessian,
    richardson_jacobian,
    shifted,
)

_floats = st.floats(-2.0, 2.0, allow_nan=False)


def _spd(n: int, entries: np.ndarray) -> np.ndarray:
    B = entries.reshape(n, n)
    return B @ B.T + n * np.eye(n)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), data=st.data())
def test_hessian_of_a_cubic_is_exact_up_to_h_squared(n, data):
    entries = data.draw(arrays(float, n * n, elements=_floats))
    x = data.draw(arrays(float, n, elements=_floats))
    c = data.draw(arrays(float, n, elements=st.floats(-0.5, 0.5)))
    A = _spd(n, entries)

    def f(z):  # Hessian at x: A + diag(6 c x)
        return 0.5 * z @ A @ z + float(c @ z**3)

    H = finite_difference_hessian(f, x, f(x), h=np.full(n, 1e-3))
    np.testing.assert_allclose(H, A + np.diag(6 * c * x), atol=1e-5 * np.abs(A).max())


def test_counts_two_evaluations_per_pair_beyond_the_axis_steps():
    calls = []

    def f(z):
        calls.append(z)
        return float(z @ z)

    x = np.ones(4)
    h = np.full(4, 1e-3)
    f_plus = np.array([f(x + h[i] * np.eye(4)[i]) for i in range(4)])
    f_minus = np.array([f(x - h[i] * np.eye(4)[i]) for i in range(4)])
    calls.clear()
    H = finite_difference_hessian(f, x, f(x), h, None, f_plus, f_minus)
    assert len(calls) == 1 + 2 * 6
    np.testing.assert_allclose(H, 2 * np.eye(4), atol=1e-6)


def test_richardson_derivatives_of_a_smooth_function():
    def f(x):
        return x[0] ** 2 * x[1] + np.exp(x[1])

    x = np.array([1.5, 0.3])
    H = np.array([[2 * x[1], 2 * x[0]], [2 * x[0], np.exp(x[1])]])
    np.testing.assert_allclose(richardson_hessian(f, x), H, rtol=1e-8)
    J = richardson_jacobian(lambda x: np.array([f(x), x[0] * x[1]]), x)
    np.testing.assert_allclose(J, [[2 * x[0] * x[1], x[1]], [x[0] ** 2 + np.exp(x[1]), x[0]]], rtol=1e-8)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), data=st.data())
def test_richardson_is_exact_on_quadratics(n, data):
    A = _spd(n, data.draw(arrays(float, n * n, elements=_floats)))
    c = data.draw(arrays(float, n, elements=_floats))
    x = data.draw(arrays(float, n, elements=_floats))

    def f(z):
        return float(0.5 * z @ A @ z + c @ z)

    # second differences of a quadratic are exact but for round-off, ε|f|/h² at the smallest of the
    # 4 halved steps (numDeriv's: 0.1|x|, or 1e-4 at zero), which a coordinate near 1e-4 makes tiny
    h = (0.1 * np.abs(x) + 1e-4 * (np.abs(x) < np.sqrt(np.finfo(float).eps / 7e-7))) / 2**3
    scale = max(abs(f(x)), np.abs(A).max() * (np.abs(x).max() + h.max()) ** 2, 1.0)
    roundoff = 16 * np.finfo(float).eps * scale / h.min() ** 2
    np.testing.assert_allclose(richardson_hessian(f, x), A, atol=1e-5 * np.abs(A).max() + roundoff)
    # first differences: round-off ε|f|/h at the Jacobian's own smallest step (numDeriv's d = 1e-4 |x|),
    # which a coordinate near 1e-4 makes about 1e-9: then ε|f|/h is about 1e-6 (x₀ = 6.1e-5 found by hypothesis)
    h_jac = (1e-4 * np.abs(x) + 1e-4 * (np.abs(x) < np.sqrt(np.finfo(float).eps / 7e-7))) / 2**3
    roundoff_jac = 16 * np.finfo(float).eps * scale / h_jac.min()
    np.testing.assert_allclose(richardson_jacobian(lambda z: np.array([f(z)]), x)[:, 0], A @ x + c,
                               atol=1e-7 * (1 + np.abs(A @ x + c).max()) + roundoff_jac)


def test_the_hessian_covers_only_idx_with_default_steps():
    calls = []

    def f(z):
        calls.append(z)
        return float(z[0] ** 3 + z[1] ** 2 + z[0] * z[1])

    x = np.array([3.0, 0.5])
    H = finite_difference_hessian(f, x, f(x), idx=np.array([1]))
    assert H.shape == (1, 1) and len(calls) == 1 + 2  # f(x), then x ± h e₁ only
    np.testing.assert_allclose(H, [[2.0]], rtol=1e-6)
    np.testing.assert_array_equal(shifted(x, 1, 0.25), [3.0, 0.75])
    np.testing.assert_array_equal(x, [3.0, 0.5])  # shifted copies
