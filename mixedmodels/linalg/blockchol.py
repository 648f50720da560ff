"""The blocked lower Cholesky factor L(θ) of [ΛᵀZᵀWZΛ + I, ΛᵀZᵀW[X y]; ·, [X y]ᵀW[X y]].

Blocks are indexed (j, k), k ≤ j, over the random-effects terms and then the
[X y] row (index K).  Kinds:

* (0, 0): block diagonal, stored as an (ℓ, p, p) stack of lower factors;
* (j, 0) for a term j: sparse (the pattern of Zⱼᵀ Z₀), or dense where A_j0 is;
* (k, k) of a later term nested in the earlier ones (``nested_columns``): a
  stack too, and the blocks (j, k) below it sparse while their terms are;
* every other block: dense.

The last row of L holds what the profiled deviance and the solutions need:
its diagonal block is [[L_X, 0], [c_βᵀ, r]].

The costly part of a factorisation of crossed designs is the fill-in
L_j0 L_j0ᵀ of the first term into the dense diagonal blocks; its sparsity is
the same at every θ and every PIRLS reweighting, so a ``SparseGram`` plan for
it is made once and cached in ``A.plans``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

import numpy as np
from scipy.linalg import blas, lapack
import scipy.sparse as sp

from ..errors import MemoryBudgetError
from .crossprod import Crossproducts

#: Stacks of at most this many levels use numpy's batched LAPACK/matmul calls, whose fixed
#: overhead is smaller than the column-by-column loops' (measured: 18 levels 61 -> 16 us).
SMALL_STACK = 128
#: Systems of order q + p + 1 up to this many times the number of terms are factorised as
#: one dense matrix (one LAPACK call instead of numpy calls on small blocks, whose number
#: grows with the square of the number of terms; measured crossover for one term about 120:
#: sleepstudy 216 -> 141 us per evaluation, order 203 264 -> 635 us; sleepstudy with 11
#: terms, order 201: 10 ms -> 0.4 ms).
DENSE_ORDER = 100
#: Bytes of dense blocks a factorisation may hold (the diagonal and below-diagonal blocks of
#: terms crossed with larger ones, qₖ² doubles and more); beyond it ``factorize`` raises a
#: ``MemoryBudgetError`` before allocating.  Raise it on a machine with the memory to spare.
DENSE_BUDGET = 2 * 2**30


@dataclass
class BlockedCholesky:
    """L(θ) in blocks; ``L[j][k]`` for k ≤ j; the last block row is [X y]'s."""

    L: list[list]
    lambdas: list[np.ndarray]  # Tᵢ of each term
    p: int  # number of fixed effects
    beta_shift: np.ndarray | None = None  # b₀ when the last column is y − Xb₀ (Crossproducts.beta_shift)
    first_inverse: np.ndarray | None = None  # L₀₀⁻¹ (ℓ, p, p) where the factorisation formed it (few levels)

    @property
    def K(self) -> int:
        return len(self.lambdas)

    @property
    def r(self) -> float:
        """Penalised residual norm: the last diagonal element of L."""
        return float(self.L[self.K][self.K][-1, -1])

    def logdet_z(self) -> float:
        """log |L_Z|², the log-determinant of ΛᵀZᵀWZΛ + I."""
        return float(sum(2.0 * np.log(_diagonal_of(self.L[j][j])).sum() for j in range(self.K)))

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
        """Fixed effects: L_Xᵀ (β − b₀) = c_β."""
        LXy = self.L[self.K][self.K]
        if self.p == 0:
            return np.zeros(0)
        beta = _solve_lower_t(LXy[: self.p, : self.p], LXy[self.p, : self.p])
        return beta if self.beta_shift is None else beta + self.beta_shift

    def spherical_modes(self, beta: np.ndarray) -> list[np.ndarray]:
        """Conditional modes u of the spherical random effects, by blocked back-substitution."""
        K = self.K
        if self.beta_shift is not None and len(beta):
            beta = beta - self.beta_shift
        weights = np.append(-beta, 1.0)  # c − L_Xᵀ β as a combination of the [X y] rows
        return self._back_substitute([weights @ self.L[K][j] for j in range(K)])

    def solve_z(self, rhs: list[np.ndarray]) -> list[np.ndarray]:
        """(L_Z L_Zᵀ)⁻¹ r = (ΛᵀZᵀWZΛ + I)⁻¹ r for r given term by term: forward, then back substitution."""
        c: list[np.ndarray] = []
        for j in range(self.K):
            v = rhs[j]
            for k in range(j):
                v = v - _dense_vec(self.L[j][k] @ c[k])
            c.append(_solve_lower(self.L[j][j], v[:, None]).ravel())
        return self._back_substitute(c)

    def _back_substitute(self, c: list[np.ndarray]) -> list[np.ndarray]:
        """L_Z⁻ᵀ c, term by term from the last."""
        K = self.K
        u: list[np.ndarray] = [np.zeros(0)] * K
        for j in reversed(range(K)):
            v = c[j]
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
                rhs = _as_dense(self.L[k][j] @ Y[j])
                for m in range(j + 1, k):
                    rhs = rhs + _as_dense(self.L[k][m] @ Y[m])
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
    """Blocked Cholesky of the penalised crossproduct at the given Tᵢ, block column by block column.

    Column 0 is block diagonal, so the blocks below it are Λⱼᵀ A_j0 Λ₀ L₀₀⁻ᵀ.  In a
    later column k the diagonal block is the Cholesky factor of the penalised
    block minus the Gram matrix of the blocks to its left, and all blocks below
    it are found by one triangular solve against it.  A column whose fill-in
    stays block diagonal (``nested_columns``: a factor nested in earlier ones)
    is kept as a level stack, and the blocks below it stay sparse.
    """
    if _order(A) <= DENSE_ORDER * len(lambdas):
        return _factorize_dense(A, lambdas, p)
    K = len(lambdas)
    stacked = nested_columns(A)
    check_dense_budget(A, stacked)
    T: list[np.ndarray | None] = [*lambdas, None]  # None: the [X y] row, on which Λ does not act
    A_row = [*A.off, A.xz]  # A_row[j][k] = A_jk, k < j
    L00 = _stack_cholesky(_quadratic_stack(A.diag[0], lambdas[0]) + np.eye(lambdas[0].shape[0]))
    inverse = np.linalg.inv(L00) if 1 < L00.shape[1] and L00.shape[0] <= SMALL_STACK else None  # one batched call
    if inverse is not None:
        B0 = lambdas[0] @ inverse.transpose(0, 2, 1)  # Λ₀ L₀₀⁻ᵀ, block diagonal
    else:
        B0 = _stack_right_solve_lower_t(np.broadcast_to(lambdas[0], L00.shape), L00)
    L: list[list] = [[L00]] + [[_times_block_diag(_lam_t_left(T[j], A_row[j][0]), B0)] for j in range(1, K + 1)]
    for k in range(1, K + 1):
        if k < K and stacked[k]:
            _stacked_column(A, L, T, k)
            continue
        S = _minus_first_fill(A, k, T[k], L[k][0], B0)
        for m in range(1, k):
            S -= _as_dense(L[k][m] @ L[k][m].T)
        if k < K:
            _add_block_diag(S, _quadratic_stack(A.diag[k], lambdas[k]))
            _diagonal(S)[...] += 1.0
        else:
            S += A.xx
        L[k].append(_cholesky_lower(S))
        if k == K:
            break
        below = [_left_of_column(A, L, T, j, k, dense=True) for j in range(k + 1, K + 1)]
        solved = right_solve_lower_t(L[k][k], np.vstack(below))
        start = 0
        for j, R in zip(range(k + 1, K + 1), below):
            L[j].append(solved[start:start + R.shape[0]])
            start += R.shape[0]
    return BlockedCholesky(L=L, lambdas=lambdas, p=p, beta_shift=A.beta_shift if p else None,
                           first_inverse=inverse)


