"""R's ``update.formula``: a new formula written against an old one, ``.`` standing for the old side.

``update_formula("y ~ a * b + (1 | g)", ". ~ . - a:b")`` is ``"y ~ a + b + (1 | g)"``, as R's
``update(m, . ~ . - a:b)`` writes it.  The right-hand sides are read as R's terms: ``a * b`` is
``a + b + a:b``, ``(a + b)^2`` the same, ``b:a`` the same term as ``a:b``, a random-effects bar
``(x | g)`` one term; ``- term`` removes it, ``0``/``- 1`` the intercept and ``1`` puts it back.
Terms are written by degree, in the order they first appear (R's ``keep.order = FALSE``), and
``- 1`` last when there is no intercept.  The text is only rearranged, never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mixedmodels.errors import FormulaError

from .layout import scan

_DOT = re.compile(r"(?<![\w.])\.(?![\w.])")


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with each ``.`` replaced by the matching side of ``old``, its right-hand
    side simplified to R's terms."""
    old_lhs, old_rhs = _sides(old)
    new_lhs, new_rhs = _sides(new)
    if old_lhs is None:
        raise FormulaError("the formula to update has no response (nothing left of '~')", old, 0)
    lhs = old_lhs if new_lhs is None else _DOT.sub(lambda _: old_lhs, new_lhs)
    reader = _Terms(new)
    intercept, terms = reader.read(new_rhs, reader.read(old_rhs, None))
    written = " + ".join(reader.label(t) for t in terms)
    if intercept:
        return f"{lhs} ~ {written or '1'}"
    return f"{lhs} ~ {written} - 1" if written else f"{lhs} ~ -1"


def _sides(formula: str) -> tuple[str | None, str]:
    """Left and right of the top-level '~' (None on the left of a one-sided formula)."""
    tilde = [i for i, c in _top_level(formula) if c == "~"]
    if len(tilde) != 1:
        raise FormulaError("a formula needs one '~' outside brackets", formula, tilde[1] if tilde else 0)
    lhs, rhs = formula[:tilde[0]].strip(), formula[tilde[0] + 1:].strip()
    return lhs or None, rhs


def _top_level(text: str) -> list[tuple[int, str]]:
    """(position, character) of each character outside brackets, quotes and backticks."""
    return scan(text).top_level()


Term = frozenset[str]  # a fixed term's factors; a bar is one factor "(x | g)"


class _Terms:
    """The terms of right-hand sides read in turn, with each factor's first appearance (for labels)."""

    def __init__(self, formula: str):
        self.formula = formula
        self.order: dict[str, int] = {}

    def read(self, rhs: str, old: tuple[bool, list[Term]] | None) -> tuple[bool, list[Term]]:
        """Whether there is an intercept, and the terms in R's order (by degree, then first
        appearance), of a right-hand side; ``old`` is what '.' means (None: no '.')."""
        intercept, terms = True, list[Term]()
        for sign, piece in _summands(rhs):
            if piece == ".":
                if old is None:
                    raise FormulaError("'.' needs a formula to update", self.formula, self.formula.find("."))
                if sign > 0:
                    intercept = old[0]
                terms = _joined(terms, old[1]) if sign > 0 else [t for t in terms if t not in old[1]]
            elif piece in ("0", "1"):
                intercept = (piece == "1") == (sign > 0)
            elif sign > 0:
                terms = _joined(terms, self.expand(piece))
            else:
                removed = self.expand(piece)
                terms = [t for t in terms if t not in removed]
        return intercept, sorted(terms, key=len)

    def expand(self, piece: str) -> list[Term]:
        """R's terms of one summand: products (*), interactions (:), powers of sums ((a + b)^2)."""
        if _is_bar(piece):
            return [self.term([_bar(piece)])]
        stars = _split(piece, "*")
        if len(stars) > 1:
            out: list[Term] = []
            for factor in stars:
                inner = self.expand(factor)
                out = _joined(out, inner + [a | b for a in out for b in inner])
            return out
        power = re.fullmatch(r"\((.*)\)\s*\^\s*(\d+)", piece, re.S)
        if power:
            base = [t for _, p in _summands(power.group(1)) for t in self.expand(p)]
            out = list(base)
            for _ in range(int(power.group(2)) - 1):
                out = _joined(out, [a | b for a in out for b in base])
            return out
        if piece.startswith("(") and piece.endswith(")") and len(_summands(piece[1:-1])) > 1:
            return [t for _, p in _summands(piece[1:-1]) for t in self.expand(p)]
        if any(c in "/%^" for _, c in _top_level(piece)):
            raise FormulaError(f"update() cannot rewrite {piece!r}: write its terms out with '+', '*' and ':'",
                               self.formula, max(self.formula.find(piece), 0))
        return [self.term(" ".join(f.split()) for f in _split(piece, ":"))]

    def term(self, factors: Iterable[str]) -> Term:
        out = frozenset(factors)
        for f in out:
            self.order.setdefault(f, len(self.order))
        return out

    def label(self, term: Term) -> str:
        return ":".join(sorted(term, key=self.order.__getitem__))


def _joined(terms: list[Term], more: list[Term]) -> list[Term]:
    """``terms`` followed by those of ``more`` not among them yet, each once."""
    out = list(terms)
    for t in more:
        if t not in out:
            out.append(t)
    return out


def _summands(rhs: str) -> list[tuple[int, str]]:
    """The top-level '+'/'-' pieces of a right-hand side with their signs."""
    cuts = [(i, c) for i, c in _top_level(rhs) if c in "+-"]
    out, start, sign = [], 0, 1
    for i, c in [*cuts, (len(rhs), "+")]:
        piece = rhs[start:i].strip()
        if piece:
            out.append((sign, piece))
        sign, start = (1 if c == "+" else -1), i + 1
    return out


def _split(text: str, sep: str) -> list[str]:
    cuts = [i for i, c in _top_level(text) if c == sep]
    edges = [-1, *cuts, len(text)]
    return [text[a + 1:b].strip() for a, b in zip(edges, edges[1:])]


def _is_bar(piece: str) -> bool:
    return "|" in piece and piece.rstrip().endswith(")") and not any(c in "+-*:" for _, c in _top_level(piece))


def _bar(piece: str) -> str:
    """A random-effects term written as R deparses it: '(x | g)', '(x || g)'."""
    inner = re.fullmatch(r"\((.*)\)", piece.strip(), re.S)
    if inner is None:
        return " ".join(piece.split())
    text = " ".join(inner.group(1).split())
    return "(" + re.sub(r"\s*(\|\|?)\s*", r" \1 ", text, count=1) + ")"
