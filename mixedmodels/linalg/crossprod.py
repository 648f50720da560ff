"""The crossproduct A = [Z X y]ᵀ W [Z X y], in blocks, from one pass over the data.

Block rows follow the random-effects terms (in the engine's order), then [X y].
A term's own block is block diagonal (one pᵢ×pᵢ block per level, stored as an
(ℓᵢ, pᵢ, pᵢ) array); blocks between terms are sparse, or dense when filled; the
[X y] row is dense.
"""

from __future__ import annotations

import copy
from functools import cached_property
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..design.reterm import ReTerm


class PlanCache(dict):
    """Factorisation plans keyed by block; derived data, so a pickled copy starts empty."""

    def __reduce__(self):
        return PlanCache, ()


@dataclass(frozen=True)
class Crossproducts:
    """Blocks of A; ``off[j][k]`` (k < j) is Zⱼᵀ W Zₖ, ``xz[k]`` is [X y]ᵀ W Zₖ.

    ``plans`` caches what the factorisation derives from the blocks' sparsity
    alone (``blockchol`` fills it on first use).  One builder shares its cache
    among all the crossproducts it makes, whose patterns agree; crossproducts
    assembled elsewhere get their own.  None: nothing is cached.

    ``beta_shift`` b₀ says that the last column is y − Xb₀ rather than y (see
    ``shift_response``); the fixed effects of y are then those of y − Xb₀ plus b₀.
    """

    diag: tuple[np.ndarray, ...]
    off: tuple[tuple[sp.csr_matrix | np.ndarray, ...], ...]
    xz: tuple[np.ndarray, ...]
    xx: np.ndarray
    plans: PlanCache | None = field(default_factory=PlanCache, compare=False, repr=False)
    beta_shift: np.ndarray | None = None


def shift_response(A: Crossproducts, b: np.ndarray | None = None) -> Crossproducts:
    """A for the response y − Xb, by default b the least-squares fit of y on X.

    The profiled deviance is the same function of θ for y and for y − Xb (β
    absorbs Xb), but computing it from y's crossproducts cancels ‖Xβ̂‖² out of
    ‖y‖²: a response far from zero (Pastes' strength ≈ 60 ± 3) loses three digits
    of the deviance, and so the optimum's location to rounding.  Shifting first
    moves that cancellation into the shift, where it costs only the difference's
    own rounding; a second, exact shift is then harmless.
    """
    p = A.xx.shape[0] - 1
    XX, Xy, yy = A.xx[:p, :p], A.xx[:p, p], A.xx[p, p]
    if b is None:
        b = np.linalg.lstsq(XX, Xy, rcond=None)[0] if p else np.zeros(0)
    xx = A.xx.copy()
    xx[:p, p] = xx[p, :p] = Xy - XX @ b
    xx[p, p] = max(yy - 2 * b @ Xy + b @ XX @ b, 0.0)
    xz = tuple(np.vstack([B[:p], B[p] - b @ B[:p]]) for B in A.xz)
    shift = b if A.beta_shift is None else A.beta_shift + b
    return Crossproducts(diag=A.diag, off=A.off, xz=xz, xx=xx, plans=A.plans, beta_shift=shift)


def add_crossproducts(parts: list[Crossproducts]) -> Crossproducts:
    """The sum of crossproducts with the same layout, off-diagonal blocks sparse or dense.

    Sparse sums keep their explicit zeros, so that the total has the pattern an
    in-memory build over all rows has, pass after pass (the factorisation caches
    what it derives from the pattern; ``scipy``'s ``+`` would drop the zeros).
    """
    return Crossproducts(
        diag=tuple(np.sum(blocks, axis=0) for blocks in zip(*(A.diag for A in parts))),
        off=tuple(tuple(_add_blocks(blocks) for blocks in zip(*rows)) for rows in zip(*(A.off for A in parts))),
        xz=tuple(np.sum(blocks, axis=0) for blocks in zip(*(A.xz for A in parts))),
        xx=np.sum([A.xx for A in parts], axis=0),
    )


