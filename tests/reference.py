"""Access to the lme4 reference results copied into ``tests/fixtures/reference``.

The originals live outside the project; tests must only ever read these copies.
``tests/fixtures/reference_extra`` holds further references (weights, offsets,
missing values, factor slopes, ...; see its README) whose data sets are in
``tests/fixtures/data`` and are loaded with :func:`load_fixture_data`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference"
EXTRA_REFERENCE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference_extra"
FIXTURE_DATA_DIR = Path(__file__).resolve().parent / "fixtures" / "data"
_NOT_REFERENCES = {"public_spec", "spec_extra"}


def reference_names() -> list[str]:
    """Ids of all reference fits (every JSON file except ``public_spec``)."""
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.json") if p.stem != "public_spec")


def load_reference(name: str) -> dict[str, Any]:
    """Load ``tests/fixtures/reference/<name>.json`` (``name`` without ``.json``)."""
    path = REFERENCE_DIR / f"{name.removesuffix('.json')}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no reference file {path.name!r}; available: {', '.join(reference_names())}"
        )
    with path.open("r", encoding="utf-8") as fh:
        return json.load(fh)


def extra_reference_names() -> list[str]:
    """Ids of the reference fits in ``tests/fixtures/reference_extra``."""
    return sorted(p.stem for p in EXTRA_REFERENCE_DIR.glob("*.json") if p.stem not in _NOT_REFERENCES)


def load_extra_reference(name: str) -> dict[str, Any]:
    """Load ``tests/fixtures/reference_extra/<name>.json``."""
    path = EXTRA_REFERENCE_DIR / f"{name.removesuffix('.json')}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no extra reference file {path.name!r}; available: {', '.join(extra_reference_names())}"
        )
    with path.open("r", encoding="utf-8") as fh:
        return json.load(fh)


def fixture_data_names() -> list[str]:
    """Names of the data sets in ``tests/fixtures/data``."""
    return sorted(p.name.removesuffix(".csv") for p in FIXTURE_DATA_DIR.glob("*.csv"))


def load_fixture_data(name: str) -> pd.DataFrame:
    """Load ``tests/fixtures/data/<name>.csv`` with the types of ``<name>.schema.json``.

    Factors become Categoricals with the schema's levels in R's order (R's first
    level is the reference level); R's ``NA`` becomes a missing value; ``numeric``
    columns are float64, ``integer`` columns int64 (float64 when they hold NA).
    Factor values stay strings (Subject "308" is "308").
    """
    csv = FIXTURE_DATA_DIR / f"{name}.csv"
    schema_path = FIXTURE_DATA_DIR / f"{name}.schema.json"
    if not csv.is_file():
        raise FileNotFoundError(f"no fixture data {csv.name!r}; available: {', '.join(fixture_data_names())}")
    with schema_path.open("r", encoding="utf-8") as fh:
        schema = json.load(fh)
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=["NA"])
    if list(raw.columns) != list(schema):
        raise ValueError(f"{csv.name}: columns {list(raw.columns)} differ from the schema's {list(schema)}")
    columns: dict[str, Any] = {}
    for col, spec in schema.items():
        kind = spec["type"]
        if kind == "factor":
            levels = [str(v) for v in spec["levels"]]
            dtype = pd.CategoricalDtype(pd.Index(levels, dtype=object), ordered=bool(spec.get("ordered", False)))
            values = raw[col]
            unknown = set(values.dropna()) - set(levels)
            if unknown:
                raise ValueError(f"{csv.name}, column {col!r}: values not among the levels: {sorted(unknown)[:5]}")
            columns[col] = pd.Categorical(values, dtype=dtype)
        elif kind in ("numeric", "integer"):
            nums = pd.to_numeric(raw[col], errors="raise").astype("float64").to_numpy()
            if kind == "integer" and not np.isnan(nums).any():
                nums = nums.astype(np.int64)
            columns[col] = nums
        else:
            raise ValueError(f"{csv.name}, column {col!r}: unknown schema type {kind!r}")
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(raw)))
    frame.attrs["name"] = name
    return frame
