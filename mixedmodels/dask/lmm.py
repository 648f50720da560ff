"""Linear mixed models on Dask data frames: only crossproducts reach the client.

The LMM needs its data only through the crossproduct blocks A = [Z X y]ᵀ W [Z X y]
and n (docs/design.md), and A is a sum over rows.  ``lmer_dask`` therefore

1. finds, in one pass over the complete rows, the levels of every grouping factor
   and every categorical column the formula uses: the levels of the whole data, in
   the order an in-memory fit gives them (a categorical's category order, else sorted);
2. evaluates the model on each partition with those global levels (formulaic codes
   every partition's factors alike; no level is dropped per partition, and no
   column of X is dropped per partition) and computes the partition's blocks of A
   with ``CrossproductBuilder``, the random effects coded against the global levels;
3. adds the blocks up in a tree (``dask.delayed``), so that only the sum reaches
   the client, drops aliased columns of X from the summed blocks as an in-memory
   fit would, and fits θ on them.

The result, :class:`DaskLmerResult`, holds what the crossproducts determine:
fixef, vcov, sigma, theta, objective, varcorr, deviance, the likelihood criteria
and the conditional modes (ranef, ranef_sd, coef: from the blocked Cholesky factor
at θ̂, as ``LmerResult`` computes them).  Per-row quantities stay on the cluster:
``fitted``, ``residuals``, ``scaled_residuals()`` and ``predict()`` (without
newdata, or with a Dask newdata) are Dask Series built with ``map_partitions``,
nothing computed until asked for, one pass over the rows each.  Every partition is
evaluated by the in-memory code with a small copy of the fit (:class:`_RowModel`:
the formulaic specs, β̂ and the modes) that enters the task graph once: the fitted
rows by ``prediction.fitted_linear_predictor`` (X and the terms' codes built as for
the crossproducts), a newdata by ``prediction.linear_predictor``.  ``predict`` on a
pandas newdata returns ``LmerResult.predict``'s pandas Series.

Not supported on Dask frames: stateful formula transforms (``center``, ``scale``,
``poly``, ``bs``: their state would come from one partition; compute such columns
first), numeric columns made factors inside the formula (``C(x)``: convert the
column to a categorical first), weights or offsets given as vectors (give column
names; ``predict`` on a Dask newdata takes its offset as a column name too), and
``start``.  What needs the rows again for every step is not offered on a
``DaskLmerResult``: refits (bootstrap, profile confidence intervals), Satterthwaite
and Kenward-Roger tests, summary(), r2/icc.  New levels in a Dask newdata are found
when its predictions are computed: ``.compute()`` raises the DataError; missing
columns and a bad ``re_form`` raise at once.  Results are those of ``mm.lmer`` on
the same data up to the rounding of summing A in another order.

The module is laid out for any model on Dask frames: planning (the global levels
and the layout of X and the terms), per-partition functions (the complete rows as
arrays, their crossproducts, their per-row values) and, on the client, the LMM's
fit and result.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass, field, replace
from functools import cached_property
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..results.criteria import InformationCriteria
from ..linalg.crossprod import CrossproductBuilder, Crossproducts, add_crossproducts, shift_response
from ..design.build import (
    check_finite,
    check_groups,
    evaluate,
    numeric_column,
    optional_vector,
    response_values,
    used_columns,
)
from ..errors import (
    ConvergenceWarning,
    DataError,
    DroppedRowsWarning,
    FormulaError,
    RankDeficiencyWarning,
    SingularFitWarning,
    warn,
)
from ..formula.parse import ParsedFormula, parse_formula
from ..engine.control import DEFAULT_CONTROL, Control, resolve_control
from ..formula.safety import check_formula
from ..engine.lmm import LinearMixedModel
from ..engine.optimizer import OptimumReport
from ..inference.prediction import fitted_linear_predictor, linear_predictor
from ..results.lmer import LmerResult, MixedModelResult
from ..runtime.threads import fitting_threads
from ..design.reterm import ReTerm, TermSet

__all__ = ["lmer_dask", "DaskLmerResult", "CrossproductLMM", "is_dask_dataframe"]

_SPLIT_EVERY = 8  # fan-in of the tree that adds the partitions' crossproducts
_ALIAS_TOLERANCE = 1e-7  # as design._drop_aliased: relative norm of a column's residual


def is_dask_dataframe(data: object) -> bool:
    """Whether ``data`` is a Dask DataFrame (checked without importing dask)."""
    module = type(data).__module__
    return module.startswith(("dask.", "dask_expr")) and hasattr(data, "to_delayed") and hasattr(data, "columns")


# ----- the model on precomputed crossproducts --------------------------------------------

class CrossproductLMM(LinearMixedModel):
    """The profiled (RE)ML deviance from precomputed crossproducts (no rows, no Design).

    ``reterms`` are in formula order and need only their structure (levels, p,
    columns): codes and matrices may have zero rows.  ``crossprod`` must be built
    with the terms in this model's engine order (``TermSet(reterms).terms``) and
    [X y] (y minus any offset) as the last block; ``log_weights`` is Σ log wᵢ.
    """

    def __init__(self, reterms: tuple[ReTerm, ...], crossprod: Crossproducts, n: int, p: int,
                 REML: bool = True, log_weights: float = 0.0, control: Control = DEFAULT_CONTROL):
        TermSet.__init__(self, reterms)
        self.design = None
        self.reterms = tuple(reterms)
        self.REML = REML
        self.control = control
        self.crossprod = crossprod
        self._n, self._p = int(n), int(p)
        self._log_weights = float(log_weights)

    @property
    def n(self) -> int:
        return self._n

    @property
    def p(self) -> int:
        return self._p


class RandomEffectsOfComponents:
    """ranef, ranef_sd and coef of a Dask fit: from the factor at θ̂, no pass over the rows."""

    components: _Components

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects: grouping factor → levels × terms."""
        return self.components.ranef

    @property
    def ranef_sd(self) -> dict[str, pd.DataFrame]:
        """Conditional standard deviations of the random effects (lme4's condVar)."""
        return self.components.ranef_sd

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Per-level coefficients: fixed effects plus that level's random effects."""
        return self.components.coef


