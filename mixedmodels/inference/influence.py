"""Leverage and influence of observations in an LMM: lme4's ``hatvalues``, ``cooks.distance`` and
``rstudent``.

The fitted values ŷ = Xβ̂ + Zb̂ are linear in y: ŷ = H y.  With A = W^½ [ZΛ X]
(W the prior weights) and M = AᵀA + diag(I_q, 0) the penalised system that the
blocked Cholesky factors, H = A M⁻¹ Aᵀ (on the weighted scale), so the leverage
of row i is hᵢ = aᵢᵀ M⁻¹ aᵢ = ‖C⁻¹aᵢ‖², C the Cholesky factor of M — lme4's
colSums(C_L²) + colSums(C_R²).  Cook's distance is lme4's
Dᵢ = (rᵢ / (1 − hᵢ))² hᵢ / (σ̂² p), rᵢ the Pearson residual and p the rank of X; the
studentized residual is lme4's rstudent.merMod, sign(dᵢ) √(dᵢ² + hᵢ rᵢ²/(1 − hᵢ)) / σ̂ with dᵢ
the deviance residual, which for an LMM (dᵢ = rᵢ) is rᵢ / (σ̂ √(1 − hᵢ)).
The system is formed densely, so the random effects times the rows are limited
to ``MAX_CELLS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from ..errors import MixedModelsError
from ..linalg.crossprod import zt_matrix

if TYPE_CHECKING:
    from ..results.lmer import LmerResult

MAX_CELLS = 50_000_000  # (q + p) × n doubles of C⁻¹Aᵀ: 400 MB


def hatvalues(fit: LmerResult) -> pd.Series:
    """The diagonal of the hat matrix, one value per observation used (lme4's hatvalues)."""
    return fit.design.per_data_row(leverage(fit), "hat")


def leverage(fit: LmerResult) -> np.ndarray:
    """hᵢ for the rows used, from the dense penalised system."""
    X, n = fit.design.X, fit.nobs
    sqrt_w = np.ones(n) if fit.design.weights is None else np.sqrt(fit.design.weights)
    blocks = []
    for t, T in zip(fit.model.terms, fit._factor.lambdas):
        blocks.append(zt_matrix(t).T.tocsr() @ sp.kron(sp.identity(t.nlevels), T, format="csr"))
    q = sum(b.shape[1] for b in blocks)
    if (q + X.shape[1]) * n > MAX_CELLS:
        raise MixedModelsError(
            f"hatvalues forms a dense ({q + X.shape[1]} x {n}) matrix, more than {MAX_CELLS:,} cells; "
            "this model is too large for it")
    A = sp.hstack(blocks + [sp.csr_matrix(X)], format="csr").multiply(sqrt_w[:, None]).toarray()
    M = A.T @ A
    M[np.arange(q), np.arange(q)] += 1.0
    C = scipy.linalg.cholesky(M, lower=True)
    Y = scipy.linalg.solve_triangular(C, A.T, lower=True)
    return np.einsum("ij,ij->j", Y, Y)


def cooks_distance(fit: LmerResult) -> pd.Series:
    """lme4's cooks.distance: (rᵢ / (1 − hᵢ))² hᵢ / (σ̂² p), rᵢ Pearson residuals, p = rank(X)."""
    h = leverage(fit)
    r = fit.scaled_residuals().loc[fit.rows_used].to_numpy() * fit.sigma
    p = np.linalg.matrix_rank(fit.design.X)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (r / (1 - h)) ** 2 * h / (fit.sigma**2 * p)
    d[np.isinf(d)] = np.nan
    return fit.design.per_data_row(d, "cooks distance")


def rstudent(fit: LmerResult) -> pd.Series:
    """lme4's rstudent for an LMM: rᵢ / (σ̂ √(1 − hᵢ)), rᵢ the Pearson residual (NaN where hᵢ = 1)."""
    h = leverage(fit)
    r = fit.scaled_residuals().loc[fit.rows_used].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r / np.sqrt(1 - h)
    t[np.isinf(t)] = np.nan
    return fit.design.per_data_row(t, "rstudent")
