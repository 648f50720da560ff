"""F tests of fixed-effect terms (lmerTest's ``anova(m, type = 1/2/3)``).

Each term is tested by a contrast matrix L over the fitted coefficients, built as
lmerTest 3.1-3 builds it from the fixed-effects design alone:

* type I (sequential): the term's rows of the upper triangular factor R of
  XᵀX = RᵀR, i.e. the term adjusted for the terms before it;
* type II: the same on X with its columns reordered as [other terms, the term,
  terms containing it], so the term is adjusted for everything except the terms
  that contain it; a term contained in no other term is tested marginally (its
  coefficients are zero);
* type III: lmerTest's construction from the cell-means coding of every term
  (``~ 0 + term``), each term made orthogonal to the terms containing it, on the
  treatment-coded design; it exists also for designs with empty cells, where
  lmerTest notes "Missing cells for: ...".

A term contains another when it has all of the other's variables and more, and
both have the same numeric variables (lmerTest's ``containment``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..formula.rdialect import r_spelling
from ..design.build import evaluate, factor_codes, factor_columns, independent_columns, scaled_gram
from scipy import stats

from ..errors import DataError, MixedModelsError, match_arg
from ..protocols import FittedModel
from ..report.rformat import zapsmall
from ..report.tables import AnovaTable
from .kenward_roger import check_applicable, kenward_roger, kr_test
from .satterthwaite import satterthwaite, satterthwaite_f

if TYPE_CHECKING:
    from ..protocols import FittedModel
    from ..results.lm import LmResult
    from ..results.lmer import LmerResult

_ZAP_DIGITS = 7  # R's zapsmall default, as lmerTest uses it
_TYPE_NAMES = {1: "Type I", 2: "Type II", 3: "Type III"}


@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part: R's label, its columns in a model matrix, its variables."""

    name: str
    columns: tuple[int, ...]
    variables: tuple[str, ...]  # in the term's order
    numerics: frozenset[str]  # the variables that are not factors

    def contained_in(self, other: FixedTerm) -> bool:
        """lmerTest's containment: ``other`` has all of this term's variables and more, same numerics."""
        return set(self.variables) < set(other.variables) and self.numerics == other.numerics


def fixed_terms(spec: object, kept: Sequence[int]) -> list[FixedTerm]:
    """The terms (without the intercept) of a formulaic model spec, with the positions of their
    columns among the ``kept`` columns of its matrix (aliased columns belong to no term)."""
    factors = {str(f) for f in spec.factor_contrasts}  # type: ignore[attr-defined]
    position = {j: i for i, j in enumerate(kept)}
    terms, start = [], 0
    for structure in spec.structure:  # type: ignore[attr-defined]
        width = len(structure.columns)
        columns = tuple(position[j] for j in range(start, start + width) if j in position)
        start += width
        if str(structure.term) == "1":
            continue
        variables = tuple(str(f) for f in structure.term.factors)
        terms.append(FixedTerm(term_label(str(structure.term)), columns, variables,
                               frozenset(v for v in variables if v not in factors)))
    return terms


def term_label(term: str) -> str:
    """R's label of a term: the factor names without formulaic's contrast wrappers, in R's
    spelling ('I(x^2)', as the coefficients are named)."""
    return r_spelling(re.sub(r"C\(([^,()]+), contr\.\w+\)", r"\1", term))


# ----- contrast matrices ------------------------------------------------------------------------
def _upper_factor(X: np.ndarray) -> np.ndarray:
    """U of XᵀX = UᵀDU with unit diagonal (lmerTest's doolittle): row j is column j of X adjusted
    for the columns before it.  The scaling matters: Satterthwaite's df of a multi-row L are not
    invariant to it."""
    R = np.linalg.qr(X, mode="r")
    return R / np.diag(R)[:, None]


def type1_contrasts(X: np.ndarray, terms: Sequence[FixedTerm]) -> dict[str, np.ndarray]:
    """Sequential hypotheses: each term adjusted for the terms before it."""
    R = _upper_factor(X)
    return {t.name: R[list(t.columns), :] for t in terms}


