"""Structured random-effects terms in formulas: lme4 2.0's us(), diag(), cs(), ar1() parse, pass the
safety check with nothing else around a bar, and a misspelled structure is named in the error."""

from __future__ import annotations

import pytest

from mixedmodels.errors import FormulaError
from mixedmodels.formula.parse import STRUCTURES, RandomTerm, parse_formula, without_structure_names
from mixedmodels.formula.safety import check_formula


@pytest.mark.parametrize("formula, term", [
    ("y ~ x + us(1 + x | g)", RandomTerm("1 + x", ("g",), structure="us")),
    ("y ~ x + diag(1 + x | g)", RandomTerm("1 + x", ("g",), structure="diag")),
    ("y ~ x + cs(0 + f | g)", RandomTerm("0 + f", ("g",), structure="cs", hom=False)),
    ("y ~ x + cs(0 + f | g, hom = TRUE)", RandomTerm("0 + f", ("g",), structure="cs", hom=True)),
    ("y ~ x + ar1(0 + f | g)", RandomTerm("0 + f", ("g",), structure="ar1", hom=True)),
    ("y ~ x + ar1 (0 + f | `the id`, hom=F)", RandomTerm("0 + f", ("the id",), structure="ar1", hom=False)),
    ("y ~ x + diag(x | g, hom = T)", RandomTerm("x", ("g",), structure="diag", hom=True)),
    # glmmTMB's names: the structure with hom fixed
    ("y ~ x + homdiag(1 + x | g)", RandomTerm("1 + x", ("g",), structure="diag", hom=True)),
    ("y ~ x + homcs(0 + f | g)", RandomTerm("0 + f", ("g",), structure="cs", hom=True)),
    ("y ~ x + hetar1(0 + f | `the id`)", RandomTerm("0 + f", ("the id",), structure="ar1", hom=False)),
])
def test_structured_terms(formula, term):
    parsed = parse_formula(formula)
    assert parsed.random == (term,) and parsed.fixed == "x"
    assert check_formula(formula).random == (term,)


def test_defaults_are_lme4_2s():
    """lme4 2.0: diag and cs heterogeneous by default, ar1 homogeneous."""
    assert STRUCTURES == {"us": False, "diag": False, "cs": False, "ar1": True}


def test_nesting_and_removal_keep_the_structure():
    parsed = parse_formula("y ~ 1 + ar1(0 + f | a/b) - 1 + (1 | h)")
    assert [(t.group, t.structure) for t in parsed.random] == [(("a",), "ar1"), (("b", "a"), "ar1"), (("h",), "us")]
    assert parsed.fixed == "1 - 1"


def test_masking_keeps_positions():
    text = "y ~ x + cs(0 + f | g, hom = TRUE) + I(a | b)"
    masked = without_structure_names(text)
    assert len(masked) == len(text)
    assert masked == "y ~ x +   (0 + f | g            ) + I(a | b)"


@pytest.mark.parametrize("formula, message, caret", [
    ("y ~ x + ar(0 + f | g)", "ar() is not a covariance structure", "ar("),
    ("y ~ x + compsymm(0 + f | g)", "one of us(), diag(), cs(), ar1(), homdiag(), homcs(), hetar1()", "compsymm"),
    ("y ~ x + hetar(0 + f | g)", "Did you mean 'hetar1'?", "hetar("),
    ("y ~ x + homtoep(0 + f | g)", "homtoep() is a glmmTMB covariance structure that mixedmodels does not have",
     "homtoep"),
    ("y ~ hetar1(0 + f | g, hom = TRUE)", "hetar1() takes no options (glmmTMB's hetar1 is ar1() with hom = FALSE)",
     "hom"),
    ("y ~ homcs(0 + f | g, hom = FALSE)", "glmmTMB's homcs is cs() with hom = TRUE", "hom ="),
    ("y ~ homdiag(x || g)", "homdiag() takes a single '|'", "||"),
    ("y ~ cs(0 + f | g, hom = 1)", "cs() takes one option, hom = TRUE or FALSE, not 'hom = 1'", "hom = 1"),
    ("y ~ cs(0 + f | g, rho = 0.5)", "not 'rho = 0.5'", "rho"),
    ("y ~ us(x | g, hom = TRUE)", "us() takes no options", "hom"),
    ("y ~ diag(x || g)", "diag() takes a single '|'", "||"),
    ("y ~ ar1(0 + f | g | h)", "a single '|' or '||'", "| h"),
    ("y ~ ar1(| g)", "nothing before '|'", "| g"),
])
def test_errors_name_the_structure(formula, message, caret):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    assert message in str(info.value)
    lines = str(info.value).splitlines()
    assert lines[-1].index("^") == lines[-2].index(caret)


@pytest.mark.parametrize("formula", [
    "y ~ ar1(0 + f | g, hom = __import__('os').system('true'))",
    "y ~ ar1(0 + np.system(f) | g)",
    "y ~ cs(0 + f | g, hom = TRUE, __class__ = 1)",
    "y ~ x + ar(0 + I(__import__('os')) | g)",
    "y ~ ar1(0 + f | g)(x)",
    "y ~ homcs(0 + f | g, hom = __import__('os').system('true'))",
    "y ~ hetar1(0 + I(__import__('os')) | g)",
])
def test_safety_check_rejects_code_around_structures(formula):
    with pytest.raises(FormulaError):
        check_formula(formula)


def test_safety_errors_show_the_structure_as_written():
    with pytest.raises(FormulaError) as info:
        check_formula("y ~ x + ar1(0 + I(__import__('os')) | g, hom = TRUE)")
    formula_line, caret_line = str(info.value).splitlines()[-2:]
    assert "ar1(0 + I(__import__('os')) | g, hom = True)" in formula_line
    assert formula_line[caret_line.index("^"):].startswith("__import__")
