"""results/lmer.py's augment(), weights() and lmer residuals_of() against lme4 1.1-31 and
broom.mixed 0.2.9.4 (tests/fixtures/parity/sweep.R): sleepstudy, a weighted sleepstudy fit,
Orthodont's age * Sex and cbpp's binomial GLMM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from parity import SWEEP, close, orthodont

SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep() -> mm.LmerResult:
    return mm.lmer(SLEEP, mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def weighted() -> mm.LmerResult:
    data = mm.datasets.load("sleepstudy")
    data["w"] = np.arange(len(data)) % 3 + 1.0  # as sweep.R: 1, 2, 3, 1, 2, 3, ...
    return mm.lmer(SWEEP["weighted"]["formula"], data, weights="w")


@pytest.fixture(scope="module")
def cbpp() -> mm.GlmerResult:
    return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                    family="binomial")


@pytest.mark.parametrize("type", ["response", "pearson", "working", "deviance"])
def test_lmer_residual_types_of_a_weighted_fit(weighted, type):
    close(weighted.residuals_of(type).iloc[:6], SWEEP["weighted"][type], 1e-5)


def test_lmer_residual_types_refuse_what_r_does_not_have(sleep):
    with pytest.raises(mm.MixedModelsError, match="type must be one of"):
        sleep.residuals_of("partial")
    np.testing.assert_allclose(sleep.residuals_of("pearson"), sleep.residuals)  # no weights


def _check_augment(ours: pd.DataFrame, theirs: dict, rel: float) -> None:
    assert list(ours.columns) == list(theirs)
    for column, values in theirs.items():
        if isinstance(values[0], str):
            assert [str(v) for v in ours[column].iloc[:3]] == values
        else:
            close(ours[column].iloc[:3], values, rel)


def test_augment_of_lmer_fits(sleep, weighted):
    _check_augment(sleep.augment(), SWEEP["sleep"]["augment_head"], 1e-4)  # θ̂ agrees to 1e-5
    _check_augment(weighted.augment(), SWEEP["weighted"]["augment_head"], 1e-5)  # with R's (weights)
    orth = mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont())
    _check_augment(orth.augment(), SWEEP["orth"]["augment_head"], 1e-5)


def test_augment_of_a_glmer_fit_has_no_hat_columns(cbpp):
    """R's augment of cbpp shows cbind(...) as one column and lme4's GLMM hat values (above 1);
    here the response's columns and no .hat/.cooksd.  Values within the Laplace difference."""
    ours = cbpp.augment()
    theirs = {k: v for k, v in SWEEP["cbpp"]["augment_head"].items() if k not in (".hat", ".cooksd")}
    assert list(ours.columns[:4]) == ["incidence", "size", "period", "herd"]
    assert list(ours.columns[4:]) == list(theirs)[3:]
    for column in list(theirs)[3:]:
        close(ours[column].iloc[:3], theirs[column], 1e-3)


def test_augment_keeps_the_data_index_and_leaves_the_data_alone():
    data = mm.datasets.load("sleepstudy")
    data.index = data.index + 1000
    data.loc[1003, "Reaction"] = np.nan
    before = data.copy()
    with pytest.warns(mm.DroppedRowsWarning):
        fit = mm.lmer(SLEEP, data)
    out = fit.augment()
    assert len(out) == 179 and 1003 not in out.index and out.index[0] == 1000
    pd.testing.assert_frame_equal(data, before)


def test_weights_prior_and_working(sleep, weighted, cbpp):
    close(cbpp.weights().iloc[:5], SWEEP["cbpp"]["weights_prior_head"], 0)
    close(cbpp.weights("working").iloc[:5], SWEEP["cbpp"]["weights_working_head"], 1e-3)
    close(weighted.weights("prior").iloc[:6], [1, 2, 3, 1, 2, 3], 0)
    assert (sleep.weights() == 1).all()
    # lme4 refuses working weights of LMMs; here they are the prior weights
    np.testing.assert_array_equal(weighted.weights("working"), weighted.weights("prior"))
    with pytest.raises(mm.MixedModelsError, match="type must be one of"):
        sleep.weights("frequency")
