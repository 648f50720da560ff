"""The blocked lower Cholesky factor L(θ) of [ΛᵀZᵀWZΛ + I, ΛᵀZᵀW[X y]; ·, [X y]ᵀW[X y]].

Blocks are indexed (j, k), k ≤ j, over the random-effects terms and then the
[X y] row (index K).  Kinds:

* (0, 0): block diagonal, stored as an (ℓ, p, p) stack of lower factors;
* (j, 0) for a term j: sparse (the pattern of Zⱼᵀ Z₀);
* every other block: dense.

The last row of L holds what the profiled deviance and the solutions need:
its diagonal block is [[L_X, 0], [c_βᵀ, r]].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.linalg import blas
import scipy.sparse as sp

from .crossprod import Crossproducts


@dataclass
class BlockedCholesky:
    """L(θ) in blocks; ``L[j][k]`` for k ≤ j; the last block row is [X y]'s."""

    L: list[list]
    lambdas: list[np.ndarray]  # Tᵢ of each term
    p: int  # number of fixed effects

    @property
    def K(self) -> int:
        return len(self.lambdas)

    @property
    def r(self) -> float:
        """Penalised residual norm: the last diagonal element of L."""
        return float(self.L[self.K][self.K][-1, -1])

    def logdet_z(self) -> float:
        """log |L_Z|², the log-determinant of ΛᵀZᵀWZΛ + I."""
        total = 2.0 * np.log(np.diagonal(self.L[0][0], axis1=1, axis2=2)).sum()
        for j in range(1, self.K):
            total += 2.0 * np.log(np.diag(self.L[j][j])).sum()
        return float(total)

    def logdet_x(self) -> float:
        """log |L_X|², the REML correction."""
        return float(2.0 * np.log(np.diag(self.L[self.K][self.K])[: self.p]).sum())

    def beta_precision_inverse(self) -> np.ndarray:
        """(L_X L_Xᵀ)⁻¹: the covariance of β̂ in units of σ²."""
        p = self.p
        if p == 0:
            return np.zeros((0, 0))
        Linv = _solve_lower(self.L[self.K][self.K][:p, :p], np.eye(p))
        return Linv.T @ Linv

    def beta(self) -> np.ndarray:
        """Fixed effects: L_Xᵀ β = c_β."""
        LXy = self.L[self.K][self.K]
        if self.p == 0:
            return np.zeros(0)
        return _solve_lower_t(LXy[: self.p, : self.p], LXy[self.p, : self.p])

    def spherical_modes(self, beta: np.ndarray) -> list[np.ndarray]:
        """Conditional modes u of the spherical random effects, by blocked back-substitution."""
        K = self.K
        weights = np.append(-beta, 1.0)  # c − L_Xᵀ β as a combination of the [X y] rows
        u: list[np.ndarray] = [np.zeros(0)] * K
        for j in reversed(range(K)):
            v = weights @ self.L[K][j]
            for k in range(j + 1, K):
                v = v - _dense_vec(self.L[k][j].T @ u[k])
            u[j] = _solve_lower_t(self.L[j][j], v)
        return u

    def conditional_precision_blocks(self, j: int, chunk: int = 2048) -> np.ndarray:
        """Diagonal pⱼ×pⱼ blocks of (L_Z L_Zᵀ)⁻¹ for term j, as (ℓⱼ, pⱼ, pⱼ).

        Column block j of L_Z⁻¹ is found by forward substitution, in chunks of
        whole levels so that large crossed designs need bounded memory.
        """
        K, Ljj = self.K, self.L[j][j]
        pj = self.lambdas[j].shape[0]
        q = _nrows(Ljj)
        if Ljj.ndim == 3:  # the first term: its own block of L_Z⁻¹ is block diagonal
            Linv = np.linalg.inv(Ljj)
            out = Linv.transpose(0, 2, 1) @ Linv
            own = _block_diag_sparse(Linv)
        else:
            out = np.zeros((q // pj, pj, pj))
            own = None
        step = max(pj, chunk - chunk % pj)
        for start in range(0, q, step) if own is None or j + 1 < K else ():
            cols = np.arange(start, min(q, start + step))
            if own is not None:
                Y = {j: own[:, cols]}
            else:
                E = np.zeros((q, len(cols)))
                E[cols, np.arange(len(cols))] = 1.0
                Y = {j: _solve_lower(Ljj, E)}
            for k in range(j + 1, K):
                rhs = sum(_as_dense(self.L[k][m] @ Y[m]) for m in range(j, k))
                Y[k] = -_solve_lower(self.L[k][k], rhs)
            below = [Y[k] for k in range(j + 1 if own is not None else j, K)]
            gram = _column_gram_by_level(below, pj)
            out[start // pj:(start + len(cols)) // pj] += gram
        return out


def _column_gram_by_level(blocks: list[np.ndarray], p: int) -> np.ndarray:
    """For columns grouped p at a time, the p×p Gram matrices Σ Yᵀ Y of each group."""
    ncol = blocks[0].shape[1]
    out = np.zeros((ncol // p, p, p))
    for Y in blocks:
        Y3 = Y.reshape(Y.shape[0], ncol // p, p)
        out += np.einsum("ila,ilb->lab", Y3, Y3)
    return out


def factorize(A: Crossproducts, lambdas: list[np.ndarray], p: int) -> BlockedCholesky:
    """Blocked Cholesky of the penalised crossproduct at the given Tᵢ."""
    K = len(lambdas)
    T0 = lambdas[0]
    I0 = np.eye(T0.shape[0])
    L00 = np.linalg.cholesky(T0.T @ A.diag[0] @ T0 + I0)
    B0 = T0 @ np.linalg.inv(L00).transpose(0, 2, 1)  # Λ₀ L₀₀⁻ᵀ, block diagonal
    L: list[list] = [[L00]]
    for j in range(1, K + 1):
        Tj = lambdas[j] if j < K else None
        Aj = A.off[j] if j < K else A.xz
        row = [_times_block_diag(_lam_t_left(Tj, Aj[0]), B0)]
        for k in range(1, j):
            R = _as_dense(_lam_t_left(Tj, _lam_right(Aj[k], lambdas[k])))
            for m in range(k):
                R = R - _as_dense(row[m] @ L[k][m].T)
            row.append(right_solve_lower_t(L[k][k], R))
        S = -_as_dense(row[0] @ row[0].T)
        for m in range(1, j):
            S -= _as_dense(row[m] @ row[m].T)
        if j < K:
            _add_block_diag(S, Tj.T @ A.diag[j] @ Tj)
            S[np.diag_indices_from(S)] += 1.0
        else:
            S += A.xx
        row.append(sla.cholesky(S, lower=True, check_finite=False, overwrite_a=True))
        L.append(row)
    return BlockedCholesky(L=L, lambdas=lambdas, p=p)


def _lam_t_left(T: np.ndarray | None, M):
    """Λᵀ M, with Λ = I ⊗ T acting on the level-major rows of M (None: the [X y] row)."""
    if T is None:
        return M
    p = T.shape[0]
    if p == 1:
        return M * T[0, 0]
    if sp.issparse(M):
        return _block_diag_sparse(np.broadcast_to(T.T, (M.shape[0] // p, p, p))) @ M
    return (T.T @ M.reshape(-1, p, M.shape[1])).reshape(M.shape)


def _lam_right(M, T: np.ndarray):
    """M Λ, with Λ = I ⊗ T acting on the level-major columns of M."""
    p = T.shape[0]
    if p == 1:
        return M * T[0, 0]
    if sp.issparse(M):
        return M @ _block_diag_sparse(np.broadcast_to(T, (M.shape[1] // p, p, p)))
    return (M.reshape(M.shape[0], -1, p) @ T).reshape(M.shape)


def _times_block_diag(M, B: np.ndarray):
    """M times the block-diagonal matrix with the (ℓ, p, p) stack B; a column scaling when p = 1."""
    if B.shape[1] == 1:
        scale = B[:, 0, 0]
        if sp.issparse(M):
            M = M.tocsr()
            return sp.csr_matrix((M.data * scale[M.indices], M.indices, M.indptr), shape=M.shape)
        return M * scale[None, :]
    return M @ _block_diag_sparse(B)


def _block_diag_sparse(B: np.ndarray) -> sp.csr_matrix:
    """A CSR matrix with the (ℓ, p, p) stack B on its diagonal."""
    nl, p, _ = B.shape
    q = nl * p
    indptr = np.arange(0, q * p + 1, p)
    indices = (np.arange(nl)[:, None, None] * p + np.zeros((1, p, 1), dtype=np.int64) + np.arange(p)).ravel()
    return sp.csr_matrix((np.ascontiguousarray(B).ravel(), indices, indptr), shape=(q, q))


def _add_block_diag(S: np.ndarray, B: np.ndarray) -> None:
    """S += the block-diagonal matrix with the (ℓ, p, p) stack B on its diagonal, in place."""
    nl, p, _ = B.shape
    rows = np.arange(nl)[:, None, None] * p + np.arange(p)[None, :, None]
    cols = np.arange(nl)[:, None, None] * p + np.arange(p)[None, None, :]
    S[rows, cols] += B


def _as_dense(M) -> np.ndarray:
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def _dense_vec(v) -> np.ndarray:
    return np.asarray(_as_dense(v)).ravel()


def _nrows(M) -> int:
    return M.shape[0] * (M.shape[1] if M.ndim == 3 else 1)


def _solve_lower(Ljj: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Ljj⁻¹ E for a dense lower block or an (ℓ, p, p) stack."""
    if Ljj.ndim == 3:
        nl, p, _ = Ljj.shape
        return np.linalg.solve(Ljj, E.reshape(nl, p, -1)).reshape(E.shape)
    return blas.dtrsm(1.0, Ljj, E, side=0, lower=1)


def _solve_lower_t(Ljj: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Ljj⁻ᵀ v for a dense lower block or an (ℓ, p, p) stack."""
    if Ljj.ndim == 3:
        nl, p, _ = Ljj.shape
        return np.linalg.solve(Ljj.transpose(0, 2, 1), v.reshape(nl, p, 1)).ravel()
    return blas.dtrsm(1.0, Ljj, v[:, None], side=0, lower=1, trans_a=1).ravel()


def right_solve_lower_t(Lkk: np.ndarray, R: np.ndarray) -> np.ndarray:
    """R Lkk⁻ᵀ by one BLAS trsm call.

    Direct BLAS avoids the per-call overhead of LAPACK wrappers, which dominates
    for the many small blocks of PIRLS iterations.
    """
    return blas.dtrsm(1.0, Lkk, R, side=1, lower=1, trans_a=1)
