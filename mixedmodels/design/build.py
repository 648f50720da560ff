"""From a parsed formula and rows of data to the numbers a fit needs: one builder, two backends.

Every step from a data frame to y, X, weights, offset and the random-effects terms
is written here once, as functions of one pandas frame: the formula's checks, the
columns it uses, complete cases and the count of dropped rows, the response's
coding, the model matrices with R's contrasts and names, weights and offset, the
aliased columns of X and the grouping factors' levels.  ``build_design`` applies
them to a whole pandas frame and records the result's :class:`ModelSpec`;
``mixedmodels.dask`` applies the same functions to each partition of a Dask frame
with the spec found from the whole data (``model_rows``).  The caller's data
frame is only read, never modified.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from functools import lru_cache

import formulaic
import numpy as np
import pandas as pd
from formulaic.parser.types import Factor as FormulaFactor
from formulaic.utils.code import sanitize_variable_names
from scipy.linalg import solve_triangular

from ..errors import DataError, DroppedRowsWarning, FormulaError, RankDeficiencyWarning, did_you_mean, type_name, warn
from ..formula.parse import ParsedFormula, parse_formula, with_dot_expanded
from ..formula.rdialect import python_part, r_spelling
from ..formula.safety import check_formula, check_part
from .covstruct import CovStructure
from .reterm import ReTerm
from .spec import Factor, GroupingFactor, ModelSpec, TermLayout, term_orders
from .size import check_design_size
from .transforms import FORMULA_CONTEXT

#: a column of X is aliased when the norm of its residual after projection on the columns kept
#: before it is at most this fraction of its own norm
ALIAS_TOLERANCE = 1e-7
MAX_THETA = 1_000  # covariance parameters of all random-effects terms
WEIGHT_SCALE = 1e8  # weights whose geometric mean is beyond 1/WEIGHT_SCALE..WEIGHT_SCALE are refused


@dataclass(frozen=True)
class Design:
    """Plain arrays of one model: y, X, weights, offset and the random-effects terms, with its spec."""

    y: np.ndarray
    X: np.ndarray  # the kept columns of the fixed-effects matrix
    reterms: tuple[ReTerm, ...]  # in the spec's canonical order
    weights: np.ndarray | None
    offset: np.ndarray | None
    rows: pd.Index  # labels of the rows of `data` that the model uses
    n_dropped: int  # rows dropped for missing values
    spec: ModelSpec = field(repr=False)
    frame: pd.DataFrame | None = field(default=None, repr=False)  # the complete rows of the used columns
    na_action: str = "omit"  # "exclude": per-row results are padded with NaN to the data's rows (R's na.exclude)
    data_index: pd.Index | None = field(default=None, repr=False)  # the data's row labels, for "exclude"
    data_positions: np.ndarray | None = field(default=None, repr=False)  # positions of the rows used in data

    def per_data_row(self, values: np.ndarray, name: str) -> pd.Series:
        """Values of the rows used as a Series: over those rows, or, for na_action "exclude", over all
        the data's rows with NaN where a row was left out."""
        if self.na_action != "exclude" or self.data_index is None or self.data_positions is None:
            return pd.Series(values, index=self.rows, name=name)
        full = np.full(len(self.data_index), np.nan)
        full[self.data_positions] = values
        return pd.Series(full, index=self.data_index, name=name)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def xnames(self) -> tuple[str, ...]:
        return self.spec.kept_names

    @property
    def model_spec(self) -> object:
        """formulaic's ModelSpec of the fixed part (every column, aliased ones included)."""
        return self.spec.fixed_spec

    @property
    def kept_columns(self) -> tuple[int, ...]:
        return self.spec.kept

    @property
    def dropped_columns(self) -> tuple[str, ...]:
        return self.spec.dropped

    @property
    def response_name(self) -> str:
        return self.spec.parsed.response

    @property
    def contrasts(self) -> Mapping[str, str]:
        """The factors' codings the caller gave (R's ``contrasts=``)."""
        return self.spec.contrasts


def mixed_formula(kind: str, formula: str, safe: bool) -> ParsedFormula:
    """The parsed formula of a mixed model (``kind`` 'lmer', 'glmer', ...), after the checks
    every fit shares: ``check_formula`` when ``safe``, a response and a random-effects term."""
    parsed = check_formula(formula) if safe else parse_formula(formula)
    if not parsed.random:
        raise FormulaError(
            f"{kind} needs at least one random-effects term such as (1 | group); "
            "for a model without random effects use mixedmodels.lm",
            formula,
        )
    check_response(parsed)
    return parsed


def check_response(parsed: ParsedFormula) -> None:
    if not parsed.response:
        raise FormulaError("the formula has no response on the left of '~'", parsed.text, 0)


