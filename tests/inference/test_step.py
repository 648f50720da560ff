"""mm.step against lmerTest 3.1-3's step() (tests/fixtures/toolbox/step.R): the elimination
tables of the random and fixed parts, their order, and the model found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "toolbox"
REF = json.loads((FIXTURES / "step.json").read_text())
GRP = pd.read_csv(FIXTURES / "sleepstudy_grp.csv")


def _step(ref):
    data = GRP if ref["data"] == "sleepstudy_grp" else mm.datasets.load(ref["data"])
    args = {k.replace(".", "_"): v for k, v in (ref["args"] or {}).items()}
    if "keep" in args:
        args["keep"] = [args["keep"]]
    return mm.step(mm.lmer(ref["formula"], data), **args)


def _values(ref_table, column):
    return np.array([np.nan if v is None else v for v in ref_table[column]], dtype=float)


@pytest.mark.parametrize("name", sorted(REF))
def test_step_matches_lmertest(name):
    ref = REF[name]
    out = _step(ref)
    random, fixed = out.random, out.fixed
    assert list(random.index) == ref["random"]["rows"]
    assert random["Eliminated"].to_numpy() == pytest.approx(_values(ref["random"], "Eliminated"), nan_ok=True)
    assert random["npar"].to_numpy() == pytest.approx(_values(ref["random"], "npar"))
    assert random["logLik"].to_numpy() == pytest.approx(_values(ref["random"], "logLik"), rel=1e-6)
    assert random["LRT"].to_numpy() == pytest.approx(_values(ref["random"], "LRT"), abs=2e-3, nan_ok=True)
    assert random["Pr(>Chisq)"].to_numpy() == pytest.approx(_values(ref["random"], "Pr(>Chisq)"), rel=1e-2,
                                                            abs=1e-12, nan_ok=True)
    assert list(fixed.index) == ref["fixed"]["rows"]
    assert list(fixed.columns) == [c for c in ref["fixed"] if c != "rows"]
    for column in fixed.columns:  # lmerTest's F tests, or R's drop1.lm once the model is an lm
        assert fixed[column].to_numpy(dtype=float) == pytest.approx(_values(ref["fixed"], column), rel=1e-3), column
    final = out.get_model()
    assert final.formula == ref["final"]
    assert final.fixef.to_numpy() == pytest.approx(list(ref["fixef"].values()), rel=1e-4)


def test_printed_like_lmertest():
    """Headings, row order and the model found as lmerTest prints them (R wraps rows wider than
    its console; the tables here are not wrapped)."""
    ref = REF["eliminated"]
    printed = str(_step(ref)).splitlines()
    want = [line.rstrip().replace("‘", "'").replace("’", "'") for line in ref["printed"]]
    assert printed[:3] == want[:3]
    assert [line.split()[:2] for line in printed[3:6]] == [line.split()[:2] for line in want[3:6]]
    assert printed[8:12] == want[8:12]
    assert printed[-3:] == want[-3:]


def test_alpha_one_keeps_everything_and_reports_the_last_tests():
    fit = mm.lmer("Reaction ~ Days * grp + (Days | Subject)", GRP)
    out = mm.step(fit, reduce_random=False, reduce_fixed=False)
    assert out.get_model() is fit
    assert (out.fixed["Eliminated"] == 0).all() and list(out.fixed.index) == ["Days:grp"]  # marginal terms only
    row = fit.anova(type=3).loc["Days:grp"]
    assert out.fixed.loc["Days:grp", "F value"] == pytest.approx(row["F value"], rel=1e-10)


def test_kenward_roger_ddf():
    fit = mm.lmer("Reaction ~ Days + grp + (Days | Subject)", GRP)
    out = mm.step(fit, ddf="Kenward-Roger", reduce_fixed=False)
    assert out.fixed.heading[1] == "Degrees of freedom method: Kenward-Roger"
    assert out.drop1.loc["grp", "F value"] == pytest.approx(fit.anova(type=2, ddf="Kenward-Roger").loc["grp", "F value"])


def test_bad_arguments_are_refused():
    fit = mm.lmer("Reaction ~ Days + grp + (Days | Subject)", GRP)
    with pytest.raises(mm.MixedModelsError, match="keep names 'Days:grp'"):
        mm.step(fit, keep=["Days:grp"])
    with pytest.raises(ValueError, match="alpha_fixed"):
        mm.step(fit, alpha_fixed=5)
    with pytest.raises(mm.MixedModelsError, match="needs an lmer fit"):
        mm.step(mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                         family="binomial"))


def test_an_lm_left_is_reduced_by_its_own_f_tests_as_lmertest():
    """Every random term eliminated: the lm's fixed part is reduced by R's drop1(lm, test = "F")
    and printed as lmerTest prints it (R's LRT of 4.5e-13 is rounding noise; here it is 0)."""
    ref = REF["lm"]
    out = _step(ref)
    assert isinstance(out.get_model(), mm.LmResult)
    printed = str(out).splitlines()
    want = [line.rstrip().replace("‘", "'").replace("’", "'") for line in ref["printed"]]
    assert printed[:2] == want[:2] and printed[6:] == want[6:]
    assert [line.split()[:2] for line in printed[3:5]] == [line.split()[:2] for line in want[3:5]]
    assert out.drop1.loc["grp", "F value"] == pytest.approx(9.893410, rel=1e-6)


def test_nothing_left_to_eliminate():
    data = mm.datasets.load("Dyestuff2")  # the batch variance is estimated as zero: an intercept-only lm is left
    with pytest.warns(mm.SingularFitWarning):
        out = mm.step(mm.lmer("Yield ~ 1 + (1 | Batch)", data))
    assert out.get_model().formula == "Yield ~ 1"
    assert out.fixed.empty and list(out.fixed.columns) == ["Eliminated", "Df", "Sum of Sq", "RSS", "AIC",
                                                           "F value", "Pr(>F)"]
    assert out.get_model().fixef.to_numpy() == pytest.approx([data["Yield"].mean()])
