"""glmer on Dask data frames: PIRLS over persisted partitions equals the in-memory fit.

Each PIRLS pass adds up the partitions' sums, which equal the in-memory sums up to
rounding.  Stage 2 of a Laplace fit takes L-BFGS-B with the deviance's analytic gradient
on both (on Dask two more passes per evaluation: engine/laplace_gradient.py), the
standard errors central differences of that gradient: objectives, θ, β and the SEs
agree to 1e-8 relative (measured: 5e-11 for β on the Poisson model, SEs 7e-12).  The
crossed model is fitted with nAGQ = 0 (β inside PIRLS, conditional SEs; agreement 1e-11) to keep the tests fast: a Laplace
fit of it takes ~250 passes, each a scheduler round trip (benchmarks/dask_glmm.py
measures it: θ 1e-15, β 7e-14, SEs 1e-11).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("dask.distributed")

import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402

import mixedmodels as mm  # noqa: E402
from mixedmodels.linalg.crossprod import Crossproducts  # noqa: E402
from mixedmodels.linalg.crossprod import add_crossproducts  # noqa: E402
from mixedmodels.dask.glmm import DaskGlmerResult, _check_rows, glmer_dask  # noqa: E402
from mixedmodels.engine.families import Binomial, Poisson  # noqa: E402
from counted_reads import CountedReads  # noqa: E402
from reference import load_fixture_data  # noqa: E402

RTOL = 1e-8
SE_RTOL = 1e-6  # conditional SEs of nAGQ = 0 with a dispersion


def _cbpp() -> pd.DataFrame:
    d = mm.datasets.load("cbpp")
    d["prop"] = d["incidence"] / d["size"]
    return d


def _mmmec() -> pd.DataFrame:
    d = load_fixture_data("Mmmec")
    d.loc[[5, 200], "uvb"] = np.nan  # rows left out alike
    return d


def _verbagg() -> pd.DataFrame:
    d = mm.datasets.load("VerbAgg")
    d = d[d["id"].isin(d["id"].cat.categories[:200])].copy()
    d["id"] = d["id"].cat.remove_unused_categories()
    return d


CASES = {  # data, formula, glmer arguments, partitions
    "cbpp": (_cbpp, "prop ~ period + (1 | herd)", {"family": "binomial", "weights": "size"}, 3),
    "poisson": (_mmmec, "deaths ~ uvb + (1 | region)", {"family": "poisson", "offset": "logexp"}, 3),
    "crossed": (_verbagg, "r2 ~ Anger + Gender + btype + (1 | id) + (1 | item)", {"family": "binomial", "nAGQ": 0}, 4),
}


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.DroppedRowsWarning)
        return f(*args, **kwargs)


_FITS: dict[str, tuple[DaskGlmerResult, mm.GlmerResult]] = {}
_CBPP_PARTS: dict[str, CountedReads] = {}  # cbpp's partitions, which count their reads


def fits(name: str) -> tuple[DaskGlmerResult, mm.GlmerResult]:
    """The Dask fit (cbpp from partitions that count their reads) and the in-memory fit, once each."""
    if name not in _FITS:
        load, formula, args, k = CASES[name]
        df = load()
        if name == "cbpp":
            ddf = dd.from_map(_CBPP_PARTS.setdefault("parts", CountedReads(df, 20)), range(k), meta=df.iloc[:0],
                              divisions=(0, 20, 40, 55))
        else:
            ddf = dd.from_pandas(df, npartitions=k)
        _FITS[name] = (_quiet(mm.glmer, formula, ddf, **args), _quiet(mm.glmer, formula, df, **args))
    return _FITS[name]


def _close(got, expected, rtol: float, atol: float = 0.0):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", list(CASES))
def test_dask_fit_equals_the_in_memory_fit(client, name):
    d, m = fits(name)
    assert isinstance(d, DaskGlmerResult)
    assert (d.nobs, d.n_dropped, d.ngroups, d.theta_names) == (m.nobs, m.n_dropped, m.ngroups, m.theta_names)
    assert d.objective == pytest.approx(m.objective, rel=RTOL)
    _close(d.theta, m.theta, RTOL)
    _close(d.fixef, m.fixef, RTOL, atol=RTOL)
    pd.testing.assert_index_equal(d.fixef.index, m.fixef.index)
    _close(d.se, m.se, RTOL)
    table = d.coefficients()
    pd.testing.assert_index_equal(table.columns, m.coefficients().columns)
    pd.testing.assert_frame_equal(table.iloc[:, :3], m.coefficients().iloc[:, :3], rtol=RTOL)
    for what in ("deviance", "loglik", "aic", "bic", "sigma", "df"):
        assert getattr(d, what) == pytest.approx(getattr(m, what), rel=RTOL), what
    pd.testing.assert_frame_equal(d.varcorr, m.varcorr, rtol=2 * RTOL)  # variances: twice θ's
    assert d.method == m.method and d.is_singular() == m.is_singular()


def test_partitions_are_read_twice_and_the_passes_use_the_persisted_rows(client):
    """Levels, then the rows persisted on the workers: PIRLS's passes never read the data again."""
    d, _ = fits("cbpp")
    assert sorted(_CBPP_PARTS["parts"].reads) == [0, 0, 1, 1, 2, 2]
    assert d.optimum.nfev > 10


