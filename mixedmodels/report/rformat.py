"""Numbers and tables printed the way R prints them, so summaries read like lme4's.

R formats a numeric column with one number of decimals for the whole column: the
fewest that show every entry to ``digits`` significant digits (trailing zeros
dropped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def column_decimals(values: Sequence[float] | np.ndarray, digits: int) -> int:
    """Decimals R's ``format(x, digits=digits)`` would use for the column ``values``."""
    decimals = 0
    for x in values:
        if not np.isfinite(x) or x == 0:
            continue
        text = np.format_float_positional(float(f"{x:.{digits}g}"), trim="-")
        if "." in text:
            decimals = max(decimals, len(text.split(".")[1]))
    return min(decimals, 15)


def format_column(values: Sequence[float] | np.ndarray, digits: int) -> list[str]:
    """Each value with the column's common number of decimals, like R's ``format``."""
    d = column_decimals(values, digits)
    return [_fixed(x, d) for x in values]


def _fixed(x: float, decimals: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.{decimals}f}"


def signif_stars(p: float) -> str:
    """R's significance codes."""
    if not np.isfinite(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return star
    return " "


SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str], indent: str = "") -> str:
    """Columns padded to a common width; ``align`` is 'l' or 'r' per column."""
    cells = [list(header)] + [list(r) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(row, widths, align)
        ]
        lines.append((indent + " ".join(parts)).rstrip())
    return "\n".join(lines)


def zapsmall(x: np.ndarray, digits: int) -> np.ndarray:
    """R's zapsmall: round to about ``digits`` significant digits of the largest value
    (R rounds the non-integer number of decimals ``digits - log10(max)`` to the nearest)."""
    finite = x[np.isfinite(x)]
    mx = float(np.max(np.abs(finite))) if finite.size else 0.0
    return np.round(x, max(0, math.floor(digits - math.log10(mx) + 0.5)) if mx > 0 else digits)


def format_vector(values: Sequence[float] | np.ndarray, digits: int) -> list[str]:
    """R's ``format(x, digits)`` of a numeric vector: common fixed decimals or common scientific
    mantissa, whichever is narrower (fixed on ties); NaN becomes ''."""
    finite = [float(v) for v in values if np.isfinite(v)]
    if not finite:
        return ["" for _ in values]
    sig, expo = [], []
    for v in finite:
        mantissa, e = f"{abs(v):.{digits - 1}e}".split("e")
        sig.append(len(mantissa.replace(".", "").rstrip("0")) or 1)
        expo.append(int(e) if v != 0 else 0)
    neg = any(v < 0 for v in finite)
    decimals = max(max(0, s - e - 1) for s, e in zip(sig, expo))
    left = max((v < 0) + max(e, 0) + 1 for v, e in zip(finite, expo))
    fixed_width = left + decimals + (decimals > 0)
    mant = max(sig)
    sci_width = neg + mant + (mant > 1) + (5 if any(abs(e) >= 100 for e in expo) else 4)
    fmt = f".{decimals}f" if fixed_width <= sci_width else f".{mant - 1}e"
    return [format(float(v), fmt) if np.isfinite(v) else "" for v in values]


def format_pval_vector(p: np.ndarray, digits: int, eps: float = float(np.finfo(float).eps)) -> list[str]:
    """R's ``format.pval``: small and large p-values formatted as two groups, '< 2.2e-16' below eps."""
    out = ["" for _ in p]
    ok = [i for i, v in enumerate(p) if np.isfinite(v)]
    tiny = [i for i in ok if p[i] < eps]
    rest = [i for i in ok if p[i] >= eps]
    expo = {i: math.floor(math.log10(p[i])) for i in rest}
    fixp = [i for i in rest if expo[i] >= -3 or (expo[i] == -4 and digits > 1)]
    for group in (fixp, [i for i in rest if i not in fixp]):
        for i, text in zip(group, format_vector([p[i] for i in group], digits)):
            out[i] = text
    if tiny:
        d = max(1, digits - 2)
        sep = " " if d > 1 else ""
        if rest:
            nc = max(len(out[i]) for i in rest)
            if d > 1 and d + 6 > nc:
                d = max(1, nc - 7)
            sep = "" if d == 1 and nc <= 6 else " "
        for i in tiny:
            out[i] = "<" + sep + format_vector([eps], d)[0]
    return out