def stacked_crossproducts(A: Crossproducts, groups: list[list[int]]) -> Crossproducts:
    """A for the terms of each group (of one grouping factor) taken as one term, the groups in
    the given order: each level's effects are the group's terms' effects in turn
    (``design.reterm.stacked_term``).  The blocks are A's, with their rows and columns moved."""
    widths = [D.shape[1] for D in A.diag]
    maps = {}  # each original term's effects → their positions in its group's term
    for g in groups:
        at = 0
        for j in g:
            nl, width = A.diag[j].shape[0], sum(widths[i] for i in g)
            maps[j] = (np.arange(nl)[:, None] * width + at + np.arange(widths[j])).ravel()
            at += widths[j]
    diag = []
    for g in groups:
        nl, width = A.diag[g[0]].shape[0], sum(widths[i] for i in g)
        D = np.zeros((nl, width, width))
        starts = np.cumsum([0] + [widths[j] for j in g])
        for a, j in enumerate(g):
            D[:, starts[a]:starts[a + 1], starts[a]:starts[a + 1]] = A.diag[j]
            for b, k in enumerate(g[:a]):
                S = _level_stack(_term_block(A, j, k), nl, widths[j], widths[k])
                D[:, starts[a]:starts[a + 1], starts[b]:starts[b + 1]] = S
                D[:, starts[b]:starts[b + 1], starts[a]:starts[a + 1]] = S.transpose(0, 2, 1)
        diag.append(D)
    sizes = [D.shape[0] * D.shape[1] for D in diag]
    off = tuple(tuple(_moved_block(A, groups[J], groups[I], maps, (sizes[J], sizes[I])) for I in range(J))
                for J in range(len(groups)))
    xz = []
    for g, size in zip(groups, sizes):
        B = np.zeros((A.xx.shape[0], size))
        for j in g:
            B[:, maps[j]] = A.xz[j]
        xz.append(B)
    return Crossproducts(diag=tuple(diag), off=off, xz=tuple(xz), xx=A.xx, beta_shift=A.beta_shift)


def _term_block(A: Crossproducts, j: int, k: int):
    """Zⱼᵀ W Zₖ for two different terms, from the stored lower block."""
    return A.off[j][k] if j > k else A.off[k][j].T


