"""Attacks on the promise that checked formulas run no code and never hang (issue 15).

Every entry point that evaluates a formula is tried with code hidden in the formula, in
the data's column names, in a model file, in re_form: a canary file must never appear.
The fuzz tests generate such inputs; the default selection runs a few dozen examples,
``-m slow`` many more.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels import cli
from mixedmodels.errors import FormulaError, MixedModelsError, ModelFileError
from mixedmodels.formula.limits import MAX_DEPTH, MAX_LENGTH, MAX_RANDOM_TERMS


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that only code run from a formula would create (the working directory is tmp_path)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path / "CANARY"


def payloads(canary: Path) -> list[str]:
    return [f"open({str(canary)!r}, 'w')", f"__import__('pathlib').Path({str(canary)!r}).touch()"]


def small_data(columns: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    data = {"y": rng.normal(size=30), "g": np.repeat(list("abcde"), 6)}
    data.update({c: rng.normal(size=30) for c in columns if c not in data})
    return pd.DataFrame(data)


def quick(call) -> object:
    """Run ``call``; a package error is an answer, and any answer must come within 2 seconds."""
    start = time.perf_counter()
    try:
        return call()
    except MixedModelsError as exc:
        return exc
    finally:
        assert time.perf_counter() - start < 2.0


# ----- the quote-in-backticks trick, through every entry point ---------------------------------
TRICKS = [
    "y ~ I(`a'` + 0) + I(`'#` + {p}) + (1 | g)",
    "y ~ I(`a'b` + x) + I(x #`) + {p} + I(`'`) + (1 | g)",
    "y ~ I(`a'` + {p} + `#'`) + (1 | g)",
    "y ~ I(`'a` + x) + I(`b'` + {p}) + (1 | g)",
    "y ~ `a'` + I(`b\\` + {p}) + (1 | g)",
    "y ~ {{`a'`}} + {{{p}}} + (1 | g)",
]


@pytest.mark.parametrize("trick", TRICKS)
def test_backticked_quotes_and_comments_run_nothing(trick, canary):
    for payload in payloads(canary):
        formula = trick.format(p=payload)
        data = small_data(["a'", "'#", "a'b", "x", "'", "#'", "'a", "b'", "b\\", "x #"])
        for fit in (lambda: mm.lmer(formula, data, safe=True), lambda: mm.glmer(formula, data, "poisson", safe=True)):
            assert isinstance(quick(fit), FormulaError)
        assert not canary.exists()


def test_cli_with_a_crafted_csv_header_runs_nothing(canary, tmp_path, capsys):
    names = ["a'", "'#"]
    path = tmp_path / "data.csv"
    small_data(names).to_csv(path, index=False)
    for payload in payloads(canary):
        status = cli.main(["fit", TRICKS[0].format(p=payload), "--data", str(path)])
        assert status == 2 and not canary.exists()
    assert "mixedmodels: error:" in capsys.readouterr().err


def _model_file(tmp_path: Path, edit) -> Path:
    """A saved sleepstudy model whose JSON document ``edit`` rewrites."""
    path = tmp_path / "model.npz"
    mm.save(mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy")), path)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    meta = json.loads(np.load(path)["meta"].tobytes())
    edit(meta)
    crafted = tmp_path / "crafted.npz"
    arrays = {name.removesuffix(".npy"): np.load(path)[name.removesuffix(".npy")] for name in members}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(crafted, **arrays)
    return crafted


@pytest.mark.parametrize("trick", TRICKS[:3])
def test_model_files_with_code_in_formula_or_column_names_run_nothing(trick, canary, tmp_path):
    def edit(meta: dict) -> None:
        meta["formula"] = trick.format(p=payloads(canary)[0])
        meta["frame"]["columns"][0]["name"] = "a'"

    path = _model_file(tmp_path, edit)
    with pytest.raises(ModelFileError):
        mm.load(path)
    assert not canary.exists()


@pytest.mark.parametrize("safe", [True, False])
def test_re_form_is_matched_to_the_model_and_never_evaluated(safe, canary):
    sleep = mm.datasets.load("sleepstudy")
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep, safe=safe)
    for payload in payloads(canary):
        for re_form in [f"~ (I({payload}) | Subject)", f"~ ({payload} | Subject)", f"~ {payload} + (1 | Subject)",
                        f"~ (1 + {{{payload}}} | Subject)"]:
            with pytest.raises(FormulaError):
                m.predict(sleep.head(), re_form=re_form)
            with pytest.raises(FormulaError):
                m.predict(re_form=re_form)
    assert not canary.exists()
    # what re_form is for still works, and picks the named columns (as lme4)
    full = m.predict(sleep.head())
    only_intercepts = m.predict(sleep.head(), re_form="~(1 | Subject)")
    slopes = m.predict(sleep.head(), re_form="~(0 + Days | Subject)")
    fixed = m.predict(sleep.head(), re_form="~0")
    np.testing.assert_allclose(only_intercepts - fixed + slopes - fixed, full - fixed, atol=1e-9)
    with pytest.raises(FormulaError, match="do not have"):
        m.predict(sleep.head(), re_form="~(I(Days ** 2) | Subject)")


def test_simulate_re_form_takes_only_its_two_values():
    m = mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"))
    with pytest.raises(FormulaError, match="re_form"):
        m.simulate(re_form="~(I(open('x')) | Subject)")


# ----- limits: fail in well under a second ----------------------------------------------------
HANGS = [
    ("Reaction ~ I(9**9**9) + (1 | Subject)", "power of numbers"),
    ("Reaction ~ I(Days * 99999999999999999999999) + (1 | Subject)", "constant"),
    ("Reaction ~ C(Subject, levels=['a' * 999999999999]) + (1 | Subject)", "literal"),
    ("Reaction ~ poly(Days, 100000) + (1 | Subject)", "degrees"),
]


@pytest.mark.parametrize("formula, message", HANGS)
def test_expensive_constants_are_refused_at_once(formula, message):
    error = quick(lambda: mm.lmer(formula, mm.datasets.load("sleepstudy"), safe=True))
    assert isinstance(error, FormulaError) and message in str(error)


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("formula, message", [
    ("Reaction ~ Days" + " + (1 | Subject)" * (MAX_RANDOM_TERMS + 1), "random-effects terms"),
    ("Reaction ~ " + " + ".join(["Days"] * MAX_LENGTH) + " + (1 | Subject)", "characters"),
    ("Reaction ~ " + "(" * (MAX_DEPTH + 1) + "Days" + ")" * (MAX_DEPTH + 1) + " + (1 | Subject)", "nested"),
    ("Reaction ~ " + "*".join(f"x{i}" for i in range(30)) + " + (1 | Subject)", "expands"),
    ("Reaction ~ (" + "+".join(f"x{i}" for i in range(30)) + ")^12 + (1 | Subject)", "power"),
])
def test_formula_size_limits(formula, message, safe):
    error = quick(lambda: mm.lmer(formula, mm.datasets.load("sleepstudy"), safe=safe))
    assert isinstance(error, FormulaError) and message in str(error)


# ----- fuzzing ---------------------------------------------------------------------------------
NAME_CHARS = st.sampled_from(list("ab'\"#`\\ ()+{}_.:|") + ["__", "\n"])
NAMES = st.lists(NAME_CHARS, min_size=1, max_size=5).map("".join)
PIECES = st.sampled_from(["+", " + ", "I(", "C(", ")", "(", "{", "}", "`", "'", "\"", "#", "\\", ":", "|",
                          "**", "9", "x", " ", "\n", "np.", "__", ",", "=", "levels=[", "]", "lambda "])


def _attack(draw_names: list[str], pieces: list[str], payload: str) -> str:
    body = "".join(f"`{n}`" if i % 2 else p for i, (n, p) in enumerate(zip(draw_names * len(pieces), pieces)))
    return f"y ~ {body}{payload}) + (1 | g)"


def _fuzz(names: list[str], pieces: list[str], where: int, canary: Path) -> None:
    payload = payloads(canary)[where % 2]
    pieces = pieces[:where] + [payload] + pieces[where:]
    formula = _attack(names, pieces, "")
    data = small_data(names + ["x"])
    quick(lambda: mm.lmer(formula, data, safe=True))
    quick(lambda: mm.check_formula(formula))
    assert not canary.exists(), formula


FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=40, **FUZZ)
@given(st.lists(NAMES, min_size=1, max_size=3), st.lists(PIECES, max_size=12), st.integers(0, 12))
def test_fuzzed_formulas_and_column_names_run_nothing(canary, names, pieces, where):
    _fuzz(names, pieces, where, canary)


@pytest.mark.slow
@settings(max_examples=1500, **FUZZ)
@given(st.lists(NAMES, min_size=1, max_size=3), st.lists(PIECES, max_size=20), st.integers(0, 20))
def test_fuzzed_formulas_and_column_names_run_nothing_many(canary, names, pieces, where):
    _fuzz(names, pieces, where, canary)
