"""save() and load(): a loaded model prints, predicts, simulates and compares exactly as the saved one."""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from reference import load_fixture_data

import mixedmodels as mm
from mixedmodels.errors import ModelFileError
from mixedmodels.io.persistence import save
from mixedmodels.io.restore import load

PACKAGE = Path(mm.__file__).parent
GROUSE = Path(__file__).resolve().parents[1] / "fixtures" / "glmer_nb" / "grouseticks.csv"
CBPP = "cbind(incidence, size - incidence) ~ {} + (1 | herd)"


def _grouse() -> pd.DataFrame:
    return pd.read_csv(GROUSE, dtype={"YEAR": str, "LOCATION": str, "BROOD": str})


def _with_missing() -> pd.DataFrame:
    d = load_fixture_data("sleepstudyWO")
    d.loc[[3, 50, 51], "Reaction"] = np.nan
    return d


# name -> (fit the model, fit a smaller one to compare with, data, predict's extra arguments)
CASES: dict[str, tuple[Callable, Callable, Callable, dict]] = {
    "sleepstudy_reml": (
        lambda d: mm.lmer("Reaction ~ Days + (Days | Subject)", d),
        lambda d: mm.lmer("Reaction ~ Days + (1 | Subject)", d),
        lambda: mm.datasets.load("sleepstudy"), {},
    ),
    "sleepstudy_ml": (
        lambda d: mm.lmer("Reaction ~ Days + (Days | Subject)", d, REML=False),
        lambda d: mm.lmer("Reaction ~ 1 + (Days | Subject)", d, REML=False),
        lambda: mm.datasets.load("sleepstudy"), {},
    ),
    "weighted": (
        lambda d: mm.lmer("Reaction ~ Days + (Days | Subject)", d, weights="w"),
        lambda d: mm.lmer("Reaction ~ Days + (1 | Subject)", d, weights=d["w"]),
        lambda: load_fixture_data("sleepstudyWO"), {},
    ),
    "offset": (
        lambda d: mm.lmer("Reaction ~ Days + (1 | Subject)", d, offset="o"),
        lambda d: mm.lmer("Reaction ~ 1 + (1 | Subject)", d, offset="o"),
        lambda: load_fixture_data("sleepstudyWO"), {"offset": "o"},
    ),
    "formula_offset_missing_rows": (
        lambda d: mm.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", d, weights="w"),
        lambda d: mm.lmer("Reaction ~ 1 + offset(o) + (1 | Subject)", d, weights="w"),
        _with_missing, {},
    ),
    "pastes_nested": (
        lambda d: mm.lmer("strength ~ 1 + (1 | batch/cask)", d),
        lambda d: mm.lmer("strength ~ 1 + (1 | batch)", d),
        lambda: mm.datasets.load("Pastes"), {},
    ),
    "cbpp": (
        lambda d: mm.glmer(CBPP.format("period"), d, family="binomial"),
        lambda d: mm.glmer(CBPP.format("1"), d, family="binomial"),
        lambda: mm.datasets.load("cbpp"), {},
    ),
    "cbpp_agq25": (
        lambda d: mm.glmer(CBPP.format("period"), d, family="binomial", nAGQ=25),
        lambda d: mm.glmer(CBPP.format("1"), d, family="binomial", nAGQ=25),
        lambda: mm.datasets.load("cbpp"), {},
    ),
    "factor_response": (
        lambda d: mm.glmer("use ~ age + urban + (1 | district)", d, family="binomial"),
        lambda d: mm.glmer("use ~ age + (1 | district)", d, family="binomial"),
        lambda: load_fixture_data("Contraception"), {},
    ),
    "glmer_nb": (
        lambda d: mm.glmer_nb("TICKS ~ YEAR + cHEIGHT + (1|LOCATION)", d),
        lambda d: mm.glmer("TICKS ~ YEAR + cHEIGHT + (1|LOCATION)", d, family="poisson"),
        _grouse, {},
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    """(original, loaded, data, predict's extra arguments, smaller original, smaller loaded)."""
    fit_full, fit_small, make_data, extra = CASES[request.param]
    data = make_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        full, small = fit_full(data), fit_small(data)
    folder = tmp_path_factory.mktemp(request.param)
    return full, _roundtrip(full, folder / "full.npz"), data, extra, small, _roundtrip(small, folder / "small.npz")


def _roundtrip(fit, path: Path):
    save(fit, path)
    return load(path)


def _predict_args(extra: dict, data: pd.DataFrame) -> dict:
    return {k: data[v] for k, v in extra.items()}


def test_loaded_model_prints_identically(case):
    fit, loaded, *_ = case
    assert type(loaded) is type(fit)
    assert str(loaded.summary()) == str(fit.summary())
    assert repr(loaded) == repr(fit)
    assert loaded.formula == fit.formula and loaded.data_name == fit.data_name


def test_loaded_model_has_identical_estimates(case):
    fit, loaded, *_ = case
    pd.testing.assert_series_equal(loaded.fixef, fit.fixef, check_exact=True)
    np.testing.assert_array_equal(loaded.theta, fit.theta)
    pd.testing.assert_frame_equal(loaded.vcov, fit.vcov, check_exact=True)
    pd.testing.assert_frame_equal(loaded.varcorr, fit.varcorr, check_exact=True)
    for group, frame in fit.ranef.items():
        pd.testing.assert_frame_equal(loaded.ranef[group], frame, check_exact=True)
    assert (loaded.loglik, loaded.df, loaded.nobs, loaded.n_dropped) == (fit.loglik, fit.df, fit.nobs, fit.n_dropped)
    pd.testing.assert_index_equal(loaded.rows_used, fit.rows_used, exact=True)
    assert loaded.optimum.message == fit.optimum.message and loaded.optimum.nfev == fit.optimum.nfev
    if isinstance(fit, mm.GlmerResult):  # family, link, glmer_nb's θ and its parameter count
        assert repr(loaded.family) == repr(fit.family) and type(loaded.family) is type(fit.family)
        assert getattr(loaded.family, "theta", None) == getattr(fit.family, "theta", None)
        assert (loaded.nAGQ, loaded.extra_parameters) == (fit.nAGQ, fit.extra_parameters)


def test_loaded_model_predicts_identically(case):
    fit, loaded, data, extra, *_ = case
    newdata = data.iloc[::-3]
    args = _predict_args(extra, newdata)
    pd.testing.assert_series_equal(loaded.predict(newdata, **args), fit.predict(newdata, **args), check_exact=True)
    pd.testing.assert_series_equal(
        loaded.predict(newdata, re_form="~0", **args), fit.predict(newdata, re_form="~0", **args), check_exact=True
    )
    pd.testing.assert_series_equal(loaded.predict(), fit.predict(), check_exact=True)
    pd.testing.assert_series_equal(loaded.fitted, fit.fitted, check_exact=True)


def test_loaded_model_simulates_identically(case):
    fit, loaded, *_ = case
    pd.testing.assert_frame_equal(loaded.simulate(seed=1), fit.simulate(seed=1), check_exact=True)


def test_loaded_model_compares_identically(case):
    fit, loaded, _, _, small, small_loaded = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.RefitWarning)
        original, restored = mm.anova(small, fit), mm.anova(small_loaded, loaded)
    assert str(restored) == str(original)
    pd.testing.assert_frame_equal(restored.table, original.table, check_exact=True)


# ----- the stored data frame ---------------------------------------------------------------
def _typed_data() -> pd.DataFrame:
    """Every kind of column the format stores, a string index, and rows with missing values."""
    rng = np.random.default_rng(3)
    n = 150
    g = rng.integers(0, 15, n)
    d = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "flag": rng.random(n) > 0.5,
            "dose": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi"], ordered=True),
            "batch": pd.Categorical(rng.integers(1, 4, n)),  # integer categories
            "site": np.array(["north", "south", "east"], dtype=object)[rng.integers(0, 3, n)],
            "g": g,  # an integer grouping column
            "unused": "never stored",
        },
        index=pd.Index([f"row{i}" for i in range(n)], name="id"),
    )
    d["y"] = d["x"] + rng.normal(size=15)[g] + rng.normal(size=n) + d["flag"] * 0.5
    d.loc[d.index[[2, 7]], "x"] = np.nan
    return d


