"""The analytic gradient of the GLMM Laplace deviance against central differences of ``laplace``,
and what uses it: the convergence check, the standard errors and L-BFGS-B in stage 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.engine.families import Family, get_family
from mixedmodels.engine.glmm import GeneralizedLinearMixedModel
from mixedmodels.engine.optimizer import optimize
from mixedmodels.formula.parse import parse_formula
from mixedmodels.linalg.derivatives import finite_difference_hessian
from reference import REFERENCE_DIR


def engine(formula: str, data: pd.DataFrame, family: Family, **arrays) -> GeneralizedLinearMixedModel:
    design = build_design(parse_formula(formula), data, binomial=family.name == "binomial", **arrays)
    return GeneralizedLinearMixedModel(design, family)


def central_differences(model: GeneralizedLinearMixedModel, theta: np.ndarray, beta: np.ndarray,
                        h: float = 1e-5) -> np.ndarray:
    """∂D/∂(θ, β) by central differences of the Laplace deviance, PIRLS started at the modes."""
    x, k = np.concatenate([theta, beta]), len(theta)
    start = model.pirls(theta, beta).start
    out = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h * max(1.0, abs(x[i]))
        out.append((model.deviance((x + e)[:k], (x + e)[k:], start)
                    - model.deviance((x - e)[:k], (x - e)[k:], start)) / (2 * e[i]))
    return np.array(out)


def assert_gradient(model: GeneralizedLinearMixedModel, theta, beta, rtol: float = 1e-5) -> np.ndarray:
    theta, beta = np.asarray(theta, dtype=float), np.asarray(beta, dtype=float)
    analytic = model.gradient_from_modes(theta, model.pirls(theta, beta))
    numeric = central_differences(model, theta, beta)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=rtol * max(1.0, np.abs(numeric).max()))
    return analytic


def simulated(seed: int = 1, n: int = 480, groups: int = 24, items: int = 10) -> pd.DataFrame:
    """Crossed groups, a slope, exposures and prior weights; binary, count and positive responses."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, groups, n), rng.integers(0, items, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    exposure = rng.uniform(0.5, 3.0, n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.7, groups)[g] + rng.normal(0, 0.4, groups)[g] * x + rng.normal(0, 0.5, items)[h]
    return pd.DataFrame({
        "g": pd.Categorical(g), "h": pd.Categorical(h), "x": x, "z": z, "exposure": exposure,
        "count": rng.poisson(np.exp(eta) * exposure), "yes": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float),
        "size": rng.gamma(2.0, np.exp(1 + 0.3 * eta) / 2.0), "w": rng.integers(1, 5, n).astype(float),
    })


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulated()


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return mm.datasets.load("cbpp")