def build_design(
    parsed: ParsedFormula,
    data: pd.DataFrame,
    weights: object = None,
    offset: object = None,
    binomial: bool = False,
    contrasts: Mapping[str, str] | None = None,
    na_action: str = "omit",
    extra: tuple[str, ...] = (),
) -> Design:
    """Evaluate every part of the model on the complete cases of ``data`` (the pandas backend).

    ``extra`` names further columns a row needs to be complete (a residual structure's time,
    group and covariates), kept in ``Design.frame``.

    ``binomial`` admits the response forms of binomial GLMMs (cbind, factors,
    booleans); their trials multiply the prior weights.  ``contrasts`` codes factors
    of the fixed part as R's ``contrasts=`` argument does ({"f": "contr.sum"}).  Rows
    with missing values are left out either way; ``na_action="exclude"`` (R's
    na.exclude) makes per-row results cover all the data's rows, NaN where left out.
    """
    if na_action not in ("omit", "exclude"):
        raise DataError(f"na_action must be 'omit' or 'exclude' (R's na.omit, na.exclude), not {na_action!r}")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type_name(data)}")
    if len(data) == 0:
        raise DataError("data has no rows")
    check_response(parsed)
    duplicated = sorted(set(map(str, data.columns[data.columns.duplicated()])))
    if duplicated:
        raise DataError(f"data has more than one column named {', '.join(map(repr, duplicated))}; rename them")

    parsed = with_dot_expanded(parsed, list(data.columns))
    used = used_columns(parsed, data.columns)
    w = optional_vector(weights, data, "weights")
    o = optional_vector(offset, data, "offset")
    needed = used + [c for c in extra if c not in used]
    complete = complete_cases(data, needed, w, o)
    outside = {c: _outside(data[c], levels) for c, levels in restricted_levels(parsed) if c in data.columns}
    for mask in outside.values():
        complete &= ~mask
    n_dropped = int((~complete).sum())
    restricted = [f"{mask.sum()} with a value of {c!r} outside its C(levels=...), which R's factor(levels=) "
                  "makes missing" for c, mask in outside.items() if mask.any()]
    report_dropped(n_dropped, len(data), missing_columns(data, needed, w, o) if n_dropped else (), needed,
                   "; the rows used are in m.rows_used", restricted)
    frame = _model_frame(data, needed, None if not n_dropped else complete)
    factors = {c: Factor.of(frame[c], frame[c].dtype) for c in level_columns(used, frame.dtypes)}
    _check_factor_levels(parsed, frame, factors)
    groupings = {g: GroupingFactor.of(frame, g, tuple(factors.get(c) or Factor.of(frame[c], frame[c].dtype)
                                                      for c in g))
                 for g in grouping_columns(parsed)}
    coding = check_contrasts(contrasts, frame)
    check_design_size(python_part(parsed.fixed), parsed.text, len(frame),
                      {c: len(factor.levels) for c, factor in factors.items()})
    parts = evaluate_parts(parsed, frame, binomial, coding)
    spec = specify(parsed, parts, groupings, factors, used, weights if isinstance(weights, str) else None,
                   offset if isinstance(offset, str) else None, frame.iloc[:1], coding)
    spec = replace(spec, kept=kept_columns(scaled_gram(parts.X), spec.xnames))
    if w is not None:
        _check_weight_scale(w[complete])
    rows = assemble(spec, parts, frame, None if w is None else w[complete], None if o is None else o[complete])
    return Design(y=rows.y, X=rows.X[:, list(spec.kept)] if len(spec.kept) < rows.X.shape[1] else rows.X,
                  reterms=rows.terms, weights=rows.weights, offset=rows.offset, rows=frame.index,
                  n_dropped=n_dropped, spec=spec, frame=frame, na_action=na_action,
                  data_index=data.index if na_action == "exclude" else None,
                  data_positions=np.flatnonzero(complete) if na_action == "exclude" else None)


def with_terms(design: Design, parsed: ParsedFormula, reterms: tuple[ReTerm, ...]) -> Design:
    """The design with other random-effects terms, one bar each in formula order (``parsed.random``):
    ranova's reduced models.  The terms take the canonical order; each keeps its grouping factor."""
    groupings = {t.group: t.grouping for t in design.spec.terms}
    layouts = [TermLayout(bar=b, expr=t.expr, column_index=t.column_index, columns=t.columns,
                          grouping=groupings[t.group], spec=t.spec, structure=t.structure)
               for b, t in enumerate(reterms)]
    canonical, report = term_orders(layouts)
    spec = replace(design.spec, parsed=parsed, terms=tuple(layouts[k] for k in canonical), report_order=report)
    return replace(design, reterms=tuple(reterms[k] for k in canonical), spec=spec)


