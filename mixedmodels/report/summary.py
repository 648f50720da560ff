"""The printed summary of a fitted linear mixed model, section by section as lme4's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..linalg.covariance import sd_and_correlation
from . import display
from .rformat import SIGNIF_LEGEND, column_decimals, format_column, zapsmall, format_pval_vector, render_table, signif_stars

PVALUE_DIGITS = 3  # printCoefmat's dig.tst for summary's digits = 4


class Summary:
    """``print(m.summary())`` gives lme4's ``summary(lmer)`` / ``summary(glmer)`` layout."""

    def __init__(self, fit, ddf: str | None = None):
        self.fit = fit
        self.ddf = ddf  # "Satterthwaite" or "lme4" for LMMs; None for GLMMs

    @property
    def coefficients(self) -> pd.DataFrame:
        """The fixed-effects table with lme4's / lmerTest's column names."""
        if self.ddf == "Satterthwaite":
            return self.fit.satterthwaite()
        if self.ddf == "Kenward-Roger":
            return self.fit.kenward_roger()
        return self.fit.coefficients()

    def __str__(self) -> str:
        sections = [
            self._title(),
            self._fit_criterion(),
            scaled_residuals_block(self.fit.scaled_residuals("pearson").to_numpy()),
            random_effects_block(self.fit) + "\n" + observations_line(self.fit),
            fixed_effects_block(self.coefficients),
            fixed_correlation_block(self.fit.vcov),
        ]
        notes = notes_block(self.fit)
        if notes:
            sections.append(notes)
        return "\n\n".join(s for s in sections if s) + "\n"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """Jupyter shows the same text, monospaced by an inline style (no notebook CSS needed)."""
        return display.pre(str(self))

    def _title(self) -> str:
        f = self.fit
        family = getattr(f, "family", None)
        if family is None and self.ddf in ("Satterthwaite", "Kenward-Roger"):
            kind = "REML" if f.REML else "maximum likelihood "
            method = "Satterthwaite's" if self.ddf == "Satterthwaite" else "Kenward-Roger's"
            lines = [f"Linear mixed model fit by {kind}. t-tests use {method} method ['lmerModLmerTest']"]
        elif family is None:
            kind = "REML" if f.REML else "maximum likelihood "
            lines = [f"Linear mixed model fit by {kind} ['lmerMod']"]
        else:
            lines = [f"Generalized linear mixed model fit by {f.method} ['glmerMod']",
                     f" Family: {family.label}  ( {family.link.name} )"]
        lines.append(f"Formula: {f.formula}")
        if f.data_name:
            lines.append(f"   Data: {f.data_name}")
        if f.design.weights is not None and family is None:
            lines.append("Weights: (prior weights given)")
        if f.design.offset is not None and not f.parsed.offsets:  # R names only an offset= argument
            lines.append(" Offset: (offset given)")
        if f.control.changes():  # as lme4, only settings other than the defaults are shown
            lines.append(f"Control: {f.control!r}")
        return "\n".join(lines)

    def _fit_criterion(self) -> str:
        f = self.fit
        if getattr(f, "REML", False):
            return f"REML criterion at convergence: {f.objective:.1f}"
        return information_criteria_block(f.aic, f.bic, f.loglik, f.deviance, f.df_resid)


def information_criteria_block(aic: float, bic: float, loglik: float, deviance: float, df_resid: int) -> str:
    """The AIC/BIC/logLik/deviance/df.resid line of ML fits."""
    header = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    values = [f"{aic:.1f}", f"{bic:.1f}", f"{loglik:.1f}", f"{deviance:.1f}", f"{df_resid:d}"]
    w = max(len(c) for c in header + values)  # R prints a named vector in one common width
    return " ".join(h.rjust(w) for h in header) + " \n" + " ".join(v.rjust(w) for v in values) + " "


def scaled_residuals_block(r: np.ndarray) -> str:
    q = zapsmall(np.quantile(r, [0, 0.25, 0.5, 0.75, 1]), 5)
    cells = format_column(q, 4)
    header = ["Min", "1Q", "Median", "3Q", "Max"]
    w = max(max(len(c) for c in cells), 6)
    return "Scaled residuals: \n" + " ".join(h.rjust(w) for h in header) + " \n" + " ".join(c.rjust(w) for c in cells) + " "


