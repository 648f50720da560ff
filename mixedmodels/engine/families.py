"""Exponential families and link functions for generalized linear mixed models.

Each family gives what PIRLS and the Laplace approximation need: the variance
function, deviance residuals, and −2 log-likelihood contributions on R's scale
(``family()$aic`` without its parameter count), so that log-likelihoods, AIC
and likelihood-ratio tests agree with lme4's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special, stats

from ..errors import FamilyError, did_you_mean

_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class Link:
    """A link g: μ = g⁻¹(η), with dμ/dη and d²μ/dη² (for PIRLS's Newton steps)."""

    name: str
    link: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]
    mu_eta_deriv: Callable[[np.ndarray], np.ndarray]


# Links as module-level functions (picklable, so fits can be sent to worker processes).
def _logit_inv(eta):
    mu = special.expit(eta)
    return np.clip(mu, _EPS, 1 - _EPS, out=mu)


def _logit_mu_eta(eta):
    return np.maximum(special.expit(eta) * special.expit(-eta), _EPS)


def _logit_mu_eta_deriv(eta):
    mu = special.expit(eta)
    return mu * (1 - mu) * (1 - 2 * mu)


def _probit_mu_eta_deriv(eta):
    return -eta * stats.norm.pdf(eta)


def _cloglog_mu_eta_deriv(eta):
    eta = np.minimum(eta, 700)
    return np.exp(eta - np.exp(eta)) * -np.expm1(eta)


def _cauchit_mu_eta_deriv(eta):
    return -2 * eta / (np.pi * (1 + eta**2) ** 2)


def _inverse_mu_eta_deriv(eta):
    return 2 / eta**3


def _two(eta):
    return np.full_like(eta, 2.0)


def _inverse_sqrt_mu_eta_deriv(eta):
    return 0.75 / eta**2.5


def _probit_inv(eta):
    thresh = -stats.norm.ppf(_EPS)
    return stats.norm.cdf(np.clip(eta, -thresh, thresh))


def _probit_mu_eta(eta):
    return np.maximum(stats.norm.pdf(eta), _EPS)


def _cloglog(mu):
    return np.log(-np.log1p(-mu))


def _cloglog_inv(eta):
    return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700))), _EPS, 1 - _EPS)


def _cloglog_mu_eta(eta):
    eta = np.minimum(eta, 700)
    return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


def _cauchit_inv(eta):
    thresh = -stats.cauchy.ppf(_EPS)
    return stats.cauchy.cdf(np.clip(eta, -thresh, thresh))


def _cauchit_mu_eta(eta):
    return np.maximum(stats.cauchy.pdf(eta), _EPS)


def _exp_floor(eta):
    return np.maximum(np.exp(eta), _EPS)


def _identity(x):
    return x


def _reciprocal(x):
    return 1 / x


def _reciprocal_mu_eta(eta):
    return -1 / eta**2


def _square(eta):
    return eta**2


def _twice(eta):
    return 2 * eta


def _inverse_square(mu):
    return 1 / mu**2


def _inverse_sqrt(eta):
    return 1 / np.sqrt(eta)


def _inverse_sqrt_mu_eta(eta):
    return -1 / (2 * eta**1.5)


LINKS: dict[str, Link] = {
    "logit": Link("logit", special.logit, _logit_inv, _logit_mu_eta, _logit_mu_eta_deriv),
    "probit": Link("probit", stats.norm.ppf, _probit_inv, _probit_mu_eta, _probit_mu_eta_deriv),
    "cloglog": Link("cloglog", _cloglog, _cloglog_inv, _cloglog_mu_eta, _cloglog_mu_eta_deriv),
    "cauchit": Link("cauchit", stats.cauchy.ppf, _cauchit_inv, _cauchit_mu_eta, _cauchit_mu_eta_deriv),
    "log": Link("log", np.log, _exp_floor, _exp_floor, _exp_floor),
    "identity": Link("identity", _identity, _identity, np.ones_like, np.zeros_like),
    "inverse": Link("inverse", _reciprocal, _reciprocal, _reciprocal_mu_eta, _inverse_mu_eta_deriv),
    "sqrt": Link("sqrt", np.sqrt, _square, _twice, _two),
    "1/mu^2": Link("1/mu^2", _inverse_square, _inverse_sqrt, _inverse_sqrt_mu_eta, _inverse_sqrt_mu_eta_deriv),
}


