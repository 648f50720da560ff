"""emmeans 1.8.4-1's defaults and helpers on an lmer fit with a factor × covariate interaction
(nlme's Orthodont, distance ~ age * Sex + (1 | Subject); tests/fixtures/parity/sweep.R): Kenward–Roger
df by default, as emmeans' lmer.df, and asymptotic z for glmer; contrast() methods with their default
adjustments and emtrends() (tests/fixtures/parity/emmeans_contrasts.R)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedmodels as mm
from mixedmodels.inference.emmeans import adjusted_p_values
from parity import PARITY_DIR, SWEEP, close, orthodont

REF = SWEEP["orth"]


@pytest.fixture(scope="module")
def orth() -> mm.LmerResult:
    return mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont())


def _same(table, theirs, columns, rel=1e-5):
    for column in columns:
        close(table[column], theirs[column], rel)


def test_kenward_roger_is_the_default_for_lmer(orth):
    """At age 10 KR's adjusted SEs and df (26.28) differ from Satterthwaite's."""
    out = mm.emmeans(orth, "Sex", at={"age": 10})
    assert out.ddf == "Kenward-Roger" and "Degrees-of-freedom method: kenward-roger" in str(out)
    assert list(out.table["Sex"]) == REF["emmeans_at"]["Sex"]
    _same(out.table, REF["emmeans_at"], ("emmean", "SE", "df", "lower.CL", "upper.CL"))
    default = mm.emmeans(orth, "Sex")
    _same(default.table, REF["emmeans"], ("emmean", "SE", "df", "lower.CL", "upper.CL"))
    _same(default.pairs().table, REF["pairs"], ("estimate", "SE", "df", "t.ratio", "p.value"))


def test_satterthwaite_on_request_and_for_ml_fits(orth):
    out = mm.emmeans(orth, "Sex", ddf="Satterthwaite")
    _same(out.table, REF["emmeans_sat"], ("emmean", "SE", "df", "lower.CL", "upper.CL"))
    ml = mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont(), REML=False)
    assert mm.emmeans(ml, "Sex").ddf == "Satterthwaite"  # KR needs REML here (emmeans uses pbkrtest's on ML)


def test_lmertest_ls_means_keep_satterthwaite(orth):
    ls = mm.ls_means(orth, "Sex")
    assert list(ls.index) == REF["ls_means"]["rows"]
    close(ls["df"], REF["ls_means"]["df"], 1e-5)
    diff = mm.difflsmeans(orth, "Sex")
    close(diff["df"], [REF["difflsmeans"]["df"]], 1e-5)


CONTRASTS = json.loads((PARITY_DIR / "emmeans_contrasts.json").read_text())


@pytest.fixture(scope="module")
def cbpp() -> mm.GlmerResult:
    return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                    family="binomial")


@pytest.fixture(scope="module")
def banded() -> mm.LmerResult:
    """Orthodont with a three-level factor of subjects (emmeans_contrasts.R)."""
    data = pd.read_csv(PARITY_DIR / "Orthodont_band.csv")
    data["Sex"] = pd.Categorical(data["Sex"], ["Male", "Female"])
    data["band"] = pd.Categorical(data["band"], ["low", "mid", "high"])
    return mm.lmer(CONTRASTS["orth"]["formula"], data)


def _contrasts(ours: pd.DataFrame, theirs: dict, rel: float, p_rel: float | None = None) -> None:
    assert list(ours["contrast"]) == list(np.atleast_1d(theirs["contrast"]))
    for column in ("estimate", "SE"):
        close(ours[column], theirs[column], rel)
    close(ours["p.value"], theirs["p.value"], rel if p_rel is None else p_rel)


@pytest.mark.parametrize("method", ["revpairwise", "trt_vs_ctrl", "eff"])
def test_contrast_methods_and_their_default_adjustments_on_an_lmer_fit(banded, method):
    """revpairwise: Tukey; trt.vs.ctrl: emmeans' dunnettx; eff: fdr (KR df throughout)."""
    ours = mm.emmeans(banded, "band").contrast(method.replace("_", "."))
    _contrasts(ours.table, CONTRASTS["orth"][method], 1e-5)
    close(ours.table["df"], CONTRASTS["orth"][method]["df"], 1e-5)


@pytest.mark.parametrize("method", ["revpairwise", "trt_vs_ctrl", "eff"])
def test_contrast_methods_on_a_glmer_fit(cbpp, method):
    """Estimates and SEs within the Laplace difference (see lme4-translation.md), which small p-values
    amplify (2.6e-6 here for R's 1.8e-6); the adjustments themselves are checked on R's z ratios below."""
    ours = mm.emmeans(cbpp, "period").contrast(method.replace("_", "."))
    _contrasts(ours.table, CONTRASTS["cbpp"][method], 2e-2, p_rel=0.5)
    assert np.isinf(ours.table["df"]).all() and "z.ratio" in ours.table


