"""nlme's form= formulas and structure calls read as text (mixedmodels.formula.nlme): what they name,
where a bad one fails, and that a hostile string never runs code (a canary file never appears)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.design.nlme import from_string
from mixedmodels.errors import FormulaError, MixedModelsError
from mixedmodels.formula.limits import MAX_LENGTH
from mixedmodels.formula.nlme import NlmeForm, parse_call, parse_form


@pytest.mark.parametrize("text, covariate, group", [
    ("~ week | id", "week", "id"), ("~week|id", "week", "id"), ("~ 1 | id", None, "id"), ("~ dose", "dose", None),
    ("~ 1", None, None), ("  ~ t.1 |  `the id`  ", "t.1", "the id"), ("~ .x | g_2", ".x", "g_2"),
])
def test_forms(text, covariate, group):
    assert parse_form(text) == NlmeForm(covariate, group)


@pytest.mark.parametrize("text, message, at", [
    ("week | id", "starting with '~'", 0),
    ("~ week | a/b", "nested groups", 10),
    ("~ I(week) | id", r"'\(' is not allowed", 3),
    ("~ week + day | id", r"'\+' is not allowed", 7),
    ("~ | id", "expected a column name or 1", 2),
    ("~ week |", "the name of the grouping column", 8),
    ("~ 10 | id", "expected a column name or 1", 2),
    ("~ __import__('os') | id", "expected a column name or 1", 2),
    ("~ week | id | z", r"'\|' is not allowed", 12),
])
def test_bad_forms_point_at_the_character(text, message, at):
    with pytest.raises(FormulaError, match=message) as info:
        parse_form(text)
    assert info.value.position == at and info.value.formula == text


def test_a_form_is_a_string_of_modest_length():
    with pytest.raises(FormulaError, match="one-sided formula string"):
        parse_form(3)  # type: ignore[arg-type]
    with pytest.raises(FormulaError, match="characters"):
        parse_form("~ " + "x" * MAX_LENGTH)


def test_calls_are_split_into_name_and_arguments():
    call = parse_call("nlme::corAR1(0.3, form = ~ week | id, fixed = FALSE)")
    assert call.name == "corAR1"
    assert call.arguments == (("", "0.3"), ("form", "~ week | id"), ("fixed", "FALSE"))
    assert parse_call("corCompSymm()").arguments == ()


@pytest.mark.parametrize("text, message", [
    ("corAR1", "written as a call"),
    ("corAR1(form = ~ week | id) + 1", "nothing may follow"),
    ("corAR1(form = ~ week | id", "never closed"),
    ("corAR1(form = , fixed = TRUE)", "no value"),
    ("(form = ~ 1 | id)", "written as a call"),
])
def test_bad_calls(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_call(text)


# ----- hostile strings run nothing ---------------------------------------------------------------
@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that only code run from a structure string would create (the working directory is tmp_path)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path / "CANARY"


def payloads(canary: Path) -> list[str]:
    return [f"open({str(canary)!r}, 'w')", f"__import__('pathlib').Path({str(canary)!r}).touch()",
            f"eval(\"open('{canary}', 'w')\")"]


TEMPLATES = ["corAR1(form = ~ {p} | id)", "corAR1(form = ~ week | {p})", "corAR1({p}, form = ~ week | id)",
             "corAR1(form = ~ week | id, fixed = {p})", "{p}", "varIdent(form = ~ 1 | {p})",
             "corCompSymm(form = {p})", "varPower(form = ~ {p})", "corSymm(form = ~ 1 | id, {p} = 1)",
             "{p}(form = ~ 1 | id)", "corAR1(form = ~ `{p}` | `id`) + {p}"]


def data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"y": rng.normal(size=24), "week": np.tile(np.arange(4), 6), "id": np.repeat(list("abcdef"), 4),
                         "arm": np.repeat(["A", "B"], 12)})


DATA = data()


@pytest.mark.parametrize("template", TEMPLATES)
def test_code_in_a_structure_string_runs_nothing(template, canary):
    d = DATA
    for payload in payloads(canary):
        text = template.format(p=payload)
        for attempt in (lambda: from_string(text),
                        lambda: mm.gls("y ~ week", d, correlation=text),
                        lambda: mm.gls("y ~ week", d, weights=text),
                        lambda: mm.lmer("y ~ week + (1 | id)", d, correlation=text),
                        lambda: mm.lmer("y ~ week + (1 | id)", d, weights=text),
                        lambda: mm.corAR1(form=text)):
            with pytest.raises(FormulaError):
                attempt()
    assert not canary.exists()


PIECES = st.sampled_from(["corAR1", "varIdent", "(", ")", "form", " = ", "~", " | ", "1", "id", "week", ",",
                          "`", "'", "\"", "__", "import", ".", "os", "system", "open", "TRUE", "fixed", "value",
                          "0.3", "c(", "/", "+", "{", "}", "lambda ", ":", "nlme::", "\n", "#"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(PIECES, max_size=16).map("".join), st.integers(0, 2), st.booleans())
def test_fuzzed_structure_strings_run_nothing(canary, text, which, hide):
    payload = payloads(canary)[which]
    text = text[: len(text) // 2] + (payload if hide else "") + text[len(text) // 2:]
    for attempt in (lambda: from_string(text), lambda: parse_form(text)):
        try:
            attempt()
        except MixedModelsError:
            pass
    if hide:  # code anywhere in the string: an error (a FormulaError, or at most a backticked name not in the data)
        with pytest.raises(MixedModelsError):
            mm.gls("y ~ week", DATA, correlation=text)
    assert not canary.exists()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_structure_or_a_package_error(text):
    try:
        spec = from_string(text)
    except MixedModelsError:
        return
    names = [v for v in vars(spec).values() if v is not None]  # column names, looked up in the data only
    assert all(isinstance(v, str) and v and "`" not in v for v in names)


@pytest.mark.parametrize("text", [
    "corAR1(" + "1" * 4900 + "x)", "corAR1(c(" + "1" * 4900 + "x))", "corAR1(c(" + "a = 1, " * 600 + "x))",
    "corAR1(form = ~ " + "x" * 4900 + " y)", "corAR1(form = ~ week | id" + ", fixed = F" * 400 + ")",
    "corAR1(" + "(" * 30 + ")" * 30 + ")",
])
def test_long_hostile_strings_fail_at_once(text):
    start = time.perf_counter()
    with pytest.raises(MixedModelsError):
        from_string(text)
    assert time.perf_counter() - start < 0.5