def with_rows(design: Design, keep: np.ndarray) -> Design:
    """The design on a subset of its rows (a boolean mask over the rows used): group-deletion
    refits, as R's ``update(m, subset = ...)``.  Grouping factors lose the levels left without
    rows, as R's ``factor()`` drops them; X keeps its columns and must keep its rank."""
    keep = np.asarray(keep, dtype=bool)
    reterms = []
    for t in design.reterms:
        present, codes = np.unique(t.codes[keep], return_inverse=True)
        reterms.append(replace(t, codes=codes.astype(np.int64), levels=t.levels[present],
                               matrix=np.ascontiguousarray(t.matrix[keep])))
    X = np.ascontiguousarray(design.X[keep])
    if X.shape[1] and np.linalg.matrix_rank(X) < X.shape[1]:
        raise DataError("without these rows the fixed-effects matrix loses rank (a level of a fixed factor "
                        "or a covariate's only values are in them); the coefficients cannot all be refitted")
    return replace(design, y=design.y[keep], X=X, reterms=tuple(reterms),
                   weights=None if design.weights is None else design.weights[keep],
                   offset=None if design.offset is None else design.offset[keep],
                   rows=design.rows[keep], frame=None if design.frame is None else design.frame[keep],
                   data_positions=None if design.data_positions is None else design.data_positions[keep])


# ----- the columns, complete cases and dropped rows ---------------------------------------

def level_columns(used: Iterable[str], dtypes: pd.Series) -> list[str]:
    """The used columns that are factors (neither numeric nor boolean)."""
    return [c for c in used if not pd.api.types.is_numeric_dtype(dtypes[c]) and not pd.api.types.is_bool_dtype(dtypes[c])]


def grouping_columns(parsed: ParsedFormula) -> list[tuple[str, ...]]:
    """The distinct grouping factors of the random-effects terms, as column tuples."""
    return list(dict.fromkeys(bar.group for bar in parsed.random))


def check_column(name: object, columns: pd.Index, what: str) -> None:
    """A weights or offset argument naming a column must name one of ``columns``."""
    if name not in columns:
        raise DataError(f"{what}={name!r} is not a column of data." + did_you_mean(str(name), map(str, columns)))


def complete_cases(frame: pd.DataFrame, used: list[str], w: np.ndarray | None, o: np.ndarray | None) -> np.ndarray:
    """The rows without a missing value in the used columns, weights or offset."""
    complete = np.ones(len(frame), dtype=bool)
    for c in used:  # column by column: a DataFrame's isna().any(axis=1) costs several times more
        complete &= ~pd.isna(frame[c].array)
    for vec in (w, o):
        if vec is not None:
            complete &= ~np.isnan(vec)
    return complete


def missing_columns(frame: pd.DataFrame, used: list[str], w: np.ndarray | None, o: np.ndarray | None) -> list[str]:
    """The used columns (and 'weights', 'offset') with a missing value."""
    return [c for c in used if frame[c].isna().any()] + [
        name for name, vec in (("weights", w), ("offset", o)) if vec is not None and np.isnan(vec).any()]


def report_dropped(n_dropped: int, n_rows: int, missing: Iterable[str], used: Iterable[str], hint: str = "",
                   notes: Iterable[str] = ()) -> None:
    """A DataError when no row is complete, a DroppedRowsWarning naming the columns when some are not
    (``notes``: other reasons rows were left out)."""
    used = list(used)
    if n_dropped == n_rows:
        raise no_complete_rows(used)
    if n_dropped:
        rank = {name: k for k, name in enumerate([*used, "weights", "offset"])}
        names = sorted(set(missing), key=lambda name: rank.get(name, len(rank)))
        reasons = ([f"in {', '.join(map(repr, names))}"] if names else []) + list(notes)
        warn(f"{n_dropped} of {n_rows} rows have missing values ({'; '.join(reasons)}) and "
             f"were left out{hint}", DroppedRowsWarning)


def _check_weight_scale(w: np.ndarray) -> None:
    """Weights far from 1 on average put θ out of the optimizer's reach (it scales with 1/√w)."""
    if np.any(w <= 0) or not np.all(np.isfinite(w)):
        return  # weights_and_offset reports them
    scale = float(np.exp(np.mean(np.log(w))))
    if not 1 / WEIGHT_SCALE <= scale <= WEIGHT_SCALE:
        raise DataError(
            f"the weights are of the order of {scale:.3g}; the relative covariance θ scales with "
            f"1/√weights, so the optimizer cannot reach it from its start; divide the weights by their mean "
            "(θ̂ then changes by √mean and σ̂ by 1/√mean, as in lme4)"
        )


def check_residual_df(p: int, n: int) -> None:
    """An LMM needs fewer fixed-effect columns than observations, or no residual variance is left."""
    if p >= n:
        raise DataError(
            f"the fixed effects have {p} columns for {n} observations, so no residual "
            "variance is left to estimate; use fewer fixed effects (is a numeric column used as a factor?)"
        )


