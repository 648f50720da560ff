"""The observations of a GLMM, and the one pass over them that each PIRLS step makes.

PIRLS touches the rows only through ``working_pass``: at a point (β, b) it forms
η, μ, the deviance kernel, the working weights and working response, and the
crossproducts of [Z X z] with those weights — all in a single pass.  The rest of
PIRLS (the blocked Cholesky, the new modes, step halving) works on these sums.
The starting β, from IRLS for the fixed-effects GLM, likewise needs only the
weighted normal equations of each step (``glm_equations``).
``InMemoryRows`` holds the rows as numpy arrays; a Dask implementation computes
the same sums per partition and adds them up (``mixedmodels.dask.glmm``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from ..linalg.crossprod import CrossproductBuilder, Crossproducts
from ..errors import FitError
from .families import Family
from ..design.reterm import ReTerm, z_times_b


@dataclass
class WorkingPass:
    """What one pass over the rows at (β, b) gives PIRLS.

    ``crossprod`` is [Z X z]ᵀ W [Z X z] for working weights W and working
    response z, or [Z z̃]ᵀ W [Z z̃] with z̃ = z − Xβ when β is held fixed.
    ``eta`` and ``mu`` are per-row arrays where the rows are in memory, else None.
    """

    kernel: float  # Σ deviance kernel at μ: the penalised deviance without ‖u‖²
    crossprod: Crossproducts
    eta: np.ndarray | None = None
    mu: np.ndarray | None = None


@dataclass
class GlmEquations:
    """The weighted normal equations XᵀWX β = XᵀWz of one IRLS step of the fixed-effects GLM."""

    xwx: np.ndarray
    xwz: np.ndarray


def score_and_information(fam: Family, y: np.ndarray, prior: np.ndarray, eta: np.ndarray,
                          mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The score s of −½ deviance in η and the expected and observed information at η (per row).

    sᵢ = priorᵢ (yᵢ − μᵢ) μ'ᵢ / V(μᵢ); the expected information is w = prior μ'² / V; the
    observed one, −∂s/∂η, subtracts prior (y − μ) d(μ'/V)/dη = prior (y − μ) (μ''/V − μ'² V'/V²),
    which vanishes for canonical links (it is then w itself).
    """
    mu_eta = fam.mu_eta(eta, mu)
    variance = fam.variance(mu)
    score = prior * (y - mu) * mu_eta / variance
    w = prior * mu_eta**2 / variance
    if fam.canonical:
        return score, w, w
    curvature = prior * (y - mu) * (fam.link.mu_eta_deriv(eta) - mu_eta**2 * fam.variance_deriv(mu) / variance) / variance
    return score, w, w - curvature


