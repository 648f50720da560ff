"""Teaching helpers: how much clustering matters, and what pooling does to estimates."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..api import lmer
from ..errors import FormulaError
from ..formula.parse import parse_formula
from ..report import display
from ..results.lm import LmResult, lm
from ..results.lmer import LmerResult

ICC_THRESHOLD = 0.05  # a common rule of thumb for "the clusters differ noticeably"
DEFF_THRESHOLD = 2.0  # Muthén & Satorra (1995): design effects above 2 distort single-level SEs

VERDICT_SOURCES = (
    "Design effect 1 + (m - 1) * ICC: Kish, L. (1965). Survey Sampling. New York: Wiley.\n"
    "Design effect > 2: Muthen, B. O. & Satorra, A. (1995). Complex sample data in structural equation\n"
    "  modeling. Sociological Methodology 25, 267-316.  Its limits (level-2 predictors, random slopes):\n"
    "  Lai, M. H. C. & Kwok, O. (2015). Journal of Experimental Education 83(3), 423-438."
)


def clustering_verdict(icc: float, design_effect: float, mean_cluster_size: float) -> str:
    """Plain-words verdict weighing the ICC and the design effect together.

    The ICC alone says how alike two rows of one cluster are; the design effect
    1 + (m̄ − 1)·ICC says how much that matters for the standard errors, and grows with
    the cluster size.  A single-level model is only called acceptable when both are
    small, and even then only for level-1 predictors' fixed effects.
    """
    big_icc, big_deff = icc > ICC_THRESHOLD, design_effect > DEFF_THRESHOLD
    icc_text = (f"ICC {icc:.3f} {'>' if big_icc else '<='} {ICC_THRESHOLD}: "
                + ("rows of one cluster are clearly more alike than rows of different clusters."
                   if big_icc else "rows of one cluster are only slightly more alike than rows of "
                   "different clusters."))
    deff_text = (f"Design effect {design_effect:.2f} {'>' if big_deff else '<='} {DEFF_THRESHOLD:g}: with "
                 f"{mean_cluster_size:.0f} rows per cluster on average, a single-level model's standard "
                 f"errors of means and cluster-level effects would be about {np.sqrt(design_effect):.2f} "
                 "(the square root of the design effect) times too small.")
    if big_icc or big_deff:
        reason = ("both rules agree" if big_icc and big_deff
                  else "the design effect decides, small as the ICC is" if big_deff
                  else "the ICC decides, small as the design effect is")
        verdict = f"Verdict: the clustering matters ({reason}); use a multilevel model."
    else:
        verdict = ("Verdict: little clustering by both rules: a single-level model's standard errors "
                   "would be nearly right for level-1 predictors, but cluster-level predictors, random "
                   "slopes and variance components still need a multilevel model.")
    return "\n".join(textwrap.fill(text, 92) for text in (icc_text, deff_text, verdict))


@dataclass
class IccReport:
    """The null model's ICC, the design effect 1 + (m̄ − 1)·ICC and the effective sample size n / deff."""

    icc: float
    design_effect: float
    effective_n: float
    n: int
    n_groups: int
    mean_cluster_size: float
    fit: LmerResult

    @property
    def verdict(self) -> str:
        """Whether the clustering matters, by the ICC and the design effect, in plain words."""
        return clustering_verdict(self.icc, self.design_effect, self.mean_cluster_size)

    def __str__(self) -> str:
        return "\n".join([
            f"Null model: {self.fit.formula}",
            f"ICC (adjusted):         {self.icc:.4f}  (share of the variance between clusters)",
            f"observations n:         {self.n}",
            f"clusters:               {self.n_groups}",
            f"mean cluster size m:    {self.mean_cluster_size:.2f}",
            f"design effect:          {self.design_effect:.3f}  (1 + (m - 1) * ICC: how much clustering "
            "inflates the variance of a mean)",
            f"effective sample size:  {self.effective_n:.1f}  (n / design effect: as many independent rows)",
            "",
            self.verdict,
            "",
            "Sources:",
            VERDICT_SOURCES,
        ]) + "\n"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return display.pre(str(self))


def icc_null(y: str, group: str, data: pd.DataFrame) -> IccReport:
    """Fit ``y ~ 1 + (1 | group)`` and report its ICC, design effect and effective sample size."""
    fit = lmer(f"{y} ~ 1 + (1 | {group})", data)
    icc = float(fit.icc()["adjusted"])
    n, n_groups = fit.nobs, fit.ngroups[group]
    m = n / n_groups
    deff = 1 + (m - 1) * icc
    return IccReport(icc=icc, design_effect=deff, effective_n=n / deff, n=n, n_groups=n_groups,
                     mean_cluster_size=m, fit=fit)


