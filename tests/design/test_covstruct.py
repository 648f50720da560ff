"""Covariance structures (design/covstruct.py): T = diag(τ) chol(R(ρ)) gives lme4 2.0's cs, ar1
and diag covariances, ρ's map is onto its interval, and ∂T/∂θ is the derivative of T."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.design.covstruct import CovStructure, lower_indices

CS, HOMCS, AR1, HETAR1 = CovStructure("cs"), CovStructure("cs", True), CovStructure("ar1", True), CovStructure("ar1")
DIAG, HOMDIAG, US = CovStructure("diag"), CovStructure("diag", True), CovStructure()


def covariance(structure: CovStructure, tau: np.ndarray, rho: float) -> np.ndarray:
    """Σ/σ² written from the definitions: D R D with R compound symmetric, AR(1) or I."""
    p = len(tau)
    lag = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    R = {"cs": np.where(lag == 0, 1.0, rho), "ar1": rho ** lag.astype(float), "diag": np.eye(p)}[structure.name]
    return np.outer(tau, tau) * R


@pytest.mark.parametrize("structure, p, n", [
    (US, 3, 6), (DIAG, 3, 3), (HOMDIAG, 3, 1), (CS, 3, 4), (HOMCS, 3, 2), (AR1, 4, 2), (HETAR1, 4, 5),
    (CS, 1, 1), (AR1, 1, 1),
])
def test_parameter_counts(structure, p, n):
    """lme4 2.0's getParLength: (nc or 1) SDs plus one correlation when nc > 1; us nc(nc+1)/2."""
    assert structure.ntheta(p) == n == len(structure.lower(p)) == len(structure.start(p))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([CS, HOMCS, AR1, HETAR1, DIAG, HOMDIAG]), st.integers(2, 6),
       st.lists(st.floats(0.05, 5.0), min_size=6, max_size=6), st.floats(-3.0, 3.0))
def test_factor_is_the_cholesky_factor_of_the_structure(structure, p, taus, a):
    theta = np.array(taus[:len(structure.sd_columns(p))] + [a] * structure.has_rho(p))
    T = structure.factor(theta, p)
    tau = np.full(p, taus[0]) if structure.hom else np.array(taus[:p])
    rho = structure.rho(a, p) if structure.has_rho(p) else 0.0
    np.testing.assert_allclose(T @ T.T, covariance(structure, tau, rho), rtol=1e-10, atol=1e-12)
    assert np.allclose(T, np.tril(T))
    np.testing.assert_allclose(structure.theta_of(theta[:len(structure.sd_columns(p))], rho, p), theta,
                               rtol=1e-7, atol=1e-9)


@given(st.sampled_from([CS, AR1]), st.integers(2, 8), st.floats(-30.0, 30.0))
def test_rho_maps_onto_its_interval(structure, p, a):
    lo, hi = structure.rho_interval(p)
    rho = structure.rho(a, p)
    assert lo <= rho <= hi
    if abs(a) < 10:
        assert structure.a_of(rho, p) == pytest.approx(a, rel=1e-8, abs=1e-10)


def test_interval_ends_and_start():
    """cs's ρ ≥ −1/(p − 1) (R positive semi-definite), ar1's ρ ≥ −1; glmmTMB's ar1 map ρ = a/√(1 + a²);
    both start from ρ = 0, and the ends are reached at a = ±∞ with T still defined."""
    assert CS.rho_interval(5) == (-0.25, 1.0)
    assert AR1.rho(1.0, 3) == pytest.approx(1 / np.sqrt(2))
    assert CS.rho(CS.start(5)[-1], 5) == pytest.approx(0.0, abs=1e-15)
    for structure in (CS, AR1):
        for a, rho in ((np.inf, 1.0), (-np.inf, structure.rho_interval(4)[0])):
            assert structure.rho(a, 4) == rho
            T = structure.factor(np.array([2.0] * len(structure.sd_columns(4)) + [a]), 4)
            np.testing.assert_allclose(T @ T.T, covariance(structure, np.full(4, 2.0), rho), atol=1e-12)


@pytest.mark.parametrize("structure", [CS, HOMCS, AR1, HETAR1, DIAG, HOMDIAG])
def test_jacobian_is_the_derivative_of_the_factor(structure):
    p, h = 4, 1e-6
    rng = np.random.default_rng(1)
    theta = np.concatenate([rng.uniform(0.5, 2.0, len(structure.sd_columns(p))), [0.7] * structure.has_rho(p)])
    J = structure.jacobian(theta, p)
    for k in range(len(theta)):
        step = np.eye(len(theta))[k] * h
        numeric = (structure.factor(theta + step, p) - structure.factor(theta - step, p)) / (2 * h)
        np.testing.assert_allclose(J[k], numeric, atol=1e-7)
    dT = rng.standard_normal((p, p))
    assert structure.pullback(theta, p, dT) == pytest.approx(np.einsum("kij,ij->k", J, np.tril(dT)))


def test_unstructured_factor_is_the_lower_triangle():
    rows, cols = lower_indices(3)
    T = US.factor(np.arange(1.0, 7.0), 3)
    assert T[rows, cols].tolist() == [1, 2, 3, 4, 5, 6] and T[0, 1] == 0


def test_boundary_and_spelling():
    assert AR1.at_boundary(np.array([1.0, 1e6]), 3, 1e-4)  # ρ at 1
    assert CS.at_boundary(np.array([1.0, 0.0, 1.0, 0.0]), 3, 1e-4)  # a zero SD
    assert not HOMCS.at_boundary(np.array([1.0, 0.0]), 3, 1e-4)
    assert AR1.spelling("0 + f", "g") == "ar1(0 + f | g)"
    assert HOMCS.spelling("0 + f", "g") == "cs(0 + f | g, hom = TRUE)"
    assert HETAR1.spelling("0 + f", "g") == "ar1(0 + f | g, hom = FALSE)"
    assert [s.tag for s in (CS, HOMCS, AR1, HETAR1, DIAG, HOMDIAG)] == ["cs", "homcs", "ar1", "hetar1", "diag",
                                                                       "homdiag"]
