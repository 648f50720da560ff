"""The analytic gradient of the adaptive Gauss–Hermite deviance (nAGQ > 1) against central
differences of ``agq``, and what uses it: stage 2, the convergence check and the standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.engine.families import Family, get_family
from mixedmodels.engine.glmm import GeneralizedLinearMixedModel
from mixedmodels.formula.parse import parse_formula
from mixedmodels.linalg.derivatives import finite_difference_hessian
from reference import load_reference
from test_laplace_gradient import central_differences, simulated

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def engine(formula: str, data: pd.DataFrame, family: Family, nAGQ: int, **arrays) -> GeneralizedLinearMixedModel:
    design = build_design(parse_formula(formula), data, binomial=family.name == "binomial", **arrays)
    return GeneralizedLinearMixedModel(design, family, nAGQ=nAGQ)


def assert_gradient(model: GeneralizedLinearMixedModel, theta, beta, rtol: float = 1e-6) -> np.ndarray:
    theta, beta = np.asarray(theta, dtype=float), np.asarray(beta, dtype=float)
    analytic = model.gradient_from_modes(theta, model.pirls(theta, beta))
    numeric = central_differences(model, theta, beta)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=rtol * max(1.0, np.abs(numeric).max()))
    return analytic


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return mm.datasets.load("cbpp")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulated()


@pytest.mark.parametrize("nAGQ", [25, 5, 2])
def test_cbpp_at_and_away_from_lme4s_optimum(cbpp, nAGQ):
    """At lme4's nAGQ = 25 optimum (tests/fixtures/reference/cbpp_agq25.json) the gradient is small."""
    model = engine(CBPP, cbpp, get_family("binomial"), nAGQ)
    assert model.has_gradient
    ref = load_reference("cbpp_agq25")
    at_optimum = assert_gradient(model, ref["theta"], ref["beta"])
    if nAGQ == 25:
        assert np.abs(at_optimum).max() < 1e-3  # lme4 stops within its tolerance of it
    assert_gradient(model, [1.3], [-1.0, -0.5, -1.5, -2.0])


MODELS = {
    "poisson offset": ("count ~ x + (1 | g)", get_family("poisson"), {"offset": "exposure"}, [0.6], [-0.2, 0.4]),
    "probit": ("yes ~ x + (1 | g)", get_family("binomial", "probit"), {}, [0.5], [-0.1, 0.3]),
    "cloglog scalar slope": ("yes ~ x + (0 + x | g)", get_family("binomial", "cloglog"), {}, [0.5], [-0.1, 0.3]),
    "poisson prior weights": ("count ~ x + (1 | g)", get_family("poisson"), {"weights": "w"}, [0.5], [-0.1, 0.3]),
    "Gamma log": ("size ~ x + (1 | g)", get_family("Gamma", "log"), {}, [0.3], [1.0, 0.2]),
    "inverse Gaussian log": ("size ~ x + (1 | g)", get_family("inverse.gaussian", "log"), {}, [0.1], [1.0, 0.2]),
    "negative binomial": ("count ~ x + (1 | g)", mm.families.NegativeBinomial(2.0), {}, [0.5], [0.0, 0.4]),
}


@pytest.mark.parametrize("name", MODELS)
def test_gradient_matches_central_differences(name, data):
    formula, family, columns, theta, beta = MODELS[name]
    model = engine(formula, data, family, 9, **{k: data[v].to_numpy(dtype=float) for k, v in columns.items()})
    assert_gradient(model, theta, beta)


def test_theta_zero_is_a_stationary_point_in_theta(data):
    """D is even in θ (the sign goes into u), so ∂D/∂θ = 0 at θ = 0; β's part is the GLM's score."""
    model = engine("yes ~ x + (1 | g)", data, get_family("binomial", "probit"), 9)
    beta = np.array([-0.1, 0.3])
    g = model.gradient_from_modes(np.zeros(1), model.pirls(np.zeros(1), beta))
    assert g[0] == pytest.approx(0.0, abs=1e-12)
    h = 1e-6
    numeric = [(model.deviance(np.zeros(1), beta + h * e) - model.deviance(np.zeros(1), beta - h * e)) / (2 * h)
               for e in np.eye(2)]
    np.testing.assert_allclose(g[1:], numeric, rtol=1e-6)


_POISSON_DATA = simulated(seed=7, n=240)


@settings(max_examples=10, deadline=None)
@given(theta=st.floats(0.05, 2.0), beta=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2),
       nAGQ=st.integers(2, 15))
def test_gradient_at_random_points(theta, beta, nAGQ):
    """Anywhere in a Poisson model's parameter space and for any number of nodes."""
    model = engine("count ~ x + (1 | g)", _POISSON_DATA, get_family("poisson"), nAGQ)
    assert_gradient(model, [theta], beta)


def test_fit_and_standard_errors_use_the_gradient(cbpp):
    """nAGQ = 25 in stage 2 by L-BFGS-B with the gradient: lme4's objective and SEs
    (cbpp_agq25.json), vcov agreeing with second differences of the deviance itself."""
    ref = load_reference("cbpp_agq25")
    fit = mm.glmer(CBPP, cbpp, family="binomial", nAGQ=25)
    assert fit.model.has_gradient and fit.model.stage2_uses_lbfgsb(fit.optimum.x[:1])
    assert fit.objective <= ref["objective"] + 1e-6
    np.testing.assert_allclose(fit.se.to_numpy(), ref["se"], rtol=1e-3)
    x, k = fit.optimum.x, 1
    start = fit.pirls_state.start
    H = finite_difference_hessian(lambda z: fit.model.deviance(z[:k], z[k:], start), x, fit.optimum.fun,
                                  h=1e-3 * np.maximum(np.abs(x), 1.0))
    np.testing.assert_allclose(fit.vcov.to_numpy(), 2 * np.linalg.inv(H)[k:, k:], rtol=1e-4)
