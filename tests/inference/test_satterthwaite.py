r"""Satterthwaite df and p-values agree with lmerTest 3.1-3.

Two sources: the ``satterthwaite`` field of the lme4 references and extra
references (REML fits' coefficient tables, with weights, offsets, missing rows,
vector-valued terms, ...), and ``tests/fixtures/satterthwaite/*.json``: ML fits and
type-III Satterthwaite F tests (``anova(m, type = 3)`` with the contrast
matrices of ``show_tests``).  Tolerances: df, F and DenDF within 1% relative;
p-values within 5% of their log10.  The latter were written by this R script,
run from the repository root (R never runs in the tests):

    # Regenerate tests/fixtures/satterthwaite/*.json (run from the repository root).
    suppressMessages({library(lmerTest); library(jsonlite)})
    data(sleepstudy, cbpp, Pastes, VerbAgg, package = "lme4")
    VerbAgg$r2 <- as.integer(VerbAgg$r2 == "Y")  # 0/1 as in mm.datasets.load("VerbAgg")
    cases <- list(
      sleepstudy_slope_ml = list("sleepstudy", "Reaction ~ Days + (Days|Subject)", FALSE),
      sleepstudy_intercept_ml = list("sleepstudy", "Reaction ~ Days + (1|Subject)", FALSE),
      sleepstudy_slope_reml = list("sleepstudy", "Reaction ~ Days + (Days|Subject)", TRUE),
      pastes_cask_reml = list("Pastes", "strength ~ cask + (1|batch/cask)", TRUE),
      pastes_cask_ml = list("Pastes", "strength ~ cask + (1|batch/cask)", FALSE),
      cbpp_period_reml = list("cbpp", "incidence ~ period + (1|herd)", TRUE),
      verbagg_btype_reml = list("VerbAgg", "r2 ~ btype + (1|id) + (1|item)", TRUE))
    for (id in names(cases)) {
      k <- cases[[id]]
      m <- suppressMessages(lmer(as.formula(k[[2]]), get(k[[1]]), REML = k[[3]]))
      co <- summary(m)$coefficients
      a <- anova(m, type = 3)
      Ls <- show_tests(a)
      out <- list(
        id = id, dataset = k[[1]], formula = k[[2]], REML = k[[3]],
        lmerTest_version = as.character(packageVersion("lmerTest")),
        coefficients = list(names = I(rownames(co)), Estimate = I(co[, "Estimate"]),
                            se = I(co[, "Std. Error"]), df = I(co[, "df"]),
                            t = I(co[, "t value"]), p = I(co[, "Pr(>|t|)"])),
        anova_type3 = lapply(rownames(a), function(term) list(
          term = term, L = unname(Ls[[term]]), F = a[term, "F value"],
          NumDF = a[term, "NumDF"], DenDF = a[term, "DenDF"], p = a[term, "Pr(>F)"])))
      write_json(out, sprintf("tests/fixtures/satterthwaite/%s.json", id),
                 digits = NA, auto_unbox = TRUE, pretty = TRUE)
    }
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import mixedmodels as mm
from mixedmodels.inference.satterthwaite import VarparModel, satterthwaite, satterthwaite_f
from reference import (extra_reference_names, load_extra_reference, load_fixture_data, load_reference,
                       reference_names)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "satterthwaite"
REFERENCES = [n for n in reference_names() if load_reference(n).get("satterthwaite")]
EXTRA_REFERENCES = [n for n in extra_reference_names() if load_extra_reference(n).get("satterthwaite")]
LMERTEST = sorted(p.stem for p in FIXTURES.glob("*.json"))

_FITS: dict[tuple[str, str, bool], mm.LmerResult] = {}


def fit(dataset: str, formula: str, REML: bool = True) -> mm.LmerResult:
    """Fit each model once per session."""
    key = (dataset, formula, REML)
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mm.SingularFitWarning)
            _FITS[key] = mm.lmer(formula, mm.datasets.load(dataset), REML=REML)
    return _FITS[key]


def lmertest(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def assert_pvalues_close(ours, theirs) -> None:
    """|log10 p − log10 p_ref| ≤ 0.05 |log10 p_ref|."""
    ours, theirs = np.log10(np.asarray(ours)), np.log10(np.asarray(theirs))
    assert np.all(np.abs(ours - theirs) <= 0.05 * np.abs(theirs)), (ours, theirs)


# ----- agreement with lmerTest ---------------------------------------------------------
@pytest.mark.parametrize("name", REFERENCES)
def test_reference_coefficient_tables(name):
    ref = load_reference(name)
    table = satterthwaite(fit(ref["dataset"], ref["formula_py"], ref["REML"]))
    np.testing.assert_allclose(table["df"], ref["satterthwaite"]["df"], rtol=0.01)
    assert_pvalues_close(table["Pr(>|t|)"], ref["satterthwaite"]["p"])


@pytest.mark.parametrize("name", EXTRA_REFERENCES)
def test_extra_reference_coefficient_tables(name):
    ref = load_extra_reference(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        m = mm.lmer(ref["formula_py"], load_fixture_data(ref["dataset"]), REML=ref["REML"],
                    weights=ref.get("weights"), offset=ref.get("offset"))
    table = satterthwaite(m)
    np.testing.assert_allclose(table["df"], ref["satterthwaite"]["df"], rtol=0.01)
    assert_pvalues_close(table["Pr(>|t|)"], ref["satterthwaite"]["p"])


@pytest.mark.parametrize("name", LMERTEST)
def test_lmertest_coefficient_tables(name):
    ref = lmertest(name)
    table = satterthwaite(fit(ref["dataset"], ref["formula"], ref["REML"]))
    co = ref["coefficients"]
    assert list(table.index) == co["names"]
    assert list(table.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(table["Std. Error"], co["se"], rtol=0.01)
    np.testing.assert_allclose(table["df"], co["df"], rtol=0.01)
    assert_pvalues_close(table["Pr(>|t|)"], co["p"])


@pytest.mark.parametrize("name", LMERTEST)
def test_lmertest_type3_f_tests(name):
    ref = lmertest(name)
    m = fit(ref["dataset"], ref["formula"], ref["REML"])
    for term in ref["anova_type3"]:
        F, num_df, den_df, p = satterthwaite_f(m, np.array(term["L"]))
        assert num_df == term["NumDF"]
        assert F == pytest.approx(term["F"], rel=0.01)
        assert den_df == pytest.approx(term["DenDF"], rel=0.01)
        assert_pvalues_close(p, term["p"])


# ----- the pieces ----------------------------------------------------------------------
@pytest.mark.parametrize("REML", [True, False])
def test_deviance_minimised_over_sigma_is_the_profiled_objective(REML):
    m = fit("sleepstudy", "Reaction ~ Days + (Days|Subject)", REML)
    vm = VarparModel(m)

    def deviance_at(sigma: float) -> float:
        return vm.deviance(np.append(m._theta_engine, sigma))

    best = minimize_scalar(deviance_at, bracket=(0.5 * m.sigma, 2 * m.sigma))
    assert best.fun == pytest.approx(m.objective, rel=1e-10)
    assert best.x == pytest.approx(m.sigma, rel=1e-6)


def test_weighted_deviance_at_the_estimates_is_the_objective():
    ref = load_extra_reference("sleepstudy_weights")
    m = mm.lmer(ref["formula_py"], load_fixture_data(ref["dataset"]), weights=ref["weights"])
    vm = VarparModel(m)
    assert vm.deviance(vm.varpar) == pytest.approx(m.objective, rel=1e-12)


def test_vcov_beta_at_the_estimates_is_vcov():
    m = fit("sleepstudy", "Reaction ~ Days + (Days|Subject)")
    vm = VarparModel(m)
    np.testing.assert_allclose(vm.vcov_beta(vm.varpar), m.vcov.to_numpy(), rtol=1e-10)


def test_scalar_theta_at_the_bound_is_symmetric():
    """Central differences at θ = 0 may step to −θ: for a scalar term Λ(−θ)Λ(−θ)ᵀ = Λ(θ)Λ(θ)ᵀ."""
    m = fit("Dyestuff2", "Yield ~ 1 + (1|Batch)")
    vm = VarparModel(m)
    assert m._theta_engine[0] < 1e-4
    for h in (1e-4, 0.1):
        up, down = np.array([h, m.sigma]), np.array([-h, m.sigma])
        assert vm.deviance(down) == pytest.approx(vm.deviance(up), rel=1e-12)
        np.testing.assert_allclose(vm.vcov_beta(down), vm.vcov_beta(up), rtol=1e-12)


def test_one_row_f_test_is_the_squared_t_test():
    m = fit("Pastes", "strength ~ cask + (1|batch/cask)")
    l = np.array([0.0, 1.0, -1.0])
    t = satterthwaite(m, l).iloc[0]
    F, num_df, den_df, p = satterthwaite_f(m, l)
    assert (F, num_df, den_df, p) == pytest.approx((t["t value"] ** 2, 1, t["df"], t["Pr(>|t|)"]), rel=1e-10)
    assert np.isnan(satterthwaite_f(m, np.zeros((1, 3))).F)