@dataclass
class DaskLmerResult(RandomEffectsOfComponents, InformationCriteria):
    """A linear mixed model fitted from crossproducts (Dask data): the estimates and the
    conditional modes; per-row quantities as lazy Dask Series over the fitted frame.

    Terms are reported in lme4's order (decreasing number of levels), as ``LmerResult``.
    ``data`` is the Dask frame fitted (the columns the model uses): its rows stay on
    the cluster.
    """

    formula: str
    REML: bool
    nobs: int
    n_dropped: int
    fixef: pd.Series
    vcov: pd.DataFrame
    sigma: float
    theta: np.ndarray
    theta_names: list[str]
    objective: float
    deviance: float
    varcorr: pd.DataFrame
    ngroups: dict[str, int]
    optimum: OptimumReport = field(repr=False)
    model: CrossproductLMM = field(repr=False)
    data: object = field(repr=False, compare=False)
    plan: _Plan = field(repr=False, compare=False)
    components: _Components = field(repr=False, compare=False)
    dropped_columns: tuple[str, ...] = ()

    @property
    def loglik(self) -> float:
        return -0.5 * self.objective

    @property
    def control(self) -> Control:
        """The settings the model was fitted with."""
        return self.model.control

    @property
    def df(self) -> int:
        return len(self.fixef) + len(self.theta) + 1

    def coefficients(self) -> pd.DataFrame:
        """Estimate, Std. Error, t value (lme4's summary table)."""
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se, "t value": self.fixef / self.se})

    # ----- per-row quantities: lazy, one pass over the rows each ----------------------------
    @cached_property
    def fitted(self):
        """Xβ̂ + Zb̂ (+ offset) for the rows used: a Dask Series indexed as ``data``."""
        return self._over_rows("fitted")

    @cached_property
    def residuals(self):
        """Response residuals y − fitted for the rows used: a Dask Series."""
        return self._over_rows("residuals")

    def scaled_residuals(self):
        """Pearson residuals divided by σ̂ (what lme4's summary tabulates): a Dask Series."""
        return self._over_rows("scaled residuals")

    def predict(self, newdata=None, re_form: str | None = None, allow_new_levels: bool = False,
                type: str = "response", offset: object = None):
        """Predictions as ``LmerResult.predict``: a Dask Series for the fitted rows (no newdata)
        or a Dask newdata (same index and divisions), a pandas Series for a pandas newdata.

        ``offset`` is a column of newdata (a vector too for a pandas newdata); it is
        required when the model was fitted with ``offset=``.  New levels in a Dask
        newdata raise their DataError when the predictions are computed.
        """
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', not {type!r}")
        if newdata is None:
            return self._over_rows("prediction", re_form)
        if self.plan.offset is not None and offset is None:
            raise DataError(f"the model was fitted with offset={self.plan.offset!r}; pass offset= "
                            "(a column of newdata) for newdata too")
        if not is_dask_dataframe(newdata):
            if not isinstance(newdata, pd.DataFrame):
                raise DataError(f"newdata must be a pandas or Dask DataFrame, not {newdata.__class__.__name__}")
            return _partition_prediction(newdata, self._rows, re_form, allow_new_levels, offset)
        if offset is not None and not isinstance(offset, str):
            raise DataError(f"offset must be a column name for Dask newdata, not {offset.__class__.__name__}")
        if offset is not None and offset not in newdata.columns:
            raise DataError(f"offset={offset!r} is not a column of newdata")
        # the checks that need no rows (columns, re_form) now, on an empty frame like newdata's
        _partition_prediction(_empty_probe(newdata), self._rows, re_form, allow_new_levels, offset)
        meta = pd.Series([], dtype=float, index=newdata._meta.index, name="prediction")
        return newdata.map_partitions(_partition_prediction, self._shipped[0], re_form, allow_new_levels, offset,
                                      meta=meta)

    _binomial = False  # whether the response may take glmer's binomial forms

    @cached_property
    def _rows(self) -> _RowModel:
        """The fit as ``prediction``'s functions read it."""
        return _row_model(self.plan, self.fixef, self.model, self.components._b)

    @cached_property
    def _shipped(self) -> tuple:
        """The row model and the plan as Dask graph entries: each enters a graph once."""
        import dask

        return dask.delayed(self._rows), dask.delayed(self.plan)

    def _over_rows(self, kind: str, re_form: str | None = None):
        """``kind`` ('fitted', 'residuals', 'scaled residuals', 'prediction') over the fitted rows."""
        if re_form is not None:  # a bad re_form raises now (on the plan's example row), not when computed
            _partition_prediction(self.plan.example, self._rows, re_form, False, None)
        meta = pd.Series([], dtype=float, index=self.data._meta.index, name=kind)
        rows, plan = self._shipped
        return self.data.map_partitions(_partition_rows, rows, plan, kind, re_form, self.sigma, self._binomial,
                                        meta=meta)

    def __repr__(self) -> str:
        kind = "REML" if self.REML else "maximum likelihood"
        return (f"<Linear mixed model fit by {kind} on Dask data: {self.formula}; nobs={self.nobs}, "
                f"objective={self.objective:.4f}>")


