r"""Kenward–Roger tests agree with lmerTest 3.1-3 / pbkrtest 0.5.2.

``tests/fixtures/kenward_roger/*.json`` hold lmerTest's ``summary(m, ddf =
"Kenward-Roger")`` coefficient tables, ``anova(m, ddf = "Kenward-Roger")`` type III
tests (with their contrast matrices from ``show_tests``) and pbkrtest's ``vcovAdj``
for REML fits: sleepstudy (random slopes; balanced, unbalanced and weighted),
Penicillin (crossed; with ``sample`` fixed for a 5-df F test), Pastes (nested; a
2-df F test), Dyestuff, and egsingle (7,230 rows, children crossed within 60 schools
with a random slope; written by ``egsingle.R`` next to its fixture, above the 5,000
rows the former dense n×n computation allowed).  Tolerances: df, DenDF and F within 1% relative,
standard errors within 0.5%, p-values within 5% of their log10.

pbkrtest builds the residual part of the marginal covariance as σ²I even for
weighted fits (while its Φ, lme4's vcov, uses the weights); mixedmodels uses σ²W⁻¹.
For the weighted case the script therefore also records pbkrtest's computation
with the residual matrix replaced by W⁻¹ (``weighted_sigma``), which is what the
weighted test compares with.

The fixtures were written by this R script, run from the repository root (R never
runs in the tests):

    # Regenerate tests/fixtures/kenward_roger/*.json (run from the repository root).
    suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
    data(sleepstudy, Penicillin, Pastes, Dyestuff, package = "lme4")
    drop <- list(c("308", 7), c("308", 8), c("308", 9), c("335", 0), c("335", 1), c("335", 2),
                 c("370", 4), c("370", 5), c("352", 9))
    key <- paste(sleepstudy$Subject, sleepstudy$Days)
    sleepstudy_unbalanced <- sleepstudy[!key %in% sapply(drop, paste, collapse = " "), ]
    sleepstudy_weighted <- transform(sleepstudy, w = 1 + ((as.integer(Subject) + Days) %% 3) / 2)
    cases <- list(
      sleepstudy_slope = list("sleepstudy", "Reaction ~ Days + (Days|Subject)", NULL, NULL),
      penicillin_crossed = list("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", NULL, NULL),
      penicillin_sample = list("Penicillin", "diameter ~ sample + (1|plate)", NULL, NULL),
      pastes_cask = list("Pastes", "strength ~ cask + (1|batch/cask)", NULL, NULL),
      dyestuff = list("Dyestuff", "Yield ~ 1 + (1|Batch)", NULL, NULL),
      sleepstudy_unbalanced = list("sleepstudy", "Reaction ~ Days + (Days|Subject)", drop, NULL),
      sleepstudy_weighted = list("sleepstudy", "Reaction ~ Days + (Days|Subject)", NULL, "w"))
    kr_weighted <- function(m) {
      # pbkrtest builds the residual part of Sigma as sigma^2 I, ignoring prior weights; redo its
      # computation with sigma^2 W^-1 (its internals, the residual matrix replaced)
      SG <- pbkrtest:::get_SigmaG(m)
      k <- length(SG$G); n <- nobs(m)
      SG$G[[k]] <- Diagonal(n, x = 1 / weights(m))
      SG$Sigma <- SG$Sigma + sigma(m)^2 * (SG$G[[k]] - Diagonal(n))
      pbkrtest:::vcovAdj_internal(vcov(m), SG, getME(m, "X"))
    }
    for (id in names(cases)) {
      k <- cases[[id]]
      data <- switch(id, sleepstudy_unbalanced = sleepstudy_unbalanced,
                     sleepstudy_weighted = sleepstudy_weighted, get(k[[1]]))
      m <- if (is.null(k[[4]])) lmer(as.formula(k[[2]]), data) else
        lmer(as.formula(k[[2]]), data, weights = w)
      co <- summary(m, ddf = "Kenward-Roger")$coefficients
      a <- anova(m, ddf = "Kenward-Roger")
      Ls <- show_tests(a)
      PhiA <- pbkrtest::vcovAdj(m)
      out <- list(
        id = id, dataset = k[[1]], formula = k[[2]], drop = k[[3]], weights = k[[4]],
        versions = list(lmerTest = as.character(packageVersion("lmerTest")),
                        pbkrtest = as.character(packageVersion("pbkrtest")),
                        lme4 = as.character(packageVersion("lme4"))),
        nobs = nobs(m), sigma = sigma(m), beta = unname(fixef(m)),
        vcov = unname(as.matrix(vcov(m))), vcov_adj = unname(as.matrix(PhiA)),
        W = unname(as.matrix(attr(PhiA, "W"))),
        coefficients = list(names = I(rownames(co)), Estimate = I(co[, "Estimate"]),
                            se = I(co[, "Std. Error"]), df = I(co[, "df"]),
                            t = I(co[, "t value"]), p = I(co[, "Pr(>|t|)"])),
        anova = lapply(rownames(a), function(term) list(
          term = term, L = unname(Ls[[term]]), F = a[term, "F value"], NumDF = a[term, "NumDF"],
          DenDF = a[term, "DenDF"], p = a[term, "Pr(>F)"], SumSq = a[term, "Sum Sq"],
          MeanSq = a[term, "Mean Sq"])))
      if (!is.null(k[[4]])) {
        # lmerTest's numbers above use pbkrtest as is; these use Sigma with sigma^2 W^-1
        PhiW <- kr_weighted(m)
        p <- length(fixef(m)); E <- diag(p)
        dfw <- sapply(1:p, function(i) pbkrtest::Lb_ddf(E[i, , drop = FALSE], vcov(m), PhiW))
        sew <- sqrt(diag(as.matrix(PhiW)))
        out$weighted_sigma <- list(
          vcov_adj = unname(as.matrix(PhiW)), se = sew, df = dfw, t = unname(fixef(m)) / sew,
          p = 2 * pt(abs(unname(fixef(m)) / sew), dfw, lower.tail = FALSE),
          anova = lapply(rownames(a), function(term) {
            s <- pbkrtest:::.KR_adjust(PhiW, as.matrix(vcov(m)), Ls[[term]], fixef(m), 0)
            list(term = term, L = unname(Ls[[term]]), F = s$Fstat, NumDF = s$ndf, DenDF = s$ddf,
                 p = s$p.value)
          }))
      }
      write_json(out, sprintf("tests/fixtures/kenward_roger/%s.json", id),
                 digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null")
    }
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedmodels as mm
from mixedmodels.errors import MemoryBudgetError
import mixedmodels.inference.kenward_roger as kr
from mixedmodels.inference.fixed_tests import anova_table
from mixedmodels.inference.kenward_roger import (kenward_roger, kenward_roger_f, kr_pieces, kr_test,
                                       vcov_adjusted)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kenward_roger"
CASES = sorted(p.stem for p in FIXTURES.glob("*.json"))
UNWEIGHTED = [c for c in CASES if not json.loads((FIXTURES / f"{c}.json").read_text())["weights"]]

_FITS: dict[str, mm.LmerResult] = {}


def reference(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def case_data(ref: dict) -> pd.DataFrame:
    """The data of a case, rows dropped and weights added as in the R script."""
    data = mm.datasets.load(ref["dataset"])
    if ref["drop"]:
        key = data["Subject"].astype(str) + " " + data["Days"].astype(int).astype(str)
        data = data[~key.isin([f"{s} {d}" for s, d in ref["drop"]])]
    if ref["weights"]:
        subject = data["Subject"].cat.codes + 1  # R's as.integer(Subject)
        data = data.assign(w=1 + ((subject + data["Days"]) % 3) / 2)
    return data


def fit(name: str) -> mm.LmerResult:
    """Fit each case once per session."""
    if name not in _FITS:
        ref = reference(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mm.SingularFitWarning)
            _FITS[name] = mm.lmer(ref["formula"], case_data(ref), weights=ref["weights"])
    return _FITS[name]


def assert_pvalues_close(ours, theirs) -> None:
    """|log10 p − log10 p_ref| ≤ 0.05 |log10 p_ref|."""
    ours, theirs = np.log10(np.asarray(ours, dtype=float)), np.log10(np.asarray(theirs, dtype=float))
    assert np.all(np.abs(ours - theirs) <= 0.05 * np.abs(theirs)), (ours, theirs)


def kr_reference(ref: dict) -> tuple[dict, list[dict]]:
    """The coefficient table and F tests to compare with (weighted: with σ²W⁻¹)."""
    if ref["weights"]:
        w = ref["weighted_sigma"]
        return {**ref["coefficients"], **{k: w[k] for k in ("se", "df", "t", "p")}}, w["anova"]
    return ref["coefficients"], ref["anova"]


# ----- agreement with lmerTest / pbkrtest ------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_coefficient_tables(name):
    ref = reference(name)
    m = fit(name)
    assert m.nobs == ref["nobs"]
    co, _ = kr_reference(ref)
    table = kenward_roger(m)
    assert list(table.index) == co["names"]
    assert list(table.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(table["Estimate"], co["Estimate"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(table["Std. Error"], co["se"], rtol=0.005)
    np.testing.assert_allclose(table["df"], co["df"], rtol=0.01)
    np.testing.assert_allclose(table["t value"], co["t"], rtol=0.01, atol=1e-4)
    assert_pvalues_close(table["Pr(>|t|)"], co["p"])


@pytest.mark.parametrize("name", CASES)
def test_f_tests(name):
    _, tests = kr_reference(reference(name))
    m = fit(name)
    for term in tests:
        F, num_df, den_df, p = kenward_roger_f(m, np.array(term["L"]))
        assert num_df == term["NumDF"]
        assert F == pytest.approx(term["F"], rel=0.01)
        assert den_df == pytest.approx(term["DenDF"], rel=0.01)
        assert_pvalues_close(p, term["p"])


@pytest.mark.parametrize("name", UNWEIGHTED)
def test_anova_tables(name):
    ref = reference(name)
    table = anova_table(fit(name), "Kenward-Roger").table
    assert list(table.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert list(table.index) == [t["term"] for t in ref["anova"]]
    for term in ref["anova"]:
        row = table.loc[term["term"]]
        assert row["Sum Sq"] == pytest.approx(term["SumSq"], rel=0.01)
        assert row["Mean Sq"] == pytest.approx(term["MeanSq"], rel=0.01)
        assert row["NumDF"] == term["NumDF"]
        assert row["DenDF"] == pytest.approx(term["DenDF"], rel=0.01)
        assert row["F value"] == pytest.approx(term["F"], rel=0.01)
        assert_pvalues_close(row["Pr(>F)"], term["p"])


@pytest.mark.parametrize("name", CASES)
def test_adjusted_covariance(name):
    ref = reference(name)
    m = fit(name)
    target = np.array(ref["weighted_sigma"]["vcov_adj"] if ref["weights"] else ref["vcov_adj"])
    ours = vcov_adjusted(m)
    assert list(ours.index) == list(m.fixef.index)
    scale = np.sqrt(np.outer(np.diag(target), np.diag(target)))
    np.testing.assert_allclose(ours.to_numpy() / scale, target / scale, atol=0.005)
    # Φ computed from the dense V is lme4's vcov
    np.testing.assert_allclose(kr_pieces(m).vcov, m.vcov.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(kr_pieces(m).vcov, ref["vcov"], rtol=1e-3)


def test_weighted_fit_differs_from_lmertest_which_ignores_weights_in_v():
    ref = reference("sleepstudy_weighted")
    df = kenward_roger(fit("sleepstudy_weighted"))["df"].to_numpy()
    assert np.all(np.abs(df / np.array(ref["coefficients"]["df"]) - 1) > 0.05)


# ----- properties ------------------------------------------------------------------------
def test_balanced_designs_give_the_classical_df():
    """In balanced designs KR reproduces the exact df of the classical analysis."""
    np.testing.assert_allclose(kenward_roger(fit("sleepstudy_slope"))["df"], [17, 17], rtol=1e-6)
    np.testing.assert_allclose(kenward_roger(fit("pastes_cask"))["df"][1:], [18, 18], rtol=1e-6)
    np.testing.assert_allclose(kenward_roger(fit("dyestuff"))["df"], [5], rtol=1e-6)


def test_one_row_f_test_is_the_squared_t_test_before_scaling():
    m = fit("pastes_cask")
    l = np.array([0.0, 1.0, -1.0])
    t = kenward_roger(m, l).iloc[0]
    r = kr_test(m, l)
    assert (r.F_unscaled, r.NumDF, r.DenDF) == pytest.approx((t["t value"] ** 2, 1, t["df"]), rel=1e-10)
    assert r.F == pytest.approx(r.scaling * r.F_unscaled, rel=1e-12)


def test_contrast_row_space_is_what_counts():
    m = fit("penicillin_sample")
    L = np.array(reference("penicillin_sample")["anova"][0]["L"])
    base = kenward_roger_f(m, L)
    mixed = np.vstack([2 * L[::-1], L[0] + L[1]])  # rank-deficient, same row space
    assert kenward_roger_f(m, mixed) == pytest.approx(base, rel=1e-8)
    assert np.isnan(kenward_roger_f(m, np.zeros((2, m.p))).F)


def test_ml_fits_are_refused():
    ref = reference("sleepstudy_slope")
    m = mm.lmer(ref["formula"], case_data(ref), REML=False)
    with pytest.raises(ValueError, match="REML"):
        kenward_roger(m)


def test_memory_budget_error_says_what_to_do(monkeypatch):
    monkeypatch.setattr(kr, "MEMORY_BUDGET", 10_000)
    m = mm.lmer("Reaction ~ Days + (1|Subject)", mm.datasets.load("sleepstudy"))
    with pytest.raises(MemoryBudgetError, match=r"18×18 matrices .* above the memory budget of "
                       r".*ddf='Satterthwaite'.*kenward_roger.MEMORY_BUDGET"):
        kenward_roger(m)


def test_woodbury_pieces_equal_the_dense_marginal_inverse():
    """V⁻¹Y, ZᵀV⁻¹Z, the traces of ZᵀV⁻¹W⁻¹V⁻¹Z's blocks and tr(V⁻¹W⁻¹V⁻¹W⁻¹) against V = ZΨZᵀ + σ²W⁻¹ inverted densely,
    on a weighted fit with a correlated random slope."""
    ref = reference("sleepstudy_weighted")
    m = fit("sleepstudy_weighted")
    Z, _, _ = kr._indicator_blocks(m)
    w = np.asarray(case_data(ref)["w"], dtype=float)
    sigma2 = m.sigma**2
    t, S = m.reterms[0], m.covariances[0]
    Psi = np.kron(S, np.eye(t.nlevels))  # the blocks' layout: column a's levels together
    Lam = np.kron(np.linalg.cholesky(S / sigma2), np.eye(t.nlevels))
    Zd = Z.toarray()
    V = Zd @ Psi @ Zd.T + sigma2 * np.diag(1 / w)
    Vi = np.linalg.inv(V)
    inv = kr.MarginalInverse.of(Z, sp.csc_matrix(Lam), w, sigma2)
    X = np.asarray(m.design.X)
    np.testing.assert_allclose(inv.apply(X), Vi @ X, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(inv.z_vinv_z(), Zd.T @ Vi @ Zd, rtol=1e-9, atol=1e-13)
    D = np.diag(1 / w)
    E = Zd.T @ Vi @ D @ Vi @ Zd
    C = inv.z_vinv_z()
    for a in (slice(0, 18), slice(18, 36)):
        for b in (slice(0, 18), slice(18, 36)):
            assert inv.trace_z_vinv_d_vinv_z(C, b, a) == pytest.approx(np.trace(E[b, a]), rel=1e-10)
    assert inv.trace_vinv_d_squared() == pytest.approx(np.trace(Vi @ D @ Vi @ D), rel=1e-10)


def test_summary_and_anova_offer_kenward_roger():
    fit = mm.lmer("strength ~ cask + (1|batch/cask)", mm.datasets.load("Pastes"))
    text = str(fit.summary(ddf="Kenward-Roger"))
    assert "t-tests use Kenward-Roger's method [\nlmerModLmerTest]" in text  # R's cat(fill = TRUE) breaks there
    pd.testing.assert_frame_equal(fit.summary(ddf="Kenward-Roger").coefficients, fit.kenward_roger())
    table = fit.anova(ddf="Kenward-Roger")
    assert str(table).startswith("Type III Analysis of Variance Table with Kenward-Roger's method")
    assert table.table.loc["cask", "NumDF"] == 2
    with pytest.raises(ValueError, match="ddf must be"):
        fit.summary(ddf="Satterthwaite2")
    with pytest.raises(ValueError, match="REML"):
        fit.refit_ml().summary(ddf="Kenward-Roger")
