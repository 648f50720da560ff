"""The bracket and quote structure of formula-like text: one scanner for every reader of formulas
(lme4 formulas, ``update``'s formulas, nlme's structure calls)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormulaError

_OPENERS = "([{"
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_QUOTES = "`'\""
TOP = -1  # "enclosing bracket" of characters outside all brackets


@dataclass(frozen=True)
class Layout:
    """Bracket and quote structure of a formula, one entry per character."""

    text: str
    enclosing: tuple[int, ...]  # index of the innermost open bracket, or TOP
    quoted: tuple[bool, ...]  # inside or delimiting a backtick/quote span
    closer: dict[int, int]  # open bracket index -> matching close index

    def find(self, chars: str, start: int, end: int, parent: int) -> list[int]:
        """Positions in ``[start, end)`` of ``chars`` directly inside ``parent``."""
        return [
            i
            for i in range(start, end)
            if self.text[i] in chars and self.enclosing[i] == parent and not self.quoted[i]
        ]

    def split(self, chars: str, start: int, end: int, parent: int) -> list[tuple[int, int]]:
        """Split ``[start, end)`` at ``chars`` directly inside ``parent``."""
        cuts = self.find(chars, start, end, parent)
        return list(zip([start] + [c + 1 for c in cuts], cuts + [end]))

    def top_level(self) -> list[tuple[int, str]]:
        """(position, character) of every character outside brackets, quotes and backticks."""
        return [(i, c) for i, c in enumerate(self.text) if self.enclosing[i] == TOP and not self.quoted[i]]


def scan(text: str) -> Layout:
    """Match brackets and quotes, rejecting unbalanced or unterminated ones."""
    enclosing: list[int] = []
    quoted: list[bool] = []
    closer: dict[int, int] = {}
    stack: list[int] = []
    quote_start: int | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote_start is not None:
            enclosing.append(stack[-1] if stack else TOP)
            quoted.append(True)
            delimiter = text[quote_start]
            if escaped:
                escaped = False
            elif ch == "\\" and delimiter != "`":
                escaped = True
            elif ch == delimiter:
                quote_start = None
            continue
        if ch in _CLOSERS:
            if not stack:
                raise FormulaError(f"unmatched {ch!r}", text, i)
            opener = stack.pop()
            if text[opener] != _CLOSERS[ch]:
                raise FormulaError(
                    f"{ch!r} does not match the {text[opener]!r} it closes", text, i
                )
            closer[opener] = i
        enclosing.append(stack[-1] if stack else TOP)
        quoted.append(ch in _QUOTES)
        if ch in _OPENERS:
            stack.append(i)
        elif ch in _QUOTES:
            quote_start = i
    if quote_start is not None:
        kind = "backtick" if text[quote_start] == "`" else "quote"
        raise FormulaError(f"unterminated {kind}", text, quote_start)
    if stack:
        raise FormulaError(f"{text[stack[-1]]!r} is never closed", text, stack[-1])
    return Layout(text, tuple(enclosing), tuple(quoted), closer)