# ----- the fit ---------------------------------------------------------------------------

def lmer_dask(formula: str, ddf, REML: bool = True, weights: object = None, offset: object = None,
              maxeval: int | None = None, safe: bool = False, control: Control | None = None) -> DaskLmerResult:
    """Fit ``formula`` to the Dask DataFrame ``ddf`` as ``mm.lmer`` fits a pandas one
    (``control`` and its ``maxeval=`` shortcut as there).

    ``weights`` and ``offset`` are column names.  Computations run on the current
    Dask scheduler (a ``dask.distributed.Client`` when one is active); two passes
    over the data: the levels, then the crossproducts.
    """
    import dask

    ctl = resolve_control(control, maxeval)
    parsed, used, sub = _model_columns("lmer", formula, ddf, weights, offset, safe)
    plan = _plan(parsed, sub, used, weights, offset, dask)
    shipped = dask.delayed(plan)
    shift = _rough_shift(sub, plan)
    partials = [dask.delayed(_partition_crossproducts)(part, shipped, shift) for part in sub.to_delayed()]
    total = _tree(dask, partials, _add).compute()
    with fitting_threads():
        return _fit(parsed, plan, total, REML, ctl, sub, shift)


def _model_columns(kind: str, formula: str, ddf, weights, offset, safe: bool):
    """The parsed formula, the columns the model uses and ``ddf`` restricted to them (with the
    weights and offset columns), after the checks every fit on a Dask frame shares."""
    parsed = check_formula(formula) if safe else parse_formula(formula)
    if not parsed.random:
        raise FormulaError(f"{kind} needs at least one random-effects term such as (1 | group); "
                           "for a model without random effects use mixedmodels.lm", formula)
    if not parsed.response:
        raise FormulaError("the formula has no response on the left of '~'", parsed.text, 0)
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{what} must be a column name for Dask data, not {type(value).__name__}")
        if value is not None and value not in ddf.columns:
            raise DataError(f"{what}={value!r} is not a column of data")
    used = used_columns(parsed, pd.DataFrame(columns=ddf.columns))
    extra = [c for c in (weights, offset) if c is not None and c not in used]
    return parsed, used, ddf[used + extra]


# ----- planning: the global levels and the layout (any model on Dask frames) --------------

@dataclass(frozen=True)
class _Plan:
    """What every partition needs: the formula, the global levels and the terms' layout."""

    parsed: ParsedFormula
    used: tuple[str, ...]
    weights: str | None
    offset: str | None
    categories: dict  # column → (levels, ordered): non-numeric columns become these Categoricals
    groups: dict  # group tuple → (levels of each column, sorted keys of the used combinations or None)
    labels: dict  # group tuple → level labels (pd.Index)
    xnames: tuple[str, ...]  # every column of X, before aliased ones are dropped
    fixed_spec: object  # formulaic ModelSpec of the fixed part, for replaying on new rows
    bars: tuple  # per random term in formula order: (bar index, column indices, column names)
    reterms: tuple[ReTerm, ...]  # the terms' structure in formula order (no rows), with their specs
    order: tuple[int, ...]  # the engine's order of the terms
    example: pd.DataFrame  # one row of the used columns coded as the fit codes them


