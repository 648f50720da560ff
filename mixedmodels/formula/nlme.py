"""nlme's ``form =`` formulas and whole structure calls, read as text: nothing is evaluated.

nlme writes where a residual structure applies as a one-sided formula, ``form = ~ week | id``
(a covariate, or ``1``, then optionally a grouping factor), and R users bring whole calls
such as ``"corAR1(form = ~ week | id)"`` or ``"varIdent(form = ~ 1 | arm)"``.  Both are
read here by a small scanner that accepts only names (R's, or backticked), ``1``, ``~``,
``|``, the call's parentheses, ``name = value`` arguments, and TRUE/FALSE: anything else
is a ``FormulaError`` pointing at the character at fault.  What the call means is decided
by ``design.nlme``; this module only splits the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError
from .layout import scan
from .limits import check_size

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._]*|\.[A-Za-z_.][A-Za-z0-9._]*|`[^`]+`")
_CALL = re.compile(r"\s*((?:nlme::)?[A-Za-z][A-Za-z0-9._]*)\s*\(")
_KEYWORD = re.compile(r"\s*([A-Za-z.][A-Za-z0-9._]*)\s*=(?!=)")
_LOGICAL = {"TRUE": True, "T": True, "FALSE": False, "F": False}
_FORM_HELP = "write form = '~ time | group', '~ 1 | group' or '~ covariate'"


@dataclass(frozen=True)
class NlmeForm:
    """A one-sided ``~ covariate | group``: the covariate (None for ``1``) and the group (None without ``|``)."""

    covariate: str | None
    group: str | None


@dataclass(frozen=True)
class NlmeCall:
    """``name(value, form = ~ ..., fixed = ...)`` split into its parts: ``arguments`` maps each argument's
    name (``""`` for an unnamed one, as written) to its text, stripped."""

    name: str
    arguments: tuple[tuple[str, str], ...]
    text: str


def parse_form(text: str, what: str = "form") -> NlmeForm:
    """nlme's one-sided formula ``"~ week | id"``, ``"~ 1 | id"``, ``"~ dose"``, ``"~ 1"``."""
    if not isinstance(text, str):
        raise FormulaError(f"{what} must be a one-sided formula string such as '~ week | id', "
                           f"not {type(text).__name__}")
    check_size(text)
    at = _skip(text, 0)
    if not text.startswith("~", at):
        raise FormulaError(f"{what} is a one-sided formula starting with '~'; {_FORM_HELP}", text, at)
    covariate, at = _term(text, _skip(text, at + 1), what, allow_one=True)
    group = None
    if text.startswith("|", at):
        group, at = _term(text, _skip(text, at + 1), what, allow_one=False)
    if at < len(text):
        problem = ("nested groups ('a/b') are not supported; name one grouping column" if text[at] == "/" else
                   f"{text[at]!r} is not allowed here; {_FORM_HELP}")
        raise FormulaError(f"{what}: {problem}", text, at)
    return NlmeForm(None if covariate == "1" else covariate, group)


def parse_call(text: str) -> NlmeCall:
    """An nlme structure call written as a string, ``"corAR1(form = ~ week | id)"``, split into its
    name and arguments (``nlme::`` is allowed before the name)."""
    if not isinstance(text, str):
        raise FormulaError(f"an nlme structure is a call such as 'corAR1(form = ~ week | id)', not "
                           f"{type(text).__name__}")
    check_size(text)
    match = _CALL.match(text)
    if match is None:
        raise FormulaError("an nlme structure is written as a call, e.g. 'corAR1(form = ~ week | id)' or "
                           "'varIdent(form = ~ 1 | arm)' (or given as an object: mm.corAR1(form='~ week | id'), "
                           "mm.AR1(time='week', group='id'))", text, _skip(text, 0))
    layout, paren = scan(text), match.end() - 1
    close = layout.closer[paren]
    if text[close + 1:].strip():
        raise FormulaError("nothing may follow the structure's closing ')'", text, _skip(text, close + 1))
    arguments = []
    spans = layout.split(",", match.end(), close, paren) if text[match.end():close].strip() else []
    for start, end in spans:
        keyword = _KEYWORD.match(text, start, end)
        name, value_start = (keyword.group(1), keyword.end()) if keyword else ("", start)
        value = text[value_start:end].strip()
        if not value:
            raise FormulaError("an argument has no value", text, _skip(text, value_start))
        arguments.append((name, value))
    return NlmeCall(match.group(1).removeprefix("nlme::"), tuple(arguments), text)


def logical(text: str, what: str) -> bool:
    """R's TRUE/FALSE (or T/F) written as text."""
    if text not in _LOGICAL:
        raise FormulaError(f"{what} takes TRUE or FALSE, not {text!r}", text)
    return _LOGICAL[text]


def _term(text: str, at: int, what: str, allow_one: bool) -> tuple[str, int]:
    """A name (backticks removed) or, where allowed, ``1``, and the position after it and its spaces."""
    if allow_one and text.startswith("1", at) and not text[at + 1:at + 2].isalnum():
        return "1", _skip(text, at + 1)
    match = _NAME.match(text, at)
    if match is None:
        expected = "a column name or 1" if allow_one else "the name of the grouping column"
        raise FormulaError(f"{what}: expected {expected} here; {_FORM_HELP}", text, at)
    return match.group().strip("`"), _skip(text, match.end())


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at