@dataclass
class PoolingComparison:
    """Complete pooling (one OLS), no pooling and partial pooling (the mixed model).

    No pooling is Gelman & Hill's: one least-squares fit with separate coefficients per cluster
    for the random terms' columns and shared ones for the other fixed columns (with random
    effects for every fixed column: separate regressions per cluster, σ pooled over them).

    ``estimates``: per fixed effect, the OLS and mixed-model estimates and SEs and their SE ratio
    (mixed / OLS; above 1 where ignoring the clustering understates the uncertainty).
    ``per_cluster``: per cluster and random-effect term, the no-pooling estimate and SE, the
    mixed model's coefficient and the shrinkage
    1 − (partial − overall)/(no pooling − overall), overall being the mixed model's fixed effect
    (0: no shrinkage, 1: all the way to it; correlated random effects can take it outside [0, 1]).
    """

    estimates: pd.DataFrame
    per_cluster: pd.DataFrame
    complete: LmResult
    mixed: LmerResult
    group: str

    def __str__(self) -> str:
        shrink = self.per_cluster.xs("shrinkage", axis=1, level=1).median()
        lines = [
            f"Pooling of {self.mixed.formula}",
            "complete pooling: one regression ignoring the clusters (its SEs assume independent rows);",
            f"no pooling: separate coefficients in each level of {self.group} (the others shared);",
            "partial pooling: the mixed model, whose per-cluster coefficients shrink the no-pooling",
            "estimates towards the overall fixed effect, more so for small or noisy clusters",
            "(shrinkage 0: none, 1: all the way to the fixed effect).",
            "",
            self.estimates.to_string(float_format=lambda v: f"{v:.4g}"),
            "",
            "se_ratio = mixed_se / complete_pooling_se (> 1: complete pooling understates the SE)",
            "median shrinkage per term: " + ", ".join(f"{k} {v:.2f}" for k, v in shrink.items()),
        ]
        return "\n".join(lines) + "\n"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return display.pre(str(self))


def compare_pooling(formula: str, data: pd.DataFrame) -> PoolingComparison:
    """Complete, no and partial pooling of an lmer formula with one grouping factor."""
    parsed = parse_formula(formula)
    groups = {bar.group_name for bar in parsed.random}
    if len(groups) != 1:
        raise FormulaError("compare_pooling needs random effects of exactly one grouping factor, "
                           "e.g. y ~ x + (x | g)", formula)
    mixed = lmer(formula, data)
    complete = lm(parsed.fixed_formula, data)
    estimates = pd.DataFrame({
        "complete_pooling": complete.fixef, "complete_pooling_se": complete.se,
        "mixed": mixed.fixef, "mixed_se": mixed.se,
    })
    estimates["se_ratio"] = estimates["mixed_se"] / estimates["complete_pooling_se"]
    return PoolingComparison(estimates, _per_cluster(mixed), complete, mixed, mixed.reterms[0].group)


def _per_cluster(mixed: LmerResult) -> pd.DataFrame:
    """No pooling per cluster beside the mixed model's coef, for the random terms' columns."""
    design = mixed.design
    terms = mixed.reterms  # one grouping factor: same codes and levels, possibly several terms (||)
    names = [c for t in terms for c in t.columns]
    shared = design.X[:, [j for j, c in enumerate(design.xnames) if c not in names]]
    y = design.y if design.offset is None else design.y - design.offset
    levels = terms[0].levels
    est, se = _no_pooling(np.column_stack([t.matrix for t in terms]), shared, y, terms[0].codes, len(levels))
    partial = mixed.coef[terms[0].group].loc[:, names].to_numpy()
    overall = mixed.fixef.reindex(names, fill_value=0.0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        shrinkage = 1 - (partial - overall) / (est - overall)
    blocks = {"no_pooling": est, "no_pooling_se": se, "partial_pooling": partial, "shrinkage": shrinkage}
    frame = pd.DataFrame(
        {(name, what): values[:, j] for j, name in enumerate(names) for what, values in blocks.items()},
        index=levels,
    )
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["term", None])
    frame.index.name = terms[0].group
    return frame


def _no_pooling(Z: np.ndarray, O: np.ndarray, y: np.ndarray, codes: np.ndarray,
                nlevels: int) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of y on Z's columns separately per cluster and O's columns shared.

    By Frisch–Waugh–Lovell: O and y are residualised on Z within each cluster to estimate
    the shared γ, then each cluster's coefficients are (Z_kᵀZ_k)⁻¹Z_kᵀ(y_k − O_kγ), with
    covariance σ²(Z_kᵀZ_k)⁻¹ + A_k cov(γ) A_kᵀ, A_k = (Z_kᵀZ_k)⁻¹Z_kᵀO_k.  Shared columns
    aliased with the clusters (cluster-level covariates) are dropped; clusters whose Z_k is
    rank deficient get NaN.
    """
    members = [np.flatnonzero(codes == k) for k in range(nlevels)]
    pinvs = [np.linalg.pinv(Z[r]) for r in members]
    O_res, y_res = O.copy(), y.copy()
    for r, P in zip(members, pinvs):
        O_res[r] -= Z[r] @ (P @ O[r])
        y_res[r] -= Z[r] @ (P @ y[r])
    keep = _independent_columns(O_res)
    O, O_res = O[:, keep], O_res[:, keep]
    gamma = np.linalg.lstsq(O_res, y_res, rcond=None)[0]
    full_rank = [np.linalg.matrix_rank(Z[r]) == Z.shape[1] for r in members]
    df = len(y) - sum(np.linalg.matrix_rank(Z[r]) for r in members) - len(keep)
    resid = y_res - O_res @ gamma
    sigma2 = float(resid @ resid) / df if df > 0 else np.nan
    cov_gamma = np.linalg.inv(O_res.T @ O_res)
    est = np.full((nlevels, Z.shape[1]), np.nan)
    se = np.full_like(est, np.nan)
    for k, (r, P) in enumerate(zip(members, pinvs)):
        if full_rank[k]:
            A = P @ O[r]
            est[k] = P @ (y[r] - O[r] @ gamma)
            se[k] = np.sqrt(sigma2 * np.diag(P @ P.T + A @ cov_gamma @ A.T))
    return est, se


def _independent_columns(M: np.ndarray) -> list[int]:
    """Columns of M, left to right, each linearly independent of those kept before it."""
    keep: list[int] = []
    for j in range(M.shape[1]):
        if np.linalg.matrix_rank(M[:, keep + [j]]) == len(keep) + 1:
            keep.append(j)
    return keep