def test_crossproduct_sums_keep_the_in_memory_pattern():
    """Sparse sums keep explicit zeros, so the summed pattern is the one over all rows."""
    zero = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 1, 2])), shape=(2, 2))
    part = Crossproducts(diag=(np.ones((2, 1, 1)), np.ones((2, 1, 1))), off=((), (zero,)),
                         xz=(np.ones((1, 2)), np.ones((1, 2))), xx=np.ones((1, 1)))
    total = add_crossproducts([part, part])
    assert total.off[1][0].nnz == 2 and total.off[1][0].toarray().tolist() == [[0.0, 0.0], [0.0, 2.0]]
    assert total.xx.tolist() == [[2.0]] and total.diag[0].sum() == 4.0


# ----- the Laplace gradient over partitions -----------------------------------------------

def _gamma_log() -> pd.DataFrame:
    """Two grouping factors, a slope and prior weights under a Gamma log link: a dispersion and a
    non-canonical link (the observed information's factor) in the gradient."""
    rng = np.random.default_rng(7)
    g, h = rng.integers(0, 10, 150), rng.integers(0, 5, 150)
    x = rng.uniform(-1, 1, 150)
    mu = np.exp(0.5 + 0.3 * x + rng.normal(0, 0.4, 10)[g] + rng.normal(0, 0.2, 10)[g] * x + rng.normal(0, 0.3, 5)[h])
    return pd.DataFrame({"y": rng.gamma(3.0, mu / 3.0), "x": x, "g": pd.Categorical(g), "h": pd.Categorical(h),
                         "w": rng.integers(1, 4, 150).astype(float)})


GRADIENT_CASES = {  # data, formula, family, weights, offset
    "cbpp": (_cbpp, "prop ~ period + (1 | herd)", "binomial", "size", None),
    "poisson": (_mmmec, "deaths ~ uvb + (1 | region)", "poisson", None, "logexp"),
    "gamma_log": (_gamma_log, "y ~ x + (x | g) + (1 | h)", mm.families.Gamma("log"), "w", None),
}


