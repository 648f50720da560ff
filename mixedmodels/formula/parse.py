"""Split an lme4-style formula into its fixed part and its random-effect bars.

``parse_formula("Reaction ~ Days + (Days | Subject)")`` gives the fixed
formula ``"Reaction ~ Days"`` (left for formulaic to expand) and one
``RandomTerm("Days", ("Subject",))``. Only the bars are interpreted here;
everything else is kept as the user wrote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mixedmodels.errors import FormulaError, did_you_mean

from .layout import TOP, Layout, scan
from .limits import MAX_TERMS, check_random_terms, check_size, column_bound
from .rdialect import python_part

_NAME = re.compile(r"(?!\d)[\w.]+")
_GROUPING_HELP = (
    "use a variable name, a `backticked name`, an interaction 'a:b' "
    "or a nesting 'a/b'"
)


#: lme4 2.0's covariance structures of a random-effects term, and whether each has one
#: standard deviation for all its columns unless ``hom =`` says otherwise (design/covstruct.py)
STRUCTURES: dict[str, bool] = {"us": False, "diag": False, "cs": False, "ar1": True}
#: glmmTMB's names (≥ 1.1.6 homdiag, ≥ 1.1.11 homcs and hetar1) for those structures with ``hom`` fixed:
#: the structure and its ``hom``; they take no options
GLMMTMB_NAMES: dict[str, tuple[str, bool]] = {"homdiag": ("diag", True), "homcs": ("cs", True),
                                              "hetar1": ("ar1", False)}
#: glmmTMB's structures that have no counterpart here
GLMMTMB_UNAVAILABLE = ("toep", "homtoep", "ou", "exp", "gau", "mat", "rr", "propto", "equalto")
_OPTION = re.compile(r"(\w+)\s*=\s*(\S+)")
_LOGICAL = {"TRUE": True, "T": True, "True": True, "FALSE": False, "F": False, "False": False}


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term ``(expr | group)``, ``(expr || group)`` or, with a covariance
    structure, ``us(expr | group)``, ``diag(...)``, ``cs(...)``, ``ar1(...)`` (``hom`` resolved)."""

    expr: str
    group: tuple[str, ...]
    correlated: bool = True
    structure: str = "us"
    hom: bool = False

    @property
    def group_name(self) -> str:
        """The grouping factor's name as lme4 prints it, e.g. ``"b:a"``."""
        return ":".join(self.group)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed-effects text and random terms."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...] = ()  # expressions of offset(...) summands, as R's offset()
    checked: bool = False  # passed check_formula: every part evaluated from it is checked again

    @property
    def fixed_formula(self) -> str:
        """The fixed-effects formula, ready for formulaic."""
        return f"{self.response} ~ {self.fixed}" if self.response else f"~ {self.fixed}"


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4 formula such as ``"y ~ x + (1 + x | g)"``.

    Raises FormulaError, pointing at the offending character where possible.
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a str, not {type(formula).__name__}")
    check_size(formula)
    layout = scan(formula)
    tildes = layout.find("~", 0, len(formula), TOP)
    if not tildes:
        raise FormulaError(
            "a formula needs '~' between the response and the terms, "
            "e.g. 'y ~ x + (1 | g)'",
            formula,
        )
    if len(tildes) > 1:
        raise FormulaError("a formula can have only one '~'", formula, tildes[1])
    tilde = tildes[0]
    if not formula[tilde + 1 :].strip():
        raise FormulaError("nothing to the right of '~'", formula, len(formula))
    if layout.find("|", tilde + 1, len(formula), TOP):
        # lme4 reads a bare bar as R does: '|' binds loosest, so 'y ~ 1 | g' is 'y ~ (1 | g)'
        return replace(parse_formula(f"{formula[:tilde + 1]} ({formula[tilde + 1:].strip()})"), text=formula)

    fixed: list[str] = []
    random: list[RandomTerm] = []
    offsets: list[str] = []
    for piece_start, piece_end in layout.split("+", tilde + 1, len(formula), TOP):
        start, end = _strip(formula, piece_start, piece_end)
        if start == end:
            plus = piece_start - 1 if formula[piece_start - 1] == "+" else end
            raise FormulaError("empty term next to '+'", formula, plus)
        bar_end = _bar_end(layout, start, end)
        if bar_end is not None:
            random.extend(_random_terms(layout, start, bar_end - 1))
        else:
            call = _structure_call(layout, start, end)
            if call is not None:
                random.extend(_structured_terms(layout, start, *call))
                bar_end = call[-1] + 1
        if bar_end is not None:
            # What may follow a bar in its summand is a removal like "- 1".
            start, end = _strip(formula, bar_end, end)
        if start < end:
            _reject_hidden_bars(layout, start, end)
            inner = _offset_argument(layout, start, end)
            if inner is not None:
                offsets.append(inner)
            else:
                fixed.append(formula[start:end])
    parsed = ParsedFormula(
        text=formula,
        response=formula[:tilde].strip(),
        fixed=_join_summands(fixed),
        random=tuple(random),
        offsets=tuple(offsets),
    )
    check_random_terms(len(random), formula)
    for part in (parsed.fixed, *{t.expr for t in random}):
        if column_bound(python_part(part), formula) > MAX_TERMS:
            raise FormulaError(f"{part!r} expands to more than {MAX_TERMS:,} terms", formula)
    return parsed