def _plan(parsed: ParsedFormula, sub, used: list[str], weights, offset, dask) -> _Plan:
    """The global levels (one pass over the complete rows) and the layout of X and the terms."""
    dtypes = sub.dtypes
    group_columns = list(dict.fromkeys(g for bar in parsed.random for g in bar.group))
    level_columns = [c for c in used if not pd.api.types.is_numeric_dtype(dtypes[c])
                     and not pd.api.types.is_bool_dtype(dtypes[c])]
    single = list(dict.fromkeys(level_columns + group_columns))
    multi = list(dict.fromkeys(bar.group for bar in parsed.random if len(bar.group) > 1))
    wanted = [[c] for c in single] + [list(g) for g in multi]
    found = _tree(dask, [dask.delayed(_partition_values)(part, wanted) for part in sub.to_delayed()],
                  _merge_values).compute()
    found = [f.iloc[:, 0] if len(cols) == 1 else f for f, cols in zip(found, wanted)]
    levels = {c: _global_levels(values, sub[c]) for c, values in zip(single, found)}
    if any(len(lv) == 0 for lv in levels.values()):  # every grouping factor has a level in a complete row
        raise DataError("no complete rows: every row has a missing value in one of "
                        + ", ".join(repr(c) for c in used))
    categories = {c: (levels[c], bool(getattr(dtypes[c], "ordered", False))) for c in level_columns}
    groups, labels = {}, {}
    for bar in parsed.random:
        g = bar.group
        if g in groups:
            continue
        per = [levels[c] for c in g]
        if len(g) == 1:
            groups[g] = (per, None)
            labels[g] = pd.Index(np.asarray(per[0].astype(str)), name=g[0])
            continue
        combos = found[len(single) + multi.index(g)]
        keys = np.unique(_mixed_radix(combos, g, per))
        groups[g] = (per, keys)
        labels[g] = pd.Index(_combo_labels(keys, per), name=":".join(g))
    proto = _prototype(sub, used, categories, levels)
    fixed, xnames = evaluate(parsed.fixed, proto, "the fixed part", checked=parsed.checked)
    _no_stateful_transforms(fixed, parsed.fixed)
    bars, reterms = [], []
    for b, bar in enumerate(parsed.random):
        mat, names = evaluate(bar.expr, proto, f"the random-effects term ({bar.expr} | {bar.group_name}), left part",
                              checked=parsed.checked)
        _no_stateful_transforms(mat, bar.expr)
        if not names:
            raise FormulaError(f"the random-effects term ({bar.expr} | {bar.group_name}) has no columns")
        pieces = [tuple(range(len(names)))] if bar.correlated else [(j,) for j in range(len(names))]
        for idx in pieces:
            columns = tuple(names[j] for j in idx)
            bars.append((b, idx, columns))
            reterms.append(ReTerm(group=bar.group_name, codes=np.zeros(0, dtype=np.int64), levels=labels[bar.group],
                                  matrix=np.zeros((0, len(columns))), columns=columns, expr=bar.expr,
                                  group_columns=bar.group, spec=mat.model_spec, column_index=idx))
    order = tuple(TermSet(tuple(reterms)).order)
    return _Plan(parsed=parsed, used=tuple(used), weights=weights, offset=offset, categories=categories,
                 groups=groups, labels=labels, xnames=tuple(xnames), fixed_spec=fixed.model_spec,
                 bars=tuple(bars), reterms=tuple(reterms), order=order, example=proto.iloc[:1])


def _tree(dask, parts: list, combine):
    """The partitions' results combined in a tree of fan-in _SPLIT_EVERY: one delayed object."""
    while len(parts) > 1:
        parts = [dask.delayed(combine)(*parts[i:i + _SPLIT_EVERY]) for i in range(0, len(parts), _SPLIT_EVERY)]
    return parts[0] if parts else dask.delayed(combine)()


def _partition_values(part: pd.DataFrame, wanted: list[list[str]]) -> list[pd.DataFrame]:
    """The distinct values (rows) of each column group among the partition's complete rows."""
    complete = part.dropna()
    return [complete[cols].drop_duplicates() for cols in wanted]


def _merge_values(*found: list[pd.DataFrame]) -> list[pd.DataFrame]:
    return [pd.concat(frames).drop_duplicates() for frames in zip(*found)]


def _global_levels(values, column) -> pd.Index:
    """Levels in an in-memory fit's order: a categorical's (known) category order, else sorted."""
    present = pd.Series(values).dropna()
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype) and getattr(column.cat, "known", True):
        seen = set(present.astype(object))
        undeclared = sorted(map(str, seen - set(dtype.categories)))
        if undeclared:
            raise DataError(
                f"the categorical column {column.name!r} has values ({', '.join(undeclared[:5])}) that its declared "
                f"categories ({', '.join(map(str, dtype.categories[:5]))}) lack, so they would be coded as "
                "missing; declare every category (.cat.set_categories) or call .categorize() on the data"
            )
        return pd.Index([c for c in dtype.categories if c in seen])
    if isinstance(present.dtype, pd.CategoricalDtype):  # categories unknown to Dask: sort the values
        present = present.astype(object)
    return pd.Index(pd.unique(present)).sort_values()


def _mixed_radix(frame: pd.DataFrame, group: tuple[str, ...], per: list[pd.Index]) -> np.ndarray:
    """Keys of a:b combinations, first factor slowest (as design.grouping_factor)."""
    key = np.zeros(len(frame), dtype=np.int64)
    for name, lv in zip(group, per):
        codes = pd.Categorical(frame[name], categories=lv).codes.astype(np.int64)
        if np.any(codes < 0):
            raise DataError(f"a value of {name!r} is not among its levels found in the data")
        key = key * len(lv) + codes
    return key