def expected_information_slope(fam: Family, prior: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """dw/dη of the expected information w = prior μ'² / V: prior (2 μ' μ''/V − μ'³ V'/V²)."""
    mu_eta = fam.mu_eta(eta, mu)
    variance = fam.variance(mu)
    return prior * mu_eta * (2 * fam.link.mu_eta_deriv(eta) - mu_eta**2 * fam.variance_deriv(mu) / variance) / variance


def working_weights(fam: Family, y: np.ndarray, prior: np.ndarray, eta: np.ndarray, mu: np.ndarray,
                    observed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weights w and working residuals r (z = η + r) of one PIRLS step at η, with w r = s
    (``score_and_information``).

    With ``observed`` the observed information is used, floored at a small fraction of the
    expected so that the system stays positive definite where y is far from μ: the modes
    (where the penalised score vanishes) are the same, only the path to them shortens.
    """
    if observed and not fam.canonical:
        score, w, w_observed = score_and_information(fam, y, prior, eta, mu)
        w = np.maximum(w_observed, OBSERVED_FLOOR * w)
        return w, score / w
    mu_eta = fam.mu_eta(eta, mu)
    w = prior * mu_eta**2 / fam.variance(mu)
    return w, (y - mu) / mu_eta


Sums = TypeVar("Sums")

#: the observed information is floored at this fraction of the expected
OBSERVED_FLOOR = 1e-3


class InMemoryRows:
    """The rows of a GLMM as numpy arrays; the terms in the engine's order."""

    def __init__(self, terms: tuple[ReTerm, ...], X: np.ndarray, y: np.ndarray, prior_weights: np.ndarray,
                 offset: np.ndarray, family: Family):
        self.terms = terms
        self.X, self.y = X, y
        self.prior_weights, self.offset = prior_weights, offset
        self.family = family
        self.build = CrossproductBuilder(terms)
        # [X z] with z written in place at each pass; column-major makes [X z]ᵀW[X z] one fast GEMM
        self._Xz = np.asfortranarray(np.column_stack([X, np.zeros(len(y))]))

    @property
    def n(self) -> int:
        return len(self.y)

    def with_family(self, family: Family) -> InMemoryRows:
        """The same rows under another family (the crossproduct patterns are shared)."""
        other = copy.copy(self)
        other.family = family
        return other

    def random_part(self, b: list[np.ndarray]) -> np.ndarray:
        """Z b, for each term's random effects as (levels, p)."""
        return z_times_b(self.terms, b, self.n)

    def linear_predictor(self, beta: np.ndarray, b: list[np.ndarray]) -> np.ndarray:
        """η = Zb + offset + Xβ, summed as ``working_pass`` sums it."""
        eta = self.random_part(b) + self.offset
        if self.X.shape[1]:
            eta += self.X @ beta
        return eta

    def total(self, task: Callable[[InMemoryRows, tuple], Sums], combine: Callable[..., Sums], point: tuple) -> Sums:
        """Σ ``task(chunk, point)`` over the rows' chunks (``combine`` adds them up): here one chunk."""
        return task(self, point)

    def pearson_chisq(self, beta: np.ndarray, b: list[np.ndarray]) -> float:
        """Σ wᵢ (yᵢ − μᵢ)² / V(μᵢ) at η = Xβ + Zb + offset."""
        eta = self.linear_predictor(beta, b)
        mu = self.family.link.inverse(eta)
        return float(np.sum(self.prior_weights * (self.y - mu) ** 2 / self.family.variance(mu)))

    def linearised_at(self, eta0: np.ndarray, beta: np.ndarray) -> Crossproducts:
        """[Z z]ᵀ W [Z z] of the IRLS linearisation at η₀ (weights and working residual from μ(η₀))
        with β fixed at ``beta``: the first PIRLS step of lme4, which resets μ to η₀ each time."""
        fam = self.family
        mu0 = fam.link.inverse(eta0)
        mu_eta = fam.mu_eta(eta0, mu0)
        w = self.prior_weights * mu_eta**2 / fam.variance(mu0)
        z = eta0 - self.offset - self.X @ beta + (self.y - mu0) / mu_eta
        return self.build(z[:, None], w)

    def working_pass(self, beta: np.ndarray, b: list[np.ndarray], fixed_beta: bool,
                     observed: bool = False) -> WorkingPass | None:
        """The pass at (β, b); None when η leaves the family's range (PIRLS then halves its step).

        The weights are the expected information (Fisher scoring, the Laplace
        approximation's), or with ``observed`` the observed information (floored),
        whose Newton steps converge quadratically for non-canonical links
        (``working_weights``).
        """
        fam = self.family
        zb = self.random_part(b)
        eta = zb + self.offset
        if self.X.shape[1]:
            eta += self.X @ beta
        if not fam.valid_eta(eta):
            return None
        mu = fam.link.inverse(eta)
        kernel = fam.deviance_kernel(self.y, mu, self.prior_weights)
        w, residual = working_weights(fam, self.y, self.prior_weights, eta, mu, observed)
        if fixed_beta:
            crossprod = self.build((zb + residual)[:, None], w)
        else:
            self._Xz[:, -1] = eta - self.offset + residual
            crossprod = self.build(self._Xz, w)
        return WorkingPass(kernel=kernel, crossprod=crossprod, eta=eta, mu=mu)

    def glm_equations(self, beta: np.ndarray | None) -> GlmEquations | None:
        """IRLS's normal equations at η = Xβ + offset, or at the family's starting μ when β is
        None; None when η leaves the family's range."""
        fam, link = self.family, self.family.link
        if beta is None:
            mu = fam.starting_mu(self.y, self.prior_weights)
            eta = link.link(mu)
        else:
            eta = self.X @ beta + self.offset
            if not fam.valid_eta(eta):
                return None
            mu = link.inverse(eta)
        mu_eta = link.mu_eta(eta)
        w = self.prior_weights * mu_eta**2 / fam.variance(mu)
        z = eta - self.offset + (self.y - mu) / mu_eta
        wX = self.X * w[:, None]
        return GlmEquations(xwx=wX.T @ self.X, xwz=wX.T @ z)


GLM_MAXIT = 25  # R's glm.control(maxit)


def fit_glm(rows: InMemoryRows) -> np.ndarray:
    """β of the fixed-effects GLM by IRLS from the family's starting μ: each step solves the
    weighted normal equations of ``rows.glm_equations`` (one pass over the rows, also on Dask)."""
    beta = None
    for _ in range(GLM_MAXIT):
        equations = rows.glm_equations(beta)
        if equations is None:
            family = rows.family
            raise FitError(
                f"no valid starting values: the fixed-effects GLM gives means outside the range of the "
                f"{family.name} family with the {family.link.name} link; try a link that keeps "
                "the mean in range (e.g. 'log' for counts) or rescale the predictors"
            )
        new = np.linalg.solve(equations.xwx, equations.xwz)
        done = beta is not None and np.allclose(new, beta, rtol=1e-8, atol=1e-10)
        beta = new
        if done:
            break
    assert beta is not None  # the loop runs at least once
    return beta