def _offset_argument(layout: Layout, start: int, end: int) -> str | None:
    """The argument of a summand that is exactly ``offset(...)``, else None."""
    text = layout.text
    if not text.startswith("offset", start):
        return None
    paren = start + len("offset")
    while paren < end and text[paren].isspace():
        paren += 1
    if paren >= end or text[paren] != "(" or layout.closer.get(paren) != end - 1:
        return None
    inner = text[paren + 1 : end - 1].strip()
    if not inner:
        raise FormulaError("offset() needs an expression, e.g. offset(log(exposure))", text, paren)
    return inner


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Narrow ``[start, end)`` to exclude surrounding whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _join_summands(summands: list[str]) -> str:
    """Join fixed summands with ``+``, except those that start with ``-``."""
    joined = " ".join(s if s.startswith("-") else f"+ {s}" for s in summands)
    return joined.removeprefix("+ ") or "1"


def _bar_end(layout: Layout, start: int, end: int) -> int | None:
    """End of the ``( expr | grouping )`` that opens a summand, if it does.

    The bar may be the whole summand or be followed by a removal such as
    ``(1 | g) - 1``; anything else leaves it buried in fixed text.
    """
    text = layout.text
    if text[start] != "(" or not layout.find("|", start + 1, end, start):
        return None
    bar_end = layout.closer[start] + 1
    rest = text[bar_end:end].lstrip()
    return bar_end if not rest or rest.startswith("-") else None


def _structure_call(layout: Layout, start: int, end: int) -> tuple[int, int, int] | None:
    """(open parenthesis, end of the bar's argument, close parenthesis) of a summand that is a
    call with a bar directly inside, ``ar1(0 + f | g)``, possibly followed by a removal.

    ``I(a | b)`` (Python's "or" inside ``I``) is left to formulaic.
    """
    text = layout.text
    name = _NAME.match(text, start, end)
    if name is None or name.group() == "I":
        return None
    paren = name.end()
    while paren < end and text[paren].isspace():
        paren += 1
    if paren >= end or text[paren] != "(":
        return None
    close = layout.closer[paren]
    rest = text[close + 1:end].lstrip()
    if (rest and not rest.startswith("-")) or not layout.find("|", paren + 1, close, paren):
        return None
    commas = layout.find(",", paren + 1, close, paren)
    return paren, commas[0] if commas else close, close


