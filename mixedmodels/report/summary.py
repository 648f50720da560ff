"""The printed summary of a fitted linear mixed model, section by section as lme4's."""

from __future__ import annotations

from typing import TYPE_CHECKING
import textwrap

import numpy as np
import pandas as pd

from ..linalg.covariance import sd_and_correlation
from . import display
from .rformat import (SIGNIF_LEGEND, column_decimals, format_column, format_pval_vector, format_vector, render_table,
                      signif_stars, zapsmall)
from .tables import format_varcorr

if TYPE_CHECKING:
    from ..results.lmer import MixedModelResult

SUMMARY_DIGITS = 4  # print.summary.merMod and print.merMod: max(3, getOption("digits") - 3)
PVALUE_DIGITS = 3  # printCoefmat's dig.tst for digits = 4
R_WIDTH = 80  # getOption("width")


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
            scaled_residuals_block(self.fit.scaled_residuals("pearson").loc[self.fit.rows_used].to_numpy()),
            random_effects_block(self.fit) + "\n" + observations_line(self.fit),
            residual_structure_block(self.fit),
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
        if getattr(f, "family", None) is None and self.ddf in ("Satterthwaite", "Kenward-Roger"):
            kind = "REML" if f.REML else "maximum likelihood "
            method = "Satterthwaite's" if self.ddf == "Satterthwaite" else "Kenward-Roger's"
            return heading(f, f"Linear mixed model fit by {kind}. t-tests use {method} method", "lmerModLmerTest",
                           long=True)
        return heading(f, *method_title(f, getattr(f, "r_class", "lmerMod")), long=True)

    def _fit_criterion(self) -> str:
        return fit_criterion(self.fit, 1)


def method_title(fit: MixedModelResult, lmm_class: str) -> tuple[str, str]:
    """lme4's methTitle and the class R names: REML or ML for LMMs, the approximation for GLMMs."""
    if getattr(fit, "family", None) is not None:
        return f"Generalized linear mixed model fit by {fit.method}", "glmerMod"
    return f"Linear mixed model fit by {fit.method}{'' if fit.method == 'REML' else ' '}", lmm_class  # R's ML space


def heading(fit: MixedModelResult, title: str, cls: str, long: bool) -> str:
    """lme4's .prt.methTit (wrapped at width 80 as R wraps it), .prt.family and .prt.call
    (``long``: with the Control line, as summaries show it)."""
    if len(title) + 5 + len(cls) > R_WIDTH:  # strwrap, then cat(..., " [", cls, "]", sep = "", fill = TRUE)
        lines = [""]
        for item in [*textwrap.wrap(title, width=R_WIDTH - 3, subsequent_indent="  "), " [", cls, "]"]:
            if lines[-1] and len(lines[-1]) + len(item) > R_WIDTH:
                lines.append("")
            lines[-1] += item
    else:
        lines = [f"{title} ['{cls}']"]
    family = getattr(fit, "family", None)
    if family is not None:
        lines.append(f" Family: {family.label}  ( {family.link.name} )")
    lines.append(f"Formula: {fit.formula}")
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    if fit.design.weights is not None and family is None:
        lines.append("Weights: (prior weights given)")
    if fit.design.offset is not None and not fit.parsed.offsets:  # R names only an offset= argument
        lines.append(" Offset: (offset given)")
    if long and fit.control.changes():  # as lme4, only settings other than the defaults are shown
        lines.append(f"Control: {fit.control!r}")
    return "\n".join(lines)


def fit_criterion(fit: MixedModelResult, digits: int) -> str:
    """lme4's .prt.aictab: the REML criterion, or AIC, BIC, logLik, deviance, df.resid, rounded to
    ``digits`` decimals and formatted together (summary: 1, print: 4)."""
    if getattr(fit, "REML", False):
        return f"REML criterion at convergence: {format_vector([round(fit.objective, digits)], 7)[0]}"
    header = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    values = format_vector(np.round([fit.aic, fit.bic, fit.loglik, fit.deviance, fit.df_resid], digits), 7)
    values[-1] = f"{fit.df_resid:d}"
    w = max(len(c) for c in header + values)  # R prints a named vector in one common width
    return " ".join(h.rjust(w) for h in header) + " \n" + " ".join(v.rjust(w) for v in values) + " "