def check_dense_budget(A: Crossproducts, stacked: tuple[bool, ...]) -> None:
    """Raise ``MemoryBudgetError`` when the dense blocks would exceed ``DENSE_BUDGET``.

    Column k of a term that is not nested holds a dense qₖ × qₖ diagonal block and
    dense qⱼ × qₖ blocks below it for the later terms j.
    """
    q = [D.shape[0] * D.shape[1] for D in A.diag]
    columns = [(k, 8 * q[k] * sum(q[k:])) for k in range(1, len(q)) if not stacked[k]]
    total = sum(size for _, size in columns)
    if total <= DENSE_BUDGET:
        return
    k, size = max(columns, key=lambda c: c[1])
    raise MemoryBudgetError(
        f"the random-effects term with {A.diag[k].shape[0]:,} levels ({q[k]:,} effects) is crossed with a "
        f"larger term, so its block of the Cholesky factor is dense: {_in_units(size)} "
        f"({_in_units(total)} for all such terms), above the memory budget of "
        f"{_in_units(DENSE_BUDGET)}, and each evaluation would cost about {q[k]:,}³/3 operations.  "
        "Fewer levels (e.g. grouping rare levels together) fit within it; on a machine with the memory, "
        "raise mixedmodels.linalg.blockchol.DENSE_BUDGET (bytes)"
    )