def _level_stack(B, nl: int, pj: int, pk: int) -> np.ndarray:
    """The (ℓ, pⱼ, pₖ) diagonal level blocks of Zⱼᵀ W Zₖ for two terms of one grouping factor."""
    if sp.issparse(B):  # its entries lie in the level blocks: each one lands in its place
        C = sp.csr_matrix(B)
        rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
        out = np.zeros((nl, pj, pk))
        out[rows // pj, rows % pj, C.indices % pk] = C.data
        return out
    level = np.arange(nl)[:, None, None]
    return np.asarray(B)[level * pj + np.arange(pj)[:, None], level * pk + np.arange(pk)]


def _moved_block(A: Crossproducts, rows: list[int], cols: list[int], maps: dict, shape: tuple[int, int]):
    """The block between two groups' terms from the blocks between their parts: sparse while
    they all are and it stays below ``CrossproductBuilder.DENSE_FILL``, else dense."""
    parts = [(maps[j], maps[k], _term_block(A, j, k)) for j in rows for k in cols]
    if all(sp.issparse(B) for _, _, B in parts):
        coo = [(r, c, sp.coo_matrix(B)) for r, c, B in parts]
        out = sp.csr_matrix((np.concatenate([B.data for _, _, B in coo]),
                             (np.concatenate([r[B.row] for r, _, B in coo]),
                              np.concatenate([c[B.col] for _, c, B in coo]))), shape=shape)
        if out.nnz <= CrossproductBuilder.DENSE_FILL * shape[0] * shape[1]:
            out.sort_indices()
            return out
        return out.toarray()
    dense = np.zeros(shape)
    for r, c, B in parts:
        dense[np.ix_(r, c)] = B.toarray() if sp.issparse(B) else B
    return dense


def _add_blocks(blocks):
    if not all(sp.issparse(B) for B in blocks):
        return sum(B.toarray() if sp.issparse(B) else B for B in blocks)
    coo = [B.tocoo() for B in blocks]
    entries = (np.concatenate([c.data for c in coo]),
               (np.concatenate([c.row for c in coo]), np.concatenate([c.col for c in coo])))
    return sp.csr_matrix(entries, shape=blocks[0].shape)  # duplicates summed, zeros kept


def zt_matrix(term: ReTerm) -> sp.csr_matrix:
    """Zᵢᵀ as a sparse qᵢ × n matrix, pᵢ entries per observation."""
    return ZtPattern.of(term).matrix(term)


@dataclass(frozen=True)
class ZtPattern:
    """Where each entry of a term's raw matrix lands in Zᵢᵀ's CSR arrays: the pattern depends on the
    codes alone, so a term with new matrix values (whitened rows) reuses it without sorting."""

    order: np.ndarray  # the raveled matrix's entries in CSR order
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, term: ReTerm) -> ZtPattern:
        n, p = term.matrix.shape
        rows = (term.codes[:, None] * p + np.arange(p)).ravel()
        order = np.argsort(rows, kind="stable")  # by row, observations in order within a row
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=term.q))])
        return cls(order, order // p, indptr, (term.q, n))

    def matrix(self, term: ReTerm) -> sp.csr_matrix:
        return sp.csr_matrix((term.matrix.ravel()[self.order], self.indices, self.indptr), shape=self.shape)


def block_diagonal_crossprod(term: ReTerm, w: np.ndarray | None) -> np.ndarray:
    """Zᵢᵀ W Zᵢ as (ℓᵢ, pᵢ, pᵢ): per level, the sum of w x xᵀ over its observations."""
    M = term.matrix
    WM = M if w is None else M * w[:, None]
    p = term.p
    out = np.empty((term.nlevels, p, p))
    for a in range(p):
        for b in range(a + 1):
            s = np.bincount(term.codes, weights=WM[:, a] * M[:, b], minlength=term.nlevels)
            out[:, a, b] = s
            out[:, b, a] = s
    return out


class CrossproductBuilder:
    """Computes A for the fixed terms and any weights and [X y].

    The sparsity pattern of each Zⱼᵀ W Zₖ does not depend on W, so it is found
    once: every observation's contribution is mapped to its stored entry, and a
    rebuild is one weighted ``bincount`` per block.  Blocks filled beyond
    ``DENSE_FILL`` are kept dense.  The LMM builds A once; PIRLS rebuilds it at
    every iteration with new working weights and working response.  Every A
    built shares the builder's ``plans``, so the factorisation's plans are made
    once per model.
    """

    DENSE_FILL = 0.1

    def __init__(self, reterms: tuple[ReTerm, ...]):
        self.reterms = reterms
        self.zts = [zt_matrix(t) for t in reterms]
        self.patterns = [[_pattern(reterms[j], reterms[k]) for k in range(j)] for j in range(len(reterms))]
        self.plans = PlanCache()

    @cached_property
    def zt_patterns(self) -> list[ZtPattern]:
        """Each Zᵢᵀ's CSR pattern, found when first asked for (by ``with_matrices``): it holds n·pᵢ
        indices per term, which a model without new matrix values need not keep (1M rows: 30 MB)."""
        return [ZtPattern.of(t) for t in self.reterms]

    def with_matrices(self, reterms: tuple[ReTerm, ...]) -> CrossproductBuilder:
        """A builder for the same terms (codes) with new model matrices, sharing the patterns and plans:
        a residual structure's whitened rows at each of its parameters."""
        patterns = self.zt_patterns
        other = copy.copy(self)  # shares the patterns found above
        other.reterms = reterms
        other.zts = [z.matrix(t) for z, t in zip(patterns, reterms)]
        return other

    def __call__(self, Xy: np.ndarray, w: np.ndarray | None) -> Crossproducts:
        reterms = self.reterms
        WXy = Xy if w is None else Xy * w[:, None]
        diag = tuple(block_diagonal_crossprod(t, w) for t in reterms)
        off = tuple(
            tuple(pattern.fill(reterms[j], reterms[k], w) for k, pattern in enumerate(self.patterns[j]))
            for j in range(len(reterms))
        )
        xz = tuple(np.asarray((zt @ WXy).T) for zt in self.zts)
        return Crossproducts(diag=diag, off=off, xz=xz, xx=Xy.T @ WXy, plans=self.plans)


@dataclass(frozen=True)
class _BlockPattern:
    """Where each observation's products land in the stored entries of Zⱼᵀ W Zₖ."""

    slot: np.ndarray  # entry index of each (observation, a, b) product
    rows: np.ndarray  # row of each stored entry
    cols: np.ndarray  # column of each stored entry
    shape: tuple[int, int]
    dense: bool

    def fill(self, tj: ReTerm, tk: ReTerm, w: np.ndarray | None):
        wxj = tj.matrix if w is None else tj.matrix * w[:, None]
        products = (wxj[:, :, None] * tk.matrix[:, None, :]).ravel()
        values = np.bincount(self.slot, weights=products, minlength=len(self.rows))
        if self.dense:
            out = np.zeros(self.shape)
            out[self.rows, self.cols] = values
            return out
        indptr = np.searchsorted(self.rows, np.arange(self.shape[0] + 1))
        return sp.csr_matrix((values, self.cols, indptr), shape=self.shape)


def _pattern(tj: ReTerm, tk: ReTerm) -> _BlockPattern:
    pj, pk = tj.p, tk.p
    rows = (tj.codes[:, None, None] * pj + np.arange(pj)[None, :, None]) + np.zeros((1, 1, pk), dtype=np.int64)
    cols = (tk.codes[:, None, None] * pk + np.arange(pk)[None, None, :]) + np.zeros((1, pj, 1), dtype=np.int64)
    keys = (rows * tk.q + cols).ravel()
    unique, slot = np.unique(keys, return_inverse=True)
    shape = (tj.q, tk.q)
    return _BlockPattern(slot=slot.ravel(), rows=unique // tk.q, cols=unique % tk.q, shape=shape,
                         dense=len(unique) > _dense_fill() * shape[0] * shape[1])


def _dense_fill() -> float:
    return CrossproductBuilder.DENSE_FILL
