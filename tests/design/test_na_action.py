"""na_action="exclude": per-row results padded with NaN to the data's rows, against lme4 1.1-31 fits
with na.action = na.exclude (tests/fixtures/toolbox/na_exclude.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from reference import load_fixture_data

TOOLBOX = Path(__file__).resolve().parents[1] / "fixtures" / "toolbox"
REF = json.loads((TOOLBOX / "na_exclude.json").read_text())


def _values(ref: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in ref], dtype=float)


def _cbpp() -> pd.DataFrame:
    data = pd.read_csv(TOOLBOX / "cbpp_na.csv")
    data["period"] = data["period"].astype(str)
    return data


@pytest.fixture(scope="module")
def lmm() -> mm.LmerResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.DroppedRowsWarning)
        return mm.lmer("Reaction ~ Days + (Days | Subject)", load_fixture_data("sleepstudyNA"), na_action="exclude")


@pytest.fixture(scope="module")
def glmm() -> mm.GlmerResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.DroppedRowsWarning)
        return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _cbpp(), family="binomial",
                        na_action="exclude")


def test_lmm_padded_as_lme4(lmm):
    ref = REF["lmm"]
    for ours, theirs in ((lmm.fitted, "fitted"), (lmm.residuals, "residuals"), (lmm.predict(), "predict")):
        expected = _values(ref[theirs])
        assert len(ours) == len(expected) == 180
        assert np.array_equal(np.isnan(ours.to_numpy()), np.isnan(expected))
        assert ours.to_numpy() == pytest.approx(expected, rel=1e-5, abs=1e-3, nan_ok=True)
    assert lmm.nobs == 172 and lmm.scaled_residuals().isna().sum() == 8


def test_glmm_padded_as_lme4(glmm):
    ref = REF["glmm"]
    pairs = ((glmm.fitted, "fitted"), (glmm.residuals, "residuals"), (glmm.residuals_of("pearson"), "pearson"),
             (glmm.predict(type="link"), "predict_link"))
    for ours, theirs in pairs:
        expected = _values(ref[theirs])
        assert len(ours) == 56
        assert ours.to_numpy() == pytest.approx(expected, rel=1e-3, abs=1e-3, nan_ok=True)


def test_omit_gives_the_rows_used_and_the_fit_is_the_same(lmm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.DroppedRowsWarning)
        omit = mm.lmer("Reaction ~ Days + (Days | Subject)", load_fixture_data("sleepstudyNA"))
    assert len(omit.fitted) == 172
    assert lmm.fitted.dropna().to_numpy() == pytest.approx(omit.fitted.to_numpy(), rel=1e-12)
    assert lmm.fitted.dropna().index.equals(omit.rows_used)
    assert str(lmm.summary()) == str(omit.summary())  # the summary tabulates the rows used


def test_errors_and_what_cannot_be_saved(lmm, tmp_path):
    with pytest.raises(mm.DataError, match="na_action must be 'omit' or 'exclude'"):
        mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"), na_action="pass")
    with pytest.raises(mm.ModelFileError, match="na_action='exclude'"):
        lmm.save(tmp_path / "m.npz")
