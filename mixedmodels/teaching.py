"""Teaching helpers: how much clustering matters, and what pooling does to estimates."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .api import lmer
from .errors import FormulaError
from .formula import parse_formula
from .lm import LmResult, lm
from .results import LmerResult

ICC_THRESHOLD = 0.05  # the usual rule of thumb for "clustering matters"


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
    def reading(self) -> str:
        if self.icc > ICC_THRESHOLD:
            return f"ICC > {ICC_THRESHOLD}: clustering matters; a multilevel model is warranted"
        return f"ICC <= {ICC_THRESHOLD}: little clustering; a single-level model may suffice"

    def _lines(self) -> list[str]:
        return [
            f"Null model: {self.fit.formula}",
            f"ICC (adjusted):         {self.icc:.4f}",
            f"observations n:         {self.n}",
            f"clusters:               {self.n_groups}",
            f"mean cluster size m:    {self.mean_cluster_size:.2f}",
            f"design effect:          {self.design_effect:.3f}  (1 + (m - 1) * ICC)",
            f"effective sample size:  {self.effective_n:.1f}  (n / design effect)",
            self.reading,
        ]

    def __str__(self) -> str:
        return "\n".join(self._lines()) + "\n"

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


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
    """Complete pooling (one OLS), no pooling (OLS per cluster) and partial pooling (the mixed model).

    ``estimates``: per fixed effect, the OLS and mixed-model estimates and SEs and their SE ratio
    (mixed / OLS; above 1 where ignoring the clustering understates the uncertainty).
    ``per_cluster``: per cluster and random-effect term, the no-pooling estimate and SE, the
    mixed model's coefficient and the shrinkage 1 − (partial − overall)/(no pooling − overall),
    overall being the mixed model's fixed effect (0: no shrinkage, 1: all the way to it).
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
            f"no pooling: a separate regression in each level of {self.group};",
            "partial pooling: the mixed model, whose per-cluster coefficients shrink the no-pooling",
            "estimates towards the overall fixed effect, more so for small or noisy clusters.",
            "",
            self.estimates.to_string(float_format=lambda v: f"{v:.4g}"),
            "",
            "se_ratio = mixed_se / complete_pooling_se (> 1: complete pooling understates the SE)",
            "median shrinkage per term: " + ", ".join(f"{k} {v:.2f}" for k, v in shrink.items()),
        ]
        return "\n".join(lines) + "\n"


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
    """No-pooling OLS of y on the random terms' columns in each cluster, beside the mixed model's coef."""
    design = mixed.design
    terms = mixed.reterms  # one grouping factor: same codes and levels, possibly several terms (||)
    Z = np.column_stack([t.matrix for t in terms])
    names = [c for t in terms for c in t.columns]
    y = design.y if design.offset is None else design.y - design.offset
    codes, levels = terms[0].codes, terms[0].levels
    est = np.full((len(levels), len(names)), np.nan)
    se = np.full_like(est, np.nan)
    for k in range(len(levels)):
        rows = codes == k
        est[k], se[k] = _ols(Z[rows], y[rows])
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


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares estimates and SEs; NaN where a coefficient is not estimable or has no residual df."""
    n, p = X.shape
    beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    if rank < p:
        return np.full(p, np.nan), np.full(p, np.nan)
    if n == p:
        return beta, np.full(p, np.nan)
    sigma2 = float(np.sum((y - X @ beta) ** 2)) / (n - p)
    return beta, np.sqrt(sigma2 * np.diag(np.linalg.inv(X.T @ X)))
