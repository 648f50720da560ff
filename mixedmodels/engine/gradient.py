"""The analytic gradient of the LMM's profiled deviance with respect to θ.

With G = blockdiag(Λ, I) and Ω = Gᵀ A G + diag(I, 0) (A = [Z X y]ᵀW[Z X y]), the
profiled deviance is a function of Ω alone:

    ML:   d = log|Ω_ZZ| + n log r²,        REML: d = log|Ω₁₁| + (n − p) log r²

(Ω₁₁ the [Z X] part, r² its Schur complement in Ω; constants dropped).  Since
dΩ = dGᵀ A G + Gᵀ A dG and ∂Λ/∂θₖ = I ⊗ ∂Tᵢ/∂θₖ, for θₖ = Tᵢ[a, b]

    ∂d/∂θₖ = 2 Σ_l [F Gᵀ A]_{(l,b),(l,a)},   F = S + (ν / r²) v vᵀ,

with S the inverse of Ω_ZZ (ML) or Ω₁₁ (REML), padded with zeros, ν = n or n − p,
and v = (−u, −β, 1) the solution of the penalised least-squares problem, whose part
reduces to −(ν/r²) Σ_l u_l g_lᵀ with g = Zᵢᵀ W (y − Xβ − Zb) (Bates et al. 2015, eq. 35).

Only the blocks of S where Gᵀ A is non-zero are needed.  The factor is split in
two: the first term (block diagonal, ℓ₀ blocks of p₀ × p₀) and the rest R (the
other terms, and X for REML), held dense, as the fill-in makes it anyway.  Then

    S_RR = (L_RR L_RRᵀ)⁻¹,  S_R0 = −S_RR L_R0 L₀₀⁻¹,  S₀₀,l = L₀₀,l⁻ᵀ (L₀₀,l⁻¹ − [L_R0ᵀ S_R0]_ll)

(Takahashi's recurrences, of which only the diagonal blocks of S₀₀ are formed): about
the cost of one factorisation, whatever the number of parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from ..design.reterm import TermSet
from ..linalg.blockchol import BlockedCholesky
from ..linalg.crossprod import Crossproducts


@dataclass(frozen=True)
class GradientPlan:
    """The crossproducts in the gradient's split: the first term's stack and dense blocks for the rest.

    Rows of R are the other terms' effects, level-major term by term, then X's columns.
    Made once per model; depends on A alone.
    """

    A00: np.ndarray  # (ℓ₀, p₀, p₀) stack Z₀ᵀWZ₀
    AR0: np.ndarray  # [Z_R X]ᵀ W Z₀, dense
    ARR: np.ndarray  # [Z_R X]ᵀ W [Z_R X], dense
    a0y: np.ndarray  # Z₀ᵀ W y
    aRy: np.ndarray  # [Z_R X]ᵀ W y
    ends: tuple[int, ...]  # row offsets of the terms of R in R (the last: where X starts)

    @classmethod
    def from_crossproducts(cls, A: Crossproducts) -> GradientPlan:
        K, p = len(A.diag), A.xx.shape[0] - 1
        q = [D.shape[0] * D.shape[1] for D in A.diag]
        ends = tuple(np.cumsum([0, *q[1:]], dtype=int).tolist())
        rows = ends[-1] + p
        ARR = np.zeros((rows, rows))
        for j in range(1, K):
            rj = slice(ends[j - 1], ends[j])
            ARR[rj, rj] = _block_diagonal(A.diag[j])
            for k in range(1, j):
                ARR[rj, ends[k - 1]:ends[k]] = _dense(A.off[j][k])
            ARR[ends[-1]:, rj] = A.xz[j][:p]
        ARR[ends[-1]:, ends[-1]:] = A.xx[:p, :p]
        ARR = np.tril(ARR) + np.tril(ARR, -1).T
        AR0 = np.vstack([_dense(A.off[j][0]) for j in range(1, K)] + [A.xz[0][:p]])
        aRy = np.concatenate([A.xz[j][p] for j in range(1, K)] + [A.xx[:p, p]])
        return cls(A00=A.diag[0], AR0=AR0, ARR=ARR, a0y=A.xz[0][p], aRy=aRy, ends=ends)


@dataclass(frozen=True)
class SelectedInverse:
    """The blocks of S = Ω_ZZ⁻¹ (ML), or Ω₁₁⁻¹ (REML), where Gᵀ A is non-zero: the first term's
    diagonal blocks, and the rows of R (the first m) against everything."""

    S00: np.ndarray  # (ℓ₀, p₀, p₀)
    SR0: np.ndarray  # (m, q₀)
    SRR: np.ndarray  # (m, m)


def selected_inverse(L: BlockedCholesky, plan: GradientPlan, m: int) -> SelectedInverse:
    """S on the pattern of the crossproducts by Takahashi's recurrences, from the factor L."""
    p0 = L.lambdas[0].shape[0]
    nl0 = plan.A00.shape[0]
    L00_inv = L.first_inverse if L.first_inverse is not None else np.linalg.inv(L.L[0][0])
    LR0, LRR = _rest_of_factor(L, m)
    SRR = _inverse_from_cholesky(LRR)
    SR0 = -_times_stack(SRR @ LR0, L00_inv)
    S00 = L00_inv.transpose(0, 2, 1) @ (L00_inv - _by_level(LR0, nl0, p0).transpose(0, 2, 1) @ _by_level(SR0, nl0, p0))
    return SelectedInverse(S00=S00, SR0=SR0, SRR=SRR)