def type2_contrasts(X: np.ndarray, terms: Sequence[FixedTerm]) -> dict[str, np.ndarray]:
    """Each term adjusted for all terms except those containing it (lmerTest's type 2, unfolded)."""
    if len(terms) <= 1:
        return type1_contrasts(X, terms)
    out = {}
    for t in terms:
        containing = [c for o in terms if t.contained_in(o) for c in o.columns]
        if not containing:
            out[t.name] = np.eye(X.shape[1])[list(t.columns), :]
            continue
        last = set(t.columns) | set(containing)
        order = [j for j in range(X.shape[1]) if j not in last] + list(t.columns) + containing
        first = X.shape[1] - len(last)
        rows = _upper_factor(X[:, order])[first:first + len(t.columns)]
        L = np.zeros_like(rows)
        L[:, order] = rows
        out[t.name] = L
    return out


def type3_contrasts(fit: LmerResult) -> tuple[dict[str, np.ndarray], list[str]]:
    """lmerTest's type 3 hypotheses, and the cells of the design that have no observations.

    On the treatment-coded design X_t (aliased columns dropped), the cell-means
    coding C of every term is expressed in X_t's coefficients (L = (X_t⁺C)ᵀ); each
    term's columns of L are made orthogonal to those of the terms containing it,
    highest-order terms first; the rows of the cells that X_t names give the term's
    hypotheses, mapped to the fitted coefficients by X_t⁺X.
    """
    frame, X = fit.design.frame, fit.design.X
    treatment = {c: "contr.treatment" for c in factor_columns(frame)}
    mat, names = evaluate(fit.parsed.fixed, frame, "the fixed part", contrasts=treatment,
                          checked=fit.parsed.checked)
    Xt_all = mat.to_numpy(dtype=float)
    kept = independent_columns(scaled_gram(Xt_all))
    Xt, xt_names = Xt_all[:, kept], [names[j] for j in kept]
    terms = fixed_terms(mat.model_spec, kept)
    if Xt.shape[1] <= 1 or len(terms) <= 1:
        return type1_contrasts(X, fixed_terms_of(fit)), []
    C, cell_names = cell_means_coding(fit, terms, "(Intercept)" in xt_names)
    Xt_pinv = np.linalg.pinv(Xt)
    L = zapsmall((Xt_pinv @ C).T, _ZAP_DIGITS)
    for t in sorted(terms, key=lambda t: len(t.variables), reverse=True):
        containing = [c for o in terms if t.contained_in(o) for c in o.columns]
        if containing and t.columns:
            A, B = L[:, containing], L[:, list(t.columns)]
            L[:, list(t.columns)] = zapsmall(B - A @ np.linalg.lstsq(A, B, rcond=None)[0], _ZAP_DIGITS)
    L = L[[cell_names.index(n) for n in xt_names], :]
    to_fit = zapsmall(Xt_pinv @ X, _ZAP_DIGITS)
    out = {}
    for t in terms:
        Lt = L[:, list(t.columns)].T
        out[t.name] = Lt[np.abs(Lt).sum(axis=1) > 1e-8] @ to_fit
    missing = [n for n, column in zip(cell_names, C.T) if not column.any()]
    return out, missing


def cell_means_coding(fit: LmerResult, terms: Sequence[FixedTerm], intercept: bool) -> tuple[np.ndarray, list[str]]:
    """Every term coded as R's ``model.matrix(~ 0 + term)``: one column per cell of its factors
    (times its numeric variables), named as R names them; empty cells give zero columns."""
    frame = fit.design.frame
    if frame is None:
        raise MixedModelsError("F tables need the fit's data frame, which a Dask fit does not keep")
    blocks, names = ([np.ones((len(frame), 1))], ["(Intercept)"]) if intercept else ([], [])
    for t in terms:
        block, labels = np.ones((len(frame), 1)), [""]
        for variable in t.variables:
            if variable in t.numerics:
                mat, cols = evaluate(f"0 + {variable}", frame, f"the term {t.name!r}",
                                     checked=fit.parsed.checked)
                values = mat.to_numpy(dtype=float)
            else:
                name = term_label(variable)
                codes, levels = factor_codes(frame[name])
                values, cols = np.eye(len(levels))[codes], tuple(f"{name}{level}" for level in levels)
            block = (block[:, :, None] * values[:, None, :]).reshape(len(frame), -1)
            labels = [f"{a}:{b}" if a else b for a in labels for b in cols]
        blocks.append(block)
        names += labels
    return np.column_stack(blocks), names


def fixed_terms_of(fit: FittedModel | LmResult) -> list[FixedTerm]:
    """The fitted model's terms with their columns of X (aliased columns belong to none)."""
    return fixed_terms(fit.design.model_spec, fit.design.kept_columns)


