"""Teaching helpers: the null model's ICC and design effect; complete, no and partial pooling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import FormulaError, SingularFitWarning
from mixedmodels.teaching.pooling import clustering_verdict, compare_pooling, icc_null


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """β = (XᵀX)⁻¹Xᵀy and SE = √(s² diag (XᵀX)⁻¹), s² = RSS / (n − p)."""
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    s2 = np.sum((y - X @ beta) ** 2) / (len(y) - X.shape[1])
    return beta, np.sqrt(s2 * np.diag(np.linalg.inv(X.T @ X)))


# ----- icc_null --------------------------------------------------------------------------------
def test_icc_null_dyestuff_arithmetic():
    report = icc_null("Yield", "Batch", mm.datasets.load("Dyestuff"))
    vc = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("Dyestuff")).varcorr
    tau2, sigma2 = vc["vcov"]
    icc = tau2 / (tau2 + sigma2)
    assert report.icc == pytest.approx(icc, rel=1e-10)
    assert report.icc == pytest.approx(1764.05 / (1764.05 + 2451.25), abs=1e-4)  # lme4's variances
    assert (report.n, report.n_groups, report.mean_cluster_size) == (30, 6, 5.0)
    assert report.design_effect == pytest.approx(1 + 4 * icc, rel=1e-12)
    assert report.effective_n == pytest.approx(30 / (1 + 4 * icc), rel=1e-12)
    text = str(report)
    assert "ICC 0.418 > 0.05" in text and "Design effect 2.67 > 2" in text
    assert "Verdict: the clustering matters (both rules agree); use a multilevel model." in text
    assert f"{report.design_effect:.3f}" in text and f"{report.effective_n:.1f}" in text
    assert "Muthen" in text and "Kish" in text
    assert "<pre" in report._repr_html_() and "ICC 0.418 &gt; 0.05" in report._repr_html_()


def test_icc_null_no_clustering():
    with pytest.warns(SingularFitWarning):
        report = icc_null("Yield", "Batch", mm.datasets.load("Dyestuff2"))
    assert report.icc == pytest.approx(0.0, abs=1e-8)
    assert report.design_effect == pytest.approx(1.0, abs=1e-7)
    assert report.effective_n == pytest.approx(30.0, abs=1e-5)
    assert "Verdict: little clustering by both rules" in str(report)


def _balanced_with_icc(n_groups: int, size: int, icc: float, seed: int) -> pd.DataFrame:
    """Balanced one-way data whose REML estimates are exactly τ² = icc and σ² = 1 − icc.

    For balanced data REML gives the ANOVA estimators σ² = MSW and τ² = (MSB − MSW)/m, so the
    within-cluster deviations are scaled to MSW = 1 − icc and the cluster means to MSB = m·icc + 1 − icc.
    """
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    e = rng.standard_normal(n_groups * size)
    e -= pd.Series(e).groupby(g).transform("mean").to_numpy()
    e *= np.sqrt((1 - icc) * (len(e) - n_groups) / np.sum(e**2))
    a = rng.standard_normal(n_groups)
    a -= a.mean()
    a *= np.sqrt((size * icc + 1 - icc) * (n_groups - 1) / size / np.sum(a**2))
    return pd.DataFrame({"y": 10 + a[g] + e, "g": g})


def test_icc_null_small_icc_large_clusters_is_not_single_level():
    """Issue 19: 30 clusters of 100 with ICC 0.048 have a design effect of 5.75."""
    report = icc_null("y", "g", _balanced_with_icc(30, 100, 0.048, seed=19))
    assert report.icc == pytest.approx(0.048, abs=1e-5)
    assert report.design_effect == pytest.approx(1 + 99 * 0.048, abs=1e-3)
    assert report.effective_n == pytest.approx(3000 / 5.752, rel=1e-3)
    text = " ".join(str(report).split())  # the verdict is wrapped
    assert "ICC 0.048 <= 0.05" in text and "Design effect 5.75 > 2" in text
    assert "about 2.40 (the square root of the design effect) times too small" in text
    assert "the design effect decides" in text and "use a multilevel model" in text
    assert "single-level model may suffice" not in text and "little clustering by both" not in text


@pytest.mark.parametrize("icc, deff, m, verdict", [
    (0.2, 3.0, 11, "both rules agree"),
    (0.01, 2.5, 151, "the design effect decides"),
    (0.3, 1.6, 3, "the ICC decides"),
    (0.01, 1.2, 21, "little clustering by both rules"),
])
def test_clustering_verdict_weighs_both_rules(icc, deff, m, verdict):
    assert verdict in " ".join(clustering_verdict(icc, deff, m).split())


def test_icc_null_unbalanced_uses_mean_cluster_size(sleep):
    data = sleep[~((sleep["Subject"] == "308") & (sleep["Days"] > 3))]  # 174 rows, 18 subjects
    report = icc_null("Reaction", "Subject", data)
    m = 174 / 18
    assert (report.n, report.n_groups) == (174, 18)
    assert report.mean_cluster_size == pytest.approx(m)
    assert report.design_effect == pytest.approx(1 + (m - 1) * report.icc, rel=1e-12)
    assert report.effective_n == pytest.approx(174 / report.design_effect, rel=1e-12)


# ----- compare_pooling -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slopes(sleep):
    return compare_pooling("Reaction ~ Days + (Days | Subject)", sleep)


def test_complete_pooling_is_ols(slopes, sleep):
    X = np.column_stack([np.ones(len(sleep)), sleep["Days"]])
    beta, se = _ols(X, sleep["Reaction"].to_numpy())
    est = slopes.estimates
    np.testing.assert_allclose(est["complete_pooling"], beta, rtol=1e-10)
    np.testing.assert_allclose(est["complete_pooling_se"], se, rtol=1e-10)
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    np.testing.assert_allclose(est["mixed"], fit.fixef, rtol=1e-8)
    np.testing.assert_allclose(est["mixed_se"], fit.se, rtol=1e-8)
    np.testing.assert_allclose(est["se_ratio"], fit.se / se, rtol=1e-8)
    assert est.loc["Days", "se_ratio"] > 1.2  # the naive SE of the slope is too small


def test_no_pooling_is_per_subject_ols(slopes, sleep):
    per = slopes.per_cluster
    rss, fits = 0.0, {}
    for subject, rows in sleep.groupby("Subject", observed=True):
        X = np.column_stack([np.ones(len(rows)), rows["Days"]])
        y = rows["Reaction"].to_numpy()
        beta = np.linalg.lstsq(X, y, rcond=None)[0]
        rss += np.sum((y - X @ beta) ** 2)
        fits[subject] = (beta, np.linalg.inv(X.T @ X))
    s2 = rss / (180 - 18 * 2)  # σ² pooled over the separate regressions
    for subject, (beta, XtX_inv) in fits.items():
        np.testing.assert_allclose(per.loc[subject, [("(Intercept)", "no_pooling"), ("Days", "no_pooling")]],
                                   beta, rtol=1e-9)
        np.testing.assert_allclose(per.loc[subject, [("(Intercept)", "no_pooling_se"), ("Days", "no_pooling_se")]],
                                   np.sqrt(s2 * np.diag(XtX_inv)), rtol=1e-9)


def test_partial_pooling_is_coef_and_shrinks(slopes, sleep):
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    per = slopes.per_cluster
    for term in ("(Intercept)", "Days"):
        partial, nopool = per[(term, "partial_pooling")], per[(term, "no_pooling")]
        np.testing.assert_allclose(partial, fit.coef["Subject"][term], rtol=1e-8)
        overall = fit.fixef[term]
        np.testing.assert_allclose(per[(term, "shrinkage")], 1 - (partial - overall) / (nopool - overall), rtol=1e-10)
        inside = per[(term, "shrinkage")].between(0, 1)
        assert inside.sum() >= 12  # most of the 18 subjects; correlated effects can overshoot
        # partial pooling is closer to the fixed effect than no pooling for most subjects
        assert (np.abs(partial - overall) < np.abs(nopool - overall)).sum() >= 12
    assert "median shrinkage" in str(slopes) and "se_ratio" in str(slopes)


def test_random_intercept_shrinkage_is_the_balanced_formula(sleep):
    """Balanced data, same Days in every subject: every intercept shrinks by σ² / (σ² + m τ²)."""
    result = compare_pooling("Reaction ~ Days + (1 | Subject)", sleep)
    tau2, sigma2 = result.mixed.varcorr["vcov"]
    np.testing.assert_allclose(result.per_cluster[("(Intercept)", "shrinkage")], sigma2 / (sigma2 + 10 * tau2),
                               rtol=1e-8)
    # no pooling = one OLS with subject intercepts and a shared Days slope (y ~ 0 + Subject + Days)
    dummies = pd.get_dummies(sleep["Subject"]).to_numpy(dtype=float)
    beta, se = _ols(np.column_stack([dummies, sleep["Days"]]), sleep["Reaction"].to_numpy())
    np.testing.assert_allclose(result.per_cluster[("(Intercept)", "no_pooling")], beta[:18], rtol=1e-9)
    np.testing.assert_allclose(result.per_cluster[("(Intercept)", "no_pooling_se")], se[:18], rtol=1e-9)


def test_compare_pooling_needs_one_grouping_factor():
    with pytest.raises(FormulaError, match="exactly one grouping factor"):
        compare_pooling("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.datasets.load("Penicillin"))
