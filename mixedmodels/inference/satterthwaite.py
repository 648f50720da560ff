"""Satterthwaite degrees of freedom for the fixed effects of an LMM, as lmerTest 3.1-3.

The variance parameters are varpar = (θ, σ) (θ in the engine's order).  Their
asymptotic covariance is A = 2 H⁻¹, H the Hessian of the (RE)ML deviance at
fixed σ; cov(β̂) is V(varpar) = σ² (L_X L_Xᵀ)⁻¹ at θ.  For a contrast l,
var = lᵀVl, gₖ = lᵀ (∂V/∂varparₖ) l and df = 2 var² / (gᵀ A g)
(Kuznetsova, Brockhoff & Christensen 2017, JSS 82(13)).  Derivatives are
numerical, by numDeriv's Richardson extrapolation of central differences with
its default steps, as lmerTest does (``linalg.derivatives``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, warn
from ..linalg.derivatives import richardson_hessian, richardson_jacobian

if TYPE_CHECKING:
    from ..results.lmer import LmerResult

_LOG_2PI = np.log(2 * np.pi)
_EIGEN_TOL = 1e-8  # lmerTest's tolerance for the Hessian's eigenvalues


# ----- the model as a function of varpar ---------------------------------------------------
class VarparModel:
    """lmerTest's deviance and cov(β̂) of a fitted LMM as functions of varpar = (θ, σ)."""

    def __init__(self, fit: LmerResult):
        self.model, self.REML = fit.model, fit.REML
        self.n, self.p = fit.nobs, fit.p
        w = fit.design.weights
        self.log_weights = 0.0 if w is None else float(np.log(w).sum())
        self.varpar = np.append(fit._theta_engine, fit.sigma)
        self._at: dict[bytes, tuple[float, float, np.ndarray]] = {}

    def _profile(self, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        """log|L_Z|² (+ log|L_X|² for REML), r² and (L_X L_Xᵀ)⁻¹ at θ, each θ factored once."""
        key = theta.tobytes()
        if key not in self._at:
            F = self.model.factor(theta)
            logdet = F.logdet_z() + (F.logdet_x() if self.REML else 0.0)
            self._at[key] = (logdet, F.r**2, F.beta_precision_inverse())
        return self._at[key]

    def deviance(self, varpar: np.ndarray) -> float:
        """−2 (REML) log-likelihood at (θ, σ), σ not profiled out."""
        logdet, r2, _ = self._profile(varpar[:-1])
        sigma2 = varpar[-1] ** 2
        nu = self.n - self.p if self.REML else self.n
        return logdet + nu * (_LOG_2PI + np.log(sigma2)) + r2 / sigma2 - self.log_weights

    def vcov_beta(self, varpar: np.ndarray) -> np.ndarray:
        """V(θ, σ) = σ² (L_X L_Xᵀ)⁻¹."""
        return varpar[-1] ** 2 * self._profile(varpar[:-1])[2]


@dataclass(frozen=True)
class VarparDerivatives:
    """What lmerTest keeps on a fit: β̂, V, A = cov(varpar) and ∂V/∂varparₖ."""

    beta: np.ndarray
    vcov: np.ndarray
    vcov_varpar: np.ndarray
    jacobian: np.ndarray  # (k, p, p)


_DERIVATIVES: weakref.WeakKeyDictionary[LmerResult, VarparDerivatives] = weakref.WeakKeyDictionary()


def varpar_derivatives(fit: LmerResult) -> VarparDerivatives:
    """A = 2 H⁺ (pseudo-inverse over eigenvalues > 1e-8, as lmerTest) and ∂V/∂varpar; cached per fit."""
    if fit not in _DERIVATIVES:
        vm = VarparModel(fit)
        evals, evecs = np.linalg.eigh(richardson_hessian(vm.deviance, vm.varpar))
        pos = evals > _EIGEN_TOL
        if not pos.all():
            warn("Hessian of the deviance wrt (θ, σ) has eigenvalues "
                f"{', '.join(f'{v:.1e}' for v in evals[~pos])} that are negative or close to "
                "zero; the Satterthwaite df use its pseudo-inverse", ConvergenceWarning)
        A = 2 * (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
        _DERIVATIVES[fit] = VarparDerivatives(
            beta=fit.fixef.to_numpy(), vcov=vm.vcov_beta(vm.varpar), vcov_varpar=A,
            jacobian=richardson_jacobian(vm.vcov_beta, vm.varpar),
        )
    return _DERIVATIVES[fit]


# ----- tests ---------------------------------------------------------------------------
def _contrast_dfs(D: VarparDerivatives, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lᵀVl and the Satterthwaite df 2 (lᵀVl)² / (gᵀAg), gₖ = lᵀ ∂ₖV l, for each row l of L."""
    var = np.einsum("ip,pq,iq->i", L, D.vcov, L)
    g = np.einsum("ip,kpq,iq->ik", L, D.jacobian, L)
    return var, 2 * var**2 / np.einsum("ik,kl,il->i", g, D.vcov_varpar, g)


def satterthwaite(fit: LmerResult, L: np.ndarray | None = None) -> pd.DataFrame:
    """t tests of lᵀβ = 0 with Satterthwaite df, one per row of L (default: each coefficient)."""
    D = varpar_derivatives(fit)
    index = list(fit.fixef.index) if L is None else None
    L = np.eye(len(D.beta)) if L is None else np.atleast_2d(np.asarray(L, dtype=float))
    estimate = L @ D.beta
    var, df = _contrast_dfs(D, L)
    t = estimate / np.sqrt(var)
    return pd.DataFrame(
        {"Estimate": estimate, "Std. Error": np.sqrt(var), "df": df, "t value": t,
         "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)},
        index=index,
    )


class FTest(NamedTuple):
    """A multi-df test of Lβ = 0: F value, NumDF, DenDF, Pr(>F)."""

    F: float
    NumDF: int
    DenDF: float
    p: float


def satterthwaite_f(fit: LmerResult, L: np.ndarray) -> FTest:
    """lmerTest's contestMD: F = Σ tₘ²/q over the eigen-directions of L V Lᵀ, df from their νₘ."""
    D = varpar_derivatives(fit)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    d, P = np.linalg.eigh(L @ D.vcov @ L.T)
    keep = d > np.sqrt(np.finfo(float).eps) * d.max(initial=0.0)
    if not keep.any():
        return FTest(np.nan, 0, np.nan, np.nan)
    PtL = P[:, keep].T @ L
    var, nu = _contrast_dfs(D, PtL)
    q = len(nu)
    F = float(np.sum((PtL @ D.beta) ** 2 / var) / q)
    ddf = _f_denominator_df(nu)
    return FTest(F, q, ddf, float(stats.f.sf(F, q, ddf)))


def _f_denominator_df(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df from the components' νₘ: E = Σ νₘ/(νₘ − 2), 2E/(E − q) (2 if some νₘ ≤ 2)."""
    if len(nu) == 1 or np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2))
    return float(2 * E / (E - len(nu)))
