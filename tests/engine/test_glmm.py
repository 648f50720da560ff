"""The GLMM engine from first principles: PIRLS modes, the Laplace approximation and quadrature.

For one scalar random intercept the integral over u factorises by group, so each group's
Laplace approximation and Gauss-Hermite quadrature can be computed here independently,
with scipy, and compared with the engine's blocked computation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.engine.families import Binomial, Poisson
from mixedmodels.engine.glmm import GeneralizedLinearMixedModel, PirlsStart
from mixedmodels.formula.parse import parse_formula


def simulated_counts(seed: int = 11, groups: int = 12, per_group: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.size)
    eta = 0.4 + 0.6 * x + rng.normal(0, 0.7, groups)[g]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": pd.Categorical(g)})


def engine(formula: str, data: pd.DataFrame, family, nAGQ: int = 1) -> GeneralizedLinearMixedModel:
    design = build_design(parse_formula(formula), data, binomial=family.name == "binomial")
    return GeneralizedLinearMixedModel(design, family, nAGQ=nAGQ)


def group_pieces(model: GeneralizedLinearMixedModel, beta: np.ndarray):
    term = model.terms[0]
    fixed = model.X @ beta + model.offset
    return term, [np.flatnonzero(term.codes == level) for level in range(term.nlevels)], fixed


def penalised_group_deviance(model, rows, fixed, theta, u, full_loglik=True):
    eta = fixed[rows] + theta * u
    mu = model.family.link.inverse(eta)
    y, wt = model.y[rows], model.prior_weights[rows]
    if full_loglik:
        dev = model.family.minus_two_loglik(y, mu, wt, 1.0).sum()
    else:
        dev = model.family.deviance_residuals(y, mu, wt).sum()
    return dev + u**2


def test_laplace_is_the_sum_of_per_group_laplace_approximations():
    data = simulated_counts()
    model = engine("y ~ x + (1 | g)", data, Poisson())
    theta, beta = np.array([0.8]), np.array([0.3, 0.5])
    term, groups, fixed = group_pieces(model, beta)
    expected = 0.0
    for rows in groups:
        res = optimize.minimize_scalar(lambda u: penalised_group_deviance(model, rows, fixed, theta[0], u),
                                       bracket=(-1, 1), tol=1e-12)
        mu = np.exp(fixed[rows] + theta[0] * res.x)
        curvature = 1 + theta[0] ** 2 * mu.sum()  # the canonical link: observed = expected information
        expected += res.fun + np.log(curvature)
    assert model.deviance(theta, beta) == pytest.approx(expected, rel=1e-9)


def test_pirls_modes_solve_the_penalised_score_equations():
    data = simulated_counts(seed=3)
    model = engine("y ~ x + (1 | g)", data, Poisson())
    theta, beta = np.array([1.1]), np.array([0.2, 0.7])
    state = model.pirls(theta, beta)
    u = state.u[0]
    term = model.terms[0]
    mu = np.exp(model.X @ beta + theta[0] * u[term.codes])
    score = -2 * theta[0] * np.bincount(term.codes, weights=model.y - mu, minlength=term.nlevels) + 2 * u
    np.testing.assert_allclose(score, 0, atol=1e-7)


def gamma_log_data(seed: int = 4, groups: int = 15, per_group: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.size)
    mu = np.exp(1.0 + 0.4 * x + rng.normal(0, 0.8, groups)[g])
    return pd.DataFrame({"y": rng.gamma(0.5, mu / 0.5), "x": x, "g": pd.Categorical(g)})


def count_passes(model: GeneralizedLinearMixedModel) -> list[bool]:
    """Replace the rows' working pass by one that records its ``observed`` flag."""
    calls: list[bool] = []
    original = model.rows.working_pass

    def recorded(beta, b, fixed_beta, observed=False):
        calls.append(observed)
        return original(beta, b, fixed_beta, observed)

    model.rows.working_pass = recorded
    return calls


def test_newton_pirls_for_a_non_canonical_link():
    """Gamma(log): Newton steps with the observed information reach the modes that solve the
    penalised score equations, in a few passes, and the factor at them is the expected
    information's (Fisher scoring's): its log-determinant is log(1 + θ² Σ wᵢ) per group, wᵢ = 1."""
    data = gamma_log_data()
    model = engine("y ~ x + (1 | g)", data, mm.families.Gamma(link="log"))
    theta, beta = np.array([0.9]), np.array([1.0, 0.4])
    calls = count_passes(model)
    state = model.pirls(theta, beta)
    u, term = state.u[0], model.terms[0]
    mu = np.exp(model.X @ beta + theta[0] * u[term.codes])
    score = -2 * theta[0] * np.bincount(term.codes, weights=(model.y - mu) / mu, minlength=term.nlevels) + 2 * u
    np.testing.assert_allclose(score, 0, atol=1e-8)
    sizes = np.bincount(term.codes)
    assert state.L.logdet_z() == pytest.approx(np.log(1 + theta[0] ** 2 * sizes).sum(), rel=1e-12)
    assert calls[-1] is False and all(calls[:-1])  # Newton passes, then one with the expected information
    assert len(calls) <= 10  # from u = 0; Fisher scoring takes 19 passes here
    calls.clear()
    model.pirls(np.array([0.92]), beta, PirlsStart(u=tuple(state.u), beta=None))
    assert len(calls) <= 6  # from the modes at a nearby θ, as the optimizer's evaluations: Fisher 14


def test_canonical_links_make_no_extra_pass():
    model = engine("y ~ x + (1 | g)", simulated_counts(seed=3), Poisson())
    calls = count_passes(model)
    model.pirls(np.array([1.1]), np.array([0.2, 0.7]))
    assert not any(calls)


def test_at_theta_zero_the_laplace_deviance_is_the_glm_deviance():
    data = simulated_counts(seed=5)
    model = engine("y ~ x + (1 | g)", data, Poisson())
    beta = np.array([0.1, 0.4])
    mu = np.exp(model.X @ beta)
    glm = Poisson().minus_two_loglik(model.y, mu, np.ones_like(mu), 1.0).sum()
    assert model.deviance(np.array([0.0]), beta) == pytest.approx(glm, rel=1e-12)


def test_adaptive_quadrature_converges_to_the_integral():
    """nAGQ = 25 against scipy's adaptive quadrature of each group's integral (deviance-residual scale)."""
    cbpp = mm.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    model = engine(formula, cbpp, Binomial(), nAGQ=25)
    theta, beta = np.array([0.65]), np.array([-1.4, -1.0, -1.1, -1.6])
    term, groups, fixed = group_pieces(model, beta)
    expected = 0.0
    for rows in groups:
        def density(u, rows=rows):
            return np.exp(-0.5 * penalised_group_deviance(model, rows, fixed, theta[0], u, full_loglik=False)) / np.sqrt(2 * np.pi)
        value, _ = integrate.quad(density, -12, 12, epsabs=1e-14, epsrel=1e-12, limit=200)
        expected += -2 * np.log(value)
    assert model.deviance(theta, beta) == pytest.approx(expected, rel=1e-7)


def test_nagq_needs_one_scalar_term():
    data = simulated_counts()
    with pytest.raises(mm.FamilyError, match="needs exactly one scalar random-effects term"):
        engine("y ~ x + (x | g)", data, Poisson(), nAGQ=5)
