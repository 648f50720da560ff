"""Check a formula from an untrusted source before anything in it is evaluated.

formulaic evaluates the Python code in a formula (calls, ``I(...)``, ``{...}``), so a
formula string can run arbitrary code, e.g. ``y ~ I(__import__('os').system('...'))``.
The check never runs the formula, and it reads it with formulaic's own tokenizer and
sanitizers, so what it checks is what formulaic would evaluate: every Python token is
turned into exactly the code formulaic hands to ``eval`` and that code's syntax tree
(``ast``) may hold only column names (bare or backticked), numbers, arithmetic, and
calls of an allow-list of transforms with literal arguments; strings only inside
``C(...)``; no power of constants (``9**9**9``) and no huge literals.

:func:`check_formula` checks a whole lme4 formula and points at the rejected piece;
:func:`check_part` checks one parsed part again at the moment it is evaluated
(``design.build.evaluate``), so a part that our bar parser and formulaic would split
differently is still checked as formulaic reads it.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from functools import lru_cache

import formulaic
from formulaic.parser.algos.sanitize_tokens import sanitize_python_code
from formulaic.parser.algos.tokenize import tokenize
from formulaic.parser.types import Factor, Token
from formulaic.utils.code import sanitize_variable_names

from ..errors import FormulaError
from .limits import check_size
from .parse import ParsedFormula, parse_formula, without_structure_names
from .rdialect import python_part

DEFAULT_ALLOWED: frozenset[str] = frozenset({
    "np.log", "np.log2", "np.log10", "np.log1p", "np.exp", "np.sqrt", "np.abs", "np.sin", "np.cos", "np.tan",
    "np.pi", "log", "log2", "log10", "log1p", "exp", "sqrt", "abs", "sin", "cos", "tan",
    "I", "C", "center", "scale", "poly", "bs", "ns", "offset", "cbind",
    "factor", "as_factor", "ordered", "as_numeric", "as_integer", "as_logical",
    "contr.treatment", "contr.sum", "contr.poly", "contr.helmert", "contr.diff",
})

MAX_DIGITS = 15  # digits of an integer literal
MAX_DEGREE = 100  # integer arguments of poly() and bs() (degree, df): columns of the matrix
_FORMULA_OPERATORS = frozenset("~+-*/:|^")
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_OPERATORS = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitXor: "^",
              ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.Invert: "~", ast.Not: "not",
              ast.UAdd: "unary +"}
_CONSTRUCTS = {
    ast.Subscript: "indexing", ast.Lambda: "a lambda", ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension", ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
    ast.NamedExpr: "an assignment (:=)", ast.JoinedStr: "an f-string", ast.Compare: "a comparison",
    ast.BoolOp: "'and'/'or'", ast.IfExp: "a conditional expression", ast.Dict: "a dict ({...})",
    ast.Set: "Python code in braces ({...})", ast.Starred: "argument unpacking",
    ast.List: "a list outside a keyword argument", ast.Tuple: "a tuple outside a keyword argument",
}
_ALLOWED_TEXT = "column names, numbers, + - * / ** : | and the transforms in mixedmodels.formula.DEFAULT_ALLOWED"
_HELP = f"checked formulas (safe=True) allow {_ALLOWED_TEXT}"

Reject = Callable[[ast.AST, str], FormulaError]


def check_formula(formula: str, allowed: frozenset[str] = DEFAULT_ALLOWED) -> ParsedFormula:
    """The parsed formula, marked checked; FormulaError, pointing at the rejected piece, if unsafe.

    ``allowed`` names the callable transforms (``"np.log"``, ``"poly"``, ...); dotted
    names outside it are rejected even when not called.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"a formula must be a str, not {type(formula).__name__}")
    return _checked(formula, frozenset(allowed))


@lru_cache(maxsize=256)
def _checked(formula: str, allowed: frozenset[str]) -> ParsedFormula:
    """check_formula's work, kept per text: the tokenizing costs a tenth of a small model's fit,
    and its result (frozen) depends on the text and the allow-list only."""
    check_size(formula)
    shown = python_part(formula)  # R's spellings as formulaic will read them
    # structured terms' names and options blanked (positions kept): parse_formula checks them below
    python = without_structure_names(shown)
    end = 0
    try:
        for token in tokenize(python):
            end = token.source_end or end
            _check_token(token, shown, allowed)
    except formulaic.errors.FormulaicError as exc:
        problem, _, context = str(exc).partition("\n\n")
        marker = context.find("\u29db")  # formulaic marks the offending character in the formula's copy
        position = min(marker if marker >= 0 else end + 1, len(python))
        raise FormulaError(f"this formula cannot be checked: {problem}", shown, position) from None
    return dataclasses.replace(parse_formula(formula), checked=True)  # one '~', bars, limits