# ----- the table --------------------------------------------------------------------------------
def _satterthwaite_row(fit: LmerResult, L: np.ndarray) -> tuple[float, float, float, float, float]:
    test = satterthwaite_f(fit, L)
    return test.F, test.NumDF, test.DenDF, test.F, test.p


def _kenward_roger_row(fit: LmerResult, L: np.ndarray) -> tuple[float, float, float, float, float]:
    r = kr_test(fit, L)
    return r.F_unscaled, r.NumDF, r.DenDF, r.F, r.p  # Sum Sq from the unscaled F, as lmerTest


_ROWS: dict[str, Callable[[LmerResult, np.ndarray], tuple[float, float, float, float, float]]] = {
    "Satterthwaite": _satterthwaite_row, "Kenward-Roger": _kenward_roger_row}


def f_tests(fit: LmerResult, contrasts: dict[str, np.ndarray], ddf: str) -> pd.DataFrame:
    """One row of lmerTest's ``contestMD`` per hypothesis: Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F).

    Mean Sq = F σ² (for Kenward-Roger the F before its scaling), Sum Sq = Mean Sq · NumDF.
    A term without estimable coefficients (all its columns aliased) gets an empty row.
    """
    rows = {}
    for name, L in contrasts.items():
        if L.shape[0] == 0:
            rows[name] = (np.nan,) * 6
            continue
        f_for_ss, num_df, den_df, F, p = _ROWS[ddf](fit, L)
        mean_sq = f_for_ss * fit.sigma**2
        rows[name] = (mean_sq * num_df, mean_sq, num_df, den_df, F, p)
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"])


def contest(fit: LmerResult, L: object, joint: bool = True, ddf: str = "Satterthwaite", level: float = 0.95,
            rhs: object = 0.0) -> pd.DataFrame:
    """lmerTest's ``contest(m, L, joint =, ddf =)``: with ``joint`` one F test of Lβ = 0 (contestMD:
    Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)); otherwise a t test of each row lᵀβ = rhs
    (contest1D: Estimate, Std. Error, df, t value, lower, upper, Pr(>|t|)), the limits at ``level``.
    ``L`` has one column per coefficient; a vector is one row.  ``ddf`` as in ``anova``."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != len(fit.fixef):
        raise DataError(f"L has {L.shape[1]} columns; it needs one per coefficient ({len(fit.fixef)}: "
                        f"{', '.join(fit.fixef.index)})")
    ddf = match_arg(ddf, ("Satterthwaite", "Kenward-Roger"), "ddf")
    if ddf == "Kenward-Roger":
        check_applicable(fit)
    if not 0 < level < 1:
        raise MixedModelsError(f"level must be between 0 and 1, not {level!r}")
    shift = np.broadcast_to(np.asarray(rhs, dtype=float), (len(L),))
    if joint:
        if np.any(shift != 0):
            raise MixedModelsError("rhs= is available for the row-wise tests (joint=False) only")
        return f_tests(fit, {"": L}, ddf).reset_index(drop=True)
    t = (satterthwaite if ddf == "Satterthwaite" else kenward_roger)(fit, L)
    estimate, se, df = t["Estimate"].to_numpy(), t["Std. Error"].to_numpy(), t["df"].to_numpy()
    q = stats.t.ppf((1 + level) / 2, df)
    value = (estimate - shift) / se
    return pd.DataFrame({"Estimate": estimate, "Std. Error": se, "df": df, "t value": value,
                         "lower": estimate - q * se, "upper": estimate + q * se,
                         "Pr(>|t|)": 2 * stats.t.sf(np.abs(value), df)})


def anova_table(fit: LmerResult, ddf: str = "Satterthwaite", type: int = 3) -> AnovaTable:
    """lmerTest's table of type I, II or III tests (``f_tests``), with its heading."""
    missing: list[str] = []
    if type == 3:
        contrasts, missing = type3_contrasts(fit)
    else:
        build = type1_contrasts if type == 1 else type2_contrasts
        contrasts = build(fit.design.X, fixed_terms_of(fit))
    table = f_tests(fit, contrasts, ddf)
    heading = [f"{_TYPE_NAMES[type]} Analysis of Variance Table with {ddf}'s method"]
    if missing:
        heading = [f"Missing cells for: {', '.join(missing)}. ", "Interpret type III hypotheses with care.",
                   *heading]
    return AnovaTable(table, heading, {})
