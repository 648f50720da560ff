"""Starting values of θ for the LMM from the crossproducts alone, by the method of moments.

BOBYQA from θ = 1 (lme4's start) spends most of a large crossed fit walking
towards the optimum: InstEval took 121 evaluations from 1 and 29 from here.  For
each scalar term j (one effect per level, z the column of its raw model matrix),
with r the residuals of ordinary least squares,

    s_l = Σ_{i∈l} wᵢ zᵢ rᵢ,   d_l = Σ_{i∈l} wᵢ zᵢ²,
    Σ_l E[s_l²] ≈ Σₖ σₖ² ‖Zⱼᵀ W Zₖ‖²_F + σ² Σ_l d_l,

(the sum over the scalar terms k includes j itself, ‖Zⱼᵀ W Zⱼ‖²_F = Σ_l d_l²), and the
residual sum of squares has E[r'Wr] ≈ (n − p) σ² + Σₖ σₖ² Σ_l d_l.  These equations,
one per term and the last, are solved for σ² and the σₖ², and θⱼ = σⱼ / σ.  The
other terms' share of s_l matters wherever they overlap term j: without it the
class of `(1 | school) + (1 | school:class)` counts the school's variance as its
own, the equations leave nothing for σ², and θ starts at the ceiling (10) instead
of near 1.  The projection on X is ignored, which is good enough for a start.  Terms with
several effects per level keep lme4's start (Tᵢ = I).  Every quantity comes from
the blocks of A = [Z X y]ᵀW[Z X y], so Dask fits get the same start.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from typing import Callable

from ..design.reterm import TermSet
from ..errors import FitError
from ..linalg.crossprod import Crossproducts

THETA_FLOOR = 0.1  # a start on the boundary would hide the interior from BOBYQA
THETA_CEILING = 10.0
STEP_FRACTION = 0.15  # BOBYQA's first step for a moment-started θⱼ, relative to it
MIN_STEP = 0.05


def moment_start(A: Crossproducts, terms: TermSet, n: int, p: int,
                 default_step: float) -> tuple[np.ndarray, np.ndarray]:
    """θ to start from and BOBYQA's initial step for each of its elements; ``default_step``
    (``Control.initial_step``) for the elements of vector terms' Tᵢ bounded at 0, 1 for the others."""
    XX, Xy, yy = A.xx[:p, :p], A.xx[:p, p], A.xx[p, p]
    beta = np.linalg.lstsq(XX, Xy, rcond=None)[0] if p else np.zeros(0)
    rss = float(yy - beta @ Xy)
    scalar = [j for j, t in enumerate(terms.terms) if t.p == 1]
    M = np.zeros((len(scalar) + 1, len(scalar) + 1))
    rhs = np.zeros(len(scalar) + 1)
    M[0, 0], rhs[0] = max(n - p, 1), rss
    for a, j in enumerate(scalar, start=1):
        d = A.diag[j][:, 0, 0]
        s = A.xz[j][-1] - beta @ A.xz[j][:p]
        M[0, a] = M[a, 0] = d.sum()
        M[a, a], rhs[a] = (d**2).sum(), (s**2).sum()
        for b, k in enumerate(scalar[:a - 1], start=1):  # k < j: A.off[j][k] = Zⱼᵀ W Zₖ
            M[a, b] = M[b, a] = _squared_norm(A.off[j][k])
    variances = np.linalg.lstsq(M, rhs, rcond=None)[0]
    sigma2 = max(variances[0], 1e-3 * rss / max(n - p, 1), np.finfo(float).tiny)
    theta = terms.theta_start.copy()
    step = np.where(np.isfinite(terms.theta_lower), default_step, 1.0)
    slices = terms.theta_slices()
    for a, j in enumerate(scalar, start=1):
        theta_j = np.clip(np.sqrt(max(variances[a], 0.0) / sigma2), THETA_FLOOR, THETA_CEILING)
        theta[slices[j]] = theta_j
        step[slices[j]] = max(STEP_FRACTION * theta_j, MIN_STEP)
    return theta, step


def _squared_norm(B: np.ndarray | sp.csr_matrix) -> float:
    """‖B‖²_F of a crossproduct block, sparse or dense."""
    values = np.asarray(B.data if sp.issparse(B) else B).ravel()
    return float(values @ values)


#: powers of ten tried as multiples of a start that is badly scaled or where f is infinite
RESCALE_POWERS = np.arange(-12.0, 1.0)
#: the largest condition number 1 + θ² max(diag ZᵀWZ) of the penalised system at which f keeps
#: about six digits; beyond it a finite f may be rounding noise, even far below the optimum
RELIABLE_CONDITION = 1e10


def reliable_theta_limit(A: Crossproducts) -> float:
    """The largest |θ| element at which the profiled deviance is still computed to about six digits."""
    largest = max((float(np.diagonal(D, axis1=1, axis2=2).max()) for D in A.diag if D.size), default=1.0)
    return float(np.sqrt(RELIABLE_CONDITION / max(largest, np.finfo(float).tiny)))


def rescaled_start(f: Callable[[np.ndarray], float], theta0: np.ndarray, limit: float,
                   scales: np.ndarray | None = None) -> np.ndarray:
    """A given start, or the best of its multiples 10ᵏ θ₀ (k in ``RESCALE_POWERS``, largest element at
    most ``limit``) when f is not finite at θ₀, θ₀ exceeds the limit, or f falls as θ₀ shrinks a hundredfold.
    Only the elements ``scales`` marks are multiplied (a structured term's correlation parameter is not a scale).

    A start scaled far off the optimum (θ × 1e6) leaves an optimizer where f is flat and its
    factorisation has lost every digit, or (θ × 1e8) where it cannot be evaluated; the
    deviance along θ's ray is cheap to scan (13 evaluations at most), as MixedModels.jl's
    "misscaling" test demands.  A sensible start costs two evaluations.
    """
    mask = np.ones(theta0.shape, dtype=bool) if scales is None else scales

    def times(c: float) -> np.ndarray:
        return np.where(mask, theta0 * c, theta0)

    size = float(np.abs(theta0[mask]).max()) if mask.any() else 0.0
    f0 = f(theta0) if size <= limit else np.inf
    if np.isfinite(f0) and not f(times(1e-2)) < f0:
        return theta0
    multiples = [10.0**k for k in RESCALE_POWERS if size * 10.0**k <= limit]
    values = np.array([f(times(c)) for c in multiples])
    if not np.isfinite(values).any():
        raise FitError("the objective cannot be evaluated at the given start θ nor at any multiple "
                       "10^k θ (k from -12 to 0): give another start, or none")
    best = int(np.argmin(np.where(np.isfinite(values), values, np.inf)))
    return times(multiples[best]) if not f0 <= values[best] else theta0