class Family:
    """Base class: subclasses define variance, deviance residuals and log-likelihood."""

    name = ""
    links: tuple[str, ...] = ()
    default_link = ""
    has_dispersion = False
    positive_mean = False  # the mean must be > 0 (counts, Gamma, inverse Gaussian)
    canonical_link: str | None = None  # with it the observed information equals the expected

    @property
    def aic_dispersion_term(self) -> float:
        """What R's family aic adds to Σ −2 log f for an estimated dispersion: 2 (gaussian,
        Gamma, inverse.gaussian), so lme4's logLik is 1 lower than the density's sum."""
        return 2.0 if self.has_dispersion else 0.0

    def __init__(self, link: str | None = None):
        link = self.default_link if link is None else link
        if link not in self.links:
            raise FamilyError(
                f"link {link!r} is not available for the {self.name} family; choose one of "
                + ", ".join(repr(k) for k in self.links) + "." + did_you_mean(link, self.links)
            )
        self.link = LINKS[link]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    @property
    def label(self) -> str:
        """The family as lme4's summary names it."""
        return self.name

    def variance(self, mu: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def variance_deriv(self, mu: np.ndarray) -> np.ndarray:
        """dV/dμ."""
        raise NotImplementedError

    @property
    def canonical(self) -> bool:
        """Whether the link is the family's canonical one (observed information = expected)."""
        return self.link.name == self.canonical_link

    def mu_eta(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """dμ/dη; from μ directly for the canonical links (logit: μ(1−μ), log: μ)."""
        if self.link.name == "logit":
            return np.maximum(mu * (1 - mu), _EPS)
        if self.link.name == "log":
            return np.maximum(mu, _EPS)
        return self.link.mu_eta(eta)

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def minus_two_loglik(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, dispersion: float) -> np.ndarray:
        """−2 log f(yᵢ | μᵢ) for each observation (R's ``aic`` terms)."""
        raise NotImplementedError

    def minus_two_loglik_dispersion_deriv(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
                                          dispersion: float) -> np.ndarray:
        """∂/∂φ of ``minus_two_loglik`` for each observation (families with a dispersion)."""
        raise NotImplementedError

    def deviance_kernel(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> float:
        """The total deviance up to a constant in μ: all PIRLS needs, and cheaper to compute."""
        return float(self.deviance_residuals(y, mu, wt).sum())

    def starting_mu(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return y + 0.1 * (y == 0)

    def sample(self, mu: np.ndarray, wt: np.ndarray, dispersion: float, rng: np.random.Generator) -> np.ndarray:
        """Responses drawn from the family at means μ (for simulate and the bootstrap)."""
        raise NotImplementedError

    def check_response(self, y: np.ndarray, wt: np.ndarray) -> None:
        """Raise a FamilyError naming the problem when y is impossible for the family."""

    def valid_eta(self, eta: np.ndarray) -> bool:
        """Whether η gives means inside the family's range (so PIRLS can step-halve back)."""
        if not np.all(np.isfinite(eta)):
            return False
        if self.positive_mean and self.link.name in ("identity", "inverse", "1/mu^2"):
            return bool(np.all(eta > 0))
        if self.positive_mean and self.link.name == "sqrt":
            return bool(np.all(eta > 0))
        return True


class Binomial(Family):
    """Binomial proportions y with trials as prior weights (0/1 data: one trial)."""

    name = "binomial"
    links = ("logit", "probit", "cloglog", "cauchit", "log")
    default_link = "logit"
    canonical_link = "logit"

    def variance(self, mu):
        return mu * (1 - mu)

    def variance_deriv(self, mu):
        return 1 - 2 * mu

    def deviance_residuals(self, y, mu, wt):
        return 2 * wt * (special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu)))

    def deviance_kernel(self, y, mu, wt):
        # log(1 − μ) rather than log1p(−μ): as accurate for μ ∈ [ε, 1 − ε] in this sum, and 10× faster
        return float(-2 * (wt * (y * np.log(mu) + (1 - y) * np.log(1 - mu))).sum())

    def minus_two_loglik(self, y, mu, wt, dispersion):
        m = np.round(wt)
        k = np.round(m * y)
        log_choose = special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
        return -2 * (log_choose + special.xlogy(k, mu) + special.xlogy(m - k, 1 - mu))

    def starting_mu(self, y, wt):
        return (wt * y + 0.5) / (wt + 1)

    def sample(self, mu, wt, dispersion, rng):
        trials = np.round(wt).astype(np.int64)
        return rng.binomial(trials, mu) / np.maximum(trials, 1)

    def check_response(self, y, wt):
        if np.all(y == y[0]) and y[0] in (0.0, 1.0):
            raise FamilyError(
                f"every binomial response is {int(y[0])}: the model has nothing to fit (the "
                "success probability would be estimated as exactly 0 or 1)"
            )
        if np.any((y < 0) | (y > 1)):
            raise FamilyError(
                "binomial responses must be 0/1, two-level factors, proportions in [0, 1] with "
                "weights= trials, or cbind(successes, failures); found values outside [0, 1]"
            )
        if np.any(np.abs(wt * y - np.round(wt * y)) > 1e-6):
            raise FamilyError(
                "binomial proportions times their weights (trials) must be whole numbers of successes; "
                "pass the number of trials as weights="
            )


class Poisson(Family):
    """Counts."""

    name = "poisson"
    links = ("log", "identity", "sqrt")
    default_link = "log"
    canonical_link = "log"
    positive_mean = True

    def variance(self, mu):
        return mu

    def variance_deriv(self, mu):
        return np.ones_like(mu)

    def sample(self, mu, wt, dispersion, rng):
        return rng.poisson(mu).astype(float)

    def deviance_kernel(self, y, mu, wt):
        return float(-2 * (wt * (y * np.log(mu) - mu)).sum())

    def deviance_residuals(self, y, mu, wt):
        return 2 * wt * (special.xlogy(y, y / mu) - (y - mu))

    def minus_two_loglik(self, y, mu, wt, dispersion):
        return -2 * wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))

    def check_response(self, y, wt):
        if np.any(y < 0):
            raise FamilyError("poisson responses must be non-negative counts; found negative values")
        if np.all(y == 0):
            raise FamilyError("every count is 0: the model has nothing to fit (the mean would be estimated as 0)")
        if np.max(y) > 1e15:
            raise FamilyError(
                f"counts as large as {np.max(y):.3g} overflow the Poisson likelihood's arithmetic; "
                "check the response's units (model rates with an offset, e.g. offset(log(exposure)))"
            )
        if np.any(np.abs(y - np.round(y)) > 1e-8):
            raise FamilyError("poisson responses must be whole-number counts; found non-integer values")