def _structured_terms(layout: Layout, start: int, paren: int, stop: int, close: int) -> list[RandomTerm]:
    """The terms of ``name(expr | grouping, hom = TRUE)``, ``name`` one of lme4 2.0's STRUCTURES."""
    text = layout.text
    name = text[start:paren].strip()
    valid = ", ".join(f"{s}()" for s in [*STRUCTURES, *GLMMTMB_NAMES])
    if name in GLMMTMB_UNAVAILABLE:
        raise FormulaError(f"{name}() is a glmmTMB covariance structure that mixedmodels does not have; "
                           f"available: {valid}", text, start)
    if name not in STRUCTURES and name not in GLMMTMB_NAMES:
        raise FormulaError(f"{name}() is not a covariance structure; a random-effects term is (expr | g), "
                           f"(expr || g) or one of {valid}, e.g. 'ar1(0 + f | g)'."
                           + did_you_mean(name, [*STRUCTURES, *GLMMTMB_NAMES]), text, start)
    if not layout.find("|", paren + 1, stop, paren):
        raise FormulaError(f"the first argument of {name}() is a random-effects term such as '0 + f | g'",
                           text, paren + 1)
    structure, hom = GLMMTMB_NAMES.get(name, (name, STRUCTURES.get(name, False)))
    for option_start, option_end in layout.split(",", stop + 1, close, paren) if stop < close else []:
        option_start, option_end = _strip(text, option_start, option_end)
        option = _OPTION.fullmatch(text, option_start, option_end)
        if (option is None or option.group(1) != "hom" or option.group(2) not in _LOGICAL or name == "us"
                or name in GLMMTMB_NAMES):
            takes = ("no options" if name == "us" else
                     f"no options (glmmTMB's {name} is {structure}() with hom = {'TRUE' if hom else 'FALSE'})"
                     if name in GLMMTMB_NAMES else "one option, hom = TRUE or FALSE")
            raise FormulaError(f"{name}() takes {takes}, not {text[option_start:option_end]!r}", text, option_start)
        hom = _LOGICAL[option.group(2)]
    terms = _random_terms(layout, paren, stop)
    if not terms[0].correlated:
        raise FormulaError(f"{name}() takes a single '|'; for uncorrelated effects write diag(expr | g) or "
                           "(expr || g)", text, layout.find("|", paren + 1, stop, paren)[0])
    return [replace(t, structure=structure, hom=hom) for t in terms]


def without_structure_names(formula: str) -> str:
    """``formula`` with each structured term's name and options blanked out (``ar1(0 + f | g, hom = TRUE)``
    read as ``   (0 + f | g            )``), positions kept: what the safety check tokenizes.

    The names and options are checked by :func:`parse_formula` (literal ``hom`` values only).
    """
    layout = scan(formula)
    tildes = layout.find("~", 0, len(formula), TOP)
    out = list(formula)
    for piece_start, piece_end in layout.split("+", tildes[0] + 1 if tildes else 0, len(formula), TOP):
        start, end = _strip(formula, piece_start, piece_end)
        call = _structure_call(layout, start, end) if start < end else None
        if call is not None and _bar_end(layout, start, end) is None:
            paren, stop, close = call
            out[start:paren] = " " * (paren - start)
            out[stop:close] = " " * (close - stop)
    return "".join(out)


def _random_terms(layout: Layout, start: int, stop: int) -> list[RandomTerm]:
    """The terms of the bar ``expr | grouping`` between the parenthesis at ``start`` and ``stop``."""
    text = layout.text
    bars = layout.find("|", start + 1, stop, start)
    double = len(bars) >= 2 and bars[1] == bars[0] + 1
    if len(bars) > (2 if double else 1):
        extra = bars[2] if double else bars[1]
        raise FormulaError("a random-effect term has a single '|' or '||'", text, extra)
    expr_start, expr_end = _strip(text, start + 1, bars[0])
    if expr_start == expr_end:
        raise FormulaError(
            "nothing before '|'; write '1' for a random intercept, e.g. '(1 | g)'",
            text,
            bars[0],
        )
    groups = _groupings(layout, bars[-1] + 1, stop, start)
    expr = text[expr_start:expr_end]
    return [RandomTerm(expr, group, correlated=not double) for group in groups]


