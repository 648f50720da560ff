"""mm.drop1(m, test="Chisq") against lme4 1.1-31's drop1 for merMod (tests/fixtures/toolbox/drop1.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

TOOLBOX = Path(__file__).resolve().parents[1] / "fixtures" / "toolbox"
REF = json.loads((TOOLBOX / "drop1.json").read_text())


def _fit(case: dict) -> mm.LmerResult | mm.GlmerResult:
    if case["data"] == "cbpp":
        return mm.glmer(case["formula"], mm.datasets.load("cbpp"), family="binomial")
    return mm.lmer(case["formula"], pd.read_csv(TOOLBOX / "sleepstudy_grp.csv"))


@pytest.mark.parametrize("name", sorted(REF))
def test_tables_match_lme4(name):
    case = REF[name]
    out = mm.drop1(_fit(case), test="Chisq")
    table = out.table
    assert list(table.index) == case["rows"]
    assert table["npar"].iloc[1:].tolist() == case["npar"][1:]
    assert table["AIC"].to_numpy() == pytest.approx(case["AIC"], rel=1e-5)
    assert table["LRT"].iloc[1:].to_numpy() == pytest.approx(case["LRT"][1:], rel=1e-3)
    assert table["Pr(Chi)"].iloc[1:].to_numpy() == pytest.approx(case["p"][1:], rel=1e-2)
    printed = str(out).splitlines()
    assert printed[:len(case["printed"])] == [line.rstrip().replace("‘", "'").replace("’", "'")
                                               for line in case["printed"]]


def test_the_statistic_is_the_likelihood_ratio_of_the_ml_refits():
    fit = _fit(REF["additive"])
    out = mm.drop1(fit, test="Chisq")
    full, reduced = out.models["<none>"], out.models["grp"]
    assert not full.REML and not reduced.REML  # REML fits are compared by their ML refits
    assert list(reduced.fixef.index) == ["(Intercept)", "Days"]
    assert out.table.loc["grp", "LRT"] == pytest.approx(2 * (full.loglik - reduced.loglik), rel=1e-12)
    assert reduced.formula == "Reaction ~ Days + grp - grp + (Days | Subject)"
    # the reduced fit is the fit of the reduced formula
    direct = mm.lmer("Reaction ~ Days + (Days | Subject)", pd.read_csv(TOOLBOX / "sleepstudy_grp.csv"), REML=False)
    assert reduced.loglik == pytest.approx(direct.loglik, rel=1e-9)
    assert reduced.predict(pd.DataFrame({"Days": [1.0], "grp": ["a"], "Subject": ["308"]})).iloc[0] == pytest.approx(
        direct.predict(pd.DataFrame({"Days": [1.0], "Subject": ["308"]})).iloc[0], rel=1e-6)


def test_without_a_test_only_aic_and_errors():
    fit = _fit(REF["additive"])
    table = mm.drop1(fit).table
    assert list(table.columns) == ["npar", "AIC"]
    assert np.isnan(table.loc["<none>", "npar"])
    with pytest.raises(ValueError, match="test must be"):
        mm.drop1(fit, test="LRT")
    with pytest.raises(mm.MixedModelsError, match="lmer, glmer or lm fit"):
        mm.drop1(mm.glm("Reaction ~ Days", mm.datasets.load("sleepstudy")))
    with pytest.raises(ValueError, match="'none' or 'F' for an lm fit"):
        mm.drop1(mm.lm("Reaction ~ Days", mm.datasets.load("sleepstudy")), test="Chisq")


LM_REF = json.loads((TOOLBOX / "drop1_lm.json").read_text())


@pytest.mark.parametrize("name", sorted(LM_REF))
def test_lm_tables_match_r(name):
    """R's drop1(lm_fit, test = "F"): Df, Sum of Sq, RSS, AIC (extractAIC), F and its p-value."""
    case = LM_REF[name]
    data = pd.read_csv(TOOLBOX / "sleepstudy_grp.csv").assign(w=lambda d: np.resize([1, 2, 0.5], len(d)))
    table = mm.drop1(mm.lm(case["formula"], data, weights=case["weights"] or None), test="F")
    assert list(table.index) == case["rows"]
    for column, key in [("Df", "Df"), ("Sum of Sq", "SumSq"), ("RSS", "RSS"), ("AIC", "AIC"),
                        ("F value", "F"), ("Pr(>F)", "p")]:
        want = np.array([np.nan if v is None else v for v in case[key]], dtype=float)
        assert table[column].to_numpy() == pytest.approx(want, rel=1e-9, nan_ok=True), column
    printed = str(table).splitlines()
    assert printed == [line.rstrip().replace("‘", "'").replace("’", "'") for line in case["printed"]]
