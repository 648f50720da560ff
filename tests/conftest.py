"""Shared pytest fixtures."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from reference import load_reference


@pytest.fixture
def reference() -> Callable[[str], dict[str, Any]]:
    """Return a loader: ``reference("sleepstudy_slope_reml") -> dict``."""
    return load_reference


@pytest.fixture(scope="module")
def client():
    """A real Dask cluster: two workers of one thread each, threads of the test process
    (so that partitions can record their reads, see ``counted_reads``)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c