def _in_units(size: float) -> str:
    """A number of bytes in GiB, or MiB below 1 GiB."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.2f} MiB"


def _left_of_column(A: Crossproducts, L: list[list], T: list, j: int, k: int, dense: bool):
    """Λⱼᵀ A_jk Λₖ − Σ_{m<k} L_jm L_kmᵀ, block (j, k) before the solve against L_kk.

    Dense on request (the dense columns); else sparse while every term is sparse
    (the columns of nested factors).
    """
    R = _lam_t_left(T[j], _lam_right(A.xz[k] if j == len(A.diag) else A.off[j][k], T[k]))
    if dense:
        R = _as_dense(R)
    for m in range(k):
        F = L[j][m] @ L[k][m].T
        R = R - F if sp.issparse(R) and sp.issparse(F) else _as_dense(R) - _as_dense(F)
    return R


def _stacked_column(A: Crossproducts, L: list[list], T: list, k: int) -> None:
    """Column k of a nested factor: L_kk an (ℓₖ, pₖ, pₖ) stack, the blocks below it R L_kk⁻ᵀ.

    Every effect of an earlier term meets one level of term k only, so
    Σ_{m<k} L_km L_kmᵀ is block diagonal and so is the penalised block.
    """
    nl, pk = A.diag[k].shape[:2]
    S = _quadratic_stack(A.diag[k], T[k]) + np.eye(pk)
    for m in range(k):
        S -= _block_diagonal_gram(L[k][m], pk)
    Lkk = _stack_cholesky(S)
    L[k].append(Lkk)
    inverse_t = _stack_right_solve_lower_t(np.broadcast_to(np.eye(pk), Lkk.shape), Lkk)  # L_kk⁻ᵀ per level
    for j in range(k + 1, len(L)):
        L[j].append(_times_block_diag(_left_of_column(A, L, T, j, k, dense=False), inverse_t))


def _block_diagonal_gram(M: np.ndarray | sp.csr_matrix, p: int) -> np.ndarray:
    """The (ℓ, p, p) diagonal blocks of M Mᵀ, for M's rows grouped p at a time."""
    if not sp.issparse(M):
        M3 = M.reshape(-1, p, M.shape[1])
        return np.einsum("lac,lbc->lab", M3, M3)
    G = (M @ M.T).tocsr()
    nl = M.shape[0] // p
    out = np.empty((nl, p, p))
    for a in range(p):
        for b in range(a + 1):  # G[s p + a, s p + b] is element s p + b of G's diagonal b − a
            out[:, a, b] = out[:, b, a] = G.diagonal(b - a)[b::p][:nl]
    return out


