"""Fits of Dask data frames from summed crossproducts, and bootstraps through a Dask client.

The summed crossproducts equal the in-memory ones up to rounding, so the Dask model's
objective is the in-memory one as a function of θ (checked to 1e-12).  The optimum
itself is as reproducible as BOBYQA makes it: refitting the same data in another row
order moves θ̂ by up to ~2e-6 relative on these data sets (flat optima, e.g. Pastes),
so the estimates are compared to 1e-5 and the objective at the optimum to 1e-10.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("dask.distributed")

import dask.dataframe as dd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import mixedmodels as mm  # noqa: E402
from mixedmodels.bootstrap import bootstrap  # noqa: E402
from mixedmodels.dask import DaskLmerResult, is_dask_dataframe, lmer_dask  # noqa: E402

CASES = {
    "sleepstudy": "Reaction ~ Days + (Days | Subject)",
    "Penicillin": "diameter ~ 1 + (1 | plate) + (1 | sample)",  # crossed
    "Pastes": "strength ~ 1 + (1 | batch/cask)",  # nested
}
FIT_RTOL = 1e-5


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def _dense(B):
    return B.toarray() if sp.issparse(B) else np.asarray(B)


def _assert_same_crossproducts(a, b):
    scale = np.abs(a.xx).max()
    for x, y in zip(a.diag, b.diag):
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-12 * scale)
    for ra, rb in zip(a.off, b.off):
        for x, y in zip(ra, rb):
            assert sp.issparse(x) == sp.issparse(y)  # the same storage as the in-memory builder's
            np.testing.assert_allclose(_dense(y), _dense(x), rtol=0, atol=1e-12 * scale)
    for x, y in zip(a.xz, b.xz):
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(b.xx, a.xx, rtol=1e-12)


def _assert_same_fit(d: DaskLmerResult, m: mm.LmerResult):
    assert d.nobs == m.nobs
    assert d.objective == pytest.approx(m.objective, rel=1e-10)
    np.testing.assert_allclose(d.theta, m.theta, rtol=FIT_RTOL)
    pd.testing.assert_series_equal(d.fixef, m.fixef, rtol=FIT_RTOL)
    assert d.sigma == pytest.approx(m.sigma, rel=FIT_RTOL)
    pd.testing.assert_frame_equal(d.vcov, m.vcov, rtol=FIT_RTOL)
    pd.testing.assert_frame_equal(d.varcorr, m.varcorr, rtol=FIT_RTOL)
    assert d.deviance == pytest.approx(m.deviance, rel=1e-8)
    assert d.theta_names == m.theta_names and d.ngroups == m.ngroups
    # the same objective function: the crossproducts agree, so does the deviance at any θ
    _assert_same_crossproducts(m.model.crossprod, d.model.crossprod)
    for theta in (m._theta_engine, m._theta_engine * 1.3 + 0.05):
        assert d.model.objective(theta) == pytest.approx(m.model.objective(theta), rel=1e-12)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("REML", [True, False])
def test_dask_fit_equals_the_in_memory_fit(client, name, REML):
    df = mm.datasets.load(name)
    ddf = dd.from_pandas(df, npartitions=3 if REML else 4)
    assert is_dask_dataframe(ddf) and not is_dask_dataframe(df)
    _assert_same_fit(lmer_dask(CASES[name], ddf, REML=REML), mm.lmer(CASES[name], df, REML=REML))


def test_partitions_missing_levels_rows_weights_offset_and_aliasing(client):
    """A string factor whose levels are absent from some partitions, missing values, weights,
    an offset and an aliased column: the same fit and the same warnings as in memory."""
    df = mm.datasets.load("sleepstudy").copy()
    df["phase"] = np.where(df.index < 60, "early", np.where(df.index < 150, "mid", "late"))
    df["x2"] = 2 * df["Days"]
    df.loc[[3, 100], "Days"] = np.nan
    df["w"] = 1.0 + df.index % 3
    df["off"] = 0.1 * (df.index % 5)
    formula = "Reaction ~ Days + phase + x2 + (Days || Subject)"
    with warnings.catch_warnings(record=True) as seen_m:
        warnings.simplefilter("always")
        m = mm.lmer(formula, df, weights="w", offset="off")
    with warnings.catch_warnings(record=True) as seen_d:
        warnings.simplefilter("always")
        d = lmer_dask(formula, dd.from_pandas(df, npartitions=4), weights="w", offset="off")
    kinds = lambda seen: sorted(type(w.message).__name__ for w in seen if issubclass(w.category, mm.MixedModelsWarning))  # noqa: E731
    assert kinds(seen_d) == kinds(seen_m) == ["DroppedRowsWarning", "RankDeficiencyWarning"]
    assert d.dropped_columns == ("x2",) and d.n_dropped == 2
    _assert_same_fit(d, m)


def test_what_dask_frames_cannot_do(client):
    ddf = dd.from_pandas(mm.datasets.load("sleepstudy"), npartitions=2)
    with pytest.raises(mm.FormulaError, match="stateful"):
        lmer_dask("Reaction ~ center(Days) + (1 | Subject)", ddf)
    with pytest.raises(mm.DataError, match="column name"):
        lmer_dask("Reaction ~ Days + (1 | Subject)", ddf, weights=np.ones(180))
    with pytest.raises(mm.DataError, match="not a column"):
        lmer_dask("Reaction ~ Dayz + (1 | Subject)", ddf)


def test_bootstrap_through_the_dask_client_equals_the_serial_one(client):
    fit = mm.lmer(CASES["sleepstudy"], mm.datasets.load("sleepstudy"))
    serial = bootstrap(fit, 8, seed=5, progress=False)
    spread = bootstrap(fit, 8, seed=5, progress=False, executor=client)
    pd.testing.assert_frame_equal(serial.replicates, spread.replicates, check_exact=True)
    assert serial.n_failed == spread.n_failed


def test_power_through_the_dask_client_equals_the_serial_one(client):
    fit = mm.lmer(CASES["sleepstudy"], mm.datasets.load("sleepstudy"))
    args = dict(nsim=4, n_groups=[6, 9], seed=2, progress=False)
    serial = mm.power(fit, "Days", **args)
    spread = mm.power(fit, "Days", executor=client, **args)
    pd.testing.assert_frame_equal(serial.table, spread.table, check_exact=True)


def test_lmer_dispatches_dask_frames(client):
    df = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", dd.from_pandas(df, npartitions=3))
    assert isinstance(fit, mm.DaskLmerResult)
    assert fit.objective == pytest.approx(mm.lmer("Reaction ~ Days + (Days | Subject)", df).objective, rel=1e-10)
    with pytest.raises(mm.DataError, match="start is not supported"):
        mm.lmer("Reaction ~ Days + (Days | Subject)", dd.from_pandas(df, npartitions=3), start=[1, 0, 1])
