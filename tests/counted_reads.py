"""Partitions that count their reads, for the Dask tests (whose workers are threads of the test process)."""

from __future__ import annotations

import pandas as pd

_READS: dict[int, list[int]] = {}  # by source: Dask may copy the source object, never this module


class CountedReads:
    """Partitions of ``size`` rows of a frame (for ``dd.from_map``); ``reads`` lists every read."""

    def __init__(self, df: pd.DataFrame, size: int):
        self.df, self.size = df, size
        self.key = id(self)
        _READS[self.key] = []

    @property
    def reads(self) -> list[int]:
        return _READS[self.key]

    def __call__(self, i: int) -> pd.DataFrame:
        _READS[self.key].append(i)
        return self.df.iloc[self.size * i:self.size * (i + 1)]

    def __dask_tokenize__(self):
        return ("counted-reads", self.key)
