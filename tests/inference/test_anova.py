"""mm.anova, mm.ranova and mm.lm against lme4 1.1-31, lmerTest 3.1-3 and R 4.2's lm.

The numbers in tests/fixtures/anova/*.json were made by the R script in the
comment below, run from the repository root; R never runs in the tests.
"""

# suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
# data(sleepstudy, cbpp, package = "lme4")
# out <- "tests/fixtures/anova"
# fs <- read.csv("tests/fixtures/data/FactorSlope.csv", stringsAsFactors = TRUE)
# save <- function(x, name) write_json(x, file.path(out, name), digits = NA, auto_unbox = TRUE, na = "null", pretty = TRUE)
# tab <- function(a) list(rows = rownames(a), values = as.list(as.data.frame(a, optional = TRUE)),
#                         printed = capture.output(print(a)))
# lmfit <- function(data, weights = NULL) {
#   l <- lm(Reaction ~ Days, data, weights = weights)
#   s <- summary(l)
#   list(coef = unname(coef(l)), se = unname(s$coefficients[, 2]), t = unname(s$coefficients[, 3]),
#        p = unname(s$coefficients[, 4]), sigma = s$sigma, logLik = as.numeric(logLik(l)),
#        logLik_REML = as.numeric(logLik(l, REML = TRUE)), AIC = AIC(l), BIC = BIC(l),
#        df = attr(logLik(l), "df"), printed = capture.output(print(s)))
# }
# weighted <- transform(sleepstudy, w = 1 + Days %% 3)
# save(list(unweighted = lmfit(sleepstudy), weighted = lmfit(weighted, weighted$w)), "lm_sleepstudy.json")
#
# m0 <- lme4::lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
# m1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
# l <- lm(Reaction ~ Days, sleepstudy)
# g0 <- glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), cbpp, binomial)
# g1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
# save(list(lmer_lmer = tab(anova(m0, m1)), lmer_lm = tab(anova(m0, l)), glmer_glmer = tab(anova(g0, g1))),
#      "anova.json")
#
# r1 <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
# r1ml <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
# r0 <- lmerTest::lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
# ru <- lmerTest::lmer(Reaction ~ Days + (Days || Subject), sleepstudy)
# rf <- lmerTest::lmer(y ~ f + (f | g), fs)
# save(list(slope_reml = tab(ranova(r1)), slope_ml = tab(ranova(r1ml)), intercept_reml = tab(ranova(r0)),
#           uncorrelated_reml = tab(ranova(ru)), factor_slope_reml = tab(ranova(rf))), "ranova.json")
#
# pv <- list(c(0.5, 7.07e-10, 0.000523, 1e-20), c(0.0123, 0.9), c(1.746e-06, 6.076e-11), c(3e-17, 0.04))
# xs <- list(c(1814.85047040879, 1783.09708559433), c(-0.00012, 3.5), c(123456.7, 2.25), c(1e-8, 2e-9), c(4, 6, 10))
# save(list(pvalues = lapply(pv, function(p) list(p = p, text = format.pval(p, digits = 4))),
#           numbers = lapply(xs, function(x) list(x = x, text = format(x, digits = 5)))), "format.json")

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels import RefitWarning
from mixedmodels.inference.anova import AnovaTable, anova, ranova
from mixedmodels.report.rformat import format_pval_vector, format_vector
from mixedmodels.errors import FormulaError, MixedModelsError, MixedModelsWarning
from mixedmodels.results.lm import LmResult, lm
from reference import load_fixture_data, load_reference

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anova"
SLOPE = "Reaction ~ Days + (Days | Subject)"
INTERCEPT = "Reaction ~ Days + (1 | Subject)"


def fixture(name: str) -> dict:
    with (FIXTURES / f"{name}.json").open(encoding="utf-8") as fh:
        return json.load(fh)


def r_values(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def r_printed(lines: list[str]) -> list[str]:
    """R's printed lines with ASCII quotes and without trailing blanks."""
    return [line.replace("\u2018", "'").replace("\u2019", "'").rstrip() for line in lines]


@pytest.fixture(scope="module")
def sleepstudy():
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def ml_fits(sleepstudy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return (mm.lmer(INTERCEPT, sleepstudy, REML=False), mm.lmer(SLOPE, sleepstudy, REML=False))


# ----- lm ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["unweighted", "weighted"])
def test_lm_matches_r(sleepstudy, case):
    ref = fixture("lm_sleepstudy")[case]
    data = sleepstudy.assign(w=1 + sleepstudy["Days"] % 3)
    fit = lm("Reaction ~ Days", data, weights="w" if case == "weighted" else None)
    np.testing.assert_allclose(fit.fixef, ref["coef"], rtol=1e-10)
    np.testing.assert_allclose(fit.se, ref["se"], rtol=1e-10)
    table = fit.coefficients()
    np.testing.assert_allclose(table["t value"], ref["t"], rtol=1e-10)
    np.testing.assert_allclose(table["Pr(>|t|)"], ref["p"], rtol=1e-6)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-12)
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-12)
    assert fit.reml_loglik == pytest.approx(ref["logLik_REML"], rel=1e-12)
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-12)
    assert fit.bic == pytest.approx(ref["BIC"], rel=1e-12)
    assert fit.df == ref["df"] and fit.nobs == 180
    assert fit.deviance == fit.objective == pytest.approx(-2 * ref["logLik"], rel=1e-12)
    np.testing.assert_allclose(fit.fitted + fit.residuals, data["Reaction"], rtol=1e-12)