def random_effects_block(fit) -> str:
    """Groups, Name, Variance, Std.Dev. and the correlations of each term."""
    vc = fit.varcorr
    var_rows = vc[vc["var2"].isna()]
    variances = _right_justified(format_column(var_rows["vcov"].tolist(), 4))
    sds = _right_justified(format_column(var_rows["sdcor"].tolist(), 4))
    rows: list[list[str]] = []
    k = 0
    max_p = max((t.p for t in fit.reterms), default=1)
    for t, group, S in zip(fit.reterms, fit.term_groups, fit.covariances):
        R = sd_and_correlation(S)[1]
        for a, name in enumerate(t.columns):
            corr = ["NaN" if np.isnan(R[a, b]) else f"{R[a, b]:.2f}" for b in range(a)]
            rows.append([group if a == 0 else "", name, variances[k], sds[k]] + corr + [""] * (max_p - 1 - len(corr)))
            k += 1
    if fit.has_residual_row:
        rows.append(["Residual", "", variances[k], sds[k]] + [""] * (max_p - 1))
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (max_p - 2) if max_p > 1 else [])
    align = ["l"] * len(header)  # R prints this character table left-aligned
    return "Random effects:\n" + render_table(header, rows, align, indent=" ")


def _right_justified(cells: list[str]) -> list[str]:
    width = max(len(c) for c in cells)
    return [c.rjust(width) for c in cells]


def observations_line(fit) -> str:
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    line = f"Number of obs: {fit.nobs}, groups:  {groups}"
    if fit.n_dropped:
        line += f"\n({fit.n_dropped} observation{'s' if fit.n_dropped != 1 else ''} deleted due to missingness)"
    return line


def fixed_effects_block(table: pd.DataFrame) -> str:
    """Estimates and SEs share one format; statistics their own; p-values as R's format.pval."""
    est_se = format_column(table.iloc[:, :2].to_numpy().ravel().tolist(), 4)
    columns = [est_se[0::2], est_se[1::2]]
    decimals = column_decimals(table.iloc[:, :2].to_numpy().ravel().tolist(), 4)
    pcol = [c for c in table.columns if c.startswith("Pr(")]
    for c in table.columns[2:]:
        if c in pcol:
            columns.append(format_pval_vector(table[c].to_numpy(dtype=float), PVALUE_DIGITS))
        elif c == "df":  # lmerTest shows df with the estimates' decimals
            columns.append([f"{v:.{decimals}f}" for v in table[c]])
        else:
            columns.append(format_column(np.round(table[c], 3).tolist(), 4))  # printCoefmat: dig.tst
    header = [""] + list(table.columns)
    align = ["l"] + ["r"] * len(table.columns)
    if pcol:
        columns.append([signif_stars(p) for p in table[pcol[0]]])
        header.append("")
        align.append("l")
    rows = [[name] + [col[i] for col in columns] for i, name in enumerate(table.index)]
    block = "Fixed effects:\n" + render_table(header, rows, align)
    if pcol:
        block += "\n---\n" + SIGNIF_LEGEND
    return block


def fixed_correlation_block(vcov: pd.DataFrame) -> str:
    """Lower triangle of the correlation of β̂ with abbreviated names, as lme4."""
    p = len(vcov)
    if p < 2:
        return ""
    C = sd_and_correlation(vcov.to_numpy())[1]
    names = list(vcov.index)
    abbrev = [abbreviate(n) for n in names]
    rows = [[names[i]] + [f"{C[i, j]:.3f}" for j in range(i)] + [""] * (p - 1 - i) for i in range(1, p)]
    return "Correlation of Fixed Effects:\n" + render_table([""] + abbrev[:-1], rows, ["l"] + ["r"] * (p - 1))


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's abbreviate() for column labels: drop lower-case vowels from the end, then letters."""
    if len(name) <= minlength:
        return name
    chars = list(name)
    i = len(chars) - 1
    while len(chars) > minlength and i > 0:
        if chars[i] in "aeiou" and chars[i - 1] != " ":
            del chars[i]
        i -= 1
    i = len(chars) - 1
    while len(chars) > minlength and i > 0:
        if chars[i].islower():
            del chars[i]
        i -= 1
    return "".join(chars[:max(minlength, 0)]) if len(chars) > minlength else "".join(chars)


def notes_block(fit) -> str:
    notes = []
    if fit.is_singular():
        notes.append("boundary (singular) fit: see is_singular() and the guide on singular fits")
    if not fit.optimum.converged:
        notes.append(f"convergence: {fit.optimum.message}")
    if fit.design.dropped_columns:
        notes.append("fixed-effect model matrix is rank deficient so dropping "
                     f"{len(fit.design.dropped_columns)} column(s): " + ", ".join(fit.design.dropped_columns))
    return "\n".join(notes)