def _combo_labels(keys: np.ndarray, per: list[pd.Index]) -> np.ndarray:
    parts, rest = [], keys.copy()
    for lv in reversed(per):
        parts.append(np.asarray(lv.astype(str))[rest % len(lv)])
        rest //= len(lv)
    return np.array([":".join(p) for p in zip(*reversed(parts))], dtype=object)


def _prototype(sub, used, categories, levels) -> pd.DataFrame:
    """A few rows with the data's columns and every level, to find the columns of X and of each term."""
    k = max([2] + [len(lv) for lv in levels.values()])
    meta = sub._meta if hasattr(sub, "_meta") else sub.head(0)
    out = {}
    for c in used:
        if c in categories:
            lv, ordered = categories[c]
            out[c] = pd.Categorical(np.asarray(lv, dtype=object)[np.arange(k) % len(lv)], categories=lv,
                                    ordered=ordered)
        elif pd.api.types.is_bool_dtype(meta[c].dtype):
            out[c] = np.arange(k) % 2 == 1
        elif pd.api.types.is_numeric_dtype(meta[c].dtype):
            out[c] = np.linspace(1.0, 2.0, k).astype(meta[c].dtype) if meta[c].dtype.kind == "f" else np.arange(1, k + 1)
        else:
            out[c] = np.asarray(levels[c], dtype=object)[np.arange(k) % len(levels[c])]
    return pd.DataFrame(out)


def _no_stateful_transforms(matrix, expr: str) -> None:
    state = getattr(matrix.model_spec, "transform_state", None)
    if state:
        raise FormulaError(
            f"{expr!r} uses stateful transforms ({', '.join(map(str, state))}), which would be computed per "
            "partition of Dask data; add the transformed column to the data first")


# ----- per partition ---------------------------------------------------------------------

def _complete_rows(part: pd.DataFrame, plan: _Plan):
    """The partition's complete rows of the used columns, factors coded by the global levels,
    with their weights and offset columns (None when not given) and the mask of complete rows."""
    used = list(plan.used)
    absent = [c for c in used if c not in part.columns]
    if absent:
        raise DataError(f"a partition of the data lacks the column(s) {', '.join(map(repr, absent))} that the "
                        "model uses; every partition needs the same columns")
    w = optional_vector(plan.weights, part, "weights")
    o = optional_vector(plan.offset, part, "offset")
    complete = ~part[used].isna().any(axis=1).to_numpy()
    for vec in (w, o):
        if vec is not None:
            complete &= ~np.isnan(vec)
    frame = part.loc[complete, used].copy()
    for c, (lv, ordered) in plan.categories.items():
        frame[c] = pd.Categorical(frame[c], categories=lv, ordered=ordered)
    return frame, None if w is None else w[complete], None if o is None else o[complete], complete


def _binary_response(frame: pd.DataFrame, plan: _Plan) -> pd.DataFrame:
    """A factor response as 0/1, the second of the data's two levels a success (as in memory,
    where the levels are the whole data's, not the partition's)."""
    name = plan.parsed.response.strip()
    if name not in plan.categories:
        return frame
    frame = frame.copy()
    frame[name] = (frame[name].cat.codes == 1).astype(float)
    return frame


def _partition_arrays(frame: pd.DataFrame, w, o, plan: _Plan, binomial: bool = False):
    """y, X (every column of plan.xnames), the checked weights (times the trials of a binomial
    response, as build_design), the total offset and the terms (formula order, codes against
    the global levels) of complete rows.  A binomial factor response is 0/1 by the data's two
    levels (the second a success), not by those a partition happens to hold."""
    if binomial:
        frame = _binary_response(frame, plan)
    y, trials = response_values(plan.parsed, frame, binomial)
    mat, xnames = evaluate(plan.parsed.fixed, frame, "the fixed part", checked=plan.parsed.checked)
    if tuple(xnames) != plan.xnames:
        raise DataError(
            f"a partition's fixed-effects columns ({', '.join(xnames)}) differ from the data's "
            f"({', '.join(plan.xnames)}); make factors categorical columns of the data instead of "
            "converting them in the formula")
    X = mat.to_numpy(dtype=float)
    for j, name in enumerate(xnames):
        check_finite(X[:, j], name)
    if w is not None and (np.any(w <= 0) or not np.all(np.isfinite(w))):
        raise DataError("weights must be finite and positive")
    if trials is not None:
        w = trials if w is None else w * trials
    if o is not None and not np.all(np.isfinite(o)):
        raise DataError("offset must be finite")
    for expr in plan.parsed.offsets:
        term = numeric_column(expr, frame, "the offset", plan.parsed.checked)
        o = term if o is None else o + term
    terms, matrices = [], {}
    for b, idx, columns in plan.bars:
        bar = plan.parsed.random[b]
        if b not in matrices:
            m, names = evaluate(bar.expr, frame,
                                f"the random-effects term ({bar.expr} | {bar.group_name}), left part",
                                checked=plan.parsed.checked)
            Xi = m.to_numpy(dtype=float)
            for j, name in enumerate(names):
                check_finite(Xi[:, j], name)
            matrices[b] = (Xi, names)
        Xi, names = matrices[b]
        if tuple(names[j] for j in idx) != columns:
            raise DataError(f"a partition's columns of the term ({bar.expr} | {bar.group_name}) differ "
                            "from the data's; make factors categorical columns of the data")
        terms.append(ReTerm(group=bar.group_name, codes=_codes(frame, bar.group, plan),
                            levels=plan.labels[bar.group], matrix=np.ascontiguousarray(Xi[:, list(idx)]),
                            columns=columns, expr=bar.expr, group_columns=bar.group))
    return y, X, w, o, tuple(terms)