class Gamma(Family):
    """Positive continuous responses with constant coefficient of variation."""

    name = "Gamma"
    links = ("inverse", "log", "identity")
    default_link = "inverse"
    canonical_link = "inverse"
    positive_mean = True
    has_dispersion = True

    def variance(self, mu):
        return mu**2

    def variance_deriv(self, mu):
        return 2 * mu

    def deviance_residuals(self, y, mu, wt):
        return -2 * wt * (np.log(y / mu) - (y - mu) / mu)

    def minus_two_loglik(self, y, mu, wt, dispersion):
        shape = 1 / dispersion
        return -2 * wt * stats.gamma.logpdf(y, shape, scale=mu * dispersion)

    def minus_two_loglik_dispersion_deriv(self, y, mu, wt, dispersion):
        # −2 wt d/dφ log f with shape 1/φ, scale μφ
        return -2 * wt * (np.log(mu * dispersion / y) + y / mu - 1 + special.digamma(1 / dispersion)) / dispersion**2

    def starting_mu(self, y, wt):
        # lme4 (since 2026): μ = y would start IRLS from E[log y] ≪ log E[y] when the shape is
        # small, and the working responses explode; the mean is a safe start
        return np.full_like(y, np.average(y, weights=wt))

    def sample(self, mu, wt, dispersion, rng):
        return rng.gamma(1 / dispersion, mu * dispersion)

    def check_response(self, y, wt):
        if np.any(y <= 0):
            raise FamilyError("Gamma responses must be positive; found values <= 0")


