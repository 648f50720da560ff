"""m.predict(..., se_fit=True, interval=...): population predictions with the uncertainty of β̂.

tests/fixtures/toolbox/predict_se.R computes √(xᵀVx) with lme4's vcov (equal to emmeans' SE for
the same rows), the normal-quantile intervals and, for the LMM, the prediction interval of a new
subject's observation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

REF = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "toolbox" / "predict_se.json").read_text())


@pytest.fixture(scope="module")
def lmm() -> mm.LmerResult:
    return mm.lmer(REF["lmm"]["formula"], mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def glmm() -> mm.GlmerResult:
    return mm.glmer(REF["glmm"]["formula"], mm.datasets.load("cbpp"), family="binomial")


def test_lmm_standard_errors_and_intervals_match_r(lmm):
    ref = REF["lmm"]
    newdata = pd.DataFrame.from_records(ref["newdata"])
    out = lmm.predict(newdata, re_form="~0", se_fit=True, interval="confidence")
    assert list(out.columns) == ["fit", "se_fit", "lower", "upper"]
    assert list(out.index) == list(newdata.index)
    for ours, theirs in (("fit", "fit"), ("se_fit", "se_fit"), ("lower", "lower"), ("upper", "upper")):
        assert out[ours].to_numpy() == pytest.approx(ref[theirs], rel=1e-4)
    assert out["se_fit"].to_numpy() == pytest.approx(ref["emmeans_SE"], rel=1e-4)
    pred = lmm.predict(newdata, re_form="~0", interval="prediction")
    assert pred["lower"].to_numpy() == pytest.approx(ref["prediction_lower"], rel=1e-4)
    assert pred["upper"].to_numpy() == pytest.approx(ref["prediction_upper"], rel=1e-4)


def test_glmm_link_and_response_scales_match_r(glmm):
    ref = REF["glmm"]
    newdata = pd.DataFrame({"period": pd.Categorical([row["period"] for row in ref["newdata"]], categories=["1", "2", "3", "4"])})
    link = glmm.predict(newdata, re_form="~0", type="link", se_fit=True)
    assert list(link.columns) == ["fit", "se_fit"]
    assert link["fit"].to_numpy() == pytest.approx(ref["link"], rel=1e-3)
    X = np.column_stack([np.ones(4), np.eye(4)[:, 1:]])
    assert link["se_fit"].to_numpy() == pytest.approx(np.sqrt(np.diag(X @ glmm.vcov.to_numpy() @ X.T)), rel=1e-12)
    # glmer's vcov (the Hessian over (θ, β)) differs from lme4's by up to 1.2% on cbpp, and so do these
    assert link["se_fit"].to_numpy() == pytest.approx(ref["se_link"], rel=2e-2)
    assert link["se_fit"].to_numpy() == pytest.approx(ref["emmeans_SE"], rel=2e-2)
    response = glmm.predict(newdata, re_form="~0", se_fit=True, interval="confidence")
    assert response["fit"].to_numpy() == pytest.approx(ref["response"], rel=1e-3)
    mu = response["fit"].to_numpy()
    assert response["se_fit"].to_numpy() == pytest.approx(link["se_fit"].to_numpy() * mu * (1 - mu), rel=1e-10)
    assert response["se_fit"].to_numpy() == pytest.approx(ref["se_response"], rel=2e-2)
    expit = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    eta, se = link["fit"].to_numpy(), link["se_fit"].to_numpy()
    assert response["lower"].to_numpy() == pytest.approx(expit(eta - 1.959963984540054 * se), rel=1e-10)
    assert response["lower"].to_numpy() == pytest.approx(ref["lower_response"], rel=2e-2)
    assert response["upper"].to_numpy() == pytest.approx(ref["upper_response"], rel=2e-2)
    assert ((response["lower"] > 0) & (response["upper"] < 1)).all()  # the limits stay probabilities


def test_fitted_rows_and_wider_levels(lmm):
    out = lmm.predict(re_form="~0", interval="confidence", level=0.99)
    assert out.index.equals(lmm.rows_used)
    z = 2.5758293035489
    assert (out["upper"] - out["fit"]).to_numpy() == pytest.approx(z * out["se_fit"].to_numpy(), rel=1e-10)
    assert out["fit"].to_numpy() == pytest.approx(lmm.predict(re_form="~0").to_numpy(), rel=1e-12)


def test_the_intercept_only_standard_error_is_the_intercepts(lmm):
    """From first principles: at Days = 0 the prediction is the intercept, its SE the intercept's SE."""
    out = lmm.predict(pd.DataFrame({"Days": [0.0]}), re_form="~0", se_fit=True)
    assert out["se_fit"].iloc[0] == pytest.approx(lmm.se["(Intercept)"], rel=1e-12)


def test_errors_name_what_to_do(lmm, glmm):
    newdata = pd.DataFrame({"Days": [1.0]})
    with pytest.raises(ValueError, match="re_form='~0'"):
        lmm.predict(newdata, se_fit=True)
    with pytest.raises(ValueError, match="interval must be"):
        lmm.predict(newdata, re_form="~0", interval="credible")
    with pytest.raises(ValueError, match="level must be"):
        lmm.predict(newdata, re_form="~0", interval="confidence", level=95)
    with pytest.raises(ValueError, match="lmer fits only"):
        glmm.predict(re_form="~0", interval="prediction")
    assert np.isnan(lmm.predict(pd.DataFrame({"Days": [np.nan]}), re_form="~0", se_fit=True)["se_fit"].iloc[0])
