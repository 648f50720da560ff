"""Estimated marginal means, their contrasts and marginal slopes: emmeans' ``emmeans(m, pairwise ~ f | g)``,
``contrast()``, ``emtrends()``, and lmerTest's ``ls_means`` / ``difflsmeans``.

The reference grid crosses the levels of every factor of the fixed part, with
numeric covariates at their means (or at the values of ``at``).  The marginal
mean of a level is the average, with equal weights, of the grid's predictions
over the levels of the other factors: a row l of L = mean of the grid's rows of
X, estimate lᵀβ̂, standard error √(lᵀVl).  Degrees of freedom are Satterthwaite's
or Kenward–Roger's for the row (and then KR's adjusted V), or infinite (z) for
GLMMs, as emmeans' ``lmer.df`` options.  Contrasts are combinations of rows of L.
A marginal slope (emtrends) is the same average of the grid's forward differences
(X(x + h) − X(x))/h, h a thousandth of x's range in the data, as emmeans takes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..design.build import factor_codes
from ..errors import DataError
from ..report.rformat import format_vector, render_table
from .fixed_tests import fixed_terms_of, term_label
from .kenward_roger import check_applicable, kenward_roger, kr_test, row_basis
from .prediction import fixed_effects_rows
from .satterthwaite import satterthwaite

ADJUSTMENTS = ("tukey", "dunnettx", "sidak", "holm", "bonferroni", "fdr", "none")
#: emmeans' contrast methods and the adjustment each uses by default
CONTRAST_METHODS = {"pairwise": "tukey", "revpairwise": "tukey", "trt.vs.ctrl": "dunnettx", "eff": "fdr"}
_RESPONSE_NAMES = {"binomial": "prob", "poisson": "rate"}


@dataclass(frozen=True)
class EmmGrid:
    """Marginal means: ``table`` (one row per level, the factor columns then estimate, SE, df
    and confidence limits), with the rows L over the coefficients that give them."""

    fit: Any = field(repr=False)
    specs: tuple[str, ...]
    by: tuple[str, ...]
    labels: pd.DataFrame  # the levels of specs and by, one row per mean
    L: np.ndarray
    ddf: str
    level: float
    type: str
    averaged: tuple[str, ...]
    table: pd.DataFrame = field(repr=False)

    def pairs(self, adjust: str = "tukey", type: str | None = None) -> EmmContrasts:
        """All pairwise differences within each ``by`` group (emmeans' ``pairs``), p-values adjusted
        for the family of the group's comparisons: 'tukey' (default) or another of ``ADJUSTMENTS``.
        For GLMMs the differences are on the link scale (log odds ratios for logit), or ratios
        with ``type="response"`` (the grid's type by default), as ``contrast``."""
        return self.contrast("pairwise", adjust, type)

    def contrast(self, method: str | dict[str, Sequence[float]] = "eff", adjust: str | None = None,
                 type: str | None = None) -> EmmContrasts:
        """emmeans' ``contrast(emm, method)`` within each ``by`` group: 'pairwise', 'revpairwise'
        (later minus earlier), 'trt.vs.ctrl' (each level minus the first), 'eff' (each level minus
        the mean of all; emmeans' default) or a dict of named coefficient vectors over the levels.
        ``adjust`` defaults as emmeans: tukey for pairwise, dunnettx for trt.vs.ctrl, fdr for eff,
        none for a dict; also 'sidak', 'holm', 'bonferroni', 'none'.  ``type="response"`` (the
        grid's type by default) gives GLMM contrasts of a log or logit link as ratios (column
        ``ratio`` or ``odds.ratio``, 'a / b', SE by the delta method, tests on the log scale)."""
        grid = self if type is None else replace(self, type=_check_type(type))
        if isinstance(method, dict):
            default = "none"
        elif method in CONTRAST_METHODS:
            default = CONTRAST_METHODS[method]
        else:
            raise ValueError(f"method must be one of {', '.join(map(repr, CONTRAST_METHODS))} or a dict of "
                             f"named coefficient vectors, not {method!r}")
        adjust = default if adjust is None else adjust
        if adjust not in ADJUSTMENTS:
            raise ValueError(f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, not {adjust!r}")
        rows, names, groups, family_sizes = [], [], [], []
        keys = _group_keys(self.labels, self.by)
        for key in dict.fromkeys(keys):
            members = np.array([i for i, k in enumerate(keys) if k == key])
            levels = [" ".join(_level_label(f, v, self.labels[f]) for f, v in zip(self.specs, self.labels.iloc[i][
                list(self.specs)])) for i in members]
            for name, coefficients in contrast_coefficients(method, levels):
                rows.append(coefficients @ self.L[members])
                names.append(name)
                groups.append(key)
                family_sizes.append(len(members))
        L = np.array(rows).reshape(-1, self.L.shape[1])
        estimate, se, df = row_inference(self.fit, L, self.ddf)
        stat = estimate / se
        p = 2 * stats.t.sf(np.abs(stat), df)
        p = adjusted_p_values(p, np.abs(stat), df, groups, family_sizes, adjust)
        ratio = _ratio_scale(grid)
        if ratio:  # emmeans writes a ratio of the levels for a difference of their logs
            names = [n.replace(" - ", " / ") for n in names]
        out = pd.DataFrame({"contrast": names})
        for j, name in enumerate(self.by):
            out[name] = [g[j] for g in groups]
        if ratio:
            out["odds.ratio" if ratio == "log odds ratio" else "ratio"] = np.exp(estimate)
            out["SE"], out["df"], out["null"] = np.exp(estimate) * se, df, 1.0
        else:
            out["estimate"], out["SE"], out["df"] = estimate, se, df
        out["z.ratio" if np.all(np.isinf(df)) else "t.ratio"] = stat
        out["p.value"] = p
        notes = _notes(grid, contrasts=True)
        tests = max((groups.count(g) for g in set(groups)), default=0)
        if adjust != "none" and tests > 1:  # emmeans notes no adjustment of a single test
            sizes = sorted(set(family_sizes))
            notes.append(f"P value adjustment: tukey method for comparing a family of "
                         f"{' or '.join(map(str, sizes))} estimates" if adjust == "tukey" else
                         f"P value adjustment: {adjust} method for {tests} tests")
        if ratio:
            notes.append(f"Tests are performed on the {ratio} scale")
        return EmmContrasts(out, tuple(self.by), notes)

    def __str__(self) -> str:
        return _render(self.table, self.by, _notes(self))

    __repr__ = __str__


@dataclass(frozen=True)
class EmmContrasts:
    """Contrasts of marginal means: ``table`` with contrast, estimate, SE, df, t (or z) ratio, p-value."""

    table: pd.DataFrame
    by: tuple[str, ...]
    notes: list[str]

    def __str__(self) -> str:
        return _render(self.table, self.by, self.notes)

    __repr__ = __str__


def emmeans(fit: Any, specs: str | Sequence[str], by: str | Sequence[str] | None = None,
            at: dict[str, Any] | None = None, ddf: str | None = None, type: str = "link",
            level: float = 0.95) -> EmmGrid:
    """Estimated marginal means of the levels of ``specs`` (within each level of ``by``), as
    emmeans' ``emmeans(m, ~ specs | by)``; ``.pairs()`` and ``.contrast()`` compare them.

    ``ddf`` is "Kenward-Roger" (the default for REML lmer fits, as emmeans' ``lmer.df``;
    Satterthwaite for ML fits), "Satterthwaite" or "asymptotic" (z; the only one for glmer
    fits).  ``type="response"`` back-transforms GLMM means (SE by the delta method, limits
    through the inverse link).  ``at`` fixes covariates
    (``{"x": 2.0}``) or restricts factor levels (``{"f": ["a", "b"]}``).
    """
    ddf = _check_ddf(fit, ddf)
    type = _check_type(type)
    grid, factors = reference_grid(fit, at)
    X = fixed_effects_rows(fit, grid)
    return _marginal(fit, grid, factors, X, _names(specs), _names(by), ddf, level, type, "emmean")


def emtrends(fit: Any, specs: str | Sequence[str], var: str, by: str | Sequence[str] | None = None,
             at: dict[str, Any] | None = None, ddf: str | None = None, level: float = 0.95) -> EmmGrid:
    """Marginal slopes of the numeric predictor ``var`` for the levels of ``specs`` (within ``by``),
    as emmeans' ``emtrends(m, ~ specs | by, var = "x")``: the grid's forward differences over a
    thousandth of x's range, averaged as the means are; on the link scale for GLMMs.  The table's
    estimate column is ``"x.trend"``; ``.pairs()`` and ``.contrast()`` compare the slopes."""
    ddf = _check_ddf(fit, ddf)
    grid, factors = reference_grid(fit, at)
    frame = fit.design.frame
    if var not in frame.columns or var in factors or not pd.api.types.is_numeric_dtype(frame[var]):
        raise DataError(f"var={var!r} is not a numeric predictor of the fixed effects; numeric columns: "
                        + ", ".join(repr(c) for c in frame.columns if c not in factors
                                    and pd.api.types.is_numeric_dtype(frame[c])))
    h = float(np.ptp(frame[var].to_numpy(dtype=float))) / 1000
    if h == 0:
        raise DataError(f"{var!r} takes a single value in the data: it has no slope to estimate")
    shifted = grid.assign(**{var: grid[var] + h})
    X = (fixed_effects_rows(fit, shifted) - fixed_effects_rows(fit, grid)) / h
    return _marginal(fit, grid, factors, X, _names(specs), _names(by), ddf, level, "link", f"{var}.trend")


def _check_type(type: str) -> str:
    if type not in ("link", "response"):
        raise ValueError(f"type must be 'link' or 'response', not {type!r}")
    return type


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


def _marginal(fit: Any, grid: pd.DataFrame, factors: list[str], X: np.ndarray, specs: tuple[str, ...],
              by: tuple[str, ...], ddf: str, level: float, type: str, estimate_name: str) -> EmmGrid:
    """The equally weighted averages of X's rows for each combination of specs and by, with their
    estimates, standard errors, df and confidence limits."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}")
    wanted = specs + by
    unknown = [f for f in wanted if f not in factors]
    if unknown:
        raise DataError(f"{', '.join(map(repr, unknown))} is not a factor of the fixed effects; factors: "
                        + (", ".join(map(repr, factors)) or "none"))
    levels = [list(dict.fromkeys(grid[f])) for f in wanted]
    combos = [tuple(reversed(c)) for c in itertools.product(*reversed(levels))]  # first factor fastest
    key = grid[list(wanted)].apply(tuple, axis=1).to_numpy()
    L = np.array([X[np.array([k == c for k in key])].mean(axis=0) for c in combos])
    labels = pd.DataFrame(combos, columns=list(wanted))
    estimate, se, df = row_inference(fit, L, ddf)
    table = labels.copy()
    q = stats.t.ppf((1 + level) / 2, df)
    lower, upper = estimate - q * se, estimate + q * se
    if type == "response" and hasattr(fit, "family"):
        name = _RESPONSE_NAMES.get(fit.family.name, "response")
        table[name] = fit.inverse_link(estimate)
        table["SE"] = se * np.abs(fit.link_derivative(estimate))
        lower, upper = fit.inverse_link(lower), fit.inverse_link(upper)
        lower, upper = np.minimum(lower, upper), np.maximum(lower, upper)
    else:
        table[estimate_name], table["SE"] = estimate, se
    table["df"] = df
    asymptotic = np.all(np.isinf(df))
    table["asymp.LCL" if asymptotic else "lower.CL"] = lower
    table["asymp.UCL" if asymptotic else "upper.CL"] = upper
    averaged = tuple(f for f in factors if f not in wanted)
    return EmmGrid(fit, specs, by, labels, L, ddf, level, type, averaged, table)


def joint_tests(fit: Any, ddf: str | None = None) -> pd.DataFrame:
    """emmeans' ``joint_tests(m)``: for each fixed term, the F test that the interaction contrasts of
    the marginal means over its variables are all zero, on the reference grid with each covariate
    at its minimum and maximum (emmeans' ``cov.reduce = range``), other variables averaged with
    equal weights.  Columns: model term, df1, df2, F.ratio (to 3 decimals, as emmeans), p.value.

    lmer fits use Kenward–Roger's adjusted covariance and df (the F itself not rescaled, as emmeans
    does with pbkrtest's Lb_ddf); glmer fits are asymptotic (df2 = Inf).  Terms must be made of
    data columns (not ``poly(x, 2)`` or ``I(x^2)``)."""
    ddf = _check_ddf(fit, ddf)
    if ddf == "Satterthwaite":
        raise ValueError("joint_tests uses Kenward-Roger's df for lmer fits (REML) or ddf='asymptotic'; "
                         "Satterthwaite's joint df are not available here (see m.anova())")
    frame = fit.design.frame
    terms = fixed_terms_of(fit)
    variables = {t.name: [term_label(v) for v in t.variables] for t in terms}
    odd = [v for vs in variables.values() for v in vs if v not in frame.columns]
    if odd:
        raise DataError(f"joint_tests needs terms made of data columns; {', '.join(map(repr, dict.fromkeys(odd)))} "
                        "is not one (emmeans groups such terms by their predictors)")
    numerics = {term_label(v) for t in terms for v in t.numerics}
    grid, _ = reference_grid(fit, {c: [float(frame[c].min()), float(frame[c].max())] for c in numerics})
    X = fixed_effects_rows(fit, grid)
    rows = []
    for t in terms:
        names = variables[t.name]
        levels = [list(dict.fromkeys(grid[v])) for v in names]
        combos = [tuple(reversed(c)) for c in itertools.product(*reversed(levels))]  # first variable fastest
        key = grid[names].apply(tuple, axis=1).to_numpy()
        means = np.array([X[np.array([k == c for k in key])].mean(axis=0) for c in combos])
        differences: np.ndarray = np.ones((1, 1))  # consecutive differences over each variable, the first fastest
        for lv in levels:
            differences = np.kron(np.diff(np.eye(len(lv)), axis=0), differences)
        F, df1, df2 = _joint_f(fit, differences @ means, ddf)
        if df1 > 0:
            p = stats.chi2.sf(F * df1, df1) if np.isinf(df2) else stats.f.sf(F, df1, df2)
            rows.append({"model term": t.name, "df1": df1, "df2": df2, "F.ratio": round(F, 3), "p.value": p})
    return pd.DataFrame(rows, columns=["model term", "df1", "df2", "F.ratio", "p.value"])


def _joint_f(fit: Any, L: np.ndarray, ddf: str) -> tuple[float, int, float]:
    """F = (Lβ̂)ᵀ(L V Lᵀ)⁻¹(Lβ̂)/r over a basis of L's rows, its r and denominator df: V adjusted and
    df from Kenward–Roger, or V = vcov and df = ∞."""
    if ddf == "Kenward-Roger":
        r = kr_test(fit, L)
        return float(r.F_unscaled), int(r.NumDF), float(r.DenDF)
    B = row_basis(L)
    rank = len(B)
    if rank == 0:
        return np.nan, 0, np.inf
    Lb = B @ fit.fixef.to_numpy()
    return float(Lb @ np.linalg.solve(B @ fit.vcov.to_numpy() @ B.T, Lb)) / rank, rank, np.inf


def ls_means(fit: Any, which: str, ddf: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """lmerTest's ``ls_means(m, which = "f")``: rows 'fa', 'fb', ... with Estimate, Std. Error, df,
    t value, lower, upper, Pr(>|t|) (the same means as emmeans)."""
    grid = emmeans(fit, which, ddf=ddf or "Satterthwaite", level=level)
    t = grid.table
    value = t["emmean"].to_numpy() / t["SE"].to_numpy()
    return pd.DataFrame({
        "Estimate": t["emmean"].to_numpy(), "Std. Error": t["SE"].to_numpy(), "df": t["df"].to_numpy(),
        "t value": value, "lower": t.iloc[:, -2].to_numpy(), "upper": t.iloc[:, -1].to_numpy(),
        "Pr(>|t|)": 2 * stats.t.sf(np.abs(value), t["df"].to_numpy()),
    }, index=[f"{which}{v}" for v in t[which]])


def difflsmeans(fit: Any, which: str, ddf: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """lmerTest's ``difflsmeans(m, which = "f")``: every pairwise difference 'fa - fb', without
    multiplicity adjustment, with Estimate, Std. Error, df, t value, lower, upper, Pr(>|t|)."""
    grid = emmeans(fit, which, ddf=ddf or "Satterthwaite", level=level)
    t = grid.pairs(adjust="none").table
    est, se, df = t["estimate"].to_numpy(), t["SE"].to_numpy(), t["df"].to_numpy()
    q = stats.t.ppf((1 + level) / 2, df)
    names = [" - ".join(f"{which}{side}" for side in c.split(" - ")) for c in t["contrast"]]
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "df": df, "t value": est / se,
                         "lower": est - q * se, "upper": est + q * se, "Pr(>|t|)": t["p.value"].to_numpy()},
                        index=names)


def reference_grid(fit: Any, at: dict[str, Any] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Every combination of the fixed-effect factors' levels, numeric columns at their means
    (or at ``at``'s values), other columns at their first value; and the factor names."""
    frame = fit.design.frame
    at = dict(at or {})
    factors = list(dict.fromkeys(
        term_label(v) for t in fixed_terms_of(fit) for v in t.variables if v not in t.numerics))
    unknown = [k for k in at if k not in frame.columns]
    if unknown:
        raise DataError(f"at= names {', '.join(map(repr, unknown))}, not columns the model uses")
    axes: dict[str, list[Any]] = {}
    for c in frame.columns:
        if c in factors:
            levels = list(factor_codes(frame[c])[1])
            chosen = at.get(c, levels)
            chosen = [chosen] if isinstance(chosen, (str, int, float)) else list(chosen)
            bad = [v for v in chosen if v not in levels]
            if bad:
                raise DataError(f"at[{c!r}] has level(s) {bad} that {c!r} does not have; levels: {levels}")
            axes[c] = chosen
        elif c in at:
            axes[c] = list(np.atleast_1d(at[c]))
        elif pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            axes[c] = [float(frame[c].mean())]
        else:
            axes[c] = [frame[c].iloc[0]]
    grid = pd.DataFrame(list(itertools.product(*axes.values())), columns=list(axes))
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            grid[c] = pd.Categorical(grid[c], categories=frame[c].cat.categories, ordered=frame[c].cat.ordered)
    return grid, factors


def row_inference(fit: Any, L: np.ndarray, ddf: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, standard error and df of each row of L by the ``ddf`` method."""
    if len(L) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    if ddf == "Satterthwaite":
        t = satterthwaite(fit, L)
    elif ddf == "Kenward-Roger":
        t = kenward_roger(fit, L)
    else:
        beta = fit.fixef.to_numpy()
        V = fit.vcov.to_numpy()
        return L @ beta, np.sqrt(np.einsum("ip,pq,iq->i", L, V, L)), np.full(len(L), np.inf)
    return t["Estimate"].to_numpy(), t["Std. Error"].to_numpy(), t["df"].to_numpy()


def _check_ddf(fit: Any, ddf: str | None) -> str:
    """The df method asked, or emmeans' default: Kenward–Roger for lmer fits (Satterthwaite where
    KR does not apply here: ML fits, structured terms, beyond its memory budget), asymptotic for GLMMs."""
    linear = getattr(fit, "kind", "") == "lmer"
    if ddf is None:
        ddf = ("Kenward-Roger" if _kenward_roger_applies(fit) else "Satterthwaite") if linear else "asymptotic"
    if ddf not in ("Satterthwaite", "Kenward-Roger", "asymptotic"):
        raise ValueError(f"ddf must be 'Satterthwaite', 'Kenward-Roger' or 'asymptotic', not {ddf!r}")
    if not linear and ddf != "asymptotic":
        raise ValueError(f"ddf={ddf!r} needs an lmer fit; GLMM means use ddf='asymptotic' (z)")
    if ddf == "Kenward-Roger":
        check_applicable(fit)
    return ddf


def _kenward_roger_applies(fit: Any) -> bool:
    try:
        check_applicable(fit)
    except ValueError:
        return False
    return True


def contrast_coefficients(method: str | dict[str, Sequence[float]], levels: list[str]) -> list[tuple[str, np.ndarray]]:
    """emmeans' contrast names and coefficient vectors over k means labelled ``levels``."""
    k = len(levels)
    unit = np.eye(k)
    if isinstance(method, dict):
        bad = {name: len(c) for name, c in method.items() if len(c) != k}
        if bad:
            raise ValueError(f"each contrast needs {k} coefficients, one per mean ({', '.join(levels)}); "
                             f"{', '.join(f'{n!r} has {m}' for n, m in bad.items())}")
        return [(name, np.asarray(c, dtype=float)) for name, c in method.items()]
    if method == "pairwise":
        return [(f"{levels[a]} - {levels[b]}", unit[a] - unit[b]) for a, b in itertools.combinations(range(k), 2)]
    if method == "revpairwise":
        return [(f"{levels[b]} - {levels[a]}", unit[b] - unit[a]) for b in range(1, k) for a in range(b)]
    if method == "trt.vs.ctrl":
        return [(f"{levels[j]} - {levels[0]}", unit[j] - unit[0]) for j in range(1, k)]
    return [(f"{levels[j]} effect", unit[j] - 1 / k) for j in range(k)]  # eff


def adjusted_p_values(p: np.ndarray, t: np.ndarray, df: np.ndarray, groups: list, sizes: list[int], adjust: str) -> np.ndarray:
    """p-values adjusted within each family (the contrasts of one by-group), as emmeans: Tukey's
    studentized range over the family's means, emmeans' dunnettx approximation to Dunnett's
    (a mix of the Tukey and Šidák distributions), Šidák, Holm, Bonferroni, or Benjamini–Hochberg (fdr)."""
    out = p.copy()
    if adjust == "tukey":
        return stats.studentized_range.sf(np.sqrt(2) * t, np.array(sizes), df)
    for key in dict.fromkeys(groups):
        idx = np.array([i for i, g in enumerate(groups) if g == key])
        m = len(idx)
        order = np.argsort(p[idx])
        if adjust == "bonferroni":
            out[idx] = np.minimum(1.0, m * p[idx])
        elif adjust == "sidak":
            out[idx] = 1 - (1 - p[idx]) ** m
        elif adjust == "holm":
            stepped = np.maximum.accumulate((m - np.arange(m)) * p[idx][order])
            out[idx[order]] = np.minimum(1.0, stepped)
        elif adjust == "fdr":
            stepped = np.minimum.accumulate((m / np.arange(m, 0, -1)) * p[idx][order][::-1])[::-1]
            out[idx[order]] = np.minimum(1.0, stepped)
        elif adjust == "dunnettx" and m > 1:
            weight = (m - 1) / m
            tukey = stats.studentized_range.cdf(np.sqrt(2) * t[idx], (1 + np.sqrt(1 + 8 * m)) / 2, df[idx])
            sidak = (1 - 2 * stats.t.sf(t[idx], df[idx])) ** m
            out[idx] = 1 - (weight * tukey + (1 - weight) * sidak)
    return out


def _level_label(factor: str, value: object, levels: pd.Series) -> str:
    """A level as emmeans names it in contrasts: prefixed by the factor when levels look like numbers."""
    numeric = pd.to_numeric(levels.astype(str), errors="coerce").notna().all()
    return f"{factor}{value}" if numeric else str(value)


def _group_keys(table: pd.DataFrame, by: tuple[str, ...]) -> list[tuple]:
    """The by-group of each row, as a tuple of its levels (() without by)."""
    return [tuple(row) for row in table[list(by)].itertuples(index=False)] if by else [()] * len(table)


def _notes(grid: EmmGrid, contrasts: bool = False) -> list[str]:
    """emmeans' lines below a table: no df method for z tests, differences of logits named log odds
    ratios, ratios (contrasts back-transformed from a log or logit link) without a scale line."""
    notes = []
    if grid.averaged:
        notes.append(f"Results are averaged over the levels of: {', '.join(grid.averaged)}")
    method = {"Satterthwaite": "satterthwaite", "Kenward-Roger": "kenward-roger"}
    if grid.ddf in method:
        notes.append(f"Degrees-of-freedom method: {method[grid.ddf]}")
    link = grid.fit.family.link.name if hasattr(grid.fit, "family") else ""
    back_transformed = bool(link) and grid.type == "response" and not contrasts
    if link and not back_transformed and not (contrasts and _ratio_scale(grid)):
        scale = "log odds ratio" if contrasts and link == "logit" else link
        notes.append(f"Results are given on the {scale} (not the response) scale.")
    if not contrasts:
        notes.append(f"Confidence level used: {grid.level:g}")
    if back_transformed:
        notes.append(f"Intervals are back-transformed from the {link} scale")
    return notes


def _ratio_scale(grid: EmmGrid) -> str:
    """For response-scale contrasts of a log or logit link, the scale of the tests ('log', 'log odds
    ratio'): the contrasts are then ratios (odds ratios); '' otherwise."""
    if grid.type != "response" or not hasattr(grid.fit, "family"):
        return ""
    return {"logit": "log odds ratio", "log": "log"}.get(grid.fit.family.link.name, "")


def _render(table: pd.DataFrame, by: tuple[str, ...], notes: list[str]) -> str:
    """As emmeans prints a summary: factor columns left-aligned, numbers to 3 significant digits,
    t ratios to 3 decimals, p-values to 4; one block per by-group; the notes below."""
    blocks = []
    keys = _group_keys(table, by)
    for key in dict.fromkeys(keys):
        part = table[[k == key for k in keys]]
        columns = [c for c in part.columns if c not in by]
        header, cells, align = [], [], []
        for c in columns:
            x = part[c]
            if not pd.api.types.is_numeric_dtype(x):
                cells.append([str(v) for v in x])
                align.append("l")
            elif c.endswith(".ratio"):
                cells.append([f"{v:.3f}" for v in x])
                align.append("r")
            elif c == "p.value":
                cells.append(["<.0001" if v < 1e-4 else f"{v:.4f}" for v in x])
                align.append("r")
            elif c == "df":
                cells.append(["Inf" if np.isinf(v) else s for v, s in zip(x, format_vector(x.to_numpy(), 3))])
                align.append("r")
            else:
                cells.append(format_vector(x.to_numpy(), 3))
                align.append("r")
            header.append(c)
        rows = [[col[i] for col in cells] for i in range(len(part))]
        title = ", ".join(f"{name} = {value}" for name, value in zip(by, key))
        blocks.append((f"{title}:\n" if title else "") + render_table(header, rows, align, indent=" "))
    return "\n\n".join(blocks) + "\n\n" + "\n".join(notes) + "\n"
