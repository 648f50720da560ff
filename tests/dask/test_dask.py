"""Fits of Dask data frames from summed crossproducts, and bootstraps through a Dask client.

The summed crossproducts equal the in-memory ones up to rounding, so the Dask model's
objective is the in-memory one as a function of θ (checked to 1e-12).  Both paths
shift the response by its least-squares fit before the deviance is computed, and the
optimizer ends with a Newton step from accurate differences, so the optimum too is
reproducible: the estimates and the objective are compared to 1e-8.

Per-row quantities (fitted values, residuals, predictions) and the conditional modes
are compared with the in-memory ones evaluated at the Dask fit's own θ̂ (an
``LmerResult`` of the in-memory model at that θ): given the same θ, β̂ and b̂ come
from crossproducts equal to 1e-12, so they agree to 1e-8 relative.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("dask.distributed")

import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402

import mixedmodels as mm  # noqa: E402
from mixedmodels.inference.bootstrap import bootstrap  # noqa: E402
from mixedmodels.linalg.crossprod import shift_response  # noqa: E402
from mixedmodels.dask.frames import partition_prediction, partition_values  # noqa: E402
from mixedmodels.dask.lmm import DaskLmerResult, is_dask_dataframe, lmer_dask  # noqa: E402
from counted_reads import CountedReads  # noqa: E402

CASES = {
    "sleepstudy": "Reaction ~ Days + (Days | Subject)",
    "Penicillin": "diameter ~ 1 + (1 | plate) + (1 | sample)",  # crossed
    "Pastes": "strength ~ 1 + (1 | batch/cask)",  # nested
}
FIT_RTOL = 1e-8


def _dense(B):
    return B.toarray() if sp.issparse(B) else np.asarray(B)


def _assert_same_crossproducts(a, b):
    """The same blocks, once both responses are shifted alike (each path centres its own y)."""
    a = shift_response(a, b.beta_shift - a.beta_shift)
    scale = np.abs(a.xx).max()
    for x, y in zip(a.diag, b.diag):
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-12 * scale)
    for ra, rb in zip(a.off, b.off):
        for x, y in zip(ra, rb):
            assert sp.issparse(x) == sp.issparse(y)  # the same storage as the in-memory builder's
            np.testing.assert_allclose(_dense(y), _dense(x), rtol=0, atol=1e-12 * scale)
    for x, y in zip(a.xz, b.xz):
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(b.xx, a.xx, rtol=1e-12, atol=1e-12 * scale)


def _assert_same_fit(d: DaskLmerResult, m: mm.LmerResult):
    assert d.nobs == m.nobs
    assert d.objective == pytest.approx(m.objective, rel=1e-12)
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
    with pytest.raises(mm.DataError, match="na_action='exclude' is not supported for Dask"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", ddf, na_action="exclude")
    with pytest.raises(mm.DataError, match="contrasts= is not supported for Dask"):
        mm.glmer("Reaction ~ Days + (1 | Subject)", ddf, family="poisson", contrasts={"Subject": "contr.sum"})


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


# ----- conditional modes and per-row quantities --------------------------------------------

ROW_RTOL = 1e-8


def _at_dask_theta(m: mm.LmerResult, d: DaskLmerResult) -> mm.LmerResult:
    """The in-memory fit evaluated at the Dask fit's θ̂ (engine order in both)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        return mm.LmerResult(m.parsed, m.model, dataclasses.replace(m.optimum, x=d.optimum.x.copy()))


def _assert_same_series(lazy, expected: pd.Series, scale: float, divisions=None):
    assert isinstance(lazy, dd.Series)
    if divisions is not None:
        assert lazy.divisions == divisions
    got = lazy.compute()
    assert got.name == expected.name
    pd.testing.assert_index_equal(got.index, expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=ROW_RTOL, atol=ROW_RTOL * scale)


def _assert_same_modes(d: DaskLmerResult, m: mm.LmerResult):
    for what in ("ranef", "ranef_sd", "coef"):
        expected = getattr(m, what)
        assert list(getattr(d, what)) == list(expected)
        for group, frame in getattr(d, what).items():
            pd.testing.assert_frame_equal(frame, expected[group], rtol=ROW_RTOL, atol=ROW_RTOL * m.sigma)


RE_FORMS = {"sleepstudy": "~(1 | Subject)", "Penicillin": "~(1 | plate)", "Pastes": "~(1 | batch)"}


@pytest.mark.parametrize("name", list(CASES))
def test_modes_fitted_residuals_and_predictions_equal_the_in_memory_ones(client, name):
    df = mm.datasets.load(name)
    ddf = dd.from_pandas(df, npartitions=3)
    d = lmer_dask(CASES[name], ddf)
    m = _at_dask_theta(mm.lmer(CASES[name], df), d)
    _assert_same_modes(d, m)
    scale = float(m.fitted.std())
    _assert_same_series(d.fitted, m.fitted, scale, ddf.divisions)
    _assert_same_series(d.residuals, m.residuals, scale, ddf.divisions)
    _assert_same_series(d.scaled_residuals(), m.scaled_residuals(), 1.0, ddf.divisions)
    for re_form in (None, "~0", RE_FORMS[name]):
        _assert_same_series(d.predict(re_form=re_form), m.predict(re_form=re_form), scale, ddf.divisions)
    newdata = df.sample(frac=0.5, random_state=1).sort_index()
    new_ddf = dd.from_pandas(newdata, npartitions=2)
    for re_form in (None, RE_FORMS[name]):
        _assert_same_series(d.predict(new_ddf, re_form=re_form), m.predict(newdata, re_form=re_form), scale,
                            new_ddf.divisions)
    pd.testing.assert_series_equal(d.predict(newdata), m.predict(newdata), rtol=ROW_RTOL)