def nested_columns(A: Crossproducts) -> tuple[bool, ...]:
    """For each term's block column, whether its fill-in is block diagonal (a nested factor).

    Decided from the level patterns of the crossproduct blocks alone (cached in
    ``A.plans``): column k is kept as a stack when every effect of each earlier
    term m meets at most one level of term k in L_km, whose level pattern is that
    of A_km plus the fill Σ L_jm L_kmᵀ that stacked columns pass on.  A block
    stored dense counts as full.
    """
    key = ("nested",)
    if A.plans is not None and key in A.plans:
        return A.plans[key]
    K = len(A.diag)
    sizes = [D.shape[:2] for D in A.diag]
    P = [[_level_pattern(A.off[j][k], sizes[j][1], sizes[k][1]) for k in range(j)] for j in range(K)]
    stacked = [True]
    for k in range(1, K):
        nested = all(_meets_one_level(P[k][m]) for m in range(k))
        stacked.append(nested)
        for j in range(k + 1, K):
            P[j][k] = _fill_pattern(P[j][k], P[j][:k], P[k][:k]) if nested else None
    result = tuple(stacked)
    if A.plans is not None:
        A.plans[key] = result
    return result


def _meets_one_level(P: sp.csr_matrix | None) -> bool:
    """Whether every column of the level pattern P has at most one entry (None: dense, no)."""
    return P is not None and bool(np.all(np.diff(P.tocsc().indptr) <= 1))


def _fill_pattern(own: sp.csr_matrix | None, left: list[sp.csr_matrix | None],
                  right: list[sp.csr_matrix | None]) -> sp.csr_matrix | None:
    """The level pattern of A_jk − Σₘ L_jm L_kmᵀ below a stacked column; None when any part is dense."""
    if own is None:
        return None
    total = own
    for Ljm, Lkm in zip(left, right):
        if Ljm is None or Lkm is None:
            return None
        total = total + Ljm @ Lkm.T
    return total.astype(bool).tocsr()