def no_complete_rows(used: Iterable[str]) -> DataError:
    return DataError("no complete rows: every row has a missing value in one of " + ", ".join(map(repr, used)))


def check_groups(terms: Iterable[ReTerm | TermLayout], n: int, lmm: bool = True) -> None:
    """Each grouping factor needs more than one level; an LMM's fewer effects than observations
    (unless a cs() or ar1() structure ties them together);
    at most MAX_THETA covariance parameters (the optimizer's memory grows with their square)."""
    terms = list(terms)
    ntheta = sum(t.ntheta for t in terms)
    if ntheta > MAX_THETA:
        widest = max(terms, key=lambda t: t.ntheta)
        raise DataError(
            f"the random effects have {ntheta:,} covariance parameters, more than the {MAX_THETA:,} the optimizer "
            f"can take; the term {widest.structure.spelling(widest.expr, widest.group)} alone has {widest.p} columns and {widest.ntheta:,} "
            "(is a factor with many levels in the left part of a bar? use (1 | f:g) or '||')"
        )
    for t in terms:
        if t.nlevels < 2:
            raise DataError(
                f"grouping factor {t.group!r} has {t.nlevels} level; a random effect needs at least 2 levels"
            )
        if lmm and t.q >= n and not t.structure.has_rho(t.p):  # cs() and ar1() are identified by their ρ
            raise DataError(
                f"the term {t.structure.spelling(t.expr, t.group)} has {t.q} random effects for {n} observations; "
                "the random effects and the residual are not identifiable (is a grouping factor an "
                "observation id?)"
            )


# ----- the formula's parts on rows ----------------------------------------------------------

@dataclass(frozen=True)
class Evaluated:
    """The formula's parts evaluated on a frame of complete rows, as formulaic gives them."""

    y: np.ndarray
    trials: np.ndarray | None  # binomial trials of a cbind response
    X: np.ndarray  # every column of the fixed part
    xnames: tuple[str, ...]
    fixed_spec: object
    bars: tuple[tuple[np.ndarray, tuple[str, ...], object], ...]  # per bar: matrix, column names, spec


def evaluate_parts(parsed: ParsedFormula, frame: pd.DataFrame, binomial: bool = False,
                   contrasts: Mapping[str, str] | None = None) -> Evaluated:
    """The response, the fixed-effects matrix (factors coded by ``contrasts``, else R's defaults)
    and each bar's matrix on ``frame``; every value finite."""
    y, trials = response_values(parsed, frame, binomial)
    fixed, xnames = evaluate(parsed.fixed, frame, "the fixed part", contrasts=contrasts, checked=parsed.checked)
    X = fixed.to_numpy(dtype=float)
    for j, name in enumerate(xnames):
        check_finite(X[:, j], name)
    bars = []
    for bar in parsed.random:
        mat, names = evaluate(bar.expr, frame, f"the random-effects term ({bar.expr} | {bar.group_name}), left part",
                              checked=parsed.checked)
        if not names:
            raise FormulaError(f"the random-effects term ({bar.expr} | {bar.group_name}) has no columns")
        Xi = mat.to_numpy(dtype=float)
        for j, name in enumerate(names):
            check_finite(Xi[:, j], name)
        bars.append((Xi, names, mat.model_spec))
    return Evaluated(y=y, trials=trials, X=X, xnames=xnames, fixed_spec=fixed.model_spec, bars=tuple(bars))


def specify(parsed: ParsedFormula, parts: Evaluated, groupings: dict[tuple[str, ...], GroupingFactor],
            factors: dict[str, Factor], used: list[str], weights: str | None, offset: str | None,
            example: pd.DataFrame, contrasts: Mapping[str, str] | None = None) -> ModelSpec:
    """The spec of a model whose parts evaluated to ``parts`` (every column of X kept):
    ``||`` gives one scalar term per column of its bar, and the terms take the canonical order."""
    layouts = []
    for b, (bar, (_, names, bar_spec)) in enumerate(zip(parsed.random, parts.bars)):
        pieces = [tuple(range(len(names)))] if bar.correlated else [(j,) for j in range(len(names))]
        structure = CovStructure(bar.structure, bar.hom)
        layouts += [TermLayout(bar=b, expr=bar.expr, column_index=idx, columns=tuple(names[j] for j in idx),
                               grouping=groupings[bar.group], spec=bar_spec, structure=structure) for idx in pieces]
    canonical, report = term_orders(layouts)
    return ModelSpec(parsed=parsed, used=tuple(used), weights=weights, offset=offset, factors=factors,
                     xnames=tuple(parts.xnames), kept=tuple(range(len(parts.xnames))), fixed_spec=parts.fixed_spec,
                     terms=tuple(layouts[i] for i in canonical), report_order=report, example=example,
                     contrasts=dict(contrasts or {}))


