"""mm.emmeans / ls_means / difflsmeans against emmeans and lmerTest 3.1-3
(tests/fixtures/toolbox/emmeans.R): Satterthwaite and Kenward-Roger df, Tukey, Holm and Bonferroni
adjustments, means averaged over another factor, by-groups, a binomial GLMM on both scales."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from reference import load_fixture_data

TOOLBOX = Path(__file__).resolve().parents[1] / "fixtures" / "toolbox"
REF = json.loads((TOOLBOX / "emmeans.json").read_text())


@pytest.fixture(scope="module")
def exam() -> mm.LmerResult:
    return mm.lmer(REF["exam"]["formula"], load_fixture_data("Exam"))


@pytest.fixture(scope="module")
def sleep() -> mm.LmerResult:
    return mm.lmer(REF["sleep_kr"]["formula"], pd.read_csv(TOOLBOX / "sleepstudy_grp.csv"))


@pytest.fixture(scope="module")
def cbpp() -> mm.GlmerResult:
    return mm.glmer(REF["cbpp"]["formula"], mm.datasets.load("cbpp"), family="binomial")


def _close(ours: pd.Series, theirs: list, rel: float) -> None:
    expected = np.array([np.inf if v is None else v for v in theirs], dtype=float)
    assert ours.to_numpy(dtype=float) == pytest.approx(expected, rel=rel)


def test_means_averaged_over_another_factor_match_emmeans(exam):
    """The exam fixture sets emm_options(lmer.df = "satterthwaite"): ddf is passed likewise."""
    ref = REF["exam"]
    out = mm.emmeans(exam, "schgend", ddf="Satterthwaite")
    assert list(out.table["schgend"]) == ref["emmeans"]["schgend"]
    for column in ("emmean", "SE", "df", "lower.CL", "upper.CL"):
        _close(out.table[column], ref["emmeans"][column], 1e-3)
    assert str(out).splitlines() == [line.rstrip() for line in ref["printed"]]


@pytest.mark.parametrize("adjust", ["tukey", "holm", "bonferroni", "none"])
def test_pairwise_adjustments_match_emmeans(exam, adjust):
    ref = REF["exam"][adjust]
    table = mm.emmeans(exam, "schgend", ddf="Satterthwaite").pairs(adjust=adjust).table
    assert list(table["contrast"]) == ref["contrast"]
    for column in ("estimate", "SE", "df", "t.ratio", "p.value"):
        _close(table[column], ref[column], 2e-3)


def test_pairs_print_as_emmeans(exam):
    printed = str(mm.emmeans(exam, "schgend", ddf="Satterthwaite").pairs()).splitlines()
    assert printed == [line.rstrip() for line in REF["exam"]["printed_pairs"]]


def test_by_groups_match_emmeans(exam):
    ref = REF["exam"]
    out = mm.emmeans(exam, "sex", by="schgend", ddf="Satterthwaite")
    assert list(out.table["sex"]) == ref["by"]["sex"] and list(out.table["schgend"]) == ref["by"]["schgend"]
    _close(out.table["emmean"], ref["by"]["emmean"], 1e-3)
    _close(out.table["df"], ref["by"]["df"], 1e-3)
    pairs = out.pairs().table
    assert list(pairs["schgend"]) == ref["by_pairs"]["schgend"]
    _close(pairs["estimate"], ref["by_pairs"]["estimate"], 1e-3)
    _close(pairs["p.value"], ref["by_pairs"]["p.value"], 1e-2)
    assert "schgend = boys:" in str(out)


@pytest.mark.parametrize("name,ddf", [("sleep_satterthwaite", "Satterthwaite"), ("sleep_kr", "Kenward-Roger")])
def test_covariate_at_its_mean_and_both_df_methods(sleep, name, ddf):
    """Days * grp: each group's line at the mean day (4.5)."""
    ref = REF[name]
    out = mm.emmeans(sleep, "grp", ddf=ddf)
    for column in ("emmean", "SE", "df", "lower.CL", "upper.CL"):
        _close(out.table[column], ref["emmeans"][column], 1e-3)
    pairs = out.pairs().table
    for column in ("estimate", "SE", "df", "p.value"):
        _close(pairs[column], ref["tukey"][column], 1e-3)
    b = sleep.fixef
    assert out.table["emmean"].iloc[0] == pytest.approx(b["(Intercept)"] + 4.5 * b["Days"], rel=1e-12)


def test_glmm_link_and_response_scales(cbpp):
    ref = REF["cbpp"]
    out = mm.emmeans(cbpp, "period")
    _close(out.table["emmean"], ref["emmeans"]["emmean"], 1e-3)
    assert np.isinf(out.table["df"]).all()
    # glmer's vcov differs from lme4's by up to 1.2% on cbpp (see test_predict_se), and so do SEs
    _close(out.table["SE"], ref["emmeans"]["SE"], 2e-2)
    pairs = out.pairs().table
    assert list(pairs["contrast"]) == ref["tukey"]["contrast"]  # 'period1 - period2': numeric levels named
    _close(pairs["estimate"], ref["tukey"]["estimate"], 1e-3)
    _close(pairs["p.value"], ref["tukey"]["p.value"], 0.25)  # small p-values amplify the SE difference
    response = mm.emmeans(cbpp, "period", type="response").table
    _close(response["prob"], ref["response"]["prob"], 1e-3)
    _close(response["asymp.LCL"], ref["response"]["asymp.LCL"], 2e-2)
    _close(response["asymp.UCL"], ref["response"]["asymp.UCL"], 2e-2)


def test_lmertest_ls_means_and_difflsmeans(exam):
    ref = REF["exam"]
    ls = mm.ls_means(exam, "schgend")
    assert list(ls.index) == ref["ls_means"]["rows"]
    for ours, theirs in (("Estimate", "Estimate"), ("Std. Error", "SE"), ("df", "df"), ("lower", "lower"),
                         ("upper", "upper")):
        _close(ls[ours], ref["ls_means"][theirs], 1e-3)
    diff = mm.difflsmeans(exam, "schgend")
    assert list(diff.index) == ref["difflsmeans"]["rows"]
    _close(diff["Estimate"], ref["difflsmeans"]["Estimate"], 1e-3)
    _close(diff["Pr(>|t|)"], ref["difflsmeans"]["p"], 2e-3)


def test_at_and_errors(sleep, cbpp):
    out = mm.emmeans(sleep, "grp", at={"Days": 0.0})
    assert out.table["emmean"].iloc[0] == pytest.approx(sleep.fixef["(Intercept)"], rel=1e-12)
    assert len(mm.emmeans(sleep, "grp", at={"grp": ["a", "b"]}).table) == 2
    with pytest.raises(mm.DataError, match="'Days' is not a factor"):
        mm.emmeans(sleep, "Days")
    with pytest.raises(mm.DataError, match="does not have"):
        mm.emmeans(sleep, "grp", at={"grp": ["z"]})
    with pytest.raises(ValueError, match="adjust must be"):
        mm.emmeans(sleep, "grp").pairs(adjust="scheffe")
    with pytest.raises(ValueError, match="needs an lmer fit"):
        mm.emmeans(cbpp, "period", ddf="Satterthwaite")