def test_frame_columns_come_back_with_their_types(tmp_path):
    d = _typed_data()
    fit = mm.lmer("y ~ x + k + flag + dose + batch + site + (1 | g)", d)
    loaded = _roundtrip(fit, tmp_path / "typed.npz")
    pd.testing.assert_frame_equal(loaded.design.frame, fit.design.frame, check_exact=True)
    assert list(loaded.design.frame.dtypes) == list(fit.design.frame.dtypes)
    assert loaded.n_dropped == 2
    assert str(loaded.summary()) == str(fit.summary())
    pd.testing.assert_series_equal(loaded.predict(d.dropna()), fit.predict(d.dropna()), check_exact=True)


def test_unstorable_column_is_refused_naming_it(tmp_path):
    d = mm.datasets.load("sleepstudy")
    d["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(d["Subject"].cat.codes, unit="D")
    fit = mm.lmer("Reaction ~ Days + (1 | when)", d)
    path = tmp_path / "m.npz"
    with pytest.raises(ModelFileError, match=r"column 'when'.*datetime"):
        save(fit, path)
    assert not path.exists() and not list(tmp_path.iterdir())


# ----- the file ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("saved") / "sleep.npz"
    save(mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy")), path)
    return path


def test_file_is_an_npz_with_a_versioned_json_document(saved):
    with np.load(saved, allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
        assert all(archive[key].dtype != object for key in archive.files)
    assert (meta["format"], meta["version"]) == ("mixedmodels-model", 1)
    assert meta["kind"] == "lmer" and meta["formula"] == "Reaction ~ Days + (Days | Subject)"


def test_save_writes_exactly_the_path_given(tmp_path):
    fit = mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"))
    save(fit, str(tmp_path / "model.mm"))
    assert [p.name for p in tmp_path.iterdir()] == ["model.mm"]
    assert load(tmp_path / "model.mm").loglik == fit.loglik


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="lmer and glmer"):
        save({"not": "a model"}, tmp_path / "x.npz")


def _rewrite_meta(source: Path, target: Path, **changes) -> None:
    with np.load(source, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(target, **arrays)


@pytest.mark.parametrize(
    "changes, message",
    [({"version": 2}, r"format version 2; this version of mixedmodels reads version 1"),
     ({"format": "something-else"}, r"not a mixedmodels model file \(format 'something-else'"),
     ({"kind": "lm"}, r"unknown model kind 'lm'"),
     ({"formula": "Reaction ~ 1 + (1 | Subject)"}, r"differs from the saved one in xnames")],
)
def test_wrong_format_version_or_content_is_a_model_file_error(saved, tmp_path, changes, message):
    bad = tmp_path / "bad.npz"
    _rewrite_meta(saved, bad, **changes)
    with pytest.raises(ModelFileError, match=message) as info:
        load(bad)
    assert str(bad) in str(info.value)


def test_a_formula_that_runs_code_is_not_evaluated_on_loading(saved, tmp_path, monkeypatch):
    monkeypatch.delenv("MM_PWNED", raising=False)
    evil = tmp_path / "evil.npz"
    payload = "I(Days + 0 * len(str(__import__('os').environ.setdefault('MM_PWNED', '1'))))"
    _rewrite_meta(saved, evil, formula=f"Reaction ~ {payload} + (Days | Subject)")
    with pytest.raises(ModelFileError, match="does not pass check_formula.*safe=False") as info:
        load(evil)
    assert isinstance(info.value.__cause__, mm.FormulaError) and str(evil) in str(info.value)
    assert "MM_PWNED" not in os.environ


def test_trusted_files_may_hold_formulas_outside_the_allow_list(tmp_path):
    fit = mm.lmer("Reaction ~ I(Days > 3) + (1 | Subject)", mm.datasets.load("sleepstudy"))
    save(fit, tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="comparison"):
        load(tmp_path / "m.npz")
    assert str(load(tmp_path / "m.npz", safe=False).summary()) == str(fit.summary())


def _write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda good: good[: len(good) // 2], "truncated or corrupted"),
        (lambda good: good[:100], "truncated or corrupted"),
        (lambda good: b"", "truncated or corrupted"),
        (lambda good: b"Reaction,Days\n1,2\n", "truncated or corrupted"),
        (lambda good: _npz(a=np.arange(3)), "no 'meta' entry"),
        (lambda good: _npz(meta=np.arange(3)), "'meta' entry is not a JSON document"),
        (lambda good: _npz(meta=np.frombuffer(b"{not json", dtype=np.uint8)), "not a JSON document"),
        (lambda good: _npz(meta=np.frombuffer(b"[1, 2]", dtype=np.uint8)), "format None"),
        (lambda good: _zip({"model.json": b"{}", "arrays.npz": b""}), "not a mixedmodels model file"),
        (lambda good: _zip({"meta.npy": b"garbage"}), "is not a numpy array"),
    ],
    ids=["half", "header-only", "empty", "csv", "other-npz", "meta-not-bytes", "meta-not-json",
         "meta-not-object", "other-zip", "garbage-entry"],
)
def test_foreign_or_damaged_files_are_model_file_errors(saved, tmp_path, content, message):
    bad = _write_bytes(tmp_path / "bad.npz", content(saved.read_bytes()))
    with pytest.raises(ModelFileError, match=message) as info:
        load(bad)
    assert str(bad) in str(info.value)


def test_npy_file_is_a_model_file_error(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(4))
    with pytest.raises(ModelFileError, match="single .npy array"):
        load(path)


def test_flipped_bytes_never_escape_as_other_errors(saved, tmp_path):
    good = saved.read_bytes()
    for position in range(0, len(good), max(1, len(good) // 400)):
        damaged = bytearray(good)
        damaged[position] ^= 0xFF
        path = _write_bytes(tmp_path / "damaged.npz", bytes(damaged))
        try:
            load(path)  # a flip in an unused header field (e.g. a timestamp) is harmless
        except ModelFileError:
            pass


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


def test_model_file_error_is_a_mixedmodels_error():
    assert issubclass(ModelFileError, mm.MixedModelsError)


def test_nothing_in_the_package_unpickles():
    for source in PACKAGE.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"allow_pickle\s*=\s*True", text), source
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve)\b", text, re.M), source
    assert "allow_pickle=False" in (PACKAGE / "io" / "persistence.py").read_text(encoding="utf-8")
