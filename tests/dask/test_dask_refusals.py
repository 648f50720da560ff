"""Dask inputs that used to be coded wrongly or raise a raw KeyError (issue 15 item 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    g = pd.Categorical(np.repeat(list("abcd"), 25), categories=list("abcd"))
    return pd.DataFrame({"y": rng.normal(size=100), "x": rng.normal(size=100), "g": g})


def test_categories_the_dtype_does_not_declare_are_refused():
    ddf = dd.from_pandas(_frame(), npartitions=2)
    meta = ddf._meta.copy()
    meta["g"] = meta["g"].cat.set_categories(["a", "b"])
    declared_short = ddf.map_partitions(lambda part: part, meta=meta)
    with pytest.raises(DataError, match=r"'g' has values \(c, d\) that its declared categories \(a, b\) lack"):
        mm.lmer("y ~ x + (1 | g)", declared_short)


def test_a_partition_without_a_used_column_is_refused():
    frame = _frame()
    parts = [dask.delayed(frame.iloc[:50]), dask.delayed(frame.iloc[50:].drop(columns="x"))]
    ragged = dd.from_delayed(parts, meta=frame.iloc[:0], verify_meta=False)
    with pytest.raises(DataError, match="partition of the data lacks the column"):
        mm.lmer("y ~ x + (1 | g)", ragged)