def _rough_shift(sub, plan: _Plan) -> np.ndarray:
    """b over X's columns that centres the response: the first rows' mean response in the
    intercept's place (zeros without an intercept).  The partitions' crossproducts are of
    y − Xb, so the cancellation ``crossprod.shift_response`` avoids is avoided here too."""
    b = np.zeros(len(plan.xnames))
    if "(Intercept)" in plan.xnames:
        with warnings.catch_warnings():  # a first partition of under 1,000 rows is fine
            warnings.filterwarnings("ignore", "Insufficient elements", UserWarning)
            first = sub.head(1000, npartitions=1, compute=True)
        frame, w, o, _ = _complete_rows(first, plan)
        if not frame.empty:
            y, _, _, o, _ = _partition_arrays(frame, w, o, plan)
            b[plan.xnames.index("(Intercept)")] = float(np.mean(y if o is None else y - o))
    return b


def _partition_crossproducts(part: pd.DataFrame, plan: _Plan, shift: np.ndarray) -> dict:
    """One partition's blocks of A for the response y − X·shift (terms in the engine order,
    off-diagonal blocks sparse) and counts."""
    frame, w, o, complete = _complete_rows(part, plan)
    out = {"n": int(complete.sum()), "n_dropped": int((~complete).sum()), "missing": _missing_columns(part, plan),
           "log_weights": 0.0, "A": None}
    if frame.empty:
        return out
    y, X, w, o, terms = _partition_arrays(frame, w, o, plan)
    if w is not None:
        out["log_weights"] = float(np.log(w).sum())
    engine = tuple(terms[i] for i in plan.order)
    yo = (y if o is None else y - o) - X @ shift
    A = CrossproductBuilder(engine)(np.column_stack([X, yo]), w)
    out["A"] = Crossproducts(diag=A.diag, off=tuple(tuple(sp.csr_matrix(B) for B in row) for row in A.off),
                             xz=A.xz, xx=A.xx)
    return out


def _missing_columns(part: pd.DataFrame, plan: _Plan) -> set[str]:
    """The used columns (and 'weights', 'offset') with a missing value in the partition."""
    missing = {c for c in plan.used if part[c].isna().any()}
    for name, column in (("weights", plan.weights), ("offset", plan.offset)):
        if column is not None and part[column].isna().any():
            missing.add(name)
    return missing


def _codes(frame: pd.DataFrame, group: tuple[str, ...], plan: _Plan) -> np.ndarray:
    per, keys = plan.groups[group]
    if keys is None:
        codes = pd.Categorical(frame[group[0]], categories=per[0]).codes.astype(np.int64)
        if np.any(codes < 0):
            raise DataError(f"a value of {group[0]!r} is not among its levels found in the data")
        return codes
    key = _mixed_radix(frame, group, per)
    pos = np.searchsorted(keys, key)
    if np.any(pos >= len(keys)) or np.any(keys[np.minimum(pos, len(keys) - 1)] != key):
        raise DataError(f"a combination of {':'.join(group)} is not among those found in the data")
    return pos.astype(np.int64)


def _add(*partials: dict) -> dict:
    """The sum of partitions' crossproducts and counts."""
    out = {"n": 0, "n_dropped": 0, "missing": set(), "log_weights": 0.0, "A": None}
    for part in partials:
        out["n"] += part["n"]
        out["n_dropped"] += part["n_dropped"]
        out["missing"] |= part["missing"]
        out["log_weights"] += part["log_weights"]
        a, b = out["A"], part["A"]
        if b is None:
            continue
        out["A"] = b if a is None else add_crossproducts([a, b])
    return out


@dataclass(frozen=True)
class _RowModel:
    """What ``prediction.linear_predictor`` and ``fitted_linear_predictor`` read of a fit, without
    crossproducts or factor: the specs, β̂ and the modes b (ℓ × p per term), small enough to go
    to every partition."""

    parsed: ParsedFormula
    design: SimpleNamespace  # model_spec, kept_columns, reterms, frame (one example row), offset (None)
    model: SimpleNamespace  # terms: the engine order, as _b (with a partition's codes for its fitted values)
    fixef: pd.Series
    _b: list[np.ndarray]