def test_cbpp_binomial_with_trials(cbpp):
    """At lme4's optimum (θ 0.642, β from tests/fixtures/reference/cbpp_laplace.json) and away from it."""
    model = engine("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, get_family("binomial"))
    at_optimum = assert_gradient(model, [0.642], [-1.398, -0.992, -1.128, -1.580])
    assert np.abs(at_optimum).max() < 0.05  # near lme4's optimum the gradient is small
    assert_gradient(model, [1.3], [-1.0, -0.5, -1.5, -2.0])


MODELS = {
    "poisson offset": ("count ~ x + (1 | g)", get_family("poisson"), {"offset": "exposure"}, [0.6], [-0.2, 0.4]),
    "binomial random slope": ("yes ~ x + (1 + x | g)", get_family("binomial"), {}, [0.7, 0.1, 0.3], [-0.2, 0.4]),
    "crossed binomial": ("yes ~ x + z + (1 | g) + (1 | h)", get_family("binomial"), {}, [0.7, 0.4], [-0.2, 0.4, 0.1]),
    "crossed with a slope": ("yes ~ x + (1 + x | g) + (1 | h)", get_family("binomial"), {}, [0.7, 0.1, 0.3, 0.4],
                             [-0.2, 0.4]),
    "probit": ("yes ~ x + (1 | g) + (1 | h)", get_family("binomial", "probit"), {}, [0.5, 0.3], [-0.1, 0.3]),
    "cloglog": ("yes ~ x + (1 | g)", get_family("binomial", "cloglog"), {}, [0.5], [-0.4, 0.3]),
    "poisson prior weights": ("count ~ x + (1 | g) + (1 | h)", get_family("poisson"), {"weights": "w"}, [0.5, 0.3],
                              [-0.1, 0.3]),
    "Gamma log slope": ("size ~ x + (1 + x | g)", get_family("Gamma", "log"), {}, [0.3, 0.05, 0.1], [1.0, 0.2]),
    "Gamma log prior weights": ("size ~ x + (1 | g) + (1 | h)", get_family("Gamma", "log"), {"weights": "w"},
                                [0.3, 0.1], [1.0, 0.2]),
    "Gamma inverse": ("size ~ x + (1 | g)", get_family("Gamma"), {}, [0.01], [0.3, -0.05]),
    "inverse Gaussian log": ("size ~ x + (1 | g)", get_family("inverse.gaussian", "log"), {}, [0.1], [1.0, 0.2]),
    "gaussian log": ("size ~ x + (1 | g)", get_family("gaussian", "log"), {}, [0.3], [1.0, 0.2]),
    "negative binomial": ("count ~ x + (1 | g)", mm.families.NegativeBinomial(2.0), {}, [0.5], [0.0, 0.4]),
    "diag() structure": ("yes ~ x + diag(1 + x | g)", get_family("binomial"), {}, [0.7, 0.3], [-0.2, 0.4]),
}


@pytest.mark.parametrize("name", MODELS)
def test_gradient_matches_central_differences(name, data):
    formula, family, columns, theta, beta = MODELS[name]
    model = engine(formula, data, family, **{k: data[v].to_numpy(dtype=float) for k, v in columns.items()})
    assert model.has_gradient
    assert_gradient(model, theta, beta)


def test_gamma_two_slopes_at_and_away_from_the_optimum():
    """tests/fixtures/gamma_slopes: at lme4's optimum (θ partly at 0, moved just inside) and away from it."""
    data = pd.read_csv(REFERENCE_DIR.parent / "gamma_slopes" / "gamma_slopes.csv")
    model = engine("y ~ 1 + (1 + x1 | g1) + (1 + x2 | g2)", data, get_family("Gamma", "log"))
    assert_gradient(model, [0.01, 0.001, 0.01, 1.0298, 0.7255, 0.01], [2.3189])
    assert_gradient(model, [0.2, 0.05, 0.1, 0.5, 0.2, 0.2], [2.0])


@settings(max_examples=15, deadline=None)
@given(theta=st.lists(st.floats(0.05, 2.0), min_size=2, max_size=2),
       beta=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2))
def test_gradient_at_random_points(theta, beta):
    """Anywhere in a crossed Poisson model's parameter space, not only near an optimum."""
    model = engine("count ~ x + (1 | g) + (1 | h)", _POISSON_DATA, get_family("poisson"))
    assert_gradient(model, theta, beta)


_POISSON_DATA = simulated(seed=7, n=240)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_beta_gradient_transforms_with_the_fixed_effects_basis(seed):
    """With X' = X A the deviance is D'(θ, β') = D(θ, A β'), so ∇β' D' = Aᵀ ∇β D and ∇θ is unchanged."""
    rng = np.random.default_rng(seed)
    A = np.array([[1.0, rng.uniform(-1, 1)], [0.0, rng.uniform(0.5, 2)]])
    data = _POISSON_DATA.assign(c0=1.0)
    data["c1"] = data["x"] * A[1, 1] + A[0, 1]  # [1, x] A: columns 1 and a₀₁ + a₁₁ x
    plain = engine("count ~ x + (1 | g)", data, get_family("poisson"))
    moved = engine("count ~ c1 + (1 | g)", data, get_family("poisson"))
    theta, beta_moved = np.array([0.6]), np.array([0.1, 0.3])
    beta = A @ beta_moved
    g = plain.gradient_from_modes(theta, plain.pirls(theta, beta))
    g_moved = moved.gradient_from_modes(theta, moved.pirls(theta, beta_moved))
    np.testing.assert_allclose(g_moved[:1], g[:1], rtol=1e-7)
    np.testing.assert_allclose(g_moved[1:], A.T @ g[1:], rtol=1e-7, atol=1e-9)


def test_no_gradient_for_lme4s_laplace_deviance(cbpp):
    """lme4's Laplace deviance keeps finite differences; asking fails clearly (adaptive quadrature's
    gradient: test_quadrature.py)."""
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    design = build_design(parse_formula(formula), cbpp, binomial=True)
    model = GeneralizedLinearMixedModel(design, get_family("binomial"), control=mm.Control(laplace="lme4"))
    assert not model.has_gradient
    state = model.pirls(np.array([0.6]), np.array([-1.4, -1.0, -1.1, -1.6]))
    with pytest.raises(mm.FitError, match="no analytic gradient"):
        model.gradient_from_modes(np.array([0.6]), state)