class InverseGaussian(Family):
    """Positive continuous responses with variance μ³."""

    name = "inverse.gaussian"
    links = ("1/mu^2", "inverse", "log", "identity")
    default_link = "1/mu^2"
    canonical_link = "1/mu^2"
    positive_mean = True
    has_dispersion = True

    def variance(self, mu):
        return mu**3

    def variance_deriv(self, mu):
        return 3 * mu**2

    def deviance_residuals(self, y, mu, wt):
        return wt * (y - mu) ** 2 / (y * mu**2)

    def minus_two_loglik(self, y, mu, wt, dispersion):
        return wt * (np.log(2 * np.pi * dispersion * y**3) + (y - mu) ** 2 / (dispersion * y * mu**2))

    def minus_two_loglik_dispersion_deriv(self, y, mu, wt, dispersion):
        return wt * (1 / dispersion - (y - mu) ** 2 / (dispersion**2 * y * mu**2))

    def starting_mu(self, y, wt):
        return y

    def sample(self, mu, wt, dispersion, rng):
        return rng.wald(mu, 1 / dispersion)

    def check_response(self, y, wt):
        if np.any(y <= 0):
            raise FamilyError("inverse Gaussian responses must be positive; found values <= 0")


class Gaussian(Family):
    """Normal responses (for a non-identity link; use lmer for the identity link)."""

    name = "gaussian"
    links = ("identity", "log", "inverse")
    default_link = "identity"
    canonical_link = "identity"
    has_dispersion = True

    def variance(self, mu):
        return np.ones_like(mu)

    def variance_deriv(self, mu):
        return np.zeros_like(mu)

    def deviance_residuals(self, y, mu, wt):
        return wt * (y - mu) ** 2

    def minus_two_loglik(self, y, mu, wt, dispersion):
        return wt * ((y - mu) ** 2 / dispersion) + np.log(2 * np.pi * dispersion / wt)

    def minus_two_loglik_dispersion_deriv(self, y, mu, wt, dispersion):
        return 1 / dispersion - wt * (y - mu) ** 2 / dispersion**2

    def starting_mu(self, y, wt):
        return y

    def sample(self, mu, wt, dispersion, rng):
        return mu + np.sqrt(dispersion / wt) * rng.standard_normal(mu.shape)


class NegativeBinomial(Family):
    """Overdispersed counts: Var(y) = μ + μ²/θ for a known θ (estimated by glmer_nb)."""

    name = "negative.binomial"
    links = ("log", "sqrt", "identity")
    default_link = "log"
    positive_mean = True

    def __init__(self, theta: float, link: str | None = None):
        if not (np.isfinite(theta) and theta > 0):
            raise FamilyError(f"the negative binomial θ must be a positive number, not {theta!r}")
        super().__init__(link)
        self.theta = float(theta)

    def __repr__(self) -> str:
        return f"NegativeBinomial(theta={self.theta:.6g}, link={self.link.name!r})"

    @property
    def label(self) -> str:
        return f"Negative Binomial({self.theta:.5g})"

    def variance(self, mu):
        return mu + mu**2 / self.theta

    def variance_deriv(self, mu):
        return 1 + 2 * mu / self.theta

    def deviance_residuals(self, y, mu, wt):
        k = self.theta
        return 2 * wt * (special.xlogy(y, y / mu) - (y + k) * np.log((y + k) / (mu + k)))

    def minus_two_loglik(self, y, mu, wt, dispersion):
        k = self.theta
        ll = (special.gammaln(k + y) - special.gammaln(k) - special.gammaln(y + 1)
              + k * np.log(k / (k + mu)) + special.xlogy(y, mu / (k + mu)))
        return -2 * wt * ll

    check_response = Poisson.check_response

    def sample(self, mu, wt, dispersion, rng):
        return rng.negative_binomial(self.theta, self.theta / (self.theta + mu)).astype(float)


FAMILIES: dict[str, type[Family]] = {
    "binomial": Binomial,
    "poisson": Poisson,
    "gamma": Gamma,
    "inverse_gaussian": InverseGaussian,
    "inverse.gaussian": InverseGaussian,
    "gaussian": Gaussian,
}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """A Family from a name ('binomial', 'Gamma', ...) or a Family object."""
    if isinstance(family, Family):
        if link is not None and link != family.link.name:
            raise FamilyError(f"give the link inside the family object, e.g. {type(family).__name__}(link={link!r})")
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family(link)
    if not isinstance(family, str):
        raise FamilyError(f"family must be a name such as 'binomial' or a family object, not {type(family).__name__}")
    key = family.lower()
    if key not in FAMILIES:
        raise FamilyError(
            f"unknown family {family!r}; choose one of 'binomial', 'poisson', 'Gamma', "
            "'inverse_gaussian', 'gaussian'." + did_you_mean(key, FAMILIES)
        )
    return FAMILIES[key](link)