def check_part(part: formulaic.Formula, text: str, allowed: frozenset[str] = DEFAULT_ALLOWED) -> None:
    """Raise FormulaError unless every factor formulaic will evaluate for ``part`` is safe.

    ``part`` is formulaic's parse of ``text``: its factors are exactly what its model
    matrix evaluates (names looked up, literals read, Python code run).
    """
    if not isinstance(part, formulaic.formula.SimpleFormula):
        raise FormulaError(f"the formula part {text!r} cannot be checked (it is not a plain list of terms)", text)
    for term in part:
        for factor in term.factors:
            if factor.eval_method is Factor.EvalMethod.PYTHON:
                _check_code(factor.expr, text, None, allowed)
            elif factor.eval_method is Factor.EvalMethod.LOOKUP and factor.expr.startswith("__"):
                raise FormulaError(f"dunder names are not allowed: {factor.expr!r}", text)
            elif factor.eval_method is Factor.EvalMethod.LITERAL:
                _check_literal(factor.expr, text, 0)


def _check_token(token: Token, formula: str, allowed: frozenset[str]) -> None:
    """One token of formulaic's tokenizer: operators, names, literals, and Python code."""
    start = token.source_start or 0
    if token.kind is Token.Kind.OPERATOR:
        bad = [ch for ch in token.token if ch not in _FORMULA_OPERATORS]
        if bad:
            raise FormulaError(f"{bad[0]!r} is not allowed in a checked formula ({_HELP})", formula,
                               start + token.token.index(bad[0]))
    elif token.kind is Token.Kind.NAME:
        if token.token.startswith("__"):
            raise FormulaError(f"dunder names are not allowed: {token.token!r}", formula, start)
        backticked = formula[start] == "`"
        if "." in token.token.strip(".") and not backticked and token.token not in allowed:
            raise FormulaError(f"attribute access is not allowed (write a column name with dots in backticks: "
                               f"`{token.token}`)", formula, start)
    elif token.kind is Token.Kind.VALUE:
        _check_literal(token.token, formula, start)
    elif token.kind is Token.Kind.PYTHON:
        code = token.token
        stripped = code.lstrip()  # formulaic strips the code, and a leading backtick with it
        offset = start + (formula[start] == "{") + len(code) - len(stripped) + stripped.startswith("`")
        _check_code(code, formula, offset, allowed)


def _check_literal(text: str, formula: str, start: int) -> None:
    """A number of modest size; strings only inside C(...)."""
    if text[:1] in "'\"":
        raise FormulaError(f"strings are only allowed inside C(...): {text!r} ({_HELP})", formula, start)
    if sum(ch.isdigit() for ch in text.split("e")[0].split("E")[0]) > MAX_DIGITS:
        raise FormulaError(f"numbers in a checked formula have at most {MAX_DIGITS} digits", formula, start)


def _check_code(code: str, formula: str, start: int | None, allowed: frozenset[str]) -> None:
    """Python code of a token, as formulaic evaluates it.

    formulaic rewrites a token once when parsing (``sanitize_python_code``: backticked
    names aliased, code re-printed, names put back in backticks) and once more before
    ``eval`` (``sanitize_variable_names``); both steps' code is checked, the first with
    positions in the formula when ``start`` (where the code begins in it) is known.
    """
    try:
        first = sanitize_variable_names(code, {}, {})
        _check_tree(_parse(first, formula, start), first, formula, start, allowed)
        evaluated = sanitize_variable_names(sanitize_python_code(code), {}, {})
    except (SyntaxError, ValueError, IndexError, RecursionError, MemoryError) as exc:  # FormulaError is a ValueError
        if isinstance(exc, FormulaError):
            raise
        raise FormulaError(f"this formula cannot be checked ({type(exc).__name__}: {exc})", formula, start) from None
    _check_tree(_parse(evaluated, formula, start), evaluated, formula, None, allowed)