@dataclass(frozen=True)
class ModelRows:
    """A model's numbers on some complete rows: X with every column of the spec's fixed part,
    the prior weights (binomial trials included), the total offset and the terms (canonical order)."""

    y: np.ndarray
    X: np.ndarray
    weights: np.ndarray | None
    offset: np.ndarray | None
    terms: tuple[ReTerm, ...]


def assemble(spec: ModelSpec, parts: Evaluated, frame: pd.DataFrame, w: np.ndarray | None,
             o: np.ndarray | None) -> ModelRows:
    """The model's numbers from the evaluated parts, the complete rows' weights and offset."""
    w, o = weights_and_offset(spec.parsed, frame, w, o, parts.trials)
    terms = tuple(t.term(t.grouping.codes(frame), parts.bars[t.bar][0][:, list(t.column_index)]) for t in spec.terms)
    return ModelRows(y=parts.y, X=parts.X, weights=w, offset=o, terms=terms)


def model_rows(spec: ModelSpec, frame: pd.DataFrame, w: np.ndarray | None, o: np.ndarray | None,
               binomial: bool = False) -> ModelRows:
    """The model's numbers on complete rows of other data than the spec's (a partition): their
    factors must be coded by the spec's levels, so that the columns are the spec's."""
    parts = evaluate_parts(spec.parsed, frame, binomial, spec.contrasts)
    if tuple(parts.xnames) != spec.xnames:
        raise DataError(
            f"a partition's fixed-effects columns ({', '.join(parts.xnames)}) differ from the data's "
            f"({', '.join(spec.xnames)}); make factors categorical columns of the data instead of "
            "converting them in the formula")
    for t in spec.terms:
        if tuple(parts.bars[t.bar][1][j] for j in t.column_index) != t.columns:
            raise DataError(f"a partition's columns of the term {t.structure.spelling(t.expr, t.group)} differ "
                            "from the data's; make factors categorical columns of the data")
    return assemble(spec, parts, frame, w, o)


