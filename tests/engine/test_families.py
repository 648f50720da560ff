"""Families and links from first principles: inverses, derivatives, densities and deviances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mixedmodels.engine.families import (
    FAMILIES,
    LINKS,
    Binomial,
    Gamma,
    Gaussian,
    InverseGaussian,
    NegativeBinomial,
    Poisson,
    get_family,
)
from mixedmodels.errors import FamilyError

#: a point inside each link's range of means, and a matching linear predictor
MEANS = {"logit": 0.3, "probit": 0.7, "cloglog": 0.4, "cauchit": 0.6, "log": 2.5, "identity": 1.7,
         "inverse": 0.8, "sqrt": 3.1, "1/mu^2": 1.3}


@pytest.mark.parametrize("name", sorted(LINKS))
def test_inverse_undoes_the_link_and_mu_eta_is_its_derivative(name):
    link = LINKS[name]
    mu = np.array([MEANS[name] * 0.8, MEANS[name], MEANS[name] * 1.1])
    eta = link.link(mu)
    np.testing.assert_allclose(link.inverse(eta), mu, rtol=1e-12)
    h = 1e-6
    numeric = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), numeric, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(LINKS))
def test_mu_eta_deriv_is_the_derivative_of_mu_eta(name):
    link = LINKS[name]
    eta = link.link(np.array([MEANS[name] * 0.8, MEANS[name], MEANS[name] * 1.1]))
    h = 1e-6
    numeric = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta_deriv(eta), numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", [Binomial(), Poisson(), Gamma(), InverseGaussian(), Gaussian(), NegativeBinomial(2.5)])
def test_variance_deriv_is_the_derivative_of_the_variance(family):
    mu = np.array([0.2, 0.5, 0.9]) if family.name == "binomial" else np.array([0.5, 2.0, 7.0])
    h = 1e-6
    numeric = (family.variance(mu + h) - family.variance(mu - h)) / (2 * h)
    np.testing.assert_allclose(family.variance_deriv(mu), numeric, rtol=1e-7, atol=1e-9)


def test_canonical_links():
    """The links whose observed information is the expected one (PIRLS needs no Newton weights)."""
    assert all(f.canonical for f in (Binomial(), Poisson(), Gamma(), InverseGaussian(), Gaussian()))
    assert not any(f.canonical for f in (Binomial("probit"), Poisson("sqrt"), Gamma("log"), NegativeBinomial(2.0)))


@pytest.mark.parametrize("family", [Binomial(), Poisson(), Binomial("probit"), Poisson("sqrt"), Gamma("log")])
def test_family_mu_eta_agrees_with_its_link(family):
    mu = np.array([0.2, 0.5, 0.9]) if family.name == "binomial" else np.array([0.5, 2.0, 7.0])
    eta = family.link.link(mu)
    np.testing.assert_allclose(family.mu_eta(eta, mu), family.link.mu_eta(eta), rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(mu=st.floats(0.01, 0.99), trials=st.integers(1, 30), data=st.data())
def test_binomial_density_and_deviance(mu, trials, data):
    k = data.draw(st.integers(0, trials))
    y, wt = np.array([k / trials]), np.array([float(trials)])
    fam = Binomial()
    assert fam.minus_two_loglik(y, np.array([mu]), wt, 1.0)[0] == pytest.approx(
        -2 * stats.binom.logpmf(k, trials, mu), rel=1e-9, abs=1e-9)
    # deviance: twice the log-likelihood ratio of the saturated model (μ = y)
    saturated = -2 * stats.binom.logpmf(k, trials, k / trials)
    expected = -2 * stats.binom.logpmf(k, trials, mu) - saturated
    assert fam.deviance_residuals(y, np.array([mu]), wt)[0] == pytest.approx(expected, rel=1e-8, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(mu=st.floats(0.05, 50.0), y=st.integers(0, 80))
def test_poisson_density_and_deviance(mu, y):
    fam, Y, M, W = Poisson(), np.array([float(y)]), np.array([mu]), np.ones(1)
    assert fam.minus_two_loglik(Y, M, W, 1.0)[0] == pytest.approx(-2 * stats.poisson.logpmf(y, mu), rel=1e-9)
    expected = 2 * (stats.poisson.logpmf(y, max(y, 1e-300)) - stats.poisson.logpmf(y, mu)) if y else 2 * mu
    assert fam.deviance_residuals(Y, M, W)[0] == pytest.approx(expected, rel=1e-8, abs=1e-10)
    # the kernel differs from the deviance by a constant in μ: differences agree
    other = np.array([mu * 1.3])
    assert fam.deviance_kernel(Y, other, W) - fam.deviance_kernel(Y, M, W) == pytest.approx(
        fam.deviance_residuals(Y, other, W)[0] - fam.deviance_residuals(Y, M, W)[0], rel=1e-8, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(mu=st.floats(0.1, 20.0), y=st.floats(0.05, 30.0), phi=st.floats(0.05, 3.0))
def test_continuous_densities(mu, y, phi):
    Y, M, W = np.array([y]), np.array([mu]), np.ones(1)
    assert Gamma().minus_two_loglik(Y, M, W, phi)[0] == pytest.approx(
        -2 * stats.gamma.logpdf(y, 1 / phi, scale=mu * phi), rel=1e-9, abs=1e-9)
    lam = 1 / phi  # inverse Gaussian IG(μ, λ): scipy's invgauss(μ/λ, scale=λ)
    assert InverseGaussian().minus_two_loglik(Y, M, W, phi)[0] == pytest.approx(
        -2 * stats.invgauss.logpdf(y, mu / lam, scale=lam), rel=1e-9, abs=1e-9)
    assert Gaussian().minus_two_loglik(Y, M, W, phi)[0] == pytest.approx(
        -2 * stats.norm.logpdf(y, mu, np.sqrt(phi)), rel=1e-9, abs=1e-9)
    k = 1 / phi  # the negative binomial with size k
    count = np.round(Y)
    assert NegativeBinomial(k).minus_two_loglik(count, M, W, 1.0)[0] == pytest.approx(
        -2 * stats.nbinom.logpmf(count[0], k, k / (k + mu)), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("family", [Gamma(), InverseGaussian(), Gaussian(), NegativeBinomial(2.0), Poisson()])
def test_deviance_is_zero_at_the_data_and_positive_elsewhere(family):
    y = np.array([0.5, 2.0, 3.0, 7.0])
    wt = np.ones(4)
    np.testing.assert_allclose(family.deviance_residuals(y, y, wt), 0, atol=1e-12)
    assert np.all(family.deviance_residuals(y, y * 1.2, wt) > 0)


def test_variance_functions():
    mu = np.array([0.2, 0.5])
    np.testing.assert_allclose(Binomial().variance(mu), mu * (1 - mu))
    np.testing.assert_allclose(Poisson().variance(mu), mu)
    np.testing.assert_allclose(Gamma().variance(mu), mu**2)
    np.testing.assert_allclose(InverseGaussian().variance(mu), mu**3)
    np.testing.assert_allclose(NegativeBinomial(4.0).variance(mu), mu + mu**2 / 4)


def test_samples_have_the_family_mean():
    rng = np.random.default_rng(5)
    mu = np.full(40000, 3.0)
    wt = np.ones_like(mu)
    for family, dispersion in [(Poisson(), 1.0), (Gamma(), 0.5), (InverseGaussian(), 0.2), (NegativeBinomial(2.0), 1.0)]:
        draws = family.sample(mu, wt, dispersion, rng)
        assert draws.mean() == pytest.approx(3.0, rel=0.03), family
        assert draws.var() == pytest.approx(float(family.variance(mu[:1])[0]) * (dispersion if family.has_dispersion else 1),
                                            rel=0.1), family


def test_get_family_by_name_object_and_class():
    assert isinstance(get_family("Gamma"), Gamma)
    assert get_family("binomial", "probit").link.name == "probit"
    fam = Poisson()
    assert get_family(fam) is fam
    assert isinstance(get_family(Binomial), Binomial)
    assert set(FAMILIES) >= {"binomial", "poisson", "gamma", "gaussian"}


@pytest.mark.parametrize("call, message", [
    (lambda: get_family("binomal"), "unknown family 'binomal'.*Did you mean 'binomial'"),
    (lambda: get_family("poisson", "logit"), "link 'logit' is not available for the poisson family"),
    (lambda: get_family(Poisson(), "sqrt"), "give the link inside the family object"),
    (lambda: get_family(3), "family must be a name"),
    (lambda: NegativeBinomial(-1.0), "must be a positive number"),
])
def test_family_errors_say_what_to_do(call, message):
    with pytest.raises(FamilyError, match=message):
        call()


@pytest.mark.parametrize("family, y, message", [
    (Binomial(), np.array([0.0, 0.0]), "every binomial response is 0"),
    (Binomial(), np.array([0.5, 1.5]), "outside \\[0, 1\\]"),
    (Poisson(), np.array([1.0, -1.0]), "non-negative"),
    (Poisson(), np.array([1.5, 2.0]), "whole-number"),
    (Gamma(), np.array([1.0, 0.0]), "positive"),
])
def test_impossible_responses_are_refused(family, y, message):
    with pytest.raises(FamilyError, match=message):
        family.check_response(y, np.ones_like(y))
