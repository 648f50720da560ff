"""check_formula: untrusted formulas are rejected before anything in them is evaluated."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.errors import FormulaError
from mixedmodels.formula.safety import DEFAULT_ALLOWED, check_formula

ORDINARY = [
    "Reaction ~ Days + (Days | Subject)",
    "np.log(y) ~ x*f + I(x**2) + C(f) + (1 + x || g) + (1 | a/b)",
    "`IQ.verb` ~ `SES score` + (1 | school)",
    "cbind(s, n - s) ~ x + offset(np.log(t)) + (1 | g)",
    "y ~ poly(x, 2) + center(z) + scale(w) + (1|g)",
    "y ~ 0 + x:z - 1 + (0 + x | g:h) + (1 | `plate id`)",
    "y ~ C(f, contr.sum) + C(h, levels=['b', 'a']) + C(k, contr.treatment(base='3+')) + (1 | g)",
    "y ~ poly(x, degree=2, raw=True) + scale(z, center=False) + np.sqrt(np.abs(-x / 2.5e3)) + (1 | g)",
    "y ~\n  x +\t(1 | g)",
    "Größe ~ Alter + (1 | Gruppe)",
    "score ~ ses + (1 | school) + (1 | class:school) + (1 | from)",
]

# (formula, the piece the error must point at)
ATTACKS = [
    ("y ~ __import__('os').system('echo hi') + (1|g)", "__import__"),
    ("y ~ I(Days + 0*len(str(__import__('builtins').print('pwned')))) + (1|g)", "__import__"),
    ("y ~ I(Days + 0*len(str(eval('print(7)')))) + (1|g)", "len"),
    ("y ~ I(Days + 0*len(str(eval('1')))) + (1|g)", "len"),
    ("y ~ eval('1') + (1|g)", "eval"),
    ("y ~ exec('x = 1') + (1|g)", "exec"),
    ("y ~ open('/etc/passwd') + (1|g)", "open"),
    ("y ~ getattr(np, 'log')(x) + (1|g)", "getattr(np, 'log')"),
    ("y ~ x.__class__ + (1|g)", "x.__class__"),
    ("y ~ np.__class__ + (1|g)", "np.__class__"),
    ("y ~ np.__dict__ + (1|g)", "np.__dict__"),
    ("y ~ I(().__class__.__bases__) + (1|g)", "().__class__.__bases__"),
    ("y ~ os.system + (1|g)", "os.system"),
    ("y ~ np.loadtxt('f') + (1|g)", "np.loadtxt"),
    ("y ~ x[0] + (1|g)", "x[0]"),
    ("y ~ I(x[::2]) + (1|g)", None),
    ("y ~ I([c for c in x]) + (1|g)", "[c for c in x]"),
    ("y ~ I((z := 3)) + (1|g)", None),
    ("y ~ I(f'{x}') + (1|g)", "f'{x}'"),
    ("y ~ {print('x')} + (1|g)", "print"),
    ("y ~ `__import__` + (1|g)", "`__import__`"),
    ("y ~ x + (1 | __class__)", "__class__"),
    ("y ~ poly(x, degree=eval) + (1|g)", "eval"),
    ("y ~ np.log(x, **{}) + (1|g)", "{}"),
    ("y ~ x # + I(eval('1'))\n + (1|g)", "#"),
    ("y ~ C(f, 'a)') + (1|g)", "'"),
    ("y ~ I(\"a\\\" + eval('1') + \\\"\") + (1|g)", "\""),
    ("y ~ 'os' + (1|g)", "'os'"),
    ("y ~ I(x % 2) + I(x > 2) + (1|g)", "x % 2"),
    ("y ~ I(a | b) + (1|g)", "a | b"),
    ("y ~ ｅｖａｌ('1') + (1|g)", "ｅｖａｌ"),
    ("__import__('os').getcwd() ~ x + (1|g)", "__import__"),
    ("y ~ x + (I(open('f')) | g)", "open"),
    ("y ~ x + offset(exec('1')) + (1|g)", "exec"),
    ("y ~ IQ.verb + (1 | g)", "IQ.verb"),
    ("y ~ scale(x, _state=1) + (1|g)", "1"),
    ("y ~ I(lambda: eval('1')) + (1|g)", None),
    ("y ~ I(x if y else open('f')) + (1|g)", None),
    ("y ~ I(not x) + (1|g)", None),
]


@pytest.mark.parametrize("formula", ORDINARY)
def test_ordinary_formulas_pass(formula):
    assert check_formula(formula).checked


@pytest.mark.parametrize("formula, piece", ATTACKS)
def test_attacks_are_rejected_pointing_at_the_piece(formula, piece):
    with pytest.raises(FormulaError) as info:
        check_formula(formula)
    error = info.value
    assert error.formula == formula and error.position is not None
    assert 0 <= error.position <= len(formula)
    if piece is not None:
        assert formula.startswith(piece, error.position), (str(error), piece)
        assert "^" in str(error)


def test_dotted_column_names_get_a_backtick_hint():
    with pytest.raises(FormulaError, match="backticks: `IQ.verb`"):
        check_formula("y ~ IQ.verb + (1 | g)")


def test_allow_list_is_a_parameter():
    with pytest.raises(FormulaError, match="allow-list"):
        check_formula("y ~ np.tanh(x) + (1 | g)")
    check_formula("y ~ np.tanh(x) + (1 | g)", DEFAULT_ALLOWED | {"np.tanh"})
    with pytest.raises(FormulaError, match="allow-list"):
        check_formula("y ~ poly(x, 2) + (1 | g)", DEFAULT_ALLOWED - {"poly"})


def test_structural_errors_are_formula_errors_too():
    for formula in ["y ~ x + (1 | g", "y x", "y ~ x ~ z", "y ~ `x"]:
        with pytest.raises(FormulaError):
            check_formula(formula)


# ----- fuzzing ---------------------------------------------------------------------------
FORMULA_CHARS = st.sampled_from(list("yxgf01 ~+-*/:|()[]{}`'\".,_=#%\\@!<>^&\n") + ["np.", "__", "I(", "C(",
                                                                               "lambda", "eval(", "||"])


def _passes_or_raises_formula_error(text: str) -> None:
    try:
        assert check_formula(text).checked
    except FormulaError as error:
        shown = text if error.formula is None else error.formula  # R spellings are checked as Python
        assert error.position is None or 0 <= error.position <= len(shown)


@settings(max_examples=1500, deadline=None)
@given(st.lists(FORMULA_CHARS, max_size=40).map("".join))
def test_formula_like_strings_pass_or_raise_formula_error(text):
    _passes_or_raises_formula_error(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_any_string_passes_or_raises_formula_error(text):
    _passes_or_raises_formula_error(text)


NAMES = st.sampled_from(["x", "Days", "y2", "`SES score`", "`IQ.verb`", "f", "z_1"])
TERMS = st.one_of(
    NAMES,
    st.builds("{}({})".format, st.sampled_from(sorted(DEFAULT_ALLOWED - {"cbind", "offset"})), NAMES),
    st.builds("I({} ** {})".format, NAMES, st.integers(0, 3)),
    st.builds("{}:{}".format, NAMES, NAMES),
    st.builds("poly({}, {})".format, NAMES, st.integers(1, 4)),
)
SAFE = st.builds(
    lambda response, terms, slope, bar, group: f"{response} ~ {' + '.join(terms)} + ({slope} {bar} {group})",
    st.sampled_from(["y", "np.log(y)", "cbind(s, n - s)", "`y var`"]),
    st.lists(TERMS, min_size=1, max_size=5),
    st.sampled_from(["1", "1 + x", "0 + Days", "x"]),
    st.sampled_from(["|", "||"]),
    st.sampled_from(["g", "g:h", "a/b", "`plate id`"]),
)
PAYLOADS = st.sampled_from([
    "__import__('os')", "eval('1')", "x.__class__", "open('f')", "np.__dict__", "getattr(x, 'y')",
    "x[0]", "{open('f')}", "(lambda: 0)()", "f'{x}'", "exec('1')", "vars()", "np.save('f', x)",
])


@settings(max_examples=300, deadline=None)
@given(SAFE)
def test_generated_safe_formulas_pass(formula):
    check_formula(formula)


@settings(max_examples=300, deadline=None)
@given(SAFE, PAYLOADS, st.sampled_from(["{}", "I({})", "np.log({})", "I(x + 0 * {})", "C({})"]), st.booleans())
def test_generated_formulas_with_a_payload_are_rejected(formula, payload, wrapper, in_random):
    term = wrapper.format(payload)
    attacked = formula.replace("(", f"({term} + ", 1) if in_random else formula.replace("~ ", f"~ {term} + ", 1)
    with pytest.raises(FormulaError):
        check_formula(attacked)


PAYLOAD = "I(Days + 0 * len(str(__import__('os').environ.setdefault('MM_PWNED', '1'))))"


@pytest.mark.parametrize("fit", [
    lambda f, d: mm.lmer(f, d, safe=True),
    lambda f, d: mm.glmer(f, d, family="binomial", safe=True),
    lambda f, d: mm.glmer_nb(f, d, safe=True),
])
def test_safe_fits_reject_code_before_evaluating_it(fit, monkeypatch):
    monkeypatch.delenv("MM_PWNED", raising=False)
    with pytest.raises(FormulaError, match="dunder"):
        fit(f"Reaction ~ {PAYLOAD} + (1 | Subject)", mm.datasets.load("sleepstudy"))
    assert "MM_PWNED" not in os.environ


def test_safe_fit_equals_unchecked_fit():
    d, f = mm.datasets.load("sleepstudy"), "Reaction ~ Days + (Days | Subject)"
    assert mm.lmer(f, d, safe=True).loglik == mm.lmer(f, d).loglik