def print_form(fit: MixedModelResult) -> str:
    """lme4's print.merMod (print(m)): heading, criterion, SDs and correlations, the numbers of
    observations and groups, and the fixed effects as a named vector (digits 4)."""
    lines = [heading(fit, *method_title(fit, "lmerModLmerTest"), long=False), fit_criterion(fit, 4),
             random_effects_block_sd(fit), observations_line(fit).split("\n")[0]]
    structure = residual_structure_block(fit)
    if structure:
        lines.append(structure)
    if len(fit.fixef):
        lines += ["Fixed Effects:", named_vector(list(fit.fixef.index), format_vector(fit.fixef.to_numpy(), SUMMARY_DIGITS))]
    else:
        lines.append("No fixed effect coefficients")
    notes = notes_block(fit)
    if notes:
        lines += ["fit warnings:", notes]
    return "\n".join(lines) + "\n"


def random_effects_block_sd(fit: MixedModelResult) -> str:
    """The random effects as print.merMod shows them: standard deviations and correlations."""
    return "Random effects:\n" + format_varcorr(fit.varcorr, ("Std.Dev.",), SUMMARY_DIGITS, fit.varcorr.structures)


def named_vector(names: list[str], values: list[str], gap: int = 2) -> str:
    """R's print of a named character vector (print.gap 2): one common width, right-justified,
    as many entries per line as fit in 80 characters."""
    w = max(len(c) for c in names + values)
    per_line = max(1, R_WIDTH // (w + gap))
    out = []
    for start in range(0, len(names), per_line):
        for row in (names, values):
            out.append((" " * gap).join(c.rjust(w) for c in row[start:start + per_line]) + " " * gap)
    return "\n".join(out)


def scaled_residuals_block(r: np.ndarray) -> str:
    q = zapsmall(np.quantile(r, [0, 0.25, 0.5, 0.75, 1]), 5)
    cells = format_column(q, 4)
    header = ["Min", "1Q", "Median", "3Q", "Max"]
    w = max(max(len(c) for c in cells), 6)
    return "Scaled residuals: \n" + " ".join(h.rjust(w) for h in header) + " \n" + " ".join(c.rjust(w) for c in cells) + " "


def random_effects_block(fit: MixedModelResult) -> str:
    """Groups, Name, Variance, Std.Dev. and the correlations of each term (summary's digits 4)."""
    return "Random effects:\n" + format_varcorr(fit.varcorr, ("Variance", "Std.Dev."), SUMMARY_DIGITS, fit.varcorr.structures)


def residual_structure_block(fit) -> str:
    """nlme's "Correlation Structure:" and "Variance function:" sections of a fit with a residual
    structure (``fit.residual_structure``), else ''."""
    structure = getattr(fit, "residual_structure", None)
    if structure is None:
        return ""
    correlation, variance = fit.correlation_parameters, fit.variance_parameters
    parts = []
    if structure.correlation is not None:
        spec = structure.correlation.spec
        parts.append(f"Correlation Structure: {spec.title}\n Formula: {spec.formula()} \n Parameter estimate(s):\n"
                     + named_numbers(correlation))
    if structure.variance is not None:
        spec = structure.variance.spec
        parts.append(f"Variance function:\n Structure: {spec.title}\n Formula: {spec.formula()} \n"
                     " Parameter estimates:\n" + named_numbers(variance))
    return "\n".join(parts)


def named_numbers(values: pd.Series) -> str:
    """R's print of a named numeric vector (7 significant digits, print.gap 1)."""
    cells = format_vector(values.to_numpy(dtype=float), 7)
    return named_vector([str(k) for k in values.index], cells, gap=1)


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