def logdet_traces(S: SelectedInverse, plan: GradientPlan, T: list[np.ndarray]) -> list[np.ndarray]:
    """For each term i the pᵢ×pᵢ matrix Dᵢ with ½ ∂log|Ω|/∂Tᵢ[r, c] = Dᵢ[c, r] at fixed A, Ω the
    matrix S inverts: Σ_l [S Gᵀ A]_{(l,c),(l,r)} over term i's levels."""
    m = S.SRR.shape[0]
    nl0, p0 = plan.A00.shape[:2]
    q0 = nl0 * p0
    # Gᵀ A's columns of Z_R, the rows of R first: A_RR Λ_R (Λ = I on X), and of Z₀: A_0R Λ_R
    CRR = _lam_right_rest(plan.ARR[:m], T, plan.ends)[:, :m]
    C0R = _lam_right_rest(plan.AR0.T, T, plan.ends)[:, :m]
    CR0 = (plan.AR0[:m].reshape(m, nl0, p0) @ T[0]).reshape(m, q0)  # A_R0 Λ₀
    out = [np.tensordot(S.S00 @ T[0].T, plan.A00, axes=([0, 2], [0, 1])) + level_trace(S.SR0.T, C0R, p0)]
    for i in range(1, len(T)):
        rows = slice(plan.ends[i - 1], plan.ends[i])
        pi = T[i].shape[0]
        out.append(level_trace(S.SR0[rows], CR0[rows], pi) + level_trace(S.SRR[rows], CRR[rows], pi))
    return out


def theta_gradient(terms: TermSet, theta: np.ndarray, G: list[np.ndarray]) -> np.ndarray:
    """∂f/∂θ from each term's Gᵢ[r, c] = ∂f/∂Tᵢ[r, c]: a structured term's by the chain rule through
    its ∂Tᵢ/∂θ (``CovStructure.pullback``), an unstructured one's the lower triangle, column by column."""
    grad = np.zeros(terms.ntheta)
    for term, s, Gi in zip(terms.terms, terms.theta_slices(), G):
        if term.structure.structured:
            grad[s] = term.structure.pullback(theta[s], Gi.shape[0], Gi)
        else:
            c, r = _lower_triangle(Gi.shape[0])
            grad[s] = Gi[r, c]
    return grad


def deviance_gradient(L: BlockedCholesky, plan: GradientPlan, terms: TermSet, n: int, REML: bool,
                      theta: np.ndarray) -> np.ndarray:
    """∂d/∂θ of the profiled deviance, θ in the engine's order, from the factor L at θ."""
    p = L.p
    T = L.lambdas
    p0 = T[0].shape[0]
    nl0 = plan.A00.shape[0]
    m = plan.ends[-1] + (p if REML else 0)  # the rows of R that S covers
    S = selected_inverse(L, plan, m)

    # v's part: the spherical modes u, b = Λu, β, and g = Zᵀ W (y − Xβ − Zb)
    beta = L.beta()
    modes = L.spherical_modes(beta)
    u = np.concatenate(modes)
    b = np.concatenate([(uj.reshape(-1, Tj.shape[0]) @ Tj.T).ravel() for uj, Tj in zip(modes, T)])
    if L.beta_shift is not None:
        beta = beta - L.beta_shift  # A's response is y − Xb₀
    q0, qR = nl0 * p0, plan.ends[-1]
    b0, bRX = b[:q0], np.concatenate([b[q0:], beta])
    g0 = plan.a0y - np.einsum("lab,lb->la", plan.A00, b0.reshape(nl0, p0)).ravel() - plan.AR0.T @ bRX
    gR = (plan.aRy - plan.AR0 @ b0 - plan.ARR @ bRX)[:qR]
    g, nu = np.concatenate([g0, gR]), (n - p if REML else n)
    vv = -(nu / L.r ** 2)

    starts = [0, q0, *(q0 + e for e in plan.ends[1:])]
    G = []
    for i, D in enumerate(logdet_traces(S, plan, T)):
        pi = T[i].shape[0]
        cols = slice(starts[i], starts[i + 1])
        D = D + vv * u[cols].reshape(-1, pi).T @ g[cols].reshape(-1, pi)
        G.append(2.0 * D.T)  # ∂d/∂Tᵢ[r, c] = 2 D[c, r]
    return theta_gradient(terms, theta, G)