def test_rows_with_missing_values_weights_offset_and_new_levels(client):
    """Rows with missing values are left out of fitted/residuals (as rows_used) and give NaN
    predictions; weights scale the residuals; the offset column is needed for newdata."""
    df = mm.datasets.load("sleepstudy").copy()
    df["phase"] = np.where(df.index < 60, "early", np.where(df.index < 150, "mid", "late"))
    df.loc[[3, 100], "Days"] = np.nan
    df["w"] = 1.0 + df.index % 3
    df["off"] = 0.1 * (df.index % 5)
    formula = "Reaction ~ Days + phase + (Days || Subject)"
    ddf = dd.from_pandas(df, npartitions=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.DroppedRowsWarning)
        d = lmer_dask(formula, ddf, weights="w", offset="off")
        m = _at_dask_theta(mm.lmer(formula, df, weights="w", offset="off"), d)
    scale = float(m.fitted.std())
    _assert_same_series(d.fitted, m.fitted, scale, ddf.divisions)
    assert len(d.fitted.compute()) == d.nobs == len(df) - 2
    _assert_same_series(d.residuals, m.residuals, scale)
    _assert_same_series(d.scaled_residuals(), m.scaled_residuals(), 1.0)
    _assert_same_series(d.predict(re_form="~0"), m.predict(re_form="~0"), scale)

    with pytest.raises(mm.DataError, match="offset='off'"):
        d.predict(ddf)
    with pytest.raises(mm.DataError, match="'offz' is not a column of newdata"):
        d.predict(ddf, offset="offz")
    new = df.copy()
    new["Subject"] = new["Subject"].cat.add_categories(["999"])
    new.loc[[7, 8], "Subject"] = "999"  # a subject not seen when fitting
    new_ddf = dd.from_pandas(new, npartitions=3)
    lazy = d.predict(new_ddf, offset="off")  # new levels show up only when the rows are read
    with pytest.raises(mm.DataError, match="Subject.*999"):
        lazy.compute()
    got = d.predict(new_ddf, offset="off", allow_new_levels=True).compute()
    expected = m.predict(new, offset=new["off"].to_numpy(), allow_new_levels=True)
    assert got.isna().sum() == 2 and np.isnan(got[[3, 100]]).all()  # missing Days: NaN, as in memory
    np.testing.assert_allclose(got, expected, rtol=ROW_RTOL, atol=ROW_RTOL * scale)
    assert got[7] == pytest.approx(m.predict(new.loc[[7]], re_form="~0", offset=[new.loc[7, "off"]])[7])
    pd.testing.assert_series_equal(d.predict(new, offset="off", allow_new_levels=True), got)


def test_per_row_quantities_are_lazy(client):
    """Nothing reads the rows until .compute(): fitted, residuals and predictions are Dask Series."""
    df = mm.datasets.load("sleepstudy")
    parts = CountedReads(df, 60)
    ddf = dd.from_map(parts, range(3), meta=df.iloc[:0], divisions=(0, 60, 120, 179))
    d = lmer_dask(CASES["sleepstudy"], ddf)
    # the fit: two passes (levels, crossproducts) and the first rows once more (the response's rough centre)
    assert sorted(parts.reads) == [0, 0, 0, 1, 1, 2, 2]
    parts.reads.clear()
    lazy = [d.fitted, d.residuals, d.scaled_residuals(), d.predict(), d.predict(re_form="~0"),
            d.predict(ddf), d.predict(ddf, re_form="~(1 | Subject)")]
    assert all(isinstance(x, dd.Series) for x in lazy) and parts.reads == []
    assert d.ranef["Subject"].shape == (18, 2) and parts.reads == []  # the modes need no pass either
    fitted, residuals = dask.compute(d.fitted, d.residuals)
    assert sorted(parts.reads) == [0, 1, 2]  # one pass for both: they share the partitions' reads
    np.testing.assert_allclose(fitted + residuals, df["Reaction"], rtol=1e-12)


def test_prediction_errors_name_the_problem(client):
    df = mm.datasets.load("sleepstudy")
    ddf = dd.from_pandas(df, npartitions=2)
    d = lmer_dask(CASES["sleepstudy"], ddf)
    with pytest.raises(mm.DataError, match="Days"):  # at once: no .compute() needed
        d.predict(ddf[["Reaction", "Subject"]])
    with pytest.raises(mm.DataError, match="'Subject'"):
        d.predict(ddf[["Days"]])
    pd.testing.assert_series_equal(d.predict(ddf[["Days"]], re_form="~0").compute(),  # no grouping column needed
                                   d.predict(df[["Days"]], re_form="~0"), check_index_type=False)
    with pytest.raises(mm.FormulaError, match="re_form"):
        d.predict(ddf, re_form="~(1 | Days)")
    with pytest.raises(mm.FormulaError, match="re_form"):
        d.predict(re_form="~(1 | nothing)")
    with pytest.raises(ValueError, match="type"):
        d.predict(ddf, type="terms")
    with pytest.raises(mm.DataError, match="column name"):
        d.predict(ddf, offset=np.zeros(180))
    with pytest.raises(mm.DataError, match="pandas or Dask DataFrame"):
        d.predict(df.to_numpy())


def test_the_row_model_pickles(client):
    """What map_partitions sends to process workers survives pickling and predicts the same."""
    df = mm.datasets.load("Pastes")
    d = lmer_dask(CASES["Pastes"], dd.from_pandas(df, npartitions=2))
    predictor = pickle.loads(pickle.dumps(d.predictor))
    pd.testing.assert_series_equal(partition_values(df, predictor, "fitted", None, d.sigma), d.fitted.compute())
    pd.testing.assert_series_equal(partition_prediction(df, predictor, None, False, None), d.predict(df))
