"""R's formula dialect, read as the Python code formulaic evaluates, and named as R names it.

R users write ``factor(Days)``, ``as.factor(x)``, ``I(Days^2)``, ``poly(x, 2, raw = TRUE)``
and ``x %in% g``; formulaic reads Python, where ``^`` is xor, ``TRUE`` is a name and
``as.factor`` is not an identifier.  :func:`python_part` rewrites a formula (or one part)
for formulaic; :func:`r_spelling` names the model matrix's columns as R deparses them
(``I(Days^2)``, ``poly(x, 2, raw = TRUE)1``), however they were written.

Only the spellings change; what each transform computes is R's (``design.transforms``):
``factor`` sorts levels as R does, ``ordered`` gets polynomial contrasts, ``ns`` is R's
natural spline basis.  Backticked names and quoted strings are left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..errors import FormulaError

#: R functions whose names are not Python identifiers, and the names they are evaluated as
R_CALLS: dict[str, str] = {
    "as.factor": "as_factor",
    "as.numeric": "as_numeric",
    "as.integer": "as_integer",
    "as.logical": "as_logical",
}
#: R spellings that have no translation here, with what to write instead
UNSUPPORTED: dict[str, str] = {
    "as.character": "a categorical column (factor(x) or C(x))",
    "relevel": "C(x, contr.treatment('level'))",
    "interaction": "a:b",
    "cut": "a categorical column made with pandas.cut before fitting",
    "ifelse": "a column computed before fitting (numpy.where)",
    "splines::ns": "ns(x, df)",
    "splines::bs": "bs(x, df=...)",
}
_IDENTIFIER = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*|[A-Za-z][A-Za-z0-9_.]*::[A-Za-z_.][A-Za-z0-9_.]*")
_LITERALS = {"TRUE": "True", "FALSE": "False", "NULL": "None"}


@lru_cache(maxsize=512)
def python_part(text: str) -> str:
    """formulaic's spelling of an R formula part (or of a whole formula)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "`'\"":
            end = _closing_quote(text, i)
            out.append(text[i:end])
            i = end
            continue
        if text.startswith("%in%", i):
            out.append(":")
            i += 4
            continue
        match = _IDENTIFIER.match(text, i) if (char.isalpha() or char in "._") and not _after_word(text, i) else None
        if match is None:
            out.append(char)
            i += 1
            continue
        name, end = match.group(), match.end()
        rest = end
        while rest < len(text) and text[rest] == " ":
            rest += 1
        if rest < len(text) and text[rest] == "(":
            close = _closing_paren(text, rest)
            out.append(_call(name, text[rest + 1:close - 1], text[i:close]))
            i = close
            continue
        out.append(_LITERALS.get(name, name))
        i = end
    return "".join(out)


def _call(name: str, arguments: str, call: str) -> str:
    """A call in Python's spelling: R's names mapped, ``^`` as ``**``, R's literals as Python's."""
    if name in UNSUPPORTED:
        raise FormulaError(f"{name}() is not supported in formulas; write {UNSUPPORTED[name]} instead", call)
    inner = _inside_call(arguments)
    if name == "ordered":
        return f"C(ordered({inner}), contr.poly)"
    return f"{R_CALLS.get(name, name)}({inner})"


def _inside_call(text: str) -> str:
    """Arguments of a call: Python expressions, where R's ``^`` is ``**``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "`'\"":
            end = _closing_quote(text, i)
            out.append(text[i:end])
            i = end
        elif char == "^":
            out.append("**")
            i += 1
        elif (char.isalpha() or char in "._") and not _after_word(text, i):
            match = _IDENTIFIER.match(text, i)
            assert match is not None
            word, end = match.group(), match.end()
            rest = end
            while rest < len(text) and text[rest] == " ":
                rest += 1
            if rest < len(text) and text[rest] == "(":
                close = _closing_paren(text, rest)
                out.append(_call(word, text[rest + 1:close - 1], text[i:close]))
                i = close
            else:
                out.append(_LITERALS.get(word, word) if not _keyword_argument(text, end) else word)
                i = end
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _keyword_argument(text: str, end: int) -> bool:
    """Whether the word ending at ``end`` names a keyword argument (``raw = TRUE``)."""
    rest = text[end:].lstrip()
    return rest.startswith("=") and not rest.startswith("==")


def _after_word(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_.")


def _closing_quote(text: str, start: int) -> int:
    end = text.find(text[start], start + 1)
    if end < 0:
        raise FormulaError(f"unmatched {text[start]} in the formula", text, start)
    return end + 1


def _closing_paren(text: str, start: int) -> int:
    """The index after the parenthesis closing the one at ``start`` (quotes skipped)."""
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char in "`'\"":
            i = _closing_quote(text, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise FormulaError("unmatched '(' in the formula", text, start)


_PYTHON_CALLS = {python: r for r, python in R_CALLS.items()}
_ORDERED = re.compile(r"C\(ordered\((.*?)\), contr\.poly\)")
_KEYWORD = re.compile(r"(?<=[\w)])=(?!=)")
_PY_LITERALS = {"True": "TRUE", "False": "FALSE", "None": "NULL"}


def r_spelling(column: str) -> str:
    """A model-matrix column named as R names it: formulaic's rendering of the Python code
    (``I(x ** 2)``, ``poly(x, 2, raw=True)``, ``exp(x / 10)``) in R's deparsed spelling
    (``I(x^2)``, ``poly(x, 2, raw = TRUE)``, ``exp(x/10)``), whichever way it was written."""
    if "(" not in column:
        return column
    column = _ORDERED.sub(r"ordered(\1)", column)
    column = column.replace(" ** ", "^").replace("**", "^").replace(" / ", "/")
    column = _KEYWORD.sub(" = ", column)
    for python, r in _PY_LITERALS.items():
        column = re.sub(rf"(?<![\w.`]){python}(?![\w.`])", r, column)
    for python, r in _PYTHON_CALLS.items():
        column = re.sub(rf"(?<![\w.`]){python}\(", f"{r}(", column)
    return column
