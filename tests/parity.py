"""The R sweep of everyday helpers (tests/fixtures/parity/sweep.R, sweep.json) and its data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PARITY_DIR = Path(__file__).resolve().parent / "fixtures" / "parity"
SWEEP = json.loads((PARITY_DIR / "sweep.json").read_text())


def orthodont() -> pd.DataFrame:
    """nlme's Orthodont as sweep.R reads it: Sex with levels Male, Female; Subject a factor."""
    data = pd.read_csv(PARITY_DIR / "Orthodont.csv")
    data["Sex"] = pd.Categorical(data["Sex"], ["Male", "Female"])
    data["Subject"] = data["Subject"].astype("category")
    return data


def close(ours: object, theirs: object, rel: float) -> None:
    """Equal to R's values to ``rel``; R's null (NA, or Inf written by jsonlite) compared as NaN/inf."""
    expected = np.array([np.nan if v is None else v for v in np.ravel(np.asarray(theirs, dtype=object))], dtype=float)
    got = np.asarray(ours, dtype=float).ravel()
    assert got == pytest.approx(expected, rel=rel, nan_ok=True)