def weights_and_offset(parsed: ParsedFormula, frame: pd.DataFrame, w: np.ndarray | None, o: np.ndarray | None,
                       trials: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The checked prior weights times any binomial trials, and the offset plus the formula's offset() terms."""
    if w is not None and (np.any(w <= 0) or not np.all(np.isfinite(w))):
        raise DataError("weights must be finite and positive")
    if trials is not None:
        w = trials if w is None else w * trials
    if o is not None and not np.all(np.isfinite(o)):
        raise DataError("offset must be finite")
    for expr in parsed.offsets:
        term = numeric_column(expr, frame, "the offset", parsed.checked)
        o = term if o is None else o + term
    return w, o


# ----- aliased columns ---------------------------------------------------------------------

def independent_columns(gram: np.ndarray) -> list[int]:
    """The columns of X that are not linear combinations of earlier ones, from a Gram matrix XᵀWX
    (W > 0): each column in turn is kept when its residual after projection on the kept ones
    exceeds ALIAS_TOLERANCE of its norm (R's pivoting QR keeps the same columns)."""
    p = gram.shape[0]
    keep: list[int] = []
    L = np.zeros((p, p))  # Cholesky factor of the kept columns' Gram matrix
    for j in range(p):
        norm2 = gram[j, j]
        if not norm2 > 0:
            continue
        k = len(keep)
        v = _forward(L[:k, :k], gram[keep, j]) if k else np.zeros(0)
        r2 = norm2 - v @ v
        if r2 > ALIAS_TOLERANCE**2 * norm2:
            L[k, :k], L[k, k] = v, np.sqrt(r2)
            keep.append(j)
    return keep


def kept_columns(gram: np.ndarray, names: tuple[str, ...]) -> tuple[int, ...]:
    """``independent_columns`` of a model's X, with a RankDeficiencyWarning naming the aliased ones."""
    keep = independent_columns(gram)
    dropped = [names[j] for j in range(len(names)) if j not in keep]
    if dropped:
        warn("fixed-effect model matrix is rank deficient; dropping aliased column(s) "
             + ", ".join(map(repr, dropped)), RankDeficiencyWarning)
    return tuple(keep)


def _forward(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L⁻¹b for lower-triangular L."""
    return solve_triangular(L, b, lower=True, check_finite=False)


def scaled_gram(X: np.ndarray) -> np.ndarray:
    """XᵀX of X with each column scaled by its largest magnitude (values near 1e200 would overflow)."""
    size = np.abs(X).max(axis=0) if X.shape[0] else np.ones(X.shape[1])
    Xs = X / np.where(size > 0, size, 1.0)
    return Xs.T @ Xs


def _model_frame(data: pd.DataFrame, used: list[str], complete: np.ndarray | None) -> pd.DataFrame:
    """A new frame of the ``used`` columns of ``data`` (the ``complete`` rows, when given) coded as
    R's model frames: unused factor levels dropped (no column, no aliasing, for an empty level) and
    pandas' "string" columns as plain strings (factors, as R).  ``data`` is only read."""
    out = data.take([data.columns.get_loc(c) for c in used], axis=1)  # cheaper than data[used]
    if complete is not None:
        out = out.take(np.flatnonzero(complete))
    for c in used:
        dtype = out[c].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            codes = out[c].array.codes
            if np.count_nonzero(np.bincount(codes[codes >= 0], minlength=len(dtype.categories))) < len(dtype.categories):
                out[c] = out[c].cat.remove_unused_categories()
        elif isinstance(dtype, pd.StringDtype):
            out[c] = out[c].astype(object)
    return out


def restricted_levels(parsed: ParsedFormula) -> list[tuple[str, list]]:
    """(column, levels) of every ``C(column, levels=[...])`` in the fixed and random parts.

    Read from formulaic's parse of each part (nothing is evaluated); the levels must be a
    literal, as a checked formula requires.
    """
    found = []
    for text in (parsed.fixed, *(t.expr for t in parsed.random)):
        try:
            factors = [f for term in formula_part(text) for f in term.factors]
        except Exception:  # formulaic raises many kinds; evaluating the part reports them
            continue
        for factor in factors:
            if factor.eval_method is not FormulaFactor.EvalMethod.PYTHON:
                continue
            aliases: dict[str, str] = {}
            try:
                tree = ast.parse(sanitize_variable_names(factor.expr, {}, aliases), mode="eval")
            except (SyntaxError, ValueError, IndexError, RecursionError, MemoryError):
                continue
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "C"
                        and node.args and isinstance(node.args[0], ast.Name)):
                    for keyword in node.keywords:
                        if keyword.arg == "levels":
                            try:
                                levels = list(ast.literal_eval(keyword.value))
                            except (ValueError, TypeError, SyntaxError, RecursionError):
                                continue
                            found.append((aliases.get(node.args[0].id, node.args[0].id), levels))
    return found


def _outside(column: pd.Series, levels: list) -> np.ndarray:
    """Rows whose value is not one of ``levels`` (compared as values and as text, as R's factor())."""
    inside = column.isin(levels) | column.astype(str).isin([str(level) for level in levels])
    return (~inside & column.notna()).to_numpy()


def _check_factor_levels(parsed: ParsedFormula, frame: pd.DataFrame, factors: Mapping[str, Factor]) -> None:
    """R stops on a fixed-effect or slope factor with one level; so do we, naming it
    (``factors``: the levels of the frame's factor columns)."""
    texts = " ".join([parsed.fixed, *(t.expr for t in parsed.random)])
    for c, factor in factors.items():
        if len(factor.levels) < 2 and _mentions(texts, str(c)):
            raise DataError(
                f"the factor {c!r} has a single level ({frame[c].iloc[0]!r}) in the rows used: contrasts can be "
                "applied only to factors with 2 or more levels (R's error); remove it from the formula"
            )


def used_columns(parsed: ParsedFormula, columns: pd.Index) -> list[str]:
    """The columns (of ``columns``, the data's) that the formula mentions, in data order."""
    texts = [parsed.response, parsed.fixed, *parsed.offsets] + [t.expr for t in parsed.random]
    groups = {g for t in parsed.random for g in t.group}
    for g in groups:
        if g not in columns:
            raise DataError(
                f"grouping factor {g!r} is not a column of data." + did_you_mean(g, map(str, columns))
            )
    for text in texts:
        for name in _names_in(python_part(text)):
            if name not in columns and not _is_known_name(name):
                raise DataError(
                    f"{name!r} in the formula is not a column of data."
                    + did_you_mean(name, map(str, columns))
                )
    mentioned = " ".join(texts)
    return [
        c for c in columns
        if c in groups or _mentions(mentioned, str(c))
    ]


_IDENT = re.compile(r"`([^`]*)`|'[^']*'|\"[^\"]*\"|(?<![\w.])([A-Za-z_][A-Za-z0-9_.]*)")
_KNOWN = {"np", "numpy", "I", "C", "log", "exp", "sqrt", "abs", "log2", "log10", "log1p", "sin", "cos", "tan", "pi", "center", "scale",
          "poly", "bs", "ns", "cbind", "offset", "True", "False", "None", "TRUE", "FALSE", "NULL", "Treatment", "Sum",
          "contr", "math", "lag", "standardize", "Q"}


def _names_in(text: str) -> list[str]:
    """Variable names of an expression: backticked names and identifiers not called as functions."""
    names = []
    for m in _IDENT.finditer(text):
        if m.group(1) is not None:
            names.append(m.group(1))
            continue
        name = m.group(2)
        if name is None:
            continue  # a quoted string
        rest = text[m.end():].lstrip()
        if rest.startswith("(") or (rest.startswith("=") and not rest.startswith("==")):
            continue  # a function call or a keyword argument
        names.append(name.split(".")[0] if name.split(".")[0] in _KNOWN else name)
    return names


def _is_known_name(name: str) -> bool:
    return name.split(".")[0] in _KNOWN


def _mentions(text: str, column: str) -> bool:
    if f"`{column}`" in text:
        return True
    return re.search(r"(?<![\w.`])" + re.escape(column) + r"(?![\w.`])", text) is not None


def optional_vector(value: object, data: pd.DataFrame, what: str) -> np.ndarray | None:
    """A weights or offset argument: None, a column name, or a vector as long as data."""
    if value is None:
        return None
    if isinstance(value, str):
        check_column(value, data.columns, what)
        value = data[value]
    arr = np.asarray(value, dtype=float) if not isinstance(value, pd.Series) else value.to_numpy(dtype=float, na_value=np.nan)
    if arr.ndim != 1:
        raise DataError(f"{what} must be a one-dimensional vector, not an array of shape {arr.shape}")
    if len(arr) != len(data):
        raise DataError(f"{what} has length {arr.size}, but data has {len(data)} rows")
    return arr


def evaluate(expr: str, frame: pd.DataFrame, what: str, contrasts: Mapping[str, str] | None = None,
             checked: bool = False) -> tuple[formulaic.ModelMatrix, tuple[str, ...]]:
    """A formulaic model matrix of ``expr`` on ``frame`` coded as R codes it, with R's column names.

    ``contrasts`` maps factor columns to R's codings ('contr.treatment', 'contr.sum',
    ...); other ordered factors get polynomial contrasts (R's contr.poly: 'ph.L',
    'ph.Q') and the rest treatment contrasts.  Logical columns are named 'xTRUE'.
    Errors name the formula part.  ``checked`` (a part of a checked formula) checks the
    exact text handed to formulaic, as formulaic parsed it, before anything is evaluated.
    """
    dtypes = frame.dtypes
    coding = {c: "contr.poly" for c, t in dtypes.items() if isinstance(t, pd.CategoricalDtype) and t.ordered}
    coding.update(contrasts or {})
    logical = {str(c) for c, t in dtypes.items() if pd.api.types.is_bool_dtype(t)}
    coded = python_part(expr)
    for c, contrast in coding.items():
        coded = re.sub(r"(?<![\w.`])(?<!C\()" + re.escape(str(c)) + r"(?![\w.`(])", f"C({c}, {contrast})", coded)
    try:
        part = formula_part(coded)
    except Exception as exc:  # formulaic raises many kinds
        raise FormulaError(f"cannot read {what} {expr!r}: {exc}") from exc
    if checked:
        check_part(part, coded)
    try:
        mat = formulaic.model_matrix(part, frame, na_action="ignore", context=FORMULA_CONTEXT)
    except Exception as exc:  # formulaic raises many kinds
        raise FormulaError(f"cannot evaluate {what} {expr!r}: {exc}") from exc
    renames = _numbered_levels(coding, frame)
    renames.update({f"C({c}, {contrast})": str(c) for c, contrast in coding.items()})
    return mat, tuple(r_name(col, renames, logical) for col in map(r_spelling, mat.columns))


def _numbered_levels(coding: Mapping[str, str], frame: pd.DataFrame) -> dict[str, str]:
    """R names sum and Helmert contrast columns by number ('f1', 'f2'), not by level as formulaic."""
    out = {}
    for c, contrast in coding.items():
        if contrast in ("contr.sum", "contr.helmert") and c in frame.columns:
            levels = factor_codes(frame[c])[1]
            prefix, first = ("S", 1) if contrast == "contr.sum" else ("H", 0)
            for i, level in enumerate(levels):
                out[f"C({c}, {contrast})[{prefix}.{level}]"] = f"{c}{i + first}"
    return out


def factor_columns(frame: pd.DataFrame) -> list[str]:
    """The columns R treats as factors: categoricals and strings."""
    return [str(c) for c, t in frame.dtypes.items()
            if isinstance(t, pd.CategoricalDtype) or pd.api.types.is_string_dtype(t) or t == object]


def factor_codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and levels of a column of complete rows treated as a factor (R's ``factor``)."""
    factor = Factor.of(column, column.dtype)
    return factor.codes(column, str(column.name)), factor.levels


#: R's factor codings that ``contrasts=`` accepts (formulaic implements each as R does)
CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.SAS", "contr.poly")


def check_contrasts(contrasts: Mapping[str, str] | None, frame: pd.DataFrame) -> dict[str, str]:
    """A ``contrasts=`` argument checked: each key a factor column of the model, each value one of
    ``CONTRASTS``."""
    if contrasts is None:
        return {}
    if not isinstance(contrasts, Mapping):
        raise DataError(f"contrasts must be a dict such as {{'f': 'contr.sum'}}, not {type_name(contrasts)}")
    factors = factor_columns(frame)
    for column, coding in contrasts.items():
        if column not in factors:
            raise DataError(
                f"contrasts names {column!r}, which is not a factor column the model uses"
                + (f" (factors: {', '.join(map(repr, factors))})" if factors else " (it uses no factor)")
            )
        if coding not in CONTRASTS:
            raise DataError(f"contrasts[{column!r}] = {coding!r} is not one of {', '.join(CONTRASTS)}."
                            + did_you_mean(str(coding), CONTRASTS))
    return dict(contrasts)


@lru_cache(maxsize=256)
def formula_part(expr: str) -> formulaic.Formula:
    """formulaic's parse of a formula part (nothing evaluated), kept: a fifth of a model matrix's
    cost on small data."""
    return formulaic.Formula(expr)


def numeric_column(expr: str, frame: pd.DataFrame, what: str, checked: bool) -> np.ndarray:
    """One numeric column from an expression such as 'y', 'np.log(y)' or 'size - k'."""
    if expr in frame.columns and not pd.api.types.is_numeric_dtype(frame[expr].dtype):
        raise DataError(
            f"{what} {expr!r} must be numeric, but the column holds non-numeric values (a factor or text)"
            + ("; glmer(family='binomial') accepts two-level factors" if what == "the response" else "")
        )
    if expr in frame.columns:  # a plain column: no formula to evaluate
        values = frame[expr].to_numpy(dtype=float)[:, None]
    else:
        values = evaluate(f"0 + I({expr})", frame, what, checked=checked)[0].to_numpy(dtype=float)
    if values.shape[1] != 1:
        raise DataError(f"{what} {expr!r} must be one numeric column; it gave {values.shape[1]}")
    out = values.ravel()
    check_finite(out, expr)
    return out


_CBIND = re.compile(r"^cbind\s*\((.*)\)$", re.S)


def response_values(parsed: ParsedFormula, frame: pd.DataFrame, binomial: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The response y, and binomial trials when the response gives them.

    Binomial responses may be ``cbind(successes, failures)`` (y = proportion,
    trials = their sum), booleans, or two-level factors (the second level is a
    success, as in R).
    """
    text = parsed.response.strip()
    match = _CBIND.match(text)
    if match:
        if not binomial:
            raise DataError("cbind(successes, failures) responses need glmer(..., family='binomial')")
        parts = _split_arguments(match.group(1))
        if len(parts) != 2:
            raise FormulaError("cbind() takes two arguments: cbind(successes, failures)", parsed.text, 0)
        succ, fail = (numeric_column(p, frame, "cbind() argument", parsed.checked) for p in parts)
        if np.any(succ < 0) or np.any(fail < 0):
            raise DataError(f"cbind({parts[0]}, {parts[1]}) has negative counts")
        trials = succ + fail
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, succ / np.where(trials > 0, trials, 1), 0.0)
        return y, trials
    if binomial and text in frame.columns and _is_two_valued_type(frame[text]):
        return _two_level(frame[text], text), None
    return numeric_column(text, frame, "the response", parsed.checked), None


def _is_two_valued_type(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(column.dtype)


def _two_level(column: pd.Series, name: str) -> np.ndarray:
    """0/1 from a boolean or a two-level factor: the second level is success (R).

    A categorical's levels are its categories (the data's, not those a partition holds)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=float)
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, levels = column.cat.codes.to_numpy(dtype=np.int64), column.cat.categories
    else:
        codes, levels = pd.factorize(column, sort=True)
    check_two_levels(name, levels)
    return codes.astype(float)


def check_two_levels(name: str, levels) -> None:
    """A binomial factor response needs exactly two levels: the second is success (R)."""
    if len(levels) != 2:
        raise DataError(
            f"the binomial response {name!r} is a factor with {len(levels)} levels "
            f"({', '.join(map(str, list(levels)[:5]))}); it needs exactly 2 (the second is success)"
        )


def _split_arguments(text: str) -> list[str]:
    """Split a call's argument list at top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def check_finite(values: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"{name!r} has {bad.sum()} non-finite value(s) (NaN or ±inf) after evaluation, "
            f"first at row position {int(np.argmax(bad))}; fix or remove them"
        )


def r_name(column: str, renames: dict[str, str] | None = None, logical: AbstractSet[str] = frozenset()) -> str:
    """R's name of a model-matrix column: '(Intercept)', 'service1', 'x:fb', 'ph.L', 'lateTRUE'."""
    if column == "Intercept":
        return "(Intercept)"
    for old, new in (renames or {}).items():
        column = column.replace(old, new)
    column = re.sub(r"\[(?:T\.)?([^\]]*)\]", r"\1", column)
    return ":".join(part + "TRUE" if part in logical else part for part in column.split(":"))
