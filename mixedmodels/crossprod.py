"""The crossproduct A = [Z X y]ᵀ W [Z X y], in blocks, from one pass over the data.

Block rows follow the random-effects terms (in the engine's order), then [X y].
A term's own block is block diagonal (one pᵢ×pᵢ block per level, stored as an
(ℓᵢ, pᵢ, pᵢ) array); blocks between terms are sparse; the [X y] row is dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .reterm import ReTerm


@dataclass(frozen=True)
class Crossproducts:
    """Blocks of A; ``off[j][k]`` (k < j) is Zⱼᵀ W Zₖ, ``xz[k]`` is [X y]ᵀ W Zₖ."""

    diag: tuple[np.ndarray, ...]
    off: tuple[tuple[sp.csr_matrix, ...], ...]
    xz: tuple[np.ndarray, ...]
    xx: np.ndarray


def zt_matrix(term: ReTerm) -> sp.csr_matrix:
    """Zᵢᵀ as a sparse qᵢ × n matrix, pᵢ entries per observation."""
    n, p = term.matrix.shape
    rows = (term.codes[:, None] * p + np.arange(p)).ravel()
    cols = np.repeat(np.arange(n), p)
    return sp.csr_matrix((term.matrix.ravel(), (rows, cols)), shape=(term.q, n))


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
    """Computes A for the fixed terms and any weights and [X y]; Zᵢᵀ is built once.

    The LMM builds A once; PIRLS rebuilds it with new working weights and
    working response at every iteration.
    """

    def __init__(self, reterms: tuple[ReTerm, ...]):
        self.reterms = reterms
        self.zts = [zt_matrix(t) for t in reterms]

    def __call__(self, Xy: np.ndarray, w: np.ndarray | None) -> Crossproducts:
        zts, reterms = self.zts, self.reterms
        wzts = zts if w is None else [zt.multiply(w).tocsr() for zt in zts]
        WXy = Xy if w is None else Xy * w[:, None]
        diag = tuple(block_diagonal_crossprod(t, w) for t in reterms)
        off = tuple(
            tuple(sp.csr_matrix(wzts[j] @ zts[k].T) for k in range(j))
            for j in range(len(reterms))
        )
        xz = tuple(np.asarray((zt @ WXy).T) for zt in zts)
        return Crossproducts(diag=diag, off=off, xz=xz, xx=Xy.T @ WXy)