def _level_pattern(B: np.ndarray | sp.csr_matrix, pj: int, pk: int) -> sp.csr_matrix | None:
    """Which levels of two terms meet in the block B (effects grouped pⱼ and pₖ at a time); None if dense."""
    if isinstance(B, np.ndarray):
        return None
    C = B.tocoo()
    ones = np.ones(C.nnz, dtype=bool)
    return sp.csr_matrix((ones, (C.row // pj, C.col // pk)), shape=(B.shape[0] // pj, B.shape[1] // pk))


def _order(A: Crossproducts) -> int:
    """The order q + p + 1 of the whole penalised system."""
    return sum(D.shape[0] * D.shape[1] for D in A.diag) + A.xx.shape[0]


def _factorize_dense(A: Crossproducts, lambdas: list[np.ndarray], p: int) -> BlockedCholesky:
    """A small system in one piece: ΛᵀAΛ + I assembled dense (lower triangle) and factorised
    by one LAPACK call, then cut into the blocked layout.  The Cholesky factor is unique,
    so the blocks are those of the blocked algorithm, for far fewer numpy calls."""
    K = len(lambdas)
    ends = [0, *accumulate(D.shape[0] * D.shape[1] for D in A.diag)]
    q = ends[-1]
    M = np.zeros((q + A.xx.shape[0],) * 2, order="F")  # Fortran order: dpotrf reads it in place
    for k, (D, T) in enumerate(zip(A.diag, lambdas)):
        cols = slice(ends[k], ends[k + 1])
        nl, pk, _ = D.shape
        block = _quadratic_stack(D, T)
        block.reshape(nl, pk * pk)[:, ::pk + 1] += 1.0  # + I
        M[cols, cols][_block_diag_index(nl, pk)] = block
        for j in range(k + 1, K):
            M[ends[j]:ends[j + 1], cols] = _as_dense(_lam_t_left(lambdas[j], _lam_right(_as_dense(A.off[j][k]), T)))
        M[q:, cols] = _lam_right(A.xz[k], T)
    M[q:, q:] = A.xx
    F = _cholesky_lower(M)
    L: list[list] = [[F[_block_diag_index(*A.diag[0].shape[:2])]]]  # the first term's (ℓ, p, p) stack
    for j in range(1, K + 1):
        rows = slice(ends[j], ends[j + 1]) if j < K else slice(q, None)
        L.append([F[rows, ends[k]:ends[k + 1]] for k in range(j)] + [F[rows, rows]])
    return BlockedCholesky(L=L, lambdas=lambdas, p=p, beta_shift=A.beta_shift if p else None)


@lru_cache(maxsize=64)
def _block_diag_index(nl: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the (ℓ, p, p) diagonal blocks of an ℓp × ℓp matrix (cached, read-only)."""
    start = np.arange(nl)[:, None, None] * p
    rows, cols = start + np.arange(p)[None, :, None], start + np.arange(p)[None, None, :]
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def _minus_first_fill(A: Crossproducts, j: int, Tj: np.ndarray | None, row0, B0: np.ndarray) -> np.ndarray:
    """−L_j0 L_j0ᵀ, the fill-in of diagonal block j from the first term, as a dense symmetric matrix.

    With L_j0 = Λⱼᵀ C Λ₀ L₀₀⁻ᵀ (C = A_j0) this is −Λⱼᵀ C W Cᵀ Λⱼ, W = Λ₀ (L₀₀ L₀₀ᵀ)⁻¹ Λ₀ᵀ
    block diagonal.  For a sparse C whose pattern is shared by every rebuild, a
    cached ``SparseGram`` forms C W Cᵀ without a sparse×sparse product.
    """
    gram = _sparse_gram(A, j, B0.shape[1]) if Tj is not None else None
    if gram is None or Tj is None:
        return -_as_dense(row0 @ row0.T)
    W = B0 @ B0.transpose(0, 2, 1)
    C = A.off[j][0]
    if Tj.shape[0] == 1:
        return gram(C, W * -Tj[0, 0] ** 2)
    return -_lam_t_left(Tj, _lam_right(gram(C, W), Tj))


def _sparse_gram(A: Crossproducts, j: int, p0: int) -> SparseGram | None:
    """The cached ``SparseGram`` of A_j0, made on first use.

    None without a cache, for a dense A_j0 or one not stored in full level blocks,
    and when the plan would be much larger than the dense result (the generic
    sparse product then needs less memory).
    """
    C = A.off[j][0]
    if A.plans is None or isinstance(C, np.ndarray):
        return None
    key = ("gram", j)
    if key not in A.plans:
        blocks = _level_blocks(C, p0) if C.nnz else None
        small = blocks is not None and SparseGram.size(blocks, p0) <= max(2 * C.shape[0] ** 2, 2**20)
        A.plans[key] = SparseGram(C, p0, blocks) if blocks is not None and small else None
    return A.plans[key]


class SparseGram:
    """C W Cᵀ, dense, for a sparse C of fixed pattern and block-diagonal W = blockdiag(W_s).

    C's columns come in level blocks of width p, each stored row–level block full
    and sorted, so (C W Cᵀ)ᵢₖ = Σ_s Σ_ab C[i, (s, a)] W_s[a, b] C[k, (s, b)] over the
    levels s that rows i and k share.  These terms (i ≥ k, s, a, b) depend on the
    pattern only: they are found once and kept as a sparse matrix M with
    M vec(W) = the lower triangle of C W Cᵀ.  M's values, products of C's, are
    refreshed when a C with other values (PIRLS weights) arrives.
    """

    def __init__(self, C: sp.csr_matrix, p: int, blocks: tuple[np.ndarray, np.ndarray, np.ndarray]):
        self.q, self.indptr, self.indices = C.shape[0], C.indptr.copy(), C.indices.copy()
        fits = max(C.nnz, C.shape[1] * p, self.size(blocks, p)) < 2**31
        index = np.int32 if fits else np.int64  # positions in C.data, vec(W) and M: half the memory
        starts, level, row = (x.astype(index) for x in blocks)  # in C's storage order: by row, then level
        # grouped by level, rows ascending: the partners k ≤ i of block (i, s) lead the group of s
        by_level = np.argsort(level, kind="stable").astype(index)
        group_first = np.searchsorted(level[by_level], level[by_level]).astype(index)
        first, count = np.empty_like(by_level), np.empty_like(by_level)
        first[by_level] = group_first
        count[by_level] = np.arange(len(level), dtype=index) - group_first + 1
        i_of = np.repeat(np.arange(len(level), dtype=index), count)  # the terms, ordered by row i already
        group_offset = np.repeat(first - np.cumsum(count, dtype=index) + count, count)
        k_of = by_level[group_offset + np.arange(len(i_of), dtype=index)]
        key = row[i_of] * np.int64(self.q) + row[k_of]
        order = np.argsort(key, kind="stable")  # sorted runs: cheap
        key = key[order]
        i_of, k_of = i_of[order], k_of[order]
        del order  # the terms are many: temporaries go as soon as they are used
        new = np.flatnonzero(key[1:] != key[:-1]) + 1
        entry = key[np.concatenate([[0], new])]  # the stored entries i·q + k of the lower triangle
        del key
        ab = np.arange(p * p, dtype=index)
        self.left = (starts[i_of][:, None] + ab // p).ravel()  # where C[i, (s, a)] is in C.data
        self.right = (starts[k_of][:, None] + ab % p).ravel()  # ... C[k, (s, b)]
        columns = (level[i_of][:, None] * (p * p) + ab).ravel()  # (s, a, b) in vec(W)
        del i_of, k_of
        rowptr = np.concatenate([[0], new, [len(self.left) // (p * p)]]).astype(index) * (p * p)
        self.lower, self.upper = entry, entry % self.q * self.q + entry // self.q
        M = sp.csr_matrix((C.data[self.left] * C.data[self.right], columns, rowptr),
                          shape=(len(entry), (C.shape[1] // p) * p * p))
        self._cache = (C.data, M)  # one tuple, replaced whole: safe when threads share the plan

    @staticmethod
    def size(blocks: tuple[np.ndarray, np.ndarray, np.ndarray], p: int) -> int:
        """Number of terms (entries of M) the plan of C, given by ``_level_blocks``, would hold."""
        n = np.bincount(blocks[1])
        return int((n * (n + 1) // 2).sum()) * p * p

    def __call__(self, C: sp.csr_matrix, W: np.ndarray) -> np.ndarray:
        data, M = self._cache
        if C.data is not data:
            if not (np.array_equal(C.indptr, self.indptr) and np.array_equal(C.indices, self.indices)):
                raise ValueError("C's sparsity pattern differs from the one this SparseGram was built for")
            M = sp.csr_matrix((C.data[self.left] * C.data[self.right], M.indices, M.indptr), shape=M.shape)
            self._cache = (C.data, M)
        lower = M @ W.ravel()
        G = np.zeros((self.q, self.q))
        G.reshape(-1)[self.upper] = lower
        G.reshape(-1)[self.lower] = lower
        return G


def _level_blocks(C: sp.csr_matrix, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Position in C.data, column level and row of the first entry of each stored row–level block.

    None unless every block is stored whole: p consecutive entries, columns in order.
    """
    starts = np.flatnonzero(C.indices % p == 0)
    block = np.minimum(starts[:, None] + np.arange(p), C.nnz - 1)
    if len(starts) * p != C.nnz or not np.array_equal(C.indices[block], C.indices[starts, None] + np.arange(p)):
        return None
    rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    return starts, C.indices[starts] // p, rows[starts]


def _quadratic_stack(D: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Tᵀ D_s T for each level s of an (ℓ, p, p) stack D.

    Row-major vec(Tᵀ D_s T) = vec(D_s) (T ⊗ T): one matrix product for all levels
    instead of ℓ tiny ones.
    """
    nl, p, _ = D.shape
    if 1 < p and nl <= SMALL_STACK:  # on a few levels numpy's batched product has less overhead (18 × 11²: 27 -> 8 us)
        return (T.T @ D) @ T
    kron = (T[:, None, :, None] * T[None, :, None, :]).reshape(p * p, p * p)
    return (D.reshape(nl, p * p) @ kron).reshape(D.shape)


def _stack_cholesky(M: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of an (ℓ, p, p) stack, column by column, vectorised over ℓ.

    For the small p of random-effects terms this is far cheaper than LAPACK's
    batched call on many levels; on a few levels the batched call has less overhead.
    """
    if M.shape[0] <= SMALL_STACK:
        return np.linalg.cholesky(M)
    L = np.zeros_like(M)
    for c in range(M.shape[1]):
        d = M[:, c, c] - _rowwise_dot(L[:, c, :c], L[:, c, :c])
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("a diagonal block is not positive definite")
        L[:, c, c] = np.sqrt(d)
        for r in range(c + 1, M.shape[1]):
            L[:, r, c] = (M[:, r, c] - _rowwise_dot(L[:, r, :c], L[:, c, :c])) / L[:, c, c]
    return L


def _rowwise_dot(X: np.ndarray, Y: np.ndarray) -> np.ndarray | float:
    """Σ_b X[l, b] Y[l, b] for each l (0 when there are no columns)."""
    return np.einsum("lb,lb->l", X, Y) if X.shape[1] else 0.0


def _stack_right_solve_lower_t(B: np.ndarray, L: np.ndarray) -> np.ndarray:
    """B_s L_s⁻ᵀ for each level s: (ℓ, m, p) right-hand sides, (ℓ, p, p) lower factors."""
    if 1 < L.shape[1] and L.shape[0] <= SMALL_STACK:  # one batched LAPACK call (18 × 11²: 58 -> 33 us)
        return np.linalg.solve(L, B.transpose(0, 2, 1)).transpose(0, 2, 1)
    X = np.empty(B.shape)
    for a in range(L.shape[1]):
        X[:, :, a] = (B[:, :, a] - np.einsum("lmb,lb->lm", X[:, :, :a], L[:, a, :a])) / L[:, a, a][:, None]
    return X


def _cholesky_lower(S: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of a symmetric S, overwriting S.

    LAPACK wants Fortran order; S is symmetric, so its transpose is the same
    matrix in Fortran order when S is C-ordered, and no copy is needed.
    """
    F = S if S.flags.f_contiguous else S.T
    L, info = lapack.dpotrf(F, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"block not positive definite (LAPACK dpotrf info {info})")
    return L


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
    nl, p, _ = B.shape
    if p == 1:
        scale = B[:, 0, 0]
        if sp.issparse(M):
            M = M.tocsr()
            return sp.csr_matrix((M.data * scale[M.indices], M.indices, M.indptr), shape=M.shape)
        return M * scale[None, :]
    if sp.issparse(M):
        return M @ _block_diag_sparse(B)
    M3 = M.reshape(M.shape[0], nl, p)
    if nl <= SMALL_STACK:  # one batched product: less overhead on a few levels
        return np.matmul(M3.transpose(1, 0, 2), B).transpose(1, 0, 2).reshape(M.shape)
    out = np.zeros(M3.shape)
    for a in range(p):  # out_s = M_s B_s for every level s, vectorised over the levels
        for b in range(p):
            out[:, :, b] += M3[:, :, a] * B[:, a, b]
    return out.reshape(M.shape)


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
    if p == 1:
        _diagonal(S)[...] += B[:, 0, 0]
        return
    S[_block_diag_index(nl, p)] += B


def _diagonal_of(Ljj: np.ndarray) -> np.ndarray:
    """The diagonal of a dense diagonal block or of an (ℓ, p, p) stack."""
    return np.diagonal(Ljj, axis1=-2, axis2=-1)


def _diagonal(S: np.ndarray) -> np.ndarray:
    """A writable view of the diagonal of the square matrix S."""
    return np.einsum("ii->i", S)


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
    """R Lkk⁻ᵀ = (Lkk⁻¹ Rᵀ)ᵀ by one BLAS trsm call.

    Direct BLAS avoids the per-call overhead of LAPACK wrappers, which dominates
    for the many small blocks of PIRLS iterations.  Solving from the left on Rᵀ
    (Fortran order when R is C-ordered, so no copy) is twice as fast as the
    right-sided solve for a large Lkk and a few rows of R.
    """
    return blas.dtrsm(1.0, Lkk, R.T, side=0, lower=1).T