def reflect_bound_columns(terms: TermSet, theta: np.ndarray, grad: np.ndarray) -> np.ndarray | None:
    """θ with the below-diagonal part of some columns of Tᵢ negated, where that lets f fall; else None.

    Negating a column of Tᵢ leaves TᵢTᵢᵀ, hence f, unchanged.  Where the column's
    diagonal element sits on its bound 0 with a positive derivative and the elements
    below it are not all zero, the negated column has the negative derivative, so f
    falls inside the bound: a fake optimum of the Cholesky parametrisation, not of the
    covariance.
    """
    out = theta.copy()
    for term, s in zip(terms.terms, terms.theta_slices()):
        if term.structure.structured:  # its T's columns are not free: no reflection of them
            continue
        p = term.p
        c, r = np.triu_indices(p)  # θ's (row r, column c) of Tᵢ
        t, g = out[s], grad[s]
        for col in range(p - 1):
            diag = np.flatnonzero((r == col) & (c == col))[0]
            below = np.flatnonzero((c == col) & (r > col))
            if t[diag] == 0.0 and g[diag] > 0 and np.any(t[below] != 0):
                t[below] = -t[below]
        out[s] = t
    return None if np.array_equal(out, theta) else out


@lru_cache(maxsize=None)
def _lower_triangle(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and rows of a p×p lower triangle, column by column (θ's order within Tᵢ)."""
    return np.triu_indices(p)


def level_trace(P: np.ndarray, Q: np.ndarray, p: int) -> np.ndarray:
    """Σ_l Σ_r P[(l,b), r] Q[(l,a), r] as a p×p matrix [b, a]; rows of P and Q are level-major."""
    nl = P.shape[0] // p
    return np.tensordot(P.reshape(nl, p, -1), Q.reshape(nl, p, -1), axes=([0, 2], [0, 2]))


def _rest_of_factor(L: BlockedCholesky, m: int) -> tuple[np.ndarray, np.ndarray]:
    """L_R0 and the dense lower factor L_RR, over the first m rows of R."""
    K = L.K
    sizes = [_dense(L.L[j][j]).shape[0] for j in range(1, K + 1)]
    at = np.cumsum([0, *sizes])
    LRR = np.zeros((at[-1], at[-1]))
    for j in range(1, K + 1):
        for k in range(1, j + 1):
            LRR[at[j - 1]:at[j], at[k - 1]:at[k]] = _dense(L.L[j][k])
    LR0 = np.vstack([_dense(L.L[j][0]) for j in range(1, K + 1)])
    return LR0[:m], LRR[:m, :m]


def _inverse_from_cholesky(L: np.ndarray) -> np.ndarray:
    """(L Lᵀ)⁻¹, symmetric, for a lower-triangular L."""
    if not L.shape[0]:
        return np.zeros((0, 0))
    S, info = lapack.dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"singular factor (LAPACK dpotri info {info})")
    return np.tril(S) + np.tril(S, -1).T


def _lam_right_rest(M: np.ndarray, T: list[np.ndarray], ends: tuple[int, ...]) -> np.ndarray:
    """M Λ_R: the columns of each term of R times I ⊗ Tⱼ (X's columns unchanged)."""
    out = M.copy()
    for j in range(1, len(T)):
        cols = slice(ends[j - 1], ends[j])
        pj = T[j].shape[0]
        out[:, cols] = (M[:, cols].reshape(M.shape[0], -1, pj) @ T[j]).reshape(M.shape[0], -1)
    return out


def _times_stack(M: np.ndarray, B: np.ndarray) -> np.ndarray:
    """M times the block-diagonal matrix with the (ℓ, p, p) stack B."""
    nl, p, _ = B.shape
    return (_by_level(M, nl, p) @ B).transpose(1, 0, 2).reshape(M.shape)


def _by_level(M: np.ndarray, nl: int, p: int) -> np.ndarray:
    """The level-major columns of M as an (ℓ, rows, p) stack."""
    return M.reshape(M.shape[0], nl, p).transpose(1, 0, 2)


def _block_diagonal(D: np.ndarray) -> np.ndarray:
    """The dense block-diagonal matrix with the (ℓ, p, p) stack D on its diagonal."""
    nl, p, _ = D.shape
    out = np.zeros((nl, p, nl, p))
    out[np.arange(nl), :, np.arange(nl), :] = D
    return out.reshape(nl * p, nl * p)


def _dense(B: np.ndarray | sp.spmatrix) -> np.ndarray:
    """A block of the factor as a dense matrix (a nested term's (ℓ, p, p) stack block diagonal)."""
    if sp.issparse(B):
        return sp.csr_matrix(B).toarray()
    if B.ndim == 3:
        return sp.block_diag(list(B)).toarray()
    return np.asarray(B)
