"""inference/fixed_tests.contest against lmerTest 3.1-3's contest() (tests/fixtures/parity/helpers.R):
the joint F test (contestMD) and row-wise t tests (contest1D) with Satterthwaite's and Kenward–Roger's
df, other levels, a right-hand side and a vector L, on Orthodont's distance ~ age * Sex + (1 | Subject)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mixedmodels as mm
from parity import PARITY_DIR, close, orthodont

REF = json.loads((PARITY_DIR / "helpers.json").read_text())["orth"]
L = np.array(REF["L"], dtype=float)


@pytest.fixture(scope="module")
def orth() -> mm.LmerResult:
    return mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont())


def _same(ours, theirs: dict, rel: float = 1e-5) -> None:
    assert list(ours.columns) == list(theirs)
    for column, values in theirs.items():
        close(ours[column], np.atleast_1d(values), rel)


@pytest.mark.parametrize("name, ddf", [("joint", "Satterthwaite"), ("joint_kr", "Kenward-Roger")])
def test_joint_f_test_is_contestmd(orth, name, ddf):
    _same(mm.contest(orth, L, ddf=ddf), REF[name])


@pytest.mark.parametrize("name, kwargs", [("rows", {}), ("rows_kr", {"ddf": "Kenward"}), ("rows_90", {"level": 0.9})])
def test_row_tests_are_contest1d(orth, name, kwargs):
    _same(mm.contest(orth, L, joint=False, **kwargs), REF[name])


def test_rhs_and_a_vector(orth):
    _same(mm.contest(orth, L[1], joint=False, rhs=-0.3), REF["rows_rhs"])
    _same(mm.contest(orth, [0, 1, 0, 0], joint=False), REF["vector"])


def test_contest_errors(orth):
    with pytest.raises(mm.DataError, match="needs one per coefficient"):
        mm.contest(orth, [0, 1, 0])
    with pytest.raises(mm.MixedModelsError, match="joint=False"):
        mm.contest(orth, L, rhs=[1, 0])
    with pytest.raises(mm.MixedModelsError, match="ddf must be one of"):
        mm.contest(orth, L, ddf="lme4")
    ml = mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont(), REML=False)
    with pytest.raises(ValueError, match="only available for REML fits"):
        mm.contest(ml, L, ddf="Kenward-Roger")
