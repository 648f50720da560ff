"""Numerical derivatives by finite differences: the one place for them.

Three flavours, each used where its trade-off fits:

- ``finite_difference_hessian``: central differences with steps h (one evaluation
  pair per coordinate and per pair of coordinates), reusing f(x ± hᵢeᵢ) when the
  caller has them.  Cheap; the optimizer's convergence check and the GLMM's
  Hessian for β's covariance use it.
- ``richardson_jacobian`` / ``richardson_hessian``: numDeriv's Richardson
  extrapolation of central differences over steps h, h/2, h/4, h/8 with numDeriv's
  default steps, so that Satterthwaite's df agree with lmerTest's to many digits.
- ``forward_difference_jacobian``: forward differences of an analytic gradient, the
  Hessian for the optimizer's check of a fit with its gradient (k evaluations).
- ``central_difference_jacobian``: central differences of an analytic gradient, the
  Hessian for a GLMM's standard errors (2k evaluations, O(h²) error).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

_ZERO_TOL = np.sqrt(np.finfo(float).eps / 7e-7)  # numDeriv's zero.tol


def finite_difference_hessian(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    h: np.ndarray | None = None,
    idx: np.ndarray | None = None,
    f_plus: np.ndarray | None = None,
    f_minus: np.ndarray | None = None,
) -> np.ndarray:
    """Central-difference Hessian of f at x over the coordinates ``idx`` (default: all).

    ``f_plus``/``f_minus`` are f(x ± hᵢeᵢ) when already known (they give the diagonal).
    Each off-diagonal element takes two more evaluations, f(x ± (hᵢeᵢ + hⱼeⱼ)):
    their sum minus the diagonal's central sums is 2hᵢhⱼHᵢⱼ + O(h⁴), as accurate as
    the four-point formula for half its cost.
    """
    h = 1e-4 * np.maximum(np.abs(x), 1.0) if h is None else h
    idx = np.arange(len(x)) if idx is None else idx
    if f_plus is None or f_minus is None:
        f_plus = np.full(len(x), np.nan)
        f_minus = np.full(len(x), np.nan)
        for i in map(int, idx):
            f_plus[i], f_minus[i] = f(shifted(x, i, h[i])), f(shifted(x, i, -h[i]))
    m = len(idx)
    H = np.zeros((m, m))
    for a, i in enumerate(idx):
        H[a, a] = (f_plus[i] - 2 * fx + f_minus[i]) / h[i] ** 2
        for b, j in enumerate(idx[:a]):
            both = shifted(shifted(x, i, h[i]), j, h[j])
            pair_sum = f(both) + f(2 * x - both)
            H[a, b] = H[b, a] = (pair_sum - f_plus[i] - f_minus[i] - f_plus[j] - f_minus[j] + 2 * fx) / (
                2 * h[i] * h[j])
    return H


# ----- numDeriv's Richardson extrapolation (what lmerTest uses) ---------------------------
def _steps(x: np.ndarray, d: float, eps: float = 1e-4) -> np.ndarray:
    """Initial steps: relative d·|x|, or eps where x is (near) zero."""
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def _richardson(a: list) -> np.ndarray:
    """Extrapolate estimates from steps h, h/2, h/4, … whose error is a series in h²."""
    for m in range(1, len(a)):
        a = [(a[k + 1] * 4**m - a[k]) / (4**m - 1) for k in range(len(a) - 1)]
    return a[0]


def richardson_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, d: float = 1e-4, r: int = 4) -> np.ndarray:
    """∂f/∂xᵢ stacked along the first axis (numDeriv::jacobian)."""
    h0 = _steps(x, d)
    out = []
    for i in range(len(x)):
        e = np.eye(len(x))[i]
        out.append(_richardson([(f(x + h * e) - f(x - h * e)) / (2 * h) for h in h0[i] / 2.0 ** np.arange(r)]))
    return np.array(out)


def richardson_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, d: float = 0.1, r: int = 4) -> np.ndarray:
    """Hessian of a scalar f (numDeriv::hessian, i.e. genD's second differences)."""
    n, f0, h0 = len(x), f(x), _steps(x, d)
    H = np.zeros((n, n))

    def second(i: int, j: int) -> float:
        estimates = []
        for h in (h0 / 2.0**k for k in range(r)):
            e = np.zeros(n)
            e[[i, j]] = h[[i, j]]
            s = f(x + e) - 2 * f0 + f(x - e)
            if i == j:
                estimates.append(s / h[i] ** 2)
            else:  # s ≈ Hᵢᵢhᵢ² + Hⱼⱼhⱼ² + 2Hᵢⱼhᵢhⱼ
                estimates.append((s - H[i, i] * h[i] ** 2 - H[j, j] * h[j] ** 2) / (2 * h[i] * h[j]))
        return float(_richardson(estimates))

    for i in range(n):
        H[i, i] = second(i, i)
    for i in range(n):
        for j in range(i):
            H[i, j] = H[j, i] = second(i, j)
    return H


def forward_difference_jacobian(g: Callable[[np.ndarray], np.ndarray], x: np.ndarray, gx: np.ndarray,
                                h: np.ndarray, known: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """(g(x + hᵢeᵢ) − g(x)) / hᵢ stacked along the first axis: the Hessian of f from its analytic
    gradient g in k evaluations (the optimizer's check with a gradient); ``known`` holds
    g(x + hᵢeᵢ) already evaluated, by i."""
    known = {} if known is None else known
    return np.array([((known[i] if i in known else g(shifted(x, i, h[i]))) - gx) / h[i] for i in range(len(x))])


def central_difference_jacobian(g: Callable[[np.ndarray], np.ndarray], x: np.ndarray, h: np.ndarray,
                                idx: np.ndarray) -> np.ndarray:
    """(g(x + hᵢeᵢ) − g(x − hᵢeᵢ)) / 2hᵢ for i in ``idx``, stacked along the first axis: the Hessian of
    f from its analytic gradient g in 2k evaluations, with an O(h²) error (a GLMM's standard errors)."""
    return np.array([(g(shifted(x, i, h[i])) - g(shifted(x, i, -h[i]))) / (2 * h[i]) for i in map(int, idx)])


def shifted(x: np.ndarray, i: int, delta: float) -> np.ndarray:
    """x with its i-th coordinate moved by delta."""
    y = x.copy()
    y[i] += delta
    return y
