"""Example data sets from R's lme4 (and mlmRev) packages.

Use :func:`load` to get a data set as a :class:`pandas.DataFrame` and
:func:`available` to list the names::

    >>> import mixedmodels as mm
    >>> mm.datasets.load("sleepstudy").shape
    (180, 3)

Each data set is shipped as ``data/<Name>.csv`` with a ``data/<Name>.schema.json``
giving every column's type. Factor columns are loaded as pandas Categoricals
whose categories are in R's level order (R's first level is the reference
level of treatment contrasts), ``ordered=True`` for R's ordered factors; factor
values are always read as strings (Subject ``"308"`` stays ``"308"``).
``integer`` columns are ``int64`` and ``numeric`` columns ``float64``.

Data sets
---------
sleepstudy
    Reaction times of 18 subjects over 10 days of sleep deprivation
    (Belenky et al. 2003).
Dyestuff
    Yield of dyestuff from 5 samples of each of 6 batches of an intermediate
    product (Davies & Goldsmith 1972).
Dyestuff2
    Simulated yields in the Dyestuff layout (Box & Tiao 1973); its REML fit
    has a singular (zero) batch variance.
Penicillin
    Diameter of growth-inhibition zones for 6 penicillin samples on each of
    24 plates (Davies & Goldsmith 1972); fully crossed.
Pastes
    Strength of a chemical paste: 2 assays of 3 casks from each of 10
    delivery batches (Davies & Goldsmith 1972); cask nested in batch.
cbpp
    Contagious bovine pleuropneumonia: new serological cases (``incidence``)
    out of ``size`` zebu cattle in 15 herds over 4 periods (Lesnoff et al. 2004).
InstEval
    73,421 lecture ratings (1-5) by students ``s`` of lecturers ``d`` at ETH
    Zurich, with the lecturer's department and service-course flag.
VerbAgg
    Verbal aggression item responses of 316 subjects to 24 items
    (De Boeck & Wilson 2004); ``r2`` is the binary response (1 = yes/perhaps).
Hsb82
    High School and Beyond: math achievement ``mAch`` of 7,185 students in 160
    schools, with ``ses``, its school mean ``meanses`` and deviation ``cses``, and
    the school's ``sector`` (Raudenbush & Bryk 2002, chapter 4; from mlmRev).
egsingle
    Math scores of 1,721 children (``childid``) in 60 schools (``schoolid``) over
    up to 6 years (``year``): a three-level growth example (Raudenbush & Bryk
    2002, chapter 8; from mlmRev, selected columns).
Contraception
    Contraceptive ``use`` (Y/N) of 1,934 women in 60 districts of Bangladesh, with
    ``age`` (centred), ``urban`` and number of living children ``livch`` (from mlmRev).
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["load", "available", "DESCRIPTIONS"]

#: One-line description of each data set, by its canonical name.
DESCRIPTIONS: dict[str, str] = {
    "sleepstudy": (
        "Reaction times of 18 subjects over 10 days of sleep deprivation "
        "(Belenky et al. 2003)."
    ),
    "Dyestuff": (
        "Yield of dyestuff from 5 samples of each of 6 batches of an "
        "intermediate product (Davies & Goldsmith 1972)."
    ),
    "Dyestuff2": (
        "Simulated yields in the Dyestuff layout (Box & Tiao 1973); "
        "the batch variance estimate is zero."
    ),
    "Penicillin": (
        "Diameters of growth-inhibition zones of 6 penicillin samples on "
        "24 plates (Davies & Goldsmith 1972); crossed factors."
    ),
    "Pastes": (
        "Paste strength: 2 assays of 3 casks from each of 10 batches "
        "(Davies & Goldsmith 1972); cask nested in batch."
    ),
    "cbpp": (
        "Contagious bovine pleuropneumonia incidence in 15 zebu herds over "
        "4 periods (Lesnoff et al. 2004)."
    ),
    "InstEval": (
        "73,421 course evaluations (1-5) of lecturers by students at "
        "ETH Zurich; large crossed design."
    ),
    "VerbAgg": (
        "Verbal aggression item responses of 316 subjects to 24 items "
        "(De Boeck & Wilson 2004)."
    ),
    "Hsb82": (
        "High School and Beyond: mathematics achievement of 7,185 students in 160 schools "
        "(Raudenbush & Bryk 2002, chapter 4; mlmRev); cses is SES centred at the school mean."
    ),
    "egsingle": (
        "Mathematics scores of 1,721 children in 60 schools over up to 6 years, a three-level "
        "growth example (Raudenbush & Bryk 2002, chapter 8; mlmRev)."
    ),
    "Contraception": (
        "Contraceptive use (binary) of 1,934 women in 60 districts of Bangladesh, 1988 "
        "(Huq & Cleland 1990; mlmRev)."
    ),
}

_DATA_PACKAGE = __name__  # "mixedmodels.io.datasets"
_DATA_DIR = "data"


def available() -> list[str]:
    """Return the names of the bundled data sets (canonical spelling)."""
    return list(DESCRIPTIONS)


def _canonical_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a str, not {type(name).__name__}")
    lookup = {n.lower(): n for n in DESCRIPTIONS}
    key = name.strip().lower()
    if key in lookup:
        return lookup[key]
    names = available()
    msg = f"unknown data set {name!r}; available data sets: {', '.join(names)}"
    close = difflib.get_close_matches(key, list(lookup), n=1, cutoff=0.6)
    if close:
        msg += f". Did you mean {lookup[close[0]]!r}?"
    raise ValueError(msg)


def _data_file(filename: str):
    return resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR).joinpath(filename)


def _read_schema(name: str) -> dict[str, dict[str, Any]]:
    with _data_file(f"{name}.schema.json").open("r", encoding="utf-8") as fh:
        return json.load(fh)


def _convert_column(name: str, col: str, raw: pd.Series, spec: dict[str, Any]) -> Any:
    """Convert one column read as strings to its schema type."""
    kind = spec.get("type")
    if kind == "factor":
        levels = [str(lev) for lev in spec["levels"]]
        ordered = bool(spec.get("ordered", False))
        values = raw.astype(object)
        missing = values.isin(["", "NA"]) & ~values.isin(levels)
        values = values.where(~missing, None)
        unknown = set(values[~missing].unique()) - set(levels)
        if unknown:
            shown = ", ".join(repr(v) for v in sorted(unknown)[:5])
            raise ValueError(
                f"data set {name!r}, column {col!r}: values not among the "
                f"schema's levels: {shown}"
            )
        cat_type = pd.CategoricalDtype(
            categories=pd.Index(levels, dtype=object), ordered=ordered
        )
        return pd.Categorical(values, dtype=cat_type)
    if kind in ("numeric", "integer"):
        values = raw.astype(object).where(~raw.isin(["", "NA"]), None)
        nums = pd.to_numeric(values, errors="raise").astype("float64")
        if kind == "numeric":
            return nums.to_numpy(dtype=np.float64)
        if nums.isna().any():
            # Missing values cannot live in int64; keep them with pandas' nullable type.
            return nums.astype("Int64")
        arr = nums.to_numpy(dtype=np.float64)
        if not np.all(arr == np.round(arr)):
            raise ValueError(
                f"data set {name!r}, column {col!r}: non-integer values in an "
                "integer column"
            )
        return arr.astype(np.int64)
    raise ValueError(f"data set {name!r}, column {col!r}: unknown schema type {kind!r}")


@functools.lru_cache(maxsize=None)
def _load_cached(name: str) -> pd.DataFrame:
    schema = _read_schema(name)
    with _data_file(f"{name}.csv").open("r", encoding="utf-8", newline="") as fh:
        raw = pd.read_csv(fh, dtype=str, keep_default_na=False, na_filter=False)
    if list(raw.columns) != list(schema):
        raise ValueError(
            f"data set {name!r}: CSV columns {list(raw.columns)} do not match "
            f"the schema's {list(schema)}"
        )
    columns = {
        col: _convert_column(name, col, raw[col], schema[col]) for col in raw.columns
    }
    return pd.DataFrame(columns, index=pd.RangeIndex(len(raw)))


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a new :class:`pandas.DataFrame`.

    Parameters
    ----------
    name
        Data set name, case-insensitive (``"sleepstudy"``, ``"dyestuff"``,
        ``"InstEval"``, ...); see :func:`available`.

    Returns
    -------
    pandas.DataFrame
        A fresh copy on every call, so callers may modify it freely. Factor
        columns are Categoricals in R's level order.

    Raises
    ------
    ValueError
        If ``name`` is not a bundled data set.
    """
    canonical = _canonical_name(name)
    frame = _load_cached(canonical).copy(deep=True)
    frame.attrs["name"] = canonical  # shown as "Data:" in model summaries
    return frame