def test_check_by_gradient_after_a_derivative_free_minimiser():
    """optimize(check_gradient=...): BOBYQA's optimum, checked by forward differences of the gradient
    (k gradients): for a quadratic, the exact Hessian and a converged report."""
    H = np.array([[4.0, 1.0], [1.0, 3.0]])
    centre = np.array([0.5, -0.2])
    calls = {"f": 0, "g": 0}

    def f(x):
        calls["f"] += 1
        return float(0.5 * (x - centre) @ H @ (x - centre)) + 1.0

    def fg(x):
        calls["g"] += 1
        return f(x), H @ (x - centre)

    report = optimize(f, np.zeros(2), np.full(2, -np.inf), mm.Control(optimizer="bobyqa"), check_gradient=fg)
    assert report.converged
    np.testing.assert_allclose(report.x, centre, atol=1e-6)
    np.testing.assert_allclose(report.hessian, H, rtol=1e-6)
    assert calls["g"] == 3  # the gradient at x and one step along each coordinate


def test_standard_errors_from_the_gradient(cbpp):
    """vcov is 2 H⁻¹'s β block, H by central differences of the gradient: it agrees with second
    differences of the deviance itself, and the SEs with lme4's (cbpp_laplace.json) to 2% (lme4's
    Laplace deviance differs slightly)."""
    fit = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    x, k = fit.optimum.x, 1
    start = fit.pirls_state.start
    H = finite_difference_hessian(lambda z: fit.model.deviance(z[:k], z[k:], start), x, fit.optimum.fun,
                                  h=1e-3 * np.maximum(np.abs(x), 1.0))
    np.testing.assert_allclose(fit.vcov.to_numpy(), 2 * np.linalg.inv(H)[k:, k:], rtol=1e-4)
    np.testing.assert_allclose(fit.se.to_numpy(), [0.2312, 0.3032, 0.3228, 0.4220], rtol=2e-2)


def test_lbfgsb_stage2_reaches_bobyqas_optimum(data):
    formula = "yes ~ x + (1 + x | g) + (1 | h)"
    by_bobyqa = mm.glmer(formula, data, family="binomial", control=mm.Control(optimizer="bobyqa"))
    by_lbfgsb = mm.glmer(formula, data, family="binomial", control=mm.Control(optimizer="lbfgsb"))
    assert by_lbfgsb.optimum.converged and by_bobyqa.optimum.converged
    assert by_lbfgsb.objective <= by_bobyqa.objective + 1e-6
    np.testing.assert_allclose(by_lbfgsb.fixef, by_bobyqa.fixef, atol=1e-4)
    np.testing.assert_allclose(by_lbfgsb.se, by_bobyqa.se, rtol=1e-4)


def test_finite_differences_beyond_the_gradients_memory_budget(data):
    """Where the selected inverse's dense blocks exceed Control.gradient_max_entries the fit keeps
    BOBYQA and the check by differences of the deviance, and reaches the same optimum."""
    formula = "yes ~ x + (1 | g) + (1 | h)"
    small = mm.Control(gradient_max_entries=100)  # the items' block is 10 × 34 numbers
    design = build_design(parse_formula(formula), data, binomial=True)
    assert not GeneralizedLinearMixedModel(design, get_family("binomial"), control=small).has_gradient
    without = mm.glmer(formula, data, family="binomial", control=small)
    with_gradient = mm.glmer(formula, data, family="binomial")
    assert with_gradient.objective <= without.objective + 1e-6
    np.testing.assert_allclose(with_gradient.se, without.se, rtol=1e-3)


def test_stage2_minimiser(data):
    """"auto": L-BFGS-B unless stage 1 ended singular (L-BFGS-B stops on flat bounds and restarts);
    "lbfgsb" always; "bobyqa" never; no gradient, no L-BFGS-B."""
    design = build_design(parse_formula("yes ~ x + (1 | g) + (1 | h)"), data, binomial=True)

    def model(**settings) -> GeneralizedLinearMixedModel:
        return GeneralizedLinearMixedModel(design, get_family("binomial"), control=mm.Control(**settings))

    inside, singular = np.array([0.7, 0.4]), np.array([0.7, 0.0])
    assert model().stage2_uses_lbfgsb(inside) and not model().stage2_uses_lbfgsb(singular)
    assert model(optimizer="lbfgsb").stage2_uses_lbfgsb(singular)
    assert not model(optimizer="bobyqa").stage2_uses_lbfgsb(inside)
    assert not model(gradient_max_entries=1).stage2_uses_lbfgsb(inside)
    fit = mm.glmer("yes ~ x + (1 | g) + (1 | h)", data, family="binomial")
    assert fit.optimum.message.startswith("converged (convergence:")  # L-BFGS-B's words
