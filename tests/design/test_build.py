"""Unit tests of the design builder's functions (design/build.py) on small frames."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.design.build import (
    ALIAS_TOLERANCE,
    build_design,
    check_groups,
    complete_cases,
    independent_columns,
    kept_columns,
    missing_columns,
    mixed_formula,
    optional_vector,
    report_dropped,
    used_columns,
    weights_and_offset,
)
from mixedmodels.formula.parse import parse_formula


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "y": [1.0, 2.0, 3.5, 4.0, 5.5, 6.0],
        "x": [0.0, 1.0, 2.0, 0.0, 1.0, np.nan],
        "g": pd.Categorical(["b", "a", "b", "a", "c", "a"], categories=["c", "b", "a", "unused"]),
        "h": ["u", "v", "u", "v", "u", "v"],
        "w": [1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
        "other": range(6),
    })


def test_used_columns_are_the_mentioned_ones_in_data_order(frame):
    parsed = parse_formula("y ~ x + (1 | h:g)")
    assert used_columns(parsed, frame.columns) == ["y", "x", "g", "h"]
    with pytest.raises(mm.DataError, match="'xx' in the formula is not a column of data.*'x'"):
        used_columns(parse_formula("y ~ xx + (1 | g)"), frame.columns)
    with pytest.raises(mm.DataError, match="grouping factor 'gg' is not a column"):
        used_columns(parse_formula("y ~ x + (1 | gg)"), frame.columns)


def test_optional_vector_takes_a_name_or_a_vector(frame):
    np.testing.assert_array_equal(optional_vector("w", frame, "weights"), frame["w"].to_numpy())
    np.testing.assert_array_equal(optional_vector(np.arange(6), frame, "offset"), np.arange(6.0))
    assert optional_vector(None, frame, "weights") is None
    with pytest.raises(mm.DataError, match="weights='ww' is not a column of data"):
        optional_vector("ww", frame, "weights")
    with pytest.raises(mm.DataError, match="offset has length 3, but data has 6 rows"):
        optional_vector([1, 2, 3], frame, "offset")
    with pytest.raises(mm.DataError, match="one-dimensional"):
        optional_vector(np.ones((6, 2)), frame, "weights")


def test_complete_cases_and_the_columns_with_missing_values(frame):
    o = np.array([0.0, np.nan, 0, 0, 0, 0])
    complete = complete_cases(frame, ["y", "x", "g"], None, o)
    np.testing.assert_array_equal(complete, [True, False, True, True, True, False])
    assert missing_columns(frame, ["y", "x", "g"], None, o) == ["x", "offset"]


def test_report_dropped_orders_the_columns_as_the_data(frame):
    with pytest.warns(mm.DroppedRowsWarning, match=r"2 of 6 rows have missing values \(in 'x', 'offset'\)"):
        report_dropped(2, 6, {"offset", "x"}, ["y", "x"])
    with pytest.raises(mm.DataError, match="no complete rows: every row has a missing value in one of 'y', 'x'"):
        report_dropped(6, 6, {"x"}, ["y", "x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report_dropped(0, 6, (), ["y"])


def test_weights_and_offset_checks_trials_and_formula_offsets(frame):
    parsed = parse_formula("y ~ x + offset(np.log(w)) + (1 | g)")
    w, o = weights_and_offset(parsed, frame, np.full(6, 2.0), np.ones(6), np.arange(1.0, 7.0))
    np.testing.assert_allclose(w, 2.0 * np.arange(1, 7))
    np.testing.assert_allclose(o, 1.0 + np.log(frame["w"]))
    for bad in (np.r_[0.0, np.ones(5)], np.r_[np.inf, np.ones(5)]):
        with pytest.raises(mm.DataError, match="weights must be finite and positive"):
            weights_and_offset(parsed, frame, bad, None, None)
    with pytest.raises(mm.DataError, match="offset must be finite"):
        weights_and_offset(parsed, frame, None, np.r_[np.inf, np.ones(5)], None)


def test_mixed_formula_needs_a_response_and_a_random_term():
    assert mixed_formula("lmer", "y ~ x + (1 | g)", safe=True).response == "y"
    with pytest.raises(mm.FormulaError, match="lmer needs at least one random-effects term"):
        mixed_formula("lmer", "y ~ x", safe=False)
    with pytest.raises(mm.FormulaError, match="no response"):
        mixed_formula("glmer", "~ x + (1 | g)", safe=False)


def test_independent_columns_drops_linear_combinations_of_earlier_ones():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 3))
    X = np.column_stack([X, X[:, 0] - 2 * X[:, 2], np.zeros(50), rng.standard_normal(50) * 1e-3])
    with pytest.warns(mm.RankDeficiencyWarning, match="dropping aliased column\\(s\\) 'd', 'e'"):
        assert kept_columns(X.T @ X, ("a", "b", "c", "d", "e", "f")) == (0, 1, 2, 5)


def test_the_alias_tolerance_is_relative_to_the_column():
    x = np.linspace(0, 1, 20)
    base = np.column_stack([np.ones(20), x])
    for eps, kept in ((1e-4, (0, 1, 2)), (ALIAS_TOLERANCE / 10, (0, 1))):
        X = np.column_stack([base, 1 + x + eps * np.sin(7 * x)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mm.RankDeficiencyWarning)
            assert tuple(independent_columns(X.T @ X)) == kept


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 3), st.floats(1e-3, 1e3))
def test_independent_columns_is_invariant_to_column_scale(k, copies, scale):
    """Whatever the scale of a column, full-rank columns are kept and copies dropped."""
    rng = np.random.default_rng(k * 10 + copies)
    X = rng.standard_normal((40, k))
    X = np.column_stack([X * scale] + [X[:, :1] * (j + 2) for j in range(copies)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.RankDeficiencyWarning)
        assert independent_columns(X.T @ X) == list(range(k))


def test_check_groups_messages(frame):
    design = build_design(parse_formula("y ~ x + (1 | h)"), frame.dropna())
    check_groups(design.reterms, design.n, lmm=False)
    with pytest.raises(mm.DataError, match=r"the term \(1 \| h\) has 2 random effects for 2 observations"):
        check_groups(design.reterms, 2)
    one = build_design(parse_formula("y ~ x + (1 | h)"), frame.iloc[[0, 2]])
    with pytest.raises(mm.DataError, match="grouping factor 'h' has 1 level"):
        check_groups(one.reterms, one.n)


def test_build_design_codes_levels_as_r(frame):
    with pytest.warns(mm.DroppedRowsWarning, match=r"1 of 6 rows .* \(in 'x'\)"):
        design = build_design(parse_formula("y ~ x + h + (x | g) + (1 | h:g)"), frame, weights="w")
    assert design.n == 5 and design.n_dropped == 1 and list(design.rows) == [0, 1, 2, 3, 4]
    assert design.xnames == ("(Intercept)", "x", "hv")
    g = next(t for t in design.reterms if t.group == "g")
    assert list(g.levels) == ["c", "b", "a"]  # the categorical's order, unused levels dropped
    np.testing.assert_array_equal(g.codes, [1, 2, 1, 2, 0])
    np.testing.assert_array_equal(g.matrix, np.column_stack([np.ones(5), frame["x"][:5]]))
    hg = next(t for t in design.reterms if t.group == "h:g")
    assert list(hg.levels) == ["u:c", "u:b", "v:a"]  # combinations present, first factor slowest
    np.testing.assert_array_equal(hg.codes, [1, 2, 1, 2, 0])
    np.testing.assert_array_equal(design.weights, frame["w"][:5])
    assert design.spec.used == ("y", "x", "g", "h") and design.spec.weights == "w"
    assert design.frame is not None and list(design.frame.columns) == ["y", "x", "g", "h"]
    assert frame["g"].cat.categories.tolist() == ["c", "b", "a", "unused"]  # the caller's frame untouched


def test_build_design_binomial_responses(frame):
    data = frame.dropna().assign(s=[1, 0, 2, 1, 3], f=[2, 1, 0, 1, 1], yes=pd.Categorical(list("nynyn")))
    design = build_design(parse_formula("cbind(s, f) ~ x + (1 | h)"), data, weights="w", binomial=True)
    np.testing.assert_allclose(design.y, [1 / 3, 0, 1, 0.5, 0.75])
    np.testing.assert_allclose(design.weights, [3, 2, 2, 4, 4])  # w × trials
    design = build_design(parse_formula("yes ~ x + (1 | h)"), data, binomial=True)
    np.testing.assert_array_equal(design.y, [0, 1, 0, 1, 0])  # the second level is a success
    with pytest.raises(mm.DataError, match="cbind.*need glmer"):
        build_design(parse_formula("cbind(s, f) ~ x + (1 | h)"), data)
    with pytest.raises(mm.DataError, match="'g' is a factor with 3 levels"):
        build_design(parse_formula("g ~ x + (1 | h)"), data, binomial=True)


def test_factor_levels_and_codes_follow_the_given_order_not_the_columns():
    """Unordered categorical dtypes with the same categories in another order compare equal:
    the levels and codes must still be those of the given order (the fast paths read codes)."""
    from mixedmodels.design.spec import Factor

    column = pd.Series(pd.Categorical(["b", "a", "b", None], categories=["b", "a", "c"]))
    wanted = pd.CategoricalDtype(["c", "a", "b"])
    assert column.dtype == wanted  # the trap
    factor = Factor.of(column, wanted)
    assert list(factor.levels) == ["a", "b"]  # the given order, unused "c" and the missing value left out
    np.testing.assert_array_equal(factor.codes(column.dropna(), "f"), [1, 0, 1])
    own = Factor.of(column, column.dtype)
    assert list(own.levels) == ["b", "a"]
    np.testing.assert_array_equal(own.codes(column.dropna(), "f"), [0, 1, 0])


def test_design_size_is_bounded_from_the_levels():
    from mixedmodels.design.size import available_memory, check_design_size

    check_design_size("x + f", "y ~ x + f", 1000, {"f": 10})
    rows = available_memory() // (8 * 3 * 1001) + 1  # intercept, x and 999 columns of f: more than the memory
    with pytest.raises(mm.DataError, match="up to 1,001 columns.*the factor 'f' has 1,000 levels"):
        check_design_size("x + f", "y ~ x + f", rows, {"f": 1000})


def test_single_level_factor_is_named(frame):
    data = frame.assign(h="u")
    with pytest.raises(mm.DataError, match="the factor 'h' has a single level \\('u'\\)"):
        build_design(parse_formula("y ~ x + h + (1 | g)"), data)
    build_design(parse_formula("y ~ x + (1 | g)"), data)  # unused in the formula: no error


def test_checked_formulas_are_kept_per_text_and_allow_list():
    from mixedmodels.formula.safety import DEFAULT_ALLOWED, check_formula

    first = check_formula("y ~ log(x) + (1 | g)")
    assert check_formula("y ~ log(x) + (1 | g)") is first and first.checked
    with pytest.raises(mm.FormulaError):
        check_formula("y ~ log(x) + (1 | g)", allowed=set(DEFAULT_ALLOWED - {"log"}))
    with pytest.raises(mm.FormulaError):  # an unsafe formula is refused every time, never kept
        check_formula("y ~ I(__import__('os')) + (1 | g)")
    with pytest.raises(mm.FormulaError):
        check_formula("y ~ I(__import__('os')) + (1 | g)")
