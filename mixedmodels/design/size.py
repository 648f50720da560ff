"""The predicted size of a fixed-effects matrix, checked against the memory available.

A factor with 100,000 levels in the fixed part asks formulaic for a dense matrix of
100,000 columns; on 100,000 rows that is 80 GB.  Before anything is evaluated, the
columns are bounded from formulaic's expression tree (``formula.limits.column_bound``)
with each factor's levels, and a design that would not fit is a DataError naming the
largest factor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from formulaic.parser.types import Token

from ..errors import DataError
from ..formula.limits import column_bound

COPIES = 3  # formulaic's pieces, its matrix and our float copy exist at once


def available_memory() -> int:
    """Bytes of memory available to this process now (Linux MemAvailable, else free pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_design_size(part: str, formula: str, n_rows: int, levels: Mapping[str, int],
                      what: str = "fixed-effects") -> None:
    """Raise DataError when the model matrix of ``part`` on ``n_rows`` rows would not fit in memory
    (``levels``: the number of levels of each factor column)."""

    def leaf_columns(token: Token) -> int:
        names = [token.token] if token.kind is Token.Kind.NAME else [c for c in levels if c in token.token]
        return max([levels.get(name, 2) - 1 for name in names] + [1])

    columns = column_bound(part, formula, leaf_columns)
    need = columns * n_rows * 8 * COPIES
    available = available_memory()
    if need > available:
        largest = max(levels, key=levels.__getitem__, default=None)
        hint = (f"; the factor {largest!r} has {levels[largest]:,} levels: is it meant as a grouping factor, "
                f"(1 | {largest})?" if largest is not None else "")
        raise DataError(
            f"the {what} matrix would have up to {columns:,} columns for {n_rows:,} rows, about "
            f"{need / 2**30:,.1f} GiB with working copies, more than the {available / 2**30:,.1f} GiB of memory "
            f"available{hint}"
        )

