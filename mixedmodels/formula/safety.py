"""Check a formula from an untrusted source before anything in it is evaluated.

formulaic evaluates the Python code in a formula (calls, ``I(...)``, ``{...}``), so a
formula string can run arbitrary code, e.g. ``y ~ I(__import__('os').system('...'))``.
:func:`check_formula` reads the formula with Python's own parser (``ast``), never
running it, and accepts only column names (bare or backticked), numbers, the
arithmetic and formula operators, and calls of an allow-list of transforms with
literal keyword values; string literals only inside ``C(...)``.

Python's parser and formulaic's tokenizer must see the same structure, so characters
that could make them disagree (backslashes, ``#``, string prefixes, triple quotes,
brackets or quotes inside strings) are rejected too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

from ..errors import FormulaError
from .parse import parse_formula

DEFAULT_ALLOWED: frozenset[str] = frozenset({
    "np.log", "np.log2", "np.log10", "np.log1p", "np.exp", "np.sqrt", "np.abs",
    "log", "log2", "log10", "log1p", "exp", "sqrt", "abs",
    "I", "C", "center", "scale", "poly", "bs", "offset", "cbind",
    "contr.treatment", "contr.sum", "contr.poly", "contr.helmert", "contr.diff",
})

_WORD = re.compile(r"(?<![\w.])[^\W\d]\w*")
# keywords that can never be part of a Python expression, so masking them hides no syntax
_STATEMENT_KEYWORDS = frozenset({"class", "def", "import", "from", "global", "nonlocal", "pass", "return", "raise",
                                 "try", "except", "finally", "while", "with", "as", "del", "assert", "break",
                                 "continue", "elif"})
_SPACED_DOT = re.compile(r"[\w)\]]\s+\.|\.\s+[^\W\d]")
_SAFE_STRING = re.compile(r"[\w .,;:+\-*/<>=!?&|^~@$]*")
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


def check_formula(formula: str, allowed: frozenset[str] = DEFAULT_ALLOWED) -> None:
    """Raise FormulaError, pointing at the rejected piece, unless ``formula`` is safe to evaluate.

    ``allowed`` names the callable transforms (``"np.log"``, ``"poly"``, ...); dotted
    names outside it are rejected even when not called.
    """
    parse_formula(formula)  # one '~', balanced brackets and quotes, bars in parentheses
    masked, tilde = _mask(formula)
    spaced = _SPACED_DOT.search(masked)
    if spaced:  # formulaic would split 'np . f' where Python reads 'np.f'
        raise FormulaError("spaces around '.' are not allowed in a checked formula", formula,
                           spaced.start() + spaced.group().index("."))
    for start, end in ((0, tilde), (tilde + 1, len(formula))):
        piece = masked[start:end]
        if piece.strip():
            _check_expression(formula, piece.lstrip(), start + len(piece) - len(piece.lstrip()), allowed)


def _mask(formula: str) -> tuple[str, int]:
    """A copy for Python's parser, character for character, and the position of the '~'.

    Backticked names and names that are Python statement keywords (``class``) become
    placeholder identifiers, whitespace spaces, formula ':' Python '*' and '||' a
    single '|'; strings are checked and kept.
    """
    out = list(formula)
    depth, tilde, i = 0, -1, 0
    while i < len(formula):
        ch = formula[i]
        if ch in "\\#":
            raise FormulaError(f"{ch!r} is not allowed in a checked formula", formula, i)
        if ch == "`":
            end = _closing(formula, "`", i)
            if formula[i + 1 : end].startswith("__"):
                raise FormulaError(f"dunder names are not allowed: {formula[i:end + 1]}", formula, i)
            out[i : end + 1] = "Q" * (end + 1 - i)
            i = end + 1
            continue
        if ch in "'\"":
            i = _string_end(formula, i)
            continue
        word = _WORD.match(formula, i)
        if word:
            if word.group() in _STATEMENT_KEYWORDS:  # a column such as 'class', not Python syntax
                out[i : word.end()] = "Q" * len(word.group())
            i = word.end()
            continue
        if ch.isspace():
            out[i] = " "
        elif ch == ":":
            out[i] = "*"
        elif ch == "|" and i > 0 and formula[i - 1] == "|":
            out[i] = " "
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "~" and depth == 0 and tilde < 0:
            tilde = i
        i += 1
    return "".join(out), tilde


def _string_end(formula: str, start: int) -> int:
    """Index after the string literal at ``start``; only plain strings of safe characters."""
    end = _closing(formula, formula[start], start)
    before = formula[:start].rstrip()[-1:]
    if before and (before.isalnum() or before in "_`"):
        raise FormulaError("string prefixes and strings right after a name are not allowed", formula, start)
    if not _SAFE_STRING.fullmatch(formula[start + 1 : end]):
        raise FormulaError("strings in a checked formula may not contain quotes, backticks, brackets, "
                           "'%', '#' or control characters", formula, start)
    if formula[end + 1 : end + 2] in ("'", '"'):
        raise FormulaError("triple quotes and adjacent strings are not allowed", formula, end + 1)
    return end + 1


def _closing(formula: str, quote: str, start: int) -> int:
    end = formula.find(quote, start + 1)
    if end < 0:
        raise FormulaError("unterminated quote", formula, start)
    return end


def _check_expression(formula: str, text: str, offset: int, allowed: frozenset[str]) -> None:
    """Parse one side of the '~' as Python and walk it; nothing is evaluated."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        column = getattr(exc, "offset", None) or 1
        raise FormulaError(
            f"this formula cannot be checked: it is not built from {_ALLOWED_TEXT} "
            f"({type(exc).__name__}: {getattr(exc, 'msg', exc)})",
            formula, offset + min(max(column - 1, 0), len(text)),
        ) from None
    encoded = text.encode("utf-8")

    def reject(node: ast.AST, problem: str) -> FormulaError:
        """The error for ``node``, its caret at the node's first character in the formula."""
        start = offset + len(encoded[: node.col_offset].decode("utf-8", "replace"))
        end = offset + len(encoded[: node.end_col_offset].decode("utf-8", "replace"))
        return FormulaError(f"{problem}: {formula[start:end]!r} ({_HELP})", formula, start)

    for node in ast.walk(tree):  # dunder names first: they are the usual way out of a sandbox
        name = node.arg if isinstance(node, ast.keyword) else getattr(node, "id", None) or getattr(node, "attr", None)
        if isinstance(name, str) and name.startswith("__"):
            raise reject(node.value if isinstance(node, ast.keyword) else node, "dunder names are not allowed")
    _walk(tree.body, allowed, reject)