def _row_model(plan: _Plan, fixef: pd.Series, model: CrossproductLMM, b: list[np.ndarray]) -> _RowModel:
    """The row model of a fit: the offset column is passed explicitly, so design.offset is None."""
    kept = tuple(plan.xnames.index(name) for name in fixef.index)
    design = SimpleNamespace(model_spec=plan.fixed_spec, kept_columns=kept, reterms=plan.reterms,
                             frame=plan.example, offset=None)
    return _RowModel(parsed=plan.parsed, design=design, model=SimpleNamespace(terms=model.terms), fixef=fixef,
                     _b=list(b))


def _partition_rows(part: pd.DataFrame, rows: _RowModel, plan: _Plan, kind: str, re_form: str | None,
                    sigma: float, binomial: bool = False) -> pd.Series:
    """Per-row values of the partition's complete rows: 'fitted' or 'prediction' (η with the
    random effects re_form names), 'residuals' (y − η), 'scaled residuals' (√w (y − η) / σ)."""
    frame, y, w, eta = partition_fit(part, rows, plan, re_form, binomial)
    values = eta
    if kind in ("residuals", "scaled residuals"):
        values = y - values
    if kind == "scaled residuals":
        values = values / sigma if w is None else values * np.sqrt(w) / sigma
    return pd.Series(values, index=frame.index, name=kind, dtype=float)


def partition_fit(part: pd.DataFrame, rows: _RowModel, plan: _Plan, re_form: str | None = None,
                  binomial: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None, np.ndarray]:
    """The partition's complete rows, their response, prior weights and η.

    η comes from ``prediction.fitted_linear_predictor``, as ``predict()`` computes it
    in memory: from X and the terms' codes built as for the crossproducts, with the
    random effects re_form names.  ``binomial`` reads the response as glmer's binomial fit does.
    """
    frame, w, o, _ = _complete_rows(part, plan)
    if frame.empty:
        return frame, np.zeros(0), None, np.zeros(0)
    y, X, w, o, terms = _partition_arrays(frame, w, o, plan, binomial)
    design = SimpleNamespace(**vars(rows.design))
    design.X, design.offset = X[:, list(design.kept_columns)], o
    fit = replace(rows, design=design, model=SimpleNamespace(terms=tuple(terms[i] for i in plan.order)))
    return frame, y, w, fitted_linear_predictor(fit, re_form)


def _partition_prediction(part: pd.DataFrame, rows: _RowModel, re_form: str | None, allow_new_levels: bool,
                          offset: object) -> pd.Series:
    """``LmerResult.predict`` on one frame; ``offset`` a column name of it or a vector."""
    part = _plain_strings(part)
    if isinstance(offset, str):
        if offset not in part.columns:
            raise DataError(f"offset={offset!r} is not a column of newdata")
        offset = part[offset].to_numpy(dtype=float, na_value=np.nan)
    eta = linear_predictor(rows, part, re_form, allow_new_levels, offset)
    return pd.Series(eta, index=part.index, name="prediction")


def _plain_strings(part: pd.DataFrame) -> pd.DataFrame:
    """String columns with pd.NA (Dask makes every string column one) as objects with NaN:
    formulaic takes them for numbers, and a pandas newdata's strings are objects or ``str``."""
    nullable = [c for c in part.columns
                if isinstance(part[c].dtype, pd.StringDtype) and part[c].dtype.na_value is pd.NA]
    if not nullable:
        return part
    part = part.copy()
    for c in nullable:
        part[c] = part[c].astype(object).where(part[c].notna(), np.nan)
    return part


def _empty_probe(ddf) -> pd.DataFrame:
    """An empty frame with ddf's columns, categoricals as objects (Dask may not know their categories)."""
    meta = ddf._meta.copy()
    for c in meta.columns:
        if isinstance(meta[c].dtype, pd.CategoricalDtype):
            meta[c] = meta[c].astype(object)
    return meta


# ----- on the client ---------------------------------------------------------------------

def _fit(parsed: ParsedFormula, plan: _Plan, total: dict, REML: bool, control: Control, data,
         shift: np.ndarray) -> DaskLmerResult:
    n, A = total["n"], total["A"]
    keep = _kept_columns(plan, n, total["n_dropped"], total["missing"], None if A is None else A.xx[:-1, :-1])
    dropped = tuple(name for j, name in enumerate(plan.xnames) if j not in keep)
    rows = np.array(keep + [len(plan.xnames)])
    A = shift_response(Crossproducts(diag=A.diag, off=tuple(tuple(_final_format(B) for B in row) for row in A.off),
                                     xz=tuple(B[rows] for B in A.xz), xx=A.xx[np.ix_(rows, rows)],
                                     beta_shift=shift[keep]))
    xnames = [plan.xnames[j] for j in keep]
    check_groups(SimpleNamespace(reterms=plan.reterms, n=n))
    model = CrossproductLMM(plan.reterms, A, n, len(keep), REML=REML, log_weights=total["log_weights"],
                            control=control)
    report = model.fit()
    return _result(parsed, plan, model, report, xnames, total["n_dropped"], dropped, data)


