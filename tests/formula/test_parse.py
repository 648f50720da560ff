import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.errors import FormulaError
from mixedmodels.formula.parse import ParsedFormula, RandomTerm, parse_formula


def test_sleepstudy_formula():
    parsed = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert parsed == ParsedFormula(
        text="Reaction ~ Days + (Days | Subject)",
        response="Reaction",
        fixed="Days",
        random=(RandomTerm("Days", ("Subject",)),),
    )
    assert parsed.fixed_formula == "Reaction ~ Days"
    assert parsed.random[0].group_name == "Subject"


@pytest.mark.parametrize(
    ("bar", "expr", "correlated"),
    [
        ("(1|g)", "1", True),
        ("(x|g)", "x", True),
        ("(1 + x|g)", "1 + x", True),
        ("(0 + x|g)", "0 + x", True),
        ("(0 + f | g)", "0 + f", True),
        ("(x||g)", "x", False),
        ("( 1 + x || g )", "1 + x", False),
    ],
)
def test_single_bar(bar, expr, correlated):
    parsed = parse_formula(f"y ~ x + {bar}")
    assert parsed.fixed == "x"
    assert parsed.random == (RandomTerm(expr, ("g",), correlated),)


def test_nested_grouping_expands_outermost_first():
    parsed = parse_formula("y ~ 1 + (1|a/b)")
    assert parsed.random == (RandomTerm("1", ("a",)), RandomTerm("1", ("b", "a")))
    assert [t.group_name for t in parsed.random] == ["a", "b:a"]


def test_three_level_nesting():
    parsed = parse_formula("y ~ (x || a / b / c)")
    assert [t.group for t in parsed.random] == [("a",), ("b", "a"), ("c", "b", "a")]
    assert all(t.expr == "x" and not t.correlated for t in parsed.random)


def test_interaction_grouping():
    parsed = parse_formula("y ~ (1|a:b)")
    assert parsed.random == (RandomTerm("1", ("a", "b")),)
    assert parsed.random[0].group_name == "a:b"


def test_nesting_of_an_interaction():
    parsed = parse_formula("y ~ (1 | a/b:c)")
    assert [t.group for t in parsed.random] == [("a",), ("b", "c", "a")]


def test_crossed_random_effects():
    parsed = parse_formula("diameter ~ 1 + (1|plate) + (1|sample)")
    assert parsed.fixed == "1"
    assert [t.group_name for t in parsed.random] == ["plate", "sample"]


def test_bars_interleaved_with_fixed_terms():
    parsed = parse_formula("y ~ (1|g) + x + (0+z|h) + w")
    assert parsed.fixed == "x + w"
    assert parsed.random == (RandomTerm("1", ("g",)), RandomTerm("0+z", ("h",)))
    assert parsed.fixed_formula == "y ~ x + w"


def test_backticked_names():
    parsed = parse_formula("y ~ `IQ.verb` + (1 | `school id`)")
    assert parsed.fixed == "`IQ.verb`"
    assert parsed.random == (RandomTerm("1", ("school id",)),)


def test_backticks_hide_operators_in_group_names():
    parsed = parse_formula("y ~ (1 | `a/b`:`c|d`)")
    assert parsed.random == (RandomTerm("1", ("a/b", "c|d")),)


@pytest.mark.parametrize(
    "fixed", ["np.log(x)", "I(x**2)", "C(f)", "np.log(x) + I(x**2) + C(f, Sum)", "I(a | b)"]
)
def test_function_calls_in_fixed_part_are_kept_verbatim(fixed):
    parsed = parse_formula(f"y ~ {fixed} + (1 | g)")
    assert parsed.fixed == fixed
    assert len(parsed.random) == 1


def test_no_intercept_text_is_kept():
    assert parse_formula("y ~ x - 1 + (1|g)").fixed == "x - 1"
    assert parse_formula("y ~ 0 + x + (1|g)").fixed == "0 + x"
    assert parse_formula("y ~ -1 + x + (1|g)").fixed == "-1 + x"


def test_removal_after_a_bar_stays_in_fixed_part():
    parsed = parse_formula("y ~ x + (1|g) - 1")
    assert parsed.fixed == "x - 1"
    assert parsed.random == (RandomTerm("1", ("g",)),)


def test_only_bars_gives_intercept():
    parsed = parse_formula("y ~ (1|g)")
    assert parsed.fixed == "1"
    assert parsed.fixed_formula == "y ~ 1"


@pytest.mark.parametrize(
    "response", ["cbind(incidence, size - incidence)", "np.log(y)", "I(y ~ 1)"]
)
def test_response_expressions(response):
    parsed = parse_formula(f"{response} ~ period + (1 | herd)")
    assert parsed.response == response
    assert parsed.fixed_formula == f"{response} ~ period"


def test_one_sided_formula():
    parsed = parse_formula("~ x + (1|g)")
    assert parsed.response == ""
    assert parsed.fixed_formula == "~ x"