def _parse(code: str, formula: str, start: int | None) -> ast.expr:
    try:
        return ast.parse(code, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(
            f"this formula cannot be checked: it is not built from {_ALLOWED_TEXT} "
            f"({type(exc).__name__}: {getattr(exc, 'msg', exc)})", formula, start,
        ) from None


def _check_tree(tree: ast.expr, code: str, formula: str, offset: int | None, allowed: frozenset[str]) -> None:
    """Walk the syntax tree of one token's code; nothing is evaluated."""
    encoded = code.encode("utf-8")

    def reject(node: ast.AST, problem: str) -> FormulaError:
        """The error for ``node``, its caret at the node's first character in the formula when known."""
        start, end = getattr(node, "col_offset", 0), getattr(node, "end_col_offset", None)
        piece = encoded[start:end].decode("utf-8", "replace")
        if offset is None:
            return FormulaError(f"{problem}: {piece!r} ({_HELP})", formula, None)
        position = offset + len(encoded[:start].decode("utf-8", "replace"))
        return FormulaError(f"{problem}: {piece!r} ({_HELP})", formula, min(position, len(formula)))

    for node in ast.walk(tree):  # dunder names first: they are the usual way out of a sandbox
        name = node.arg if isinstance(node, ast.keyword) else getattr(node, "id", None) or getattr(node, "attr", None)
        if isinstance(name, str) and name.startswith("__"):
            raise reject(node.value if isinstance(node, ast.keyword) else node, "dunder names are not allowed")
    _walk(tree, allowed, reject)


def _walk(root: ast.AST, allowed: frozenset[str], reject: Reject) -> None:
    """Accept only names, literals, arithmetic, and calls of allowed transforms."""
    stack: list[tuple[ast.AST, bool]] = [(root, False)]  # node, directly an argument of C()
    while stack:
        node, strings = stack.pop()
        if isinstance(node, ast.Name):
            continue  # a column name
        if isinstance(node, ast.Constant):
            if not _is_literal(node, strings):
                raise reject(node, "strings are only allowed inside C(...)" if isinstance(node.value, str)
                             else "this constant is not allowed")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
            if isinstance(node.op, ast.Pow) and not (_has_name(node.left) or _has_name(node.right)):
                raise reject(node, "a power of numbers is not allowed (write its value)")
            stack += [(node.right, False), (node.left, False)]  # left first
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            stack.append((node.operand, False))
        elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
            raise reject(node, f"the operator {_OPERATORS.get(type(node.op), type(node.op).__name__)!r} is not allowed")
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name is None or name not in allowed:
                hint = f" (write a column name with dots in backticks: `{name}`)" if name else ""
                raise reject(node, f"attribute access is not allowed{hint}")
        elif isinstance(node, ast.Call):
            _check_call(node, allowed, reject)
            stack += [(arg, _dotted(node.func) == "C") for arg in reversed(node.args)]
        else:
            construct = _CONSTRUCTS.get(type(node), f"the Python construct {type(node).__name__}")
            raise reject(node, f"{construct} is not allowed")


def _check_call(node: ast.Call, allowed: frozenset[str], reject: Reject) -> None:
    """A call of an allowed transform with literal keyword values (strings only for C and contrasts)."""
    name = _dotted(node.func)
    if name is None or name not in allowed:
        raise reject(node.func, "only the transforms of the allow-list may be called")
    strings = name == "C" or name.startswith("contr.")
    for keyword in node.keywords:
        if keyword.arg is None:
            raise reject(keyword.value, "argument unpacking (**) is not allowed")
        if keyword.arg.startswith("_"):
            raise reject(keyword.value, f"the private argument {keyword.arg!r} is not allowed")
        if not _is_literal(keyword.value, strings):
            raise reject(keyword.value, "keyword arguments must be literal values")
    if name in ("poly", "bs"):
        for value in [*node.args[1:], *(k.value for k in node.keywords)]:
            if isinstance(value, ast.Constant) and isinstance(value.value, int) and abs(value.value) > MAX_DEGREE:
                raise reject(value, f"{name}() takes degrees and df up to {MAX_DEGREE}")


def _has_name(node: ast.AST) -> bool:
    """Whether an expression mentions a variable (so it is an array, not a Python number)."""
    return any(isinstance(n, ast.Name) for n in ast.walk(node))


def _dotted(node: ast.AST) -> str | None:
    """'np.log' for an attribute chain of plain names, 'log' for a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _is_literal(node: ast.AST, strings: bool) -> bool:
    """A modest number, True/False/None, a string (where allowed), or a list or tuple of these."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool):
            return abs(value) < 10**MAX_DIGITS
        return value is None or isinstance(value, (bool, float)) or (strings and isinstance(value, str))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant) and _is_literal(node.operand, False)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_is_literal(e, strings) for e in node.elts)
    return False
