"""The pandas and Dask backends of the design builder give the same spec and the same errors.

The Dask spec (``dask.frames.plan_spec``) comes from one pass over the partitions and a
few prototype rows; the pandas spec (``build_design``) from the whole frame.  Both must
agree on every column name, level, term (in the canonical order), lme4's report order,
weights and offset, and a partition's rows built with the Dask spec must equal the
in-memory design's rows.  Run on Dask's synchronous scheduler: no cluster needed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")

import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402

import mixedmodels as mm  # noqa: E402
from mixedmodels.design.build import build_design, check_groups, model_rows  # noqa: E402
from mixedmodels.dask.frames import kept_spec, model_columns, plan_spec, read_partition  # noqa: E402
from mixedmodels.formula.parse import parse_formula  # noqa: E402


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def _data() -> pd.DataFrame:
    df = mm.datasets.load("sleepstudy").copy()
    df["phase"] = np.where(df.index < 60, "early", np.where(df.index < 150, "mid", "late"))  # levels absent per part
    df["ordered"] = pd.Categorical(df["Days"] % 3, categories=[2, 0, 1], ordered=True)
    df["x2"] = 2 * df["Days"]  # aliased with Days
    df["site"] = np.where(df.index % 2 == 0, "s1", "s2")
    df["w"] = 1.0 + df.index % 3
    df["off"] = 0.1 * (df.index % 5)
    df.loc[[3, 100], "Days"] = np.nan
    return df


FORMULA = "Reaction ~ Days + phase + ordered + x2 + (Days || Subject) + (1 | site) + (1 | Subject:site)"


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        return f(*args, **kwargs)


def _dask_spec(formula: str, ddf, weights=None, offset=None, binomial=False):
    columns = model_columns("lmer", formula, ddf, weights, offset, safe=False)
    parsed, used, sub = columns.parsed, columns.used, columns.frame
    spec = plan_spec(parsed, sub, used, weights, offset, binomial, dask)
    reads = [read_partition(part, spec) for part in sub.to_delayed() for part in [part.compute()]]
    n = sum(len(r.frame) for r in reads)
    rows = [model_rows(spec, r.frame, r.weights, r.offset, binomial) for r in reads if len(r.frame)]
    xx = sum(r.X.T @ r.X for r in rows)
    spec = kept_spec(spec, n, sum(r.n_dropped for r in reads), set().union(*(r.missing for r in reads)), xx)
    return spec, rows


def test_both_backends_give_the_same_spec_and_rows():
    df = _data()
    design = _quiet(build_design, parse_formula(FORMULA), df, weights="w", offset="off")
    spec, rows = _quiet(_dask_spec, FORMULA, dd.from_pandas(df, npartitions=4), "w", "off")
    mine = design.spec
    assert spec.xnames == mine.xnames and spec.kept == mine.kept and spec.dropped == ("x2",)
    assert spec.used == mine.used and (spec.weights, spec.offset) == (mine.weights, mine.offset) == ("w", "off")
    assert spec.factors.keys() == mine.factors.keys() == {"Subject", "phase", "ordered", "site"}
    for name, factor in mine.factors.items():
        assert list(spec.factors[name].levels) == list(factor.levels)  # Dask's strings are of its own dtype
        assert spec.factors[name].ordered == factor.ordered
    assert [(t.group, t.columns, t.bar) for t in spec.terms] == [(t.group, t.columns, t.bar) for t in mine.terms]
    for a, b in zip(spec.terms, mine.terms):
        pd.testing.assert_index_equal(a.grouping.labels, b.grouping.labels)
    assert spec.report_order == mine.report_order
    # the rows: the partitions' numbers stacked are the in-memory design's
    np.testing.assert_array_equal(np.concatenate([r.y for r in rows]), design.y)
    np.testing.assert_array_equal(np.vstack([r.X for r in rows])[:, list(spec.kept)], design.X)
    np.testing.assert_array_equal(np.concatenate([r.weights for r in rows]), design.weights)
    np.testing.assert_array_equal(np.concatenate([r.offset for r in rows]), design.offset)
    for k, term in enumerate(design.reterms):
        np.testing.assert_array_equal(np.concatenate([r.terms[k].codes for r in rows]), term.codes)
        np.testing.assert_array_equal(np.vstack([r.terms[k].matrix for r in rows]), term.matrix)


def test_the_canonical_order_and_lme4s_report_order():
    """Terms are held by decreasing ℓᵢpᵢ (the engine's order); lme4 reports them by decreasing
    number of levels, ties in formula order, and θ follows lme4's order."""
    df = _data().dropna()
    design = build_design(parse_formula("Reaction ~ Days + (1 | site) + (Days | Subject) + (1 | Subject:site)"), df)
    assert [(t.group, t.q) for t in design.spec.terms] == [("Subject", 36), ("Subject:site", 36), ("site", 2)]
    assert [design.spec.terms[k].group for k in design.spec.report_order] == ["Subject:site", "Subject", "site"]
    fit = mm.lmer("Reaction ~ Days + (1 | site) + (Days | Subject)", df)
    assert [t.group for t in fit.model.terms] == ["Subject", "site"]
    assert fit.theta_names == ["Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days", "site.(Intercept)"]
    tie = build_design(parse_formula("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"), df)
    assert [t.columns for t in tie.reterms] == [("(Intercept)",), ("Days",)]  # ties keep the formula order
    assert tie.spec.report_order == (0, 1)


def _message(excinfo) -> str:
    return str(excinfo.value)


@pytest.mark.parametrize("formula, kwargs, match", [
    ("Reaction ~ Dayz + (1 | Subject)", {}, "'Dayz' in the formula is not a column of data"),
    ("Reaction ~ Days + (1 | Subjet)", {}, "grouping factor 'Subjet' is not a column of data"),
    ("Reaction ~ Days + (1 | Subject)", {"weights": "ww"}, "weights='ww' is not a column of data"),
    ("Reaction ~ Days + (1 | one)", {}, "grouping factor 'one' has 1 level"),
    ("Reaction ~ Days + (1 | Subject)", {"weights": "neg"}, "weights must be finite and positive"),
    ("Reaction ~ Days + (1 | Subject)", {"offset": "inf"}, "offset must be finite"),
    ("Reaction ~ Days + (1 | row)", {}, "has 180 random effects for 180 observations"),
    ("phase ~ Days + (1 | Subject)", {}, "the response 'phase' must be numeric"),
    ("Reaction ~ Days", {}, "lmer needs at least one random-effects term"),
])
def test_the_same_bad_input_gives_the_same_error(formula, kwargs, match):
    df = mm.datasets.load("sleepstudy").copy()
    df["one"] = "a"
    df["neg"] = np.where(df.index == 7, -1.0, 1.0)
    df["inf"] = np.where(df.index == 7, np.inf, 0.0)
    df["row"] = df.index
    df["phase"] = np.where(df.index < 90, "early", "late")
    with pytest.raises(mm.DataError if "random-effects term" not in match else mm.FormulaError) as pandas_error:
        mm.lmer(formula, df, **kwargs)
    with pytest.raises(type(pandas_error.value)) as dask_error:
        mm.lmer(formula, dd.from_pandas(df, npartitions=3), **kwargs)
    assert match in _message(pandas_error)
    assert _message(dask_error) == _message(pandas_error)


def test_no_complete_rows_is_the_same_error():
    df = mm.datasets.load("sleepstudy").copy()
    df["Days"] = np.nan
    with pytest.raises(mm.DataError) as pandas_error:
        mm.lmer("Reaction ~ Days + (1 | Subject)", df)
    with pytest.raises(mm.DataError) as dask_error:
        mm.lmer("Reaction ~ Days + (1 | Subject)", dd.from_pandas(df, npartitions=3))
    assert _message(dask_error) == _message(pandas_error)
    assert "no complete rows" in _message(pandas_error)


def test_check_groups_reads_specs_and_terms_alike():
    df = mm.datasets.load("sleepstudy")
    design = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), df)
    check_groups(design.spec.terms, design.n)
    with pytest.raises(mm.DataError) as on_spec:
        check_groups(design.spec.terms, 30)
    with pytest.raises(mm.DataError) as on_terms:
        check_groups(design.reterms, 30)
    assert _message(on_spec) == _message(on_terms)
