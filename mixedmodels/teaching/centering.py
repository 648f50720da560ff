"""Centring predictors: grand-mean centring, and the within/between split of group-mean centring.

With ``by`` a grouping column, ``x`` is split into its cluster mean x̄ⱼ (``x_between``) and the
deviation from it xᵢⱼ − x̄ⱼ (``x_within``), as R's ``datawizard::demean``.  In
``y ~ x_within + x_between + (1 | g)`` the two slopes are the within-cluster and the
between-cluster effect; in ``y ~ x + x_between + (1 | g)`` the slope of ``x_between`` is the
contextual effect, between − within, with its own test (Raudenbush & Bryk 2002, chapter 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..errors import DataError, did_you_mean


def center(data: pd.DataFrame, columns: str | Sequence[str], by: str | None = None,
           grand: bool = False) -> pd.DataFrame:
    """A copy of ``data`` with centred versions of the numeric ``columns`` added.

    ``by=None``: grand-mean centring, ``{x}_c`` = x − mean(x).  ``by="g"``: ``{x}_between``
    = the mean of x in the row's level of g and ``{x}_within`` = x − that mean (group-mean
    centring); ``grand=True`` also centres ``{x}_between`` at the grand mean, so that the
    intercept is the expected outcome at the average x.  Means skip missing x (those rows
    get a missing ``_within``/``_c``).  The caller's frame is never modified.
    """
    names = [columns] if isinstance(columns, str) else list(columns)
    for name in names + ([by] if by is not None else []):
        if name not in data.columns:
            raise DataError(f"center: {name!r} is not a column of the data." + did_you_mean(name, data.columns))
    for name in names:
        if not pd.api.types.is_numeric_dtype(data[name]) or pd.api.types.is_bool_dtype(data[name]):
            raise DataError(f"center: column {name!r} is not numeric ({data[name].dtype}); only numeric "
                            "predictors can be centred (code a factor as 0/1 dummies first if that is meant)")
    if by is not None and data[by].isna().any():
        raise DataError(f"center: the grouping column {by!r} has {int(data[by].isna().sum())} missing "
                        "value(s); give those rows a group or drop them first")
    suffixes = ("_c",) if by is None else ("_within", "_between")
    added = [name + s for name in names for s in suffixes]
    clashes = [a for a in added if a in data.columns]
    if clashes:
        raise DataError(f"center: the data already have column(s) {', '.join(map(repr, clashes))}; "
                        "rename or drop them first (center never overwrites a column)")
    out = data.copy()
    for name in names:
        x = data[name].astype(float)
        if by is None:
            out[name + "_c"] = x - x.mean()
            continue
        between = x.groupby(data[by], observed=True, sort=False).transform("mean")
        out[name + "_within"] = x - between
        out[name + "_between"] = between - x.mean() if grand else between
    return out
