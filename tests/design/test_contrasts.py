"""contrasts= on lmer and glmer: R's codings and column names, against lme4 1.1-31 fits with
``contrasts = list(f = ...)`` (tests/fixtures/toolbox/contrasts.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

TOOLBOX = Path(__file__).resolve().parents[1] / "fixtures" / "toolbox"
REF = json.loads((TOOLBOX / "contrasts.json").read_text())
SLEEP = pd.read_csv(TOOLBOX / "sleepstudy_grp.csv")
FORMULA = "Reaction ~ Days * grp + (Days | Subject)"


@pytest.mark.parametrize("coding", sorted(REF))
def test_lmer_codings_match_lme4(coding):
    ref = REF[coding]["lmm"]
    fit = mm.lmer(FORMULA, SLEEP, contrasts={"grp": coding})
    assert list(fit.fixef.index) == ref["names"]
    assert fit.fixef.to_numpy() == pytest.approx(ref["fixef"], rel=1e-5, abs=1e-8)
    assert fit.se.to_numpy() == pytest.approx(ref["se"], rel=1e-4)
    assert fit.objective == pytest.approx(ref["REMLcrit"], rel=1e-8)


@pytest.mark.parametrize("coding", ["contr.sum", "contr.poly"])
def test_glmer_codings_match_lme4(coding):
    ref = REF[coding]["glmm"]
    fit = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                   family="binomial", contrasts={"period": coding})
    assert list(fit.fixef.index) == ref["names"]
    assert fit.fixef.to_numpy() == pytest.approx(ref["fixef"], rel=1e-3, abs=1e-4)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-3)  # ours is 3e-4 higher: lme4 stops earlier


def test_the_coding_changes_coefficients_not_the_fit():
    """Every coding spans the same columns: fitted values, likelihood and the type III table agree."""
    base = mm.lmer(FORMULA, SLEEP)
    new = pd.DataFrame({"Days": [2.0], "grp": ["c"], "Subject": ["308"]})
    for coding in ("contr.sum", "contr.helmert", "contr.SAS", "contr.poly"):
        other = mm.lmer(FORMULA, SLEEP, contrasts={"grp": coding})
        assert other.fitted.to_numpy() == pytest.approx(base.fitted.to_numpy(), rel=1e-6)
        assert other.anova().table["F value"].to_numpy() == pytest.approx(
            base.anova().table["F value"].to_numpy(), rel=1e-4)
        assert other.predict(new).iloc[0] == pytest.approx(base.predict(new).iloc[0], rel=1e-6)


def test_sum_coding_intercept_is_the_mean_of_the_group_intercepts():
    fit = mm.lmer(FORMULA, SLEEP, contrasts={"grp": "contr.sum"})
    b = mm.lmer(FORMULA, SLEEP).fixef
    group_intercepts = [b["(Intercept)"], b["(Intercept)"] + b["grpb"], b["(Intercept)"] + b["grpc"]]
    assert fit.fixef["(Intercept)"] == pytest.approx(np.mean(group_intercepts), rel=1e-6)


def test_saved_and_loaded_with_its_contrasts(tmp_path):
    fit = mm.lmer(FORMULA, SLEEP, contrasts={"grp": "contr.helmert"})
    fit.save(tmp_path / "m.npz")
    back = mm.load(tmp_path / "m.npz")
    assert list(back.fixef.index) == list(fit.fixef.index)
    assert back.fixef.to_numpy() == pytest.approx(fit.fixef.to_numpy(), rel=1e-12)


def test_errors_name_the_column_and_the_codings():
    with pytest.raises(mm.DataError, match="'Days'.*not a factor column"):
        mm.lmer(FORMULA, SLEEP, contrasts={"Days": "contr.sum"})
    with pytest.raises(mm.DataError, match="contr.summ.*contr.sum"):
        mm.lmer(FORMULA, SLEEP, contrasts={"grp": "contr.summ"})
    with pytest.raises(mm.DataError, match="must be a dict"):
        mm.lmer(FORMULA, SLEEP, contrasts="contr.sum")
