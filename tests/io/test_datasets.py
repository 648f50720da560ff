"""Tests for mixedmodels.io.datasets."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from mixedmodels import datasets

EXPECTED_ROWS = {
    "sleepstudy": 180,
    "Dyestuff": 30,
    "Dyestuff2": 30,
    "Penicillin": 144,
    "Pastes": 60,
    "cbpp": 56,
    "InstEval": 73421,
    "VerbAgg": 7584,
    "Hsb82": 7185,
    "egsingle": 7230,
    "Contraception": 1934,
}

EXPECTED_COLUMNS = {
    "sleepstudy": ["Reaction", "Days", "Subject"],
    "Dyestuff": ["Batch", "Yield"],
    "Dyestuff2": ["Batch", "Yield"],
    "Penicillin": ["diameter", "plate", "sample"],
    "Pastes": ["strength", "batch", "cask", "sample"],
    "cbpp": ["herd", "incidence", "size", "period"],
    "InstEval": ["s", "d", "studage", "lectage", "service", "dept", "y"],
    "VerbAgg": ["Anger", "Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"],
    "Hsb82": ["school", "minrty", "sx", "ses", "mAch", "meanses", "sector", "cses"],
    "egsingle": ["schoolid", "childid", "year", "grade", "math", "female", "black", "hispanic", "size", "lowinc",
                 "mobility"],
    "Contraception": ["district", "use", "livch", "age", "urban"],
}


def _schema(name: str) -> dict:
    path = resources.files("mixedmodels.io.datasets").joinpath("data", f"{name}.schema.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_available_lists_all_datasets():
    assert sorted(datasets.available()) == sorted(EXPECTED_ROWS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_shape_and_columns(name):
    df = datasets.load(name)
    assert isinstance(df, pd.DataFrame)
    assert len(df) == EXPECTED_ROWS[name]
    assert list(df.columns) == EXPECTED_COLUMNS[name]
    assert isinstance(df.index, pd.RangeIndex)
    assert not df.isna().any().any()


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_dtypes_and_levels_follow_schema(name):
    df = datasets.load(name)
    schema = _schema(name)
    assert list(schema) == list(df.columns)
    for col, spec in schema.items():
        s = df[col]
        if spec["type"] == "factor":
            assert isinstance(s.dtype, pd.CategoricalDtype), col
            assert list(s.cat.categories) == spec["levels"], col
            assert all(isinstance(c, str) for c in s.cat.categories), col
            assert s.cat.ordered is bool(spec["ordered"]), col
        elif spec["type"] == "integer":
            assert s.dtype == np.int64, col
        elif spec["type"] == "numeric":
            assert s.dtype == np.float64, col
        else:  # pragma: no cover - schema sanity
            pytest.fail(f"unexpected schema type {spec['type']!r}")


def test_name_is_case_insensitive():
    a = datasets.load("dyestuff")
    b = datasets.load("Dyestuff")
    c = datasets.load("DYESTUFF")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    pd.testing.assert_frame_equal(datasets.load("SleepStudy"), datasets.load("sleepstudy"))
    pd.testing.assert_frame_equal(datasets.load("insteval").head(), datasets.load("InstEval").head())


def test_sleepstudy_contents():
    df = datasets.load("sleepstudy")
    assert list(df["Subject"].cat.categories[:3]) == ["308", "309", "310"]
    assert df["Subject"].cat.categories.size == 18
    # Subject ids stay strings; they are not parsed as numbers.
    assert df["Subject"].iloc[0] == "308"
    assert isinstance(df["Subject"].iloc[0], str)
    assert df["Subject"].cat.ordered is False
    assert df["Reaction"].iloc[0] == pytest.approx(249.56)
    assert df["Days"].iloc[1] == 1.0
    assert sorted(df["Days"].unique()) == [float(d) for d in range(10)]
    assert (df.groupby("Subject", observed=True).size() == 10).all()


def test_insteval_factor_orders():
    df = datasets.load("InstEval")
    assert list(df["dept"].cat.categories[:3]) == ["15", "5", "10"]
    assert df["dept"].cat.categories.size == 14
    assert df["s"].cat.categories.size == 2972
    assert df["d"].cat.categories.size == 1128
    assert list(df["studage"].cat.categories) == ["2", "4", "6", "8"]
    assert df["studage"].cat.ordered is True
    assert df["lectage"].cat.ordered is True
    assert df["service"].cat.ordered is False
    assert list(df["service"].cat.categories) == ["0", "1"]
    assert df["y"].dtype == np.int64
    assert set(df["y"].unique()) <= {1, 2, 3, 4, 5}


def test_verbagg_contents():
    df = datasets.load("VerbAgg")
    assert list(df["resp"].cat.categories) == ["no", "perhaps", "yes"]
    assert df["resp"].cat.ordered is True
    assert df["resp"].max() == "yes"  # ordered comparison works
    assert list(df["mode"].cat.categories) == ["want", "do"]
    assert df["id"].cat.categories.size == 316
    assert df["item"].cat.categories.size == 24
    assert df["r2"].dtype == np.int64
    # r2 is the binary response: 1 unless resp == "no".
    np.testing.assert_array_equal(df["r2"].to_numpy(), (df["resp"] != "no").astype(np.int64))


def test_nested_and_crossed_layouts():
    pastes = datasets.load("Pastes")
    expected = pastes["batch"].astype(str) + ":" + pastes["cask"].astype(str)
    assert (pastes["sample"].astype(str) == expected).all()
    pen = datasets.load("Penicillin")
    counts = pd.crosstab(pen["plate"], pen["sample"])
    assert counts.shape == (24, 6)
    assert (counts.to_numpy() == 1).all()
    cbpp = datasets.load("cbpp")
    assert (cbpp["incidence"] <= cbpp["size"]).all()
    assert list(cbpp["period"].cat.categories) == ["1", "2", "3", "4"]


def test_unknown_name_raises_with_available_names():
    with pytest.raises(ValueError) as excinfo:
        datasets.load("no_such_data")
    msg = str(excinfo.value)
    assert "no_such_data" in msg
    for name in EXPECTED_ROWS:
        assert name in msg


def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError, match="Did you mean 'sleepstudy'"):
        datasets.load("sleepstudie")


def test_load_returns_fresh_copy():
    first = datasets.load("sleepstudy")
    original = first.copy(deep=True)
    first.loc[0, "Reaction"] = -1.0
    first["Subject"] = first["Subject"].cat.rename_categories(lambda c: "x" + c)
    first.loc[3, "Subject"] = "x309"
    first["extra"] = 1
    first.iloc[5:10, 1] = 99.0

    second = datasets.load("sleepstudy")
    pd.testing.assert_frame_equal(second, original)
    assert second is not first


def test_modifying_array_view_does_not_leak():
    first = datasets.load("Dyestuff")
    arr = first["Yield"].to_numpy()
    if arr.flags.writeable:
        arr[:] = 0.0
    assert datasets.load("Dyestuff")["Yield"].iloc[0] == 1545.0


def test_reference_nobs_match_datasets(reference):
    spec = reference("public_spec")
    assert spec, "public_spec.json should list the reference fits"
    for entry in spec:
        ref = reference(entry["id"])
        assert ref["nobs"] == EXPECTED_ROWS[entry["dataset"]], entry["id"]