def _groupings(layout: Layout, start: int, end: int, parent: int) -> list[tuple[str, ...]]:
    """Expand ``a``, ``a:b`` or ``a/b/c`` into grouping tuples, outermost first.

    Nesting ``a/b`` means the groups ``a`` and ``b`` within ``a``, which lme4
    names ``b:a``; hence ``("a",)`` then ``("b", "a")``.
    """
    text = layout.text
    group_start, group_end = _strip(text, start, end)
    if group_start == group_end:
        raise FormulaError(
            "nothing after '|'; name the grouping variable, e.g. '(1 | g)'", text, start - 1
        )
    groups: list[tuple[str, ...]] = []
    nested: tuple[str, ...] = ()
    for level_start, level_end in layout.split("/", group_start, group_end, parent):
        names: list[str] = []
        for name_start, name_end in layout.split(":", level_start, level_end, parent):
            name_start, name_end = _strip(text, name_start, name_end)
            name = _name(text[name_start:name_end])
            if name is None:
                raise FormulaError(
                    f"cannot group by {text[group_start:group_end]!r}; {_GROUPING_HELP}",
                    text,
                    name_start,
                )
            names.append(name)
        nested = (*names, *nested)
        groups.append(nested)
    return groups


def _name(piece: str) -> str | None:
    """The variable named by ``piece`` (backticks removed), or None."""
    if len(piece) > 2 and piece[0] == piece[-1] == "`" and "`" not in piece[1:-1]:
        return piece[1:-1]
    return piece if _NAME.fullmatch(piece) else None


def _reject_hidden_bars(layout: Layout, start: int, end: int) -> None:
    """Reject a bar buried in a fixed summand, e.g. ``x - (1 | g)``.

    A ``|`` inside a function call (``I(a | b)``) or an index is left alone.
    """
    text = layout.text
    for bar in range(start, end):
        if text[bar] != "|" or layout.quoted[bar]:
            continue
        outermost = _plain_group_around(layout, bar)
        if outermost is None:
            continue
        before = _previous_char(text, outermost)
        if before >= 0 and text[before] == "-":
            raise FormulaError("a random-effect term cannot be removed with '-'", text, before)
        raise FormulaError(
            "a random-effect term must be added on its own, e.g. 'y ~ x + (1 | g)'",
            text,
            bar,
        )


def _plain_group_around(layout: Layout, i: int) -> int | None:
    """The outermost bracket around ``i`` if all are plain parentheses, else None."""
    text = layout.text
    group = layout.enclosing[i]
    outermost = None
    while group != TOP:
        if text[group] != "(" or _is_call(text, group):
            return None
        outermost = group
        group = layout.enclosing[group]
    return outermost


def _is_call(text: str, paren: int) -> bool:
    """Whether the ``(`` at ``paren`` opens a call's arguments, as in ``f(x)``."""
    before = _previous_char(text, paren)
    return before >= 0 and (text[before].isalnum() or text[before] in "._)]`")


def _previous_char(text: str, i: int) -> int:
    """Index of the last non-space character before ``i``, or -1."""
    i -= 1
    while i >= 0 and text[i].isspace():
        i -= 1
    return i


def with_dot_expanded(parsed: ParsedFormula, columns: list[str]) -> ParsedFormula:
    """R's ``.`` in the fixed part, as every column of ``columns`` not in the response."""
    layout = scan(parsed.fixed)
    summands = [parsed.fixed[a:b].strip() for a, b in layout.split("+", 0, len(parsed.fixed), TOP)]
    if "." not in summands:
        return parsed
    response = set(_NAME.findall(parsed.response)) | set(re.findall(r"`([^`]*)`", parsed.response))
    others = [c if re.fullmatch(r"[A-Za-z_]\w*", c) else f"`{c}`" for c in map(str, columns) if c not in response]
    expanded = [term for s in summands for term in (others if s == "." else [s])]
    return replace(parsed, fixed=_join_summands(expanded))

