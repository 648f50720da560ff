"""Crossproduct blocks against the dense [Z X y]ᵀ W [Z X y] they stand for."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.design.reterm import ReTerm
from mixedmodels.linalg.crossprod import (
    CrossproductBuilder,
    add_crossproducts,
    block_diagonal_crossprod,
    shift_response,
    zt_matrix,
)


def make_term(rng: np.random.Generator, n: int, nlevels: int, p: int, name: str) -> ReTerm:
    codes = np.concatenate([np.arange(nlevels), rng.integers(0, nlevels, n - nlevels)])
    matrix = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(p - 1)])
    return ReTerm(group=name, codes=codes.astype(np.int64), levels=pd.Index([f"{name}{i}" for i in range(nlevels)]),
                  matrix=matrix, columns=tuple(f"c{i}" for i in range(p)), expr="x")


def dense_z(term: ReTerm) -> np.ndarray:
    """Z as the row-wise Khatri-Rao product of the level indicators and the raw matrix, written out."""
    Z = np.zeros((len(term.codes), term.q))
    for i, (code, row) in enumerate(zip(term.codes, term.matrix)):
        Z[i, code * term.p:(code + 1) * term.p] = row
    return Z


def dense(block: object) -> np.ndarray:
    return block.toarray() if sp.issparse(block) else np.asarray(block)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 60), l1=st.integers(2, 6), l2=st.integers(2, 9),
       p1=st.integers(1, 3), weighted=st.booleans())
def test_blocks_equal_the_dense_crossproduct(seed, n, l1, l2, p1, weighted):
    rng = np.random.default_rng(seed)
    terms = (make_term(rng, n, l1, p1, "g"), make_term(rng, n, l2, 1, "h"))
    Xy = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    w = rng.uniform(0.2, 3.0, n) if weighted else None
    A = CrossproductBuilder(terms)(Xy, w)
    W = np.ones(n) if w is None else w
    Z = [dense_z(t) for t in terms]
    for j, Zj in enumerate(Z):
        full = Zj.T @ (W[:, None] * Zj)
        blocks = np.zeros_like(full)
        p = terms[j].p
        for level, block in enumerate(A.diag[j]):
            blocks[level * p:(level + 1) * p, level * p:(level + 1) * p] = block
        np.testing.assert_allclose(blocks, full, atol=1e-10)
        np.testing.assert_allclose(A.xz[j], Xy.T @ (W[:, None] * Zj), atol=1e-10)
    np.testing.assert_allclose(dense(A.off[1][0]), Z[1].T @ (W[:, None] * Z[0]), atol=1e-10)
    np.testing.assert_allclose(A.xx, Xy.T @ (W[:, None] * Xy), atol=1e-10)


def test_zt_matrix_and_block_diagonal_are_z_transposed():
    rng = np.random.default_rng(1)
    term = make_term(rng, 20, 4, 2, "g")
    np.testing.assert_array_equal(zt_matrix(term).toarray(), dense_z(term).T)
    w = rng.uniform(size=20)
    Z = dense_z(term)
    full = Z.T @ (w[:, None] * Z)
    blocks = block_diagonal_crossprod(term, w)
    assert blocks.shape == (4, 2, 2)
    np.testing.assert_allclose(blocks[2], full[4:6, 4:6])


def test_sums_of_parts_equal_the_whole():
    rng = np.random.default_rng(7)
    n = 40
    terms = (make_term(rng, n, 5, 2, "g"), make_term(rng, n, 8, 1, "h"))
    Xy = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    whole = CrossproductBuilder(terms)(Xy, None)
    halves = []
    for rows in (np.arange(0, 25), np.arange(25, n)):
        part = tuple(ReTerm(t.group, t.codes[rows], t.levels, t.matrix[rows], t.columns, t.expr) for t in terms)
        halves.append(CrossproductBuilder(part)(Xy[rows], None))
    total = add_crossproducts(halves)
    for a, b in zip(total.diag, whole.diag):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(dense(total.off[1][0]), dense(whole.off[1][0]))
    np.testing.assert_allclose(total.xx, whole.xx)


def test_shift_response_keeps_the_profiled_problem():
    """A for y − Xb₀: XᵀX unchanged, Xᵀ(y − Xb₀) = 0 at the least-squares b₀, ‖y − Xb₀‖² the RSS."""
    rng = np.random.default_rng(3)
    n = 30
    term = make_term(rng, n, 5, 1, "g")
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = 100 + X @ [2.0, -1.0] + rng.normal(size=n)
    A = CrossproductBuilder((term,))(np.column_stack([X, y]), None)
    shifted = shift_response(A)
    b0 = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(shifted.beta_shift, b0)
    np.testing.assert_allclose(shifted.xx[:2, :2], X.T @ X)
    np.testing.assert_allclose(shifted.xx[:2, 2], 0, atol=1e-8)
    assert shifted.xx[2, 2] == pytest.approx(np.sum((y - X @ b0) ** 2), rel=1e-10)
    np.testing.assert_allclose(shifted.xz[0][2], dense_z(term).T @ (y - X @ b0), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 40), l1=st.integers(1, 6), p1=st.integers(1, 3))
def test_with_matrices_reuses_the_pattern_for_new_values(seed, n, l1, p1):
    """New matrix values on the same codes (a residual structure's whitened rows): the builder's kept
    Zᵀ pattern gives the crossproducts a fresh builder computes."""
    rng = np.random.default_rng(seed)
    terms = (make_term(rng, n, l1, p1, "g"), make_term(rng, n, 3, 1, "h"))
    new = tuple(replace(t, matrix=rng.standard_normal(t.matrix.shape)) for t in terms)
    Xy = rng.standard_normal((n, 3))
    reused, fresh = CrossproductBuilder(terms).with_matrices(new)(Xy, None), CrossproductBuilder(new)(Xy, None)
    for a, b in zip(reused.xz, fresh.xz):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(reused.diag, fresh.diag):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dense(reused.off[1][0]), dense(fresh.off[1][0]), rtol=1e-12, atol=1e-12)