def _walk(root: ast.AST, allowed: frozenset[str], reject: Callable[[ast.AST, str], FormulaError]) -> None:
    """Accept only names, literals, arithmetic, formula bars and calls of allowed transforms."""
    stack: list[tuple[ast.AST, bool, bool]] = [(root, False, False)]  # node, inside a call, inside C()
    while stack:
        node, in_call, in_c = stack.pop()
        if isinstance(node, ast.Name):
            continue  # a column name
        if isinstance(node, ast.Constant):
            if not _is_literal(node, in_c):
                raise reject(node, "strings are only allowed inside C(...)" if isinstance(node.value, str)
                             else "this constant is not allowed")
        elif isinstance(node, ast.BinOp) and (isinstance(node.op, _ARITHMETIC) or
                                               (isinstance(node.op, ast.BitOr) and not in_call)):
            stack += [(node.right, in_call, in_c), (node.left, in_call, in_c)]  # left first
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            stack.append((node.operand, in_call, in_c))
        elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
            raise reject(node, f"the operator {_OPERATORS.get(type(node.op), type(node.op).__name__)!r} is not allowed")
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name is None or name not in allowed:
                hint = f" (write a column name with dots in backticks: `{name}`)" if name else ""
                raise reject(node, f"attribute access is not allowed{hint}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name is None or name not in allowed:
                raise reject(node.func, "only the transforms of the allow-list may be called")
            inner_c = in_c or name == "C"
            for keyword in node.keywords:
                if keyword.arg is None:
                    raise reject(keyword.value, "argument unpacking (**) is not allowed")
                if keyword.arg.startswith("_"):
                    raise reject(keyword.value, f"the private argument {keyword.arg!r} is not allowed")
                if not _is_literal(keyword.value, inner_c):
                    raise reject(keyword.value, "keyword arguments must be literal values")
            stack += [(arg, True, inner_c) for arg in reversed(node.args)]
        else:
            construct = _CONSTRUCTS.get(type(node), f"the Python construct {type(node).__name__}")
            raise reject(node, f"{construct} is not allowed")


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
    """A number, True/False/None, a string (where allowed), or a list or tuple of these."""
    if isinstance(node, ast.Constant):
        value = node.value
        return value is None or isinstance(value, (bool, int, float)) or (strings and isinstance(value, str))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float))
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_is_literal(e, strings) for e in node.elts)
    return False
