"""One pass over the rows (rows.InMemoryRows) against the IRLS quantities written out densely."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.design.reterm import ReTerm
from mixedmodels.engine.families import Binomial, Poisson
from mixedmodels.engine.rows import InMemoryRows


def rows_for(family, seed: int = 2):
    rng = np.random.default_rng(seed)
    n, levels = 40, 5
    codes = np.concatenate([np.arange(levels), rng.integers(0, levels, n - levels)])
    term = ReTerm("g", codes, pd.Index(range(levels)), np.ones((n, 1)), ("(Intercept)",), "1")
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.poisson(2.0, n).astype(float) if family.name == "poisson" else rng.integers(0, 2, n).astype(float)
    return InMemoryRows((term,), X, y, np.ones(n), np.full(n, 0.1), family), term, X, y


@pytest.mark.parametrize("family", [Poisson(), Binomial(), Binomial("probit")])
def test_working_pass_is_one_irls_step_written_out(family):
    rows, term, X, y = rows_for(family)
    beta, b = np.array([0.2, -0.3]), [np.linspace(-0.5, 0.5, 5)[:, None]]
    wp = rows.working_pass(beta, b, fixed_beta=False)
    eta = X @ beta + b[0][term.codes, 0] + 0.1
    mu = family.link.inverse(eta)
    d = family.link.mu_eta(eta)
    w = d**2 / family.variance(mu)
    z = eta - 0.1 + (y - mu) / d
    Z = np.zeros((len(y), 5))
    Z[np.arange(len(y)), term.codes] = 1
    np.testing.assert_allclose(wp.eta, eta)
    np.testing.assert_allclose(wp.crossprod.diag[0][:, 0, 0], Z.T @ w, rtol=1e-10)
    Xz = np.column_stack([X, z])
    np.testing.assert_allclose(wp.crossprod.xx, Xz.T @ (w[:, None] * Xz), rtol=1e-10)
    np.testing.assert_allclose(wp.crossprod.xz[0], Xz.T @ (w[:, None] * Z), rtol=1e-10)
    assert wp.kernel == pytest.approx(family.deviance_kernel(y, mu, np.ones_like(y)))


def test_working_pass_with_beta_fixed_works_on_the_random_part_only():
    rows, term, X, y = rows_for(Poisson())
    beta, b = np.array([0.2, -0.3]), [np.full((5, 1), 0.25)]
    wp = rows.working_pass(beta, b, fixed_beta=True)
    eta = X @ beta + 0.25 + 0.1
    mu = np.exp(eta)
    np.testing.assert_allclose(wp.crossprod.xx[0, 0], np.sum(mu * (0.25 + (y - mu) / mu) ** 2), rtol=1e-10)


def test_glm_equations_are_the_weighted_normal_equations():
    rows, term, X, y = rows_for(Poisson())
    beta = np.array([0.5, 0.1])
    eq = rows.glm_equations(beta)
    eta = X @ beta + 0.1
    mu = np.exp(eta)
    z = eta - 0.1 + (y - mu) / mu
    np.testing.assert_allclose(eq.xwx, X.T @ (mu[:, None] * X), rtol=1e-10)
    np.testing.assert_allclose(eq.xwz, X.T @ (mu * z), rtol=1e-10)


def test_a_pass_outside_the_family_range_is_none():
    rows, term, X, y = rows_for(Poisson("identity"))
    assert rows.working_pass(np.array([-10.0, 0.0]), [np.zeros((5, 1))], fixed_beta=False) is None