def test_printed_contrasts_and_notes_as_emmeans(cbpp):
    ours = str(mm.emmeans(cbpp, "period").contrast("eff")).splitlines()
    theirs = [line.rstrip() for line in CONTRASTS["cbpp"]["eff_printed"]]
    assert ours[0] == theirs[0] and ours[-2:] == theirs[-2:]  # header; log odds ratio scale; fdr for 4 tests
    assert str(mm.emmeans(cbpp, "period").contrast("trt.vs.ctrl")).splitlines()[-1] == \
        CONTRASTS["cbpp"]["trt_vs_ctrl_printed"][-1].rstrip()


def test_adjustments_from_the_same_z_ratios(cbpp):
    """Adjustments are functions of the z ratios: fed R's, they give R's p-values."""
    for name, adjust in (("pairs_sidak", "sidak"), ("pairs_fdr", "fdr"), ("trt_vs_ctrl", "dunnettx"),
                         ("custom_holm", "holm")):
        ref = CONTRASTS["cbpp"][name]
        z = np.abs(np.array(ref["z.ratio"]))
        raw = 2 * stats.norm.sf(z)
        n = len(z)
        got = adjusted_p_values(raw, z, np.full(n, np.inf), [()] * n, [4] * n, adjust)
        np.testing.assert_allclose(got, ref["p.value"], rtol=1e-9)


def test_custom_contrasts_are_named_and_unadjusted(cbpp):
    weights = {"early_vs_late": [0.5, 0.5, -0.5, -0.5], "first": [1, 0, 0, -1]}
    ours = mm.emmeans(cbpp, "period").contrast(weights)
    _contrasts(ours.table, CONTRASTS["cbpp"]["custom"], 2e-2, p_rel=0.3)
    holm = mm.emmeans(cbpp, "period").contrast(weights, adjust="holm").table["p.value"]
    assert holm.iloc[1] == pytest.approx(2 * ours.table["p.value"].iloc[1])


def test_contrast_errors(cbpp):
    grid = mm.emmeans(cbpp, "period")
    with pytest.raises(ValueError, match="method must be one of"):
        grid.contrast("poly2")
    with pytest.raises(ValueError, match="needs 4 coefficients"):
        grid.contrast({"short": [1, -1]})
    with pytest.raises(ValueError, match="adjust must be one of"):
        grid.contrast("eff", adjust="mvt")


@pytest.mark.parametrize("name, specs, by", [("emtrends", "Sex", None), ("emtrends_band", "band", None),
                                             ("emtrends_by", "Sex", "band")])
def test_emtrends_match_emmeans(banded, name, specs, by):
    ours = mm.emtrends(banded, specs, var="age", by=by).table
    theirs = CONTRASTS["orth"][name]
    assert list(ours.columns) == list(theirs)
    for column in ("age.trend", "SE", "df", "lower.CL", "upper.CL"):
        close(ours[column], theirs[column], 1e-5)


def test_a_single_contrast_has_no_adjustment_note(orth):
    """R: contrast(emmeans(m, ~ Sex), "trt.vs.ctrl") prints only the df method below the table."""
    printed = str(mm.emmeans(orth, "Sex").contrast("trt.vs.ctrl")).splitlines()
    assert printed[-1] == "Degrees-of-freedom method: kenward-roger"
    close(mm.emmeans(orth, "Sex").contrast("trt.vs.ctrl").table["p.value"], [REF["contrast_trt"]["p.value"]], 1e-5)


def test_emtrends_print_and_pairs(banded):
    trends = mm.emtrends(banded, "Sex", var="age")
    assert str(trends).splitlines() == [line.rstrip() for line in CONTRASTS["orth"]["emtrends_printed"]]
    pairs = trends.pairs().table
    _contrasts(pairs, CONTRASTS["orth"]["emtrends_pairs"], 1e-5)


def test_emtrends_errors(banded):
    with pytest.raises(mm.DataError, match="is not a numeric predictor"):
        mm.emtrends(banded, "Sex", var="Sex")
    with pytest.raises(mm.DataError, match="is not a numeric predictor"):
        mm.emtrends(banded, "Sex", var="height")