def test_whitespace_and_newlines():
    parsed = parse_formula("  y\n ~ x\n   +\t(1 +\n x |\n g)\n")
    assert parsed.response == "y"
    assert parsed.fixed == "x"
    assert parsed.random == (RandomTerm("1 +\n x", ("g",)),)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        parse_formula(42)


def _error(formula: str) -> FormulaError:
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    return info.value


def _caret_under(err: FormulaError) -> str:
    """The character of the formula that the message's caret points at."""
    lines = str(err).splitlines()
    return lines[-2][lines[-1].index("^")]


def test_missing_tilde():
    err = _error("y x + (1|g)")
    assert "needs '~'" in str(err)
    assert isinstance(err, ValueError)


def test_two_tildes():
    err = _error("y ~ x ~ z")
    assert err.position == 6


def test_unclosed_parenthesis_points_at_it():
    err = _error("y ~ x + (1 + x | g")
    assert err.position == 8
    assert str(err).splitlines()[-1] == "  " + " " * 8 + "^"


def test_unmatched_closing_parenthesis_points_at_it():
    err = _error("y ~ log(x)) + (1|g)")
    assert err.position == 10
    assert _caret_under(err) == ")"


def test_mismatched_bracket():
    err = _error("y ~ f(x] + (1|g)")
    assert err.position == 7


@pytest.mark.parametrize(("formula", "position"), [("y ~ `a + x", 4), ("y ~ I('a) + x", 6)])
def test_unterminated_quote(formula, position):
    assert _error(formula).position == position


def test_bar_outside_parentheses_binds_loosest_as_in_r():
    """lme4 reads 'y ~ x + 1 | g' as R parses it: '|' binds loosest, so the whole right side is the bar."""
    parsed = parse_formula("y ~ x + 1 | g")
    assert parsed.text == "y ~ x + 1 | g"
    assert parsed.fixed == "1"
    assert [(t.expr, t.group) for t in parsed.random] == [("x + 1", ("g",))]


def test_nothing_before_bar():
    err = _error("y ~ x + ( | g)")
    assert "nothing before '|'" in str(err)
    assert err.position == 10


def test_nothing_after_bar():
    err = _error("y ~ x + (1 || )")
    assert "nothing after '|'" in str(err)


@pytest.mark.parametrize("group", ["g + h", "log(g)", "a/", ":b", "1g", "'g'", "(g)"])
def test_bad_grouping(group):
    err = _error(f"y ~ x + (1 | {group})")
    assert repr(group) in str(err)
    assert "a:b" in str(err) and "a/b" in str(err)


def test_too_many_bars():
    assert _error("y ~ (1 | g | h)").position == 11


def test_subtracted_bar():
    err = _error("y ~ x - (1|g)")
    assert "'-'" in str(err)
    assert err.position == 6


@pytest.mark.parametrize("formula", ["y ~ x * (1|g)", "y ~ ((1|g))", "y ~ x:(1|g)"])
def test_bar_buried_in_fixed_term(formula):
    err = _error(formula)
    assert _caret_under(err) == "|"


@pytest.mark.parametrize("formula", ["y ~ ", "y ~ x + ", "y ~ x + + z"])
def test_empty_terms(formula):
    _error(formula)


VALID = [
    "Reaction ~ Days + (Days | Subject)",
    "y ~ (1|g) + x + (0+z|h) + w",
    "cbind(a, b - a) ~ np.log(x) + I(x**2) + (1 | a/b:c)",
    "y ~ `IQ.verb` + (1 + x || `school id`) - 1",
]


def _assert_parses_or_formula_error(formula: str) -> None:
    try:
        parsed = parse_formula(formula)
    except FormulaError:
        return
    assert isinstance(parsed, ParsedFormula)
    assert parsed.fixed.strip() != ""
    assert all(term.expr and all(term.group) for term in parsed.random)


@settings(max_examples=500)
@given(st.text(alphabet="y~x g()[]|+-*/:`'\"\\01 abc\n", max_size=40))
def test_fuzz_random_strings(formula):
    _assert_parses_or_formula_error(formula)


_EDIT = st.tuples(
    st.sampled_from(["insert", "delete", "replace"]),
    st.integers(min_value=0, max_value=80),
    st.sampled_from(list("~()|+-/:`'x1 ")),
)


@settings(max_examples=500)
@given(st.sampled_from(VALID), st.lists(_EDIT, max_size=4))
def test_fuzz_mutated_formulas(formula, edits):
    for kind, index, ch in edits:
        index %= len(formula) + 1
        if kind == "insert":
            formula = formula[:index] + ch + formula[index:]
        elif kind == "delete":
            formula = formula[:index] + formula[index + 1 :]
        else:
            formula = formula[:index] + ch + formula[index + 1 :]
    _assert_parses_or_formula_error(formula)