def _models(name: str):
    """The Dask model and the in-memory one of a gradient case."""
    load, formula, family, weights, offset = GRADIENT_CASES[name]
    df = load()
    args = {"family": family, "weights": weights, "offset": offset, "maxeval": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        d = mm.glmer(formula, dd.from_pandas(df, npartitions=3), **args)
        m = mm.glmer(formula, df, **args)
    return d.model, m.model, m.optimum.x


@pytest.mark.parametrize("name", list(GRADIENT_CASES))
def test_the_dask_gradient_equals_the_in_memory_one(client, name):
    """Two passes over the partitions give the in-memory gradient, at the same (θ, β) and modes."""
    dask_model, model, x = _models(name)
    assert dask_model.has_gradient and model.has_gradient
    k = model.ntheta
    theta, beta = x[:k] * 1.2 + 0.05, x[k:] + 0.1  # away from the optimum: a gradient to compare
    start = model.pirls(theta, beta).start
    expected = model.gradient_from_modes(theta, model.pirls(theta, beta, start))
    got = dask_model.gradient_from_modes(theta, dask_model.pirls(theta, beta, start))
    _close(got, expected, RTOL, atol=RTOL * np.abs(expected).max())
    if name == "gamma_log":  # and central differences of the Dask deviance
        h = 1e-5 * np.maximum(np.abs(np.concatenate([theta, beta])), 1.0)
        numeric = []
        for i, hi in enumerate(h):
            e = np.zeros(len(h))
            e[i] = hi
            up, down = np.concatenate([theta, beta]) + e, np.concatenate([theta, beta]) - e
            numeric.append((dask_model.deviance(up[:k], up[k:], start) - dask_model.deviance(down[:k], down[k:], start))
                           / (2 * hi))
        _close(got, numeric, 1e-5, atol=1e-5 * np.abs(numeric).max())


# ----- conditional modes and per-row quantities --------------------------------------------

def _at_dask_optimum(m: mm.GlmerResult, d: DaskGlmerResult) -> mm.GlmerResult:
    """The in-memory fit evaluated at the Dask fit's (θ̂, β̂): the same modes up to PIRLS's tolerance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        return mm.GlmerResult(m.parsed, m.model, dataclasses.replace(m.optimum, x=d.optimum.x.copy()))


def test_modes_fitted_values_and_predictions_equal_the_in_memory_ones(client):
    d, m = fits("poisson")
    m = _at_dask_optimum(m, d)
    for what in ("ranef", "ranef_sd", "coef"):
        for group, frame in getattr(d, what).items():
            pd.testing.assert_frame_equal(frame, getattr(m, what)[group], rtol=1e-7, atol=1e-9)
    fitted, eta = dask.compute(d.fitted, d.linear_predictor)
    pd.testing.assert_series_equal(fitted, m.fitted, rtol=1e-8)
    pd.testing.assert_series_equal(eta, m.linear_predictor, rtol=1e-8)
    assert isinstance(d.predict(), dd.Series)
    df = _mmmec()
    for type in ("response", "link"):
        for re_form in (None, "~0"):
            pd.testing.assert_series_equal(d.predict(type=type, re_form=re_form).compute(),
                                           m.predict(type=type, re_form=re_form), rtol=1e-8)
        new = df.iloc[100:160]
        pd.testing.assert_series_equal(d.predict(new, type=type, offset="logexp"),
                                       m.predict(new, type=type, offset=new["logexp"]), rtol=1e-8)
        got = d.predict(dd.from_pandas(new, npartitions=2), type=type, offset="logexp").compute()
        pd.testing.assert_series_equal(got, m.predict(new, type=type, offset=new["logexp"]), rtol=1e-8)


def test_residuals_are_lazy_and_equal_the_in_memory_ones(client):
    d, m = fits("poisson")
    m = _at_dask_optimum(m, d)
    for type in ("deviance", "pearson", "response", "working"):
        got = d.residuals_of(type)
        assert isinstance(got, dd.Series)
        pd.testing.assert_series_equal(got.compute(), m.residuals_of(type), rtol=1e-8, atol=1e-12)
    pd.testing.assert_series_equal(d.residuals.compute(), m.residuals, rtol=1e-8, atol=1e-12)
    pd.testing.assert_series_equal(d.scaled_residuals().compute(), m.scaled_residuals(), rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="type must be 'deviance'"):
        d.residuals_of("raw")


def test_per_row_values_of_a_cbind_response(client):
    """The binomial response forms are read per partition as in the fit (they failed before)."""
    df = mm.datasets.load("cbpp").assign(fail=lambda f: f["size"] - f["incidence"])
    formula, args = "cbind(incidence, fail) ~ period + (1 | herd)", {"family": "binomial", "nAGQ": 0}
    d = mm.glmer(formula, dd.from_pandas(df, npartitions=3), **args)
    m = _at_dask_optimum(mm.glmer(formula, df, **args), d)
    fitted, pearson = dask.compute(d.fitted, d.residuals_of("pearson"))
    pd.testing.assert_series_equal(fitted, m.fitted, rtol=1e-8)
    pd.testing.assert_series_equal(pearson, m.residuals_of("pearson"), rtol=1e-8, atol=1e-12)


def test_residuals_of_a_factor_response_use_the_datas_levels(client):
    """Sorted by the response, each partition holds one level; 'yes' is a success throughout."""
    rng = np.random.default_rng(5)
    g = rng.integers(0, 30, 300)
    x = rng.normal(size=300)
    yes = rng.random(300) < 1 / (1 + np.exp(-(0.3 + x + rng.normal(size=30)[g])))
    df = pd.DataFrame({"x": x, "g": pd.Categorical(g), "r": pd.Categorical(np.where(yes, "yes", "no"))})
    df = df.sort_values("r", kind="stable")
    df.loc[df.index[5], "r"] = np.nan  # a missing response stays left out
    args = {"family": "binomial", "nAGQ": 0}
    d = _quiet(mm.glmer, "r ~ x + (1 | g)", dd.from_pandas(df, npartitions=3, sort=False), **args)
    m = _at_dask_optimum(_quiet(mm.glmer, "r ~ x + (1 | g)", df, **args), d)
    got = d.residuals_of("response").compute()
    pd.testing.assert_series_equal(got, m.residuals_of("response"), rtol=1e-8, atol=1e-12)
    assert len(got) == 299


# ----- what Dask fits do not support, and the checks of the response ------------------------

def test_unsupported_options_are_clear_errors(client):
    ddf = dd.from_pandas(_cbpp(), npartitions=2)
    with pytest.raises(mm.FamilyError, match="nAGQ = 3"):
        mm.glmer("prop ~ period + (1 | herd)", ddf, weights="size", nAGQ=3)
    with pytest.raises(mm.DataError, match="weights must be a column name"):
        mm.glmer("prop ~ period + (1 | herd)", ddf, weights=np.ones(56))
    with pytest.raises(mm.DataError, match="offset='nothing' is not a column"):
        mm.glmer("incidence ~ period + (1 | herd)", ddf, family="poisson", offset="nothing")
    with pytest.raises(mm.FormulaError, match="stateful"):
        mm.glmer("prop ~ scale(size) + (1 | herd)", ddf, weights="size")
    with pytest.raises(mm.FormulaError, match="glmer needs at least one random-effects term"):
        mm.glmer("prop ~ period", ddf, weights="size")
    with pytest.raises(mm.DataError, match="glmer_nb is not available for Dask DataFrames"):
        mm.glmer_nb("incidence ~ period + (1 | herd)", ddf)


def test_the_response_is_checked_as_a_whole(client):
    df = _cbpp()
    df["none"] = 0.0
    df["three"] = pd.Categorical(np.arange(56) % 3)
    ddf = dd.from_pandas(df, npartitions=3)
    with pytest.raises(mm.FamilyError, match="every binomial response is 0"):
        glmer_dask("none ~ period + (1 | herd)", ddf)
    with pytest.raises(mm.FamilyError, match="whole numbers of successes"):
        glmer_dask("prop ~ period + (1 | herd)", ddf)  # proportions without their trials
    with pytest.raises(mm.DataError, match="factor with 3 levels"):
        glmer_dask("three ~ period + (1 | herd)", ddf)
    with pytest.raises(mm.FamilyError, match="non-negative"):
        glmer_dask("I(-incidence) ~ period + (1 | herd)", ddf, family="poisson")
    # a partition of equal responses is fine when the data are not
    _check_rows(Binomial(), np.zeros(4), np.ones(4))
    _check_rows(Binomial(), np.ones(4), np.ones(4))
    _check_rows(Poisson(), np.zeros(4), np.ones(4))
    with pytest.raises(mm.FamilyError, match="whole-number counts"):
        _check_rows(Poisson(), np.full(4, 0.5), np.ones(4))


def test_nagq_zero_and_a_family_with_a_dispersion(client):
    """nAGQ = 0 (β inside PIRLS; conditional vcov) with a Gamma family, whose −2 log-likelihood
    needs φ̂ and one more pass per evaluation."""
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(12), 10)
    x = rng.uniform(-1, 1, size=g.size)
    mu = 1 / (1.0 + 0.2 * x + rng.normal(scale=0.1, size=12)[g])
    df = pd.DataFrame({"y": rng.gamma(4.0, mu / 4.0), "x": x, "g": pd.Categorical(g)})
    args = dict(family="Gamma", nAGQ=0)  # the canonical link: PIRLS needs half the passes of the log link
    d = mm.glmer("y ~ x + (1 | g)", dd.from_pandas(df, npartitions=3), **args)
    m = mm.glmer("y ~ x + (1 | g)", df, **args)
    assert d.objective == pytest.approx(m.objective, rel=RTOL)
    _close(d.theta, m.theta, RTOL)
    _close(d.fixef, m.fixef, RTOL)
    assert d.sigma == pytest.approx(m.sigma, rel=RTOL)
    _close(d.se, m.se, SE_RTOL)
    pd.testing.assert_frame_equal(d.varcorr, m.varcorr, rtol=1e-7)