@pytest.mark.parametrize("source", ["sweep", "band"])
def test_joint_tests_of_lmer_fits(orth, banded, source):
    """Kenward-Roger's adjusted covariance and df, the F not rescaled (emmeans' joint tests), with the
    covariate at its range's ends: age, Sex, (band,) age:Sex."""
    fit, theirs = (orth, REF["joint_tests"]) if source == "sweep" else (banded, CONTRASTS["orth"]["joint_tests"])
    ours = mm.joint_tests(fit)
    assert list(ours.columns) == list(theirs) and list(ours["model term"]) == theirs["model term"]
    assert list(ours["df1"]) == theirs["df1"]
    close(ours["df2"], theirs["df2"], 1e-5)
    close(ours["F.ratio"], theirs["F.ratio"], 0)  # both rounded to 3 decimals
    close(ours["p.value"], theirs["p.value"], 1e-5)


def test_joint_tests_of_a_glmer_fit_are_asymptotic(cbpp):
    ours = mm.joint_tests(cbpp)
    theirs = SWEEP["cbpp"]["joint_tests"]
    assert list(ours["model term"]) == [theirs["model term"]] and ours["df1"].iloc[0] == theirs["df1"]
    assert np.isinf(ours["df2"].iloc[0])
    close(ours["F.ratio"], [theirs["F.ratio"]], 0.03)  # the Laplace difference (see lme4-translation.md)
    b, V = cbpp.fixef.to_numpy()[1:], cbpp.vcov.to_numpy()[1:, 1:]  # periods 2-4 equal to period 1, by hand
    assert ours["F.ratio"].iloc[0] == pytest.approx(b @ np.linalg.solve(V, b) / 3, abs=5e-4)


def test_joint_tests_errors(orth):
    with pytest.raises(ValueError, match="Satterthwaite's joint df are not available"):
        mm.joint_tests(orth, ddf="Satterthwaite")
    poly = mm.lmer("distance ~ poly(age, 2) + (1 | Subject)", orthodont())
    with pytest.raises(mm.DataError, match="made of data columns"):
        mm.joint_tests(poly)


def _notes_of(printed) -> list[str]:
    lines = [line.rstrip() for line in (printed if isinstance(printed, list) else str(printed).splitlines())]
    return lines[lines.index("") + 1:]


def test_response_scale_contrasts_are_odds_ratios(cbpp):
    """pairs(emmeans(g, ~ period, type = "response")): odds ratios 'period1 / period2', SE by the delta
    method, null 1, the z ratios and p-values of the log odds ratios; the notes as emmeans prints them."""
    ref = CONTRASTS["cbpp"]["pairs_response"]
    ours = mm.emmeans(cbpp, "period", type="response").pairs()
    assert list(ours.table.columns) == list(ref) and list(ours.table["contrast"]) == ref["contrast"]
    close(ours.table["odds.ratio"], ref["odds.ratio"], 2e-3)
    close(ours.table["SE"], ref["SE"], 3e-2)  # the Laplace difference (see lme4-translation.md)
    assert (ours.table["null"] == 1).all()
    link = mm.emmeans(cbpp, "period").pairs().table
    assert ours.table["z.ratio"].tolist() == link["z.ratio"].tolist()
    np.testing.assert_allclose(np.log(ours.table["odds.ratio"]), link["estimate"], rtol=1e-12)
    assert _notes_of(ours) == _notes_of(CONTRASTS["cbpp"]["pairs_response_printed"])
    assert mm.emmeans(cbpp, "period").pairs(type="response").table.equals(ours.table)


def test_response_scale_means_print_as_emmeans(cbpp):
    ours = mm.emmeans(cbpp, "period", type="response")
    assert _notes_of(ours) == _notes_of(CONTRASTS["cbpp"]["emmeans_response_printed"])
    theirs = [line.rstrip() for line in CONTRASTS["cbpp"]["eff_printed"]]
    assert _notes_of(mm.emmeans(cbpp, "period").contrast("eff")) == _notes_of(theirs)  # no df line for z tests


def test_ratios_of_a_log_link():
    data = mm.datasets.load("cbpp").assign(log_size=lambda d: np.log(d["size"]))
    fit = mm.glmer("incidence ~ period + offset(log_size) + (1 | herd)", data, family="poisson")
    ours = mm.emmeans(fit, "period").pairs(type="response")
    ref = CONTRASTS["cbpp"]["poisson_ratio"]
    assert list(ours.table.columns) == list(ref) and list(ours.table["contrast"]) == ref["contrast"]
    close(ours.table["ratio"], ref["ratio"], 2e-3)
    close(ours.table["z.ratio"], ref["z.ratio"], 2e-2)
    assert _notes_of(ours) == _notes_of(CONTRASTS["cbpp"]["poisson_ratio_printed"])
