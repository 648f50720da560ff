"""mm.center: grand-mean and group-mean centring, and the contextual effect they reveal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.errors import DataError


@pytest.fixture(scope="module")
def schools() -> pd.DataFrame:
    """SES whose school means differ; within-school effect 2, between-school effect 5 (contextual 3)."""
    rng = np.random.default_rng(3)
    school = np.repeat(np.arange(40), 25)
    mean_ses = rng.normal(0, 1, 40)
    ses = mean_ses[school] + rng.normal(0, 1, school.size)
    own_mean = pd.Series(ses).groupby(school).transform("mean").to_numpy()
    score = 50 + 2 * (ses - own_mean) + 5 * own_mean + rng.normal(0, 2, 40)[school] + rng.normal(0, 4, school.size)
    return pd.DataFrame({"school": [f"S{k}" for k in school], "ses": ses, "score": score})


def test_group_mean_centring_columns(schools):
    before = schools.copy()
    out = mm.center(schools, "ses", by="school")
    pd.testing.assert_frame_equal(schools, before)  # the caller's frame is untouched
    assert list(out.columns) == ["school", "ses", "score", "ses_within", "ses_between"]
    means = schools.groupby("school")["ses"].mean()
    np.testing.assert_allclose(out["ses_between"], schools["school"].map(means))
    np.testing.assert_allclose(out["ses_within"], schools["ses"] - schools["school"].map(means))
    np.testing.assert_allclose(out.groupby("school")["ses_within"].sum(), 0, atol=1e-12)
    grand = mm.center(schools, "ses", by="school", grand=True)
    np.testing.assert_allclose(grand["ses_between"], out["ses_between"] - schools["ses"].mean())
    np.testing.assert_allclose(grand["ses_within"], out["ses_within"])


def test_grand_mean_centring_and_several_columns(schools):
    out = mm.center(schools, ["ses", "score"])
    np.testing.assert_allclose(out["ses_c"], schools["ses"] - schools["ses"].mean())
    np.testing.assert_allclose(out["score_c"], schools["score"] - schools["score"].mean())
    assert "ses_within" not in out


def test_missing_values_are_skipped_not_filled():
    data = pd.DataFrame({"g": ["a", "a", "a", "b"], "x": [1.0, np.nan, 3.0, 5.0]})
    out = mm.center(data, "x", by="g")
    np.testing.assert_allclose(out["x_between"], [2.0, 2.0, 2.0, 5.0])
    np.testing.assert_allclose(out["x_within"], [-1.0, np.nan, 1.0, 0.0])


def test_contextual_effect_is_between_minus_within(schools):
    """y ~ x_within + x_between and y ~ x + x_between are one model: the second's x_between
    slope is the first's between − within slope, with the same standard error (from V)."""
    data = mm.center(schools, "ses", by="school")
    split = mm.lmer("score ~ ses_within + ses_between + (1 | school)", data)
    contextual = mm.lmer("score ~ ses + ses_between + (1 | school)", data)
    assert contextual.deviance == pytest.approx(split.deviance, rel=1e-9)
    b, V = split.fixef, split.vcov
    L = np.array([0.0, -1.0, 1.0])
    assert contextual.fixef["ses_between"] == pytest.approx(b["ses_between"] - b["ses_within"], rel=1e-6)
    assert contextual.se["ses_between"] == pytest.approx(np.sqrt(L @ V.to_numpy() @ L), rel=1e-5)
    assert contextual.fixef["ses"] == pytest.approx(b["ses_within"], rel=1e-6)
    assert b["ses_within"] == pytest.approx(2, abs=0.3) and contextual.fixef["ses_between"] == pytest.approx(3, abs=1)
    assert contextual.satterthwaite().loc["ses_between", "Pr(>|t|)"] < 1e-3


def test_errors_name_the_column(schools):
    with pytest.raises(DataError, match=r"'sse' is not a column.*'ses'"):
        mm.center(schools, "sse", by="school")
    with pytest.raises(DataError, match="'school' is not numeric"):
        mm.center(schools, "school")
    with pytest.raises(DataError, match="'skool' is not a column"):
        mm.center(schools, "ses", by="skool")
    with pytest.raises(DataError, match=r"already have column\(s\) 'ses_within'"):
        mm.center(mm.center(schools, "ses", by="school"), "ses", by="school")
    gap = schools.assign(school=schools["school"].where(schools.index != 3))
    with pytest.raises(DataError, match="'school' has 1 missing"):
        mm.center(gap, "ses", by="school")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(-1e3, 1e3)), min_size=1, max_size=40))
def test_within_plus_between_is_x_and_within_sums_to_zero(rows):
    data = pd.DataFrame(rows, columns=["g", "x"])
    out = mm.center(data, "x", by="g")
    np.testing.assert_allclose(out["x_within"] + out["x_between"], data["x"], atol=1e-9)
    np.testing.assert_allclose(out.groupby("g")["x_within"].sum(), 0, atol=1e-8)
    assert (out.groupby("g")["x_between"].nunique() == 1).all()
