"""formula/update.py: R's update.formula, checked against R 4's update() of twelve formulas
(tests/fixtures/parity/update.R), with its errors and invariants."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

import mixedmodels as mm
from mixedmodels.formula.update import update_formula
from parity import PARITY_DIR

CASES = json.loads((PARITY_DIR / "update.json").read_text())["formulas"]


@pytest.mark.parametrize("case", CASES, ids=[c["new"] for c in CASES])
def test_updates_are_written_as_r_writes_them(case):
    assert update_formula(case["old"], case["new"]) == case["updated"]


def test_the_response_and_one_sided_formulas():
    assert update_formula("y ~ x + (1 | g)", "sqrt(.) ~ .") == "sqrt(y) ~ x + (1 | g)"
    assert update_formula("y ~ x + (1 | g)", "~ . - x") == "y ~ (1 | g)"
    assert update_formula("y ~ x", ". ~ . - x") == "y ~ 1"
    assert update_formula("y ~ x", ". ~ . - x - 1") == "y ~ -1"
    assert update_formula("y ~ x + (x || g)", ". ~ . - (x||g) + (1|g)") == "y ~ x + (1 | g)"


def test_what_cannot_be_rewritten_is_a_formula_error():
    with pytest.raises(mm.FormulaError, match="write its terms out"):
        update_formula("y ~ a + (1 | g)", ". ~ . + a/b")
    with pytest.raises(mm.FormulaError, match="one '~'"):
        update_formula("y ~ a", ". ~ . ~ b")
    with pytest.raises(mm.FormulaError, match="no response"):
        update_formula("~ a", ". ~ .")


names = st.sampled_from(["a", "b", "c", "x1", "dose"])
terms = st.lists(st.tuples(names, st.booleans(), names), min_size=1, max_size=5)


@given(terms)
def test_dot_keeps_the_model_and_removing_every_term_leaves_the_intercept(pieces):
    """Invariants of R's update: '. ~ .' keeps the terms (R may write an interaction's variables in
    another order: 'y ~ b + a:b' becomes 'y ~ b + b:a'), and '. ~ . - t' for every term t leaves
    only the random part."""
    rhs = " + ".join(f"{a}:{b}" if inter else a for a, inter, b in pieces)
    once = update_formula(f"y ~ {rhs} + (1 | g)", ". ~ .")
    twice = update_formula(once, ". ~ .")
    assert [frozenset(t.split(":")) for t in twice.split(" + ")] == [frozenset(t.split(":")) for t in once.split(" + ")]
    dropped = update_formula(once, ". ~ . - " + " - ".join(f"{a}:{b}" if inter else a for a, inter, b in pieces))
    assert dropped == "y ~ (1 | g)"