def _kept_columns(plan: _Plan, n: int, n_dropped: int, missing: set[str], xx: np.ndarray | None) -> list[int]:
    """The columns of X kept, from the summed counts and a crossproduct XᵀWX of X (W > 0):
    an error without complete rows, warnings for rows left out and for aliased columns."""
    if n == 0:
        raise DataError("no complete rows: every row has a missing value in one of "
                        + ", ".join(repr(c) for c in plan.used))
    if n_dropped:
        warn(f"{n_dropped} of {n + n_dropped} rows have missing values (in "
             f"{', '.join(map(repr, sorted(missing)))}) and were left out", DroppedRowsWarning)
    keep = _independent_columns(xx)
    dropped = [name for j, name in enumerate(plan.xnames) if j not in keep]
    if dropped:
        warn("fixed-effect model matrix is rank deficient; dropping aliased column(s) "
             + ", ".join(repr(d) for d in dropped), RankDeficiencyWarning)
    return keep


def _independent_columns(xx: np.ndarray) -> list[int]:
    """Columns of X kept by design._drop_aliased, found from XᵀX: each column's residual
    norm after projection on the kept ones, relative to its norm, must exceed 1e-7."""
    keep: list[int] = []
    L = np.zeros((0, 0))
    for j in range(xx.shape[0]):
        norm2 = xx[j, j]
        if norm2 <= 0:
            continue
        v = np.linalg.solve(L, xx[keep, j]) if keep else np.zeros(0)
        r2 = norm2 - v @ v
        if r2 > (_ALIAS_TOLERANCE**2) * norm2:
            r = np.sqrt(r2)
            L = np.block([[L, np.zeros((len(keep), 1))], [v[None, :], np.array([[r]])]])
            keep.append(j)
    return keep


def _final_format(B):
    """An off-diagonal block as the in-memory builder stores it: dense beyond its fill threshold."""
    B = sp.csr_matrix(B)
    B.sum_duplicates()
    if B.nnz > CrossproductBuilder.DENSE_FILL * B.shape[0] * B.shape[1]:
        return B.toarray()
    B.sort_indices()
    return B


class _Components:
    """What ``MixedModelResult``'s variance-component and random-effect properties read,
    without rows: they are borrowed from results.py, so that θ, its names, VarCorr, the
    groups and the conditional modes are computed and reported alike."""

    has_residual_row = True

    def __init__(self, model: CrossproductLMM, theta_engine: np.ndarray, factor, sigma: float, fixef: pd.Series):
        self.model, self._theta_engine, self._factor, self.sigma = model, theta_engine, factor, sigma
        self.fixef = fixef
        self._public = model.lme4_order
        self._engine_index = model.engine_position

    @property
    def reterms(self) -> list[ReTerm]:
        return [self.model.reterms[i] for i in self._public]

    _engine = MixedModelResult._engine
    term_groups = MixedModelResult.term_groups
    theta = MixedModelResult.theta
    theta_names = MixedModelResult.theta_names
    ngroups = MixedModelResult.ngroups
    covariances = MixedModelResult.covariances
    varcorr = MixedModelResult.varcorr
    is_singular = MixedModelResult.is_singular
    _u = LmerResult._u
    _b = MixedModelResult._b
    _condvar = MixedModelResult._condvar
    ranef = MixedModelResult.ranef
    ranef_sd = MixedModelResult.ranef_sd
    coef = MixedModelResult.coef


def _result(parsed: ParsedFormula, plan: _Plan, model: CrossproductLMM, report: OptimumReport, xnames: list[str],
            n_dropped: int, dropped: tuple[str, ...], data) -> DaskLmerResult:
    L = model.factor(report.x)
    p, n = model.p, model.n
    sigma = float(L.r / np.sqrt(n - p if model.REML else n))
    fixef = pd.Series(L.beta(), index=xnames, name="Estimate")
    parts = _Components(model, report.x, L, sigma, fixef)
    _fit_warnings(report, parts)
    return DaskLmerResult(
        formula=parsed.text, REML=model.REML, nobs=n, n_dropped=n_dropped, fixef=fixef,
        vcov=pd.DataFrame(sigma**2 * L.beta_precision_inverse(), index=xnames, columns=xnames),
        sigma=sigma, theta=parts.theta, theta_names=parts.theta_names, objective=float(report.fun),
        deviance=float(model.objective(report.x, REML=False)), varcorr=parts.varcorr, ngroups=parts.ngroups,
        optimum=report, model=model, data=data, plan=plan, components=parts, dropped_columns=dropped,
    )


def _fit_warnings(report: OptimumReport, parts: _Components) -> None:
    """A ConvergenceWarning or SingularFitWarning, as a fitted in-memory model issues."""
    if not report.converged:
        warn(f"model failed to converge: {report.message}", ConvergenceWarning)
    if parts.is_singular():
        warn("boundary (singular) fit: a random-effect variance is (near) zero or a "
             "correlation is ±1; see the guide on singular fits", SingularFitWarning)
