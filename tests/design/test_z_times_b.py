"""z_times_b: Z b summed over the random-effects terms, against the dense Z."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from mixedmodels.design.reterm import ReTerm, z_times_b


def _term(rng: np.random.Generator, n: int, nlevels: int, p: int) -> ReTerm:
    codes = rng.integers(0, nlevels, n).astype(np.int64)
    matrix = np.column_stack([np.ones(n)] + [rng.standard_normal(n) for _ in range(p - 1)])
    return ReTerm(group="g", codes=codes, levels=pd.Index(range(nlevels)), matrix=matrix,
                  columns=tuple(f"c{j}" for j in range(p)), expr="x")


def _dense_z(t: ReTerm) -> np.ndarray:
    """Zᵢ with columns (level, column) in level-major order, as b.ravel()."""
    Z = np.zeros((len(t.codes), t.nlevels * t.p))
    for i, (level, row) in enumerate(zip(t.codes, t.matrix)):
        Z[i, level * t.p:(level + 1) * t.p] = row
    return Z


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shapes=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 3)), max_size=3))
def test_z_times_b_is_the_dense_product(seed, shapes):
    rng = np.random.default_rng(seed)
    n = 20
    terms = [_term(rng, n, nlevels, p) for nlevels, p in shapes]
    b = [rng.standard_normal((t.nlevels, t.p)) for t in terms]
    expected = sum((_dense_z(t) @ bj.ravel() for t, bj in zip(terms, b)), np.zeros(n))
    np.testing.assert_allclose(z_times_b(terms, b, n), expected, rtol=1e-12, atol=1e-12)
