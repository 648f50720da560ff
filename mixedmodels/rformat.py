"""Numbers and tables printed the way R prints them, so summaries read like lme4's.

R formats a numeric column with one number of decimals for the whole column: the
fewest that show every entry to ``digits`` significant digits (trailing zeros
dropped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def column_decimals(values: Sequence[float], digits: int) -> int:
    """Decimals R's ``format(x, digits=digits)`` would use for the column ``values``."""
    decimals = 0
    for x in values:
        if not np.isfinite(x) or x == 0:
            continue
        text = np.format_float_positional(float(f"{x:.{digits}g}"), trim="-")
        if "." in text:
            decimals = max(decimals, len(text.split(".")[1]))
    return min(decimals, 15)


def format_column(values: Sequence[float], digits: int) -> list[str]:
    """Each value with the column's common number of decimals, like R's ``format``."""
    d = column_decimals(values, digits)
    return [_fixed(x, d) for x in values]


def _fixed(x: float, decimals: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.{decimals}f}"


def format_pvalue(p: float, digits: int = 3, eps: float = 2.2e-16) -> str:
    """R's ``format.pval``: '< 2e-16' below machine precision, else significant digits."""
    if not np.isfinite(p):
        return "NA"
    if p < eps:
        return "< 2e-16"
    return f"{p:.{digits}g}"


def format_pvalues(ps: Sequence[float], digits: int = 3) -> list[str]:
    """A p-value column as printCoefmat shows it: '< 2e-16', '1.47e-09', fixed decimals otherwise."""
    fixed = [p for p in ps if np.isfinite(p) and p >= 1e-4]
    d = column_decimals(fixed, digits)
    out = []
    for p in ps:
        if not np.isfinite(p):
            out.append("NA")
        elif p < 1e-4:
            out.append(format_pvalue(p, digits))
        else:
            out.append(f"{p:.{d}f}")
    return out


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