def test_lm_summary_prints_rs_coefficient_table(sleepstudy):
    printed = r_printed(fixture("lm_sleepstudy")["unweighted"]["printed"])
    text = str(lm("Reaction ~ Days", sleepstudy).summary())
    start = printed.index("Coefficients:")
    assert printed[start : start + 6] == text.splitlines()[3:9]
    assert "Residual standard error: 47.71 on 178 degrees of freedom" in text


def test_lm_rejects_random_effects(sleepstudy):
    with pytest.raises(FormulaError, match="lmer"):
        lm(SLOPE, sleepstudy)


# ----- anova -----------------------------------------------------------------------------------
def test_anova_matches_lme4_reference(ml_fits):
    ref = load_reference("sleepstudy_slope_ml")["anova"]
    assert ref["against"] == "sleepstudy_intercept_ml"
    t = anova(*ml_fits).table
    assert list(t.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert list(t.index) == [INTERCEPT, SLOPE]
    np.testing.assert_allclose(t["logLik"], ref["logLik"], rtol=1e-6)
    np.testing.assert_allclose(t["deviance"], ref["deviance"], rtol=1e-6)
    assert abs(t["Chisq"].iloc[1] - ref["Chisq"]) < 0.01
    assert t["Df"].iloc[1] == ref["Df"]
    assert np.log10(t["Pr(>Chisq)"].iloc[1]) == pytest.approx(np.log10(ref["p"]), rel=0.05)
    assert np.isnan(t["Chisq"].iloc[0]) and np.isnan(t["Pr(>Chisq)"].iloc[0])


def test_anova_sorts_by_npar_and_prints_as_r(ml_fits):
    ref = fixture("anova")["lmer_lmer"]
    out = anova(ml_fits[1], ml_fits[0], names=["m1", "m0"])
    assert isinstance(out, AnovaTable)
    assert list(out.table.index) == ref["rows"] == ["m0", "m1"]
    assert str(out).splitlines() == r_printed(ref["printed"])
    assert "<table" in out._repr_html_()


def test_anova_refits_reml_fits_with_a_warning(sleepstudy, ml_fits):
    reml = (mm.lmer(INTERCEPT, sleepstudy), mm.lmer(SLOPE, sleepstudy))
    with pytest.warns(RefitWarning, match=r"refitting model\(s\) with ML \(instead of REML\)"):
        refitted = anova(*reml).table
    np.testing.assert_allclose(refitted.to_numpy(dtype=float), anova(*ml_fits).table.to_numpy(dtype=float),
                               rtol=1e-6, equal_nan=True)
    assert issubclass(RefitWarning, MixedModelsWarning)


def test_anova_without_refit_compares_reml_criteria(sleepstudy):
    reml = (mm.lmer(INTERCEPT, sleepstudy), mm.lmer(SLOPE, sleepstudy))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = anova(*reml, refit=False).table
    np.testing.assert_allclose(t["deviance"], [m.objective for m in reml], rtol=1e-12)
    with pytest.warns(MixedModelsWarning, match="some models fit with REML = TRUE, some not"):
        anova(reml[0], lm("Reaction ~ Days", sleepstudy), refit=False)


def test_anova_lmer_against_lm_matches_r(sleepstudy, ml_fits):
    ref = fixture("anova")["lmer_lm"]
    out = anova(ml_fits[0], lm("Reaction ~ Days", sleepstudy), names=["m0", "l"])
    assert list(out.table.index) == ref["rows"]
    for column, values in ref["values"].items():
        np.testing.assert_allclose(out.table[column], r_values(values), rtol=1e-6, equal_nan=True)
    assert str(out).splitlines() == r_printed(ref["printed"])


def test_anova_glmer_against_glmer_matches_lme4():
    """Our Laplace deviances are ~1e-3 below lme4's (see test_glmer_reference), hence 1e-5."""
    ref = fixture("anova")["glmer_glmer"]
    cbpp = mm.datasets.load("cbpp")
    response = "cbind(incidence, size - incidence)"
    g0 = mm.glmer(f"{response} ~ 1 + (1 | herd)", cbpp, family="binomial")
    g1 = mm.glmer(f"{response} ~ period + (1 | herd)", cbpp, family="binomial")
    out = anova(g1, g0, names=["g1", "g0"])
    for column in ["npar", "AIC", "BIC", "logLik", "deviance", "Df"]:
        np.testing.assert_allclose(out.table[column], r_values(ref["values"][column]), rtol=1e-5, equal_nan=True)
    assert abs(out.table["Chisq"].iloc[1] - ref["values"]["Chisq"][1]) < 0.01
    p, p_ref = out.table["Pr(>Chisq)"].iloc[1], ref["values"]["Pr(>Chisq)"][1]
    assert np.log10(p) == pytest.approx(np.log10(p_ref), rel=0.05)
    lines, printed = str(out).splitlines(), r_printed(ref["printed"])
    assert lines[:5] == printed[:5] and lines[7:] == printed[7:]  # rows 5-6: logLik differs in the 6th digit


def test_anova_rejects_different_numbers_of_observations(sleepstudy, ml_fits):
    short = mm.lmer(SLOPE, sleepstudy.iloc[1:], REML=False)
    with pytest.raises(MixedModelsError, match=r"180.*179|179.*180"):
        anova(ml_fits[0], short)


def test_anova_rejects_mixing_glmer_and_lmer(sleepstudy, ml_fits):
    counts = sleepstudy.assign(R=np.round(sleepstudy["Reaction"]))
    g = mm.glmer("R ~ Days + (1 | Subject)", counts, family="poisson")
    with pytest.raises(MixedModelsError, match="glmer"):
        anova(ml_fits[0], g)


def test_anova_argument_errors(sleepstudy, ml_fits):
    with pytest.raises(MixedModelsError, match="two or more"):
        anova(ml_fits[0])
    with pytest.raises(MixedModelsError, match="names"):
        anova(*ml_fits, names=["only one"])
    with pytest.raises(TypeError):
        anova(ml_fits[0], "m1")
    assert list(anova(ml_fits[0], ml_fits[0]).table.index) == ["MODEL1", "MODEL2"]


# ----- ranova ----------------------------------------------------------------------------------
RANOVA = {
    "slope_reml": (SLOPE, "sleepstudy", True),
    "slope_ml": (SLOPE, "sleepstudy", False),
    "intercept_reml": (INTERCEPT, "sleepstudy", True),
    "uncorrelated_reml": ("Reaction ~ Days + (Days || Subject)", "sleepstudy", True),
    "factor_slope_reml": ("y ~ f + (f | g)", "FactorSlope", True),
}


@pytest.mark.parametrize("case", sorted(RANOVA))
def test_ranova_matches_lmertest(sleepstudy, case):
    formula, data_name, reml = RANOVA[case]
    data = sleepstudy if data_name == "sleepstudy" else load_fixture_data(data_name)
    ref = fixture("ranova")[case]
    out = ranova(mm.lmer(formula, data, REML=reml))
    t = out.table
    assert list(t.index) == ref["rows"]
    assert list(t.columns) == ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"]
    values = {k: r_values(v) for k, v in ref["values"].items()}
    assert list(t["npar"]) == list(values["npar"])
    np.testing.assert_array_equal(t["Df"], values["Df"])
    np.testing.assert_allclose(t["logLik"], values["logLik"], rtol=1e-6)
    np.testing.assert_allclose(t["AIC"], values["AIC"], rtol=1e-6)
    np.testing.assert_allclose(t["LRT"], values["LRT"], atol=0.01)
    np.testing.assert_allclose(np.log10(t["Pr(>Chisq)"]), np.log10(values["Pr(>Chisq)"]), rtol=0.05)
    printed = r_printed(ref["printed"])
    lines = str(out).splitlines()
    assert lines[:3] == printed[:3] and lines[4:] == printed[4:]  # line 3: R shows || expanded
    assert lines[3] == formula


def test_ranova_without_random_terms_left_uses_lm(sleepstudy):
    out = ranova(mm.lmer(INTERCEPT, sleepstudy))
    reduced = out.models["(1 | Subject)"]
    assert isinstance(reduced, LmResult)
    assert out.table["logLik"].iloc[1] == pytest.approx(lm("Reaction ~ Days", sleepstudy).reml_loglik, rel=1e-12)


def test_ranova_reuses_the_design_with_missing_rows():
    data = load_fixture_data("sleepstudyNA")
    fit = mm.lmer(SLOPE, data)
    out = ranova(fit)
    reduced = out.models["Days in (Days | Subject)"]
    direct = mm.lmer(INTERCEPT, data)
    assert reduced.nobs == direct.nobs == fit.nobs < len(data)
    assert reduced.loglik == pytest.approx(direct.loglik, rel=1e-8)


def test_ranova_needs_an_lmer_fit(sleepstudy):
    counts = sleepstudy.assign(R=np.round(sleepstudy["Reaction"]))
    with pytest.raises(MixedModelsError, match="lmer"):
        ranova(mm.glmer("R ~ Days + (1 | Subject)", counts, family="poisson"))


# ----- R's number formatting ---------------------------------------------------------------------
@pytest.mark.parametrize("case", range(4))
def test_format_pval_as_r(case):
    ref = fixture("format")["pvalues"][case]
    assert format_pval_vector(np.array(ref["p"]), 4) == ref["text"]


@pytest.mark.parametrize("case", range(5))
def test_format_numbers_as_r(case):
    ref = fixture("format")["numbers"][case]
    assert format_vector(ref["x"], 5) == [s.strip() for s in ref["text"]]
