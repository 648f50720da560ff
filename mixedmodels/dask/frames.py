"""The Dask backend of the design builder: the model's spec from the whole data, rows per partition.

Any model on a Dask frame starts here.  ``model_columns`` runs the formula's checks
and selects the columns; ``plan_spec`` finds, in one pass over the complete rows,
the levels of every factor and grouping factor the formula uses — the levels of the
whole data, in the order an in-memory fit gives them — and evaluates the formula on
a few prototype rows for the spec (``design.build.specify``, as ``build_design``).
Each partition is then read by ``read_partition`` and turned into the model's
numbers by ``design.build.model_rows`` with that spec, so that every partition's
factors are coded alike and no column or level is dropped per partition.
``kept_spec`` reports dropped rows and aliased columns from summed counts and XᵀX,
with the in-memory builder's functions.

Per-row quantities of a fitted model (fitted values, residuals, predictions) are
computed per partition by the fit's ``Predictor`` (``inference.prediction``), which
enters the task graph once; :class:`LazyRows` gives a Dask result those quantities
as lazy Dask Series.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..design.build import (
    check_column,
    complete_cases,
    evaluate_parts,
    grouping_columns,
    kept_columns,
    level_columns,
    missing_columns,
    mixed_formula,
    model_rows,
    no_complete_rows,
    optional_vector,
    report_dropped,
    specify,
    used_columns,
)
from ..design.reterm import ReTerm
from ..design.spec import Factor, GroupingFactor, ModelSpec
from ..errors import DataError, FormulaError, type_name
from ..formula.parse import ParsedFormula, with_dot_expanded
from ..inference.prediction import Predictor
from ..linalg.crossprod import CrossproductBuilder

SPLIT_EVERY = 8  # fan-in of the trees that add up the partitions' results


def is_dask_dataframe(data: object) -> bool:
    """Whether ``data`` is a Dask DataFrame (checked without importing dask)."""
    module = type(data).__module__
    return module.startswith(("dask.", "dask_expr")) and hasattr(data, "to_delayed") and hasattr(data, "columns")


def tree(dask, parts: list, combine):
    """The partitions' results combined in a tree of fan-in SPLIT_EVERY: one delayed object."""
    while len(parts) > 1:
        parts = [dask.delayed(combine)(*parts[i:i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0] if parts else dask.delayed(combine)()


# ----- the spec: one pass over the data -------------------------------------------------------

@dataclass(frozen=True)
class ModelColumns:
    """What a Dask fit reads: the parsed formula, the columns it uses, the weights and offset
    columns (names), and the Dask frame restricted to them."""

    parsed: ParsedFormula
    used: list[str]
    weights: str | None
    offset: str | None
    frame: Any  # a dask.dataframe.DataFrame


def model_columns(kind: str, formula: str, ddf: Any, weights: object, offset: object, safe: bool) -> ModelColumns:
    """The formula parsed and the columns checked as every fit checks them; weights and offset
    must name columns (the rows stay on the workers)."""
    parsed = with_dot_expanded(mixed_formula(kind, formula, safe), list(map(str, ddf.columns)))
    names = [_column_argument(value, what, ddf.columns) for what, value in (("weights", weights), ("offset", offset))]
    used = used_columns(parsed, ddf.columns)
    extra = [c for c in names if c is not None and c not in used]
    return ModelColumns(parsed, used, names[0], names[1], ddf[used + extra])


def _column_argument(value: object, what: str, columns: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{what} must be a column name for Dask data, not {type_name(value)}")
    check_column(value, columns, what)
    return value


def plan_spec(parsed: ParsedFormula, sub, used: list[str], weights: str | None, offset: str | None,
              binomial: bool, dask) -> ModelSpec:
    """The spec of the model on the whole of ``sub``: the global levels (one pass over the
    complete rows), then the columns of X and of each term from a few prototype rows."""
    dtypes = sub.dtypes
    factor_columns = level_columns(used, dtypes)
    groups = grouping_columns(parsed)
    single = list(dict.fromkeys(factor_columns + [c for g in groups for c in g]))
    multi = [g for g in groups if len(g) > 1]
    wanted = [[c] for c in single] + [list(g) for g in multi]
    found = tree(dask, [dask.delayed(_distinct_values)(part, wanted) for part in sub.to_delayed()],
                 _merge_values).compute()
    for c, values in zip(single, found):
        _declared(values.iloc[:, 0], dtypes[c], _known(sub[c]), c)
    factors = {c: Factor.of(values.iloc[:, 0], dtypes[c], known=_known(sub[c])) for c, values in zip(single, found)}
    if any(len(f.levels) == 0 for f in factors.values()):  # every grouping factor has a level in a complete row
        raise no_complete_rows(used)
    groupings = {g: GroupingFactor.of(found[len(single) + multi.index(g)] if len(g) > 1 else found[single.index(g[0])],
                                      g, tuple(factors[c] for c in g)) for g in groups}
    proto = _prototype(sub, used, {c: factors[c] for c in factor_columns}, factors)
    parts = evaluate_parts(parsed, proto, binomial)
    _no_stateful_transforms(parts.fixed_spec, parsed.fixed)
    for bar, (_, _, bar_spec) in zip(parsed.random, parts.bars):
        _no_stateful_transforms(bar_spec, bar.expr)
    return specify(parsed, parts, groupings, {c: factors[c] for c in factor_columns}, used, weights, offset,
                   proto.iloc[:1])


def _declared(values: pd.Series, dtype: object, known: bool, name: str) -> None:
    """A categorical's values must be among its declared categories, or they would be coded as missing."""
    if not (isinstance(dtype, pd.CategoricalDtype) and known):
        return
    undeclared = sorted(map(str, set(values.dropna().astype(object)) - set(dtype.categories)))
    if undeclared:
        raise DataError(
            f"the categorical column {name!r} has values ({', '.join(undeclared[:5])}) that its declared "
            f"categories ({', '.join(map(str, dtype.categories[:5]))}) lack, so they would be coded as "
            "missing; declare every category (.cat.set_categories) or call .categorize() on the data"
        )


def _known(column) -> bool:
    """Whether Dask knows a categorical column's categories."""
    return bool(getattr(getattr(column, "cat", None), "known", True)) if isinstance(column.dtype, pd.CategoricalDtype) \
        else True


def _distinct_values(part: pd.DataFrame, wanted: list[list[str]]) -> list[pd.DataFrame]:
    """The distinct values (rows) of each column group among the partition's complete rows."""
    complete = part.dropna()
    return [complete[cols].drop_duplicates() for cols in wanted]


def _merge_values(*found: list[pd.DataFrame]) -> list[pd.DataFrame]:
    return [pd.concat(frames).drop_duplicates() for frames in zip(*found)]


def _prototype(sub, used: list[str], factors: dict[str, Factor], levels: dict[str, Factor]) -> pd.DataFrame:
    """A few rows with the data's columns and every level, to find the columns of X and of each term."""
    k = max([2] + [len(f.levels) for f in levels.values()])
    meta = sub._meta
    out = {}
    for c in used:
        if c in factors:
            lv = factors[c].levels
            out[c] = pd.Categorical(np.asarray(lv, dtype=object)[np.arange(k) % len(lv)], categories=lv,
                                    ordered=factors[c].ordered)
        elif pd.api.types.is_bool_dtype(meta[c].dtype):
            out[c] = np.arange(k) % 2 == 1
        elif pd.api.types.is_numeric_dtype(meta[c].dtype):
            out[c] = np.linspace(1.0, 2.0, k).astype(meta[c].dtype) if meta[c].dtype.kind == "f" else np.arange(1, k + 1)
        else:
            out[c] = np.asarray(levels[c].levels, dtype=object)[np.arange(k) % len(levels[c].levels)]
    return pd.DataFrame(out)


def _no_stateful_transforms(spec, expr: str) -> None:
    state = getattr(spec, "transform_state", None)
    if state:
        raise FormulaError(
            f"{expr!r} uses stateful transforms ({', '.join(map(str, state))}), which would be computed per "
            "partition of Dask data; add the transformed column to the data first")


def structural_terms(spec: ModelSpec) -> tuple[ReTerm, ...]:
    """The spec's terms without rows (levels, columns): all the engine needs of them beside the sums."""
    return tuple(t.term(np.zeros(0, dtype=np.int64), np.zeros((0, len(t.columns)))) for t in spec.terms)


def kept_spec(spec: ModelSpec, n: int, n_dropped: int, missing: set[str], xx: np.ndarray | None) -> ModelSpec:
    """The spec with the columns of X kept, from the summed counts and a crossproduct XᵀWX of X
    (W > 0): as ``build_design``, an error without complete rows, warnings for rows left out
    and for aliased columns."""
    report_dropped(n_dropped, n + n_dropped, missing, spec.used)
    if xx is None:  # no complete rows: report_dropped has said so
        raise no_complete_rows(list(spec.used))
    return replace(spec, kept=kept_columns(xx, spec.xnames))


def final_format(B):
    """An off-diagonal block as the in-memory builder stores it: dense beyond its fill threshold."""
    B = sp.csr_matrix(B)
    B.sum_duplicates()
    if B.nnz > CrossproductBuilder.DENSE_FILL * B.shape[0] * B.shape[1]:
        return B.toarray()
    B.sort_indices()
    return B


# ----- per partition ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionFrame:
    """A partition's complete rows of the used columns, factors coded by the spec's levels."""

    frame: pd.DataFrame
    weights: np.ndarray | None  # the weights column of the complete rows
    offset: np.ndarray | None
    n_dropped: int
    missing: tuple[str, ...]  # the columns with a missing value


def read_partition(part: pd.DataFrame, spec: ModelSpec) -> PartitionFrame:
    """The partition's complete rows as ``build_design`` selects them, coded by the spec's levels."""
    used = list(spec.used)
    absent = [c for c in used if c not in part.columns]
    if absent:
        raise DataError(f"a partition of the data lacks the column(s) {', '.join(map(repr, absent))} that the "
                        "model uses; every partition needs the same columns")
    w = optional_vector(spec.weights, part, "weights")
    o = optional_vector(spec.offset, part, "offset")
    complete = complete_cases(part, used, w, o)
    frame = part.loc[complete, used].copy()
    for c, factor in spec.factors.items():
        frame[c] = pd.Categorical(frame[c], categories=factor.levels, ordered=factor.ordered)
    n_dropped = int((~complete).sum())
    return PartitionFrame(frame=frame, weights=None if w is None else w[complete],
                          offset=None if o is None else o[complete], n_dropped=n_dropped,
                          missing=tuple(missing_columns(part, used, w, o)) if n_dropped else ())


def partition_fit(part: pd.DataFrame, predictor: Predictor, re_form: str | None = None,
                  binomial: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None, np.ndarray]:
    """The partition's complete rows, their response, prior weights and η with the random
    effects re_form names, as ``predict()`` computes η for the fitted rows in memory.
    ``binomial`` reads the response as glmer's binomial fit does."""
    read = read_partition(part, predictor.spec)
    if read.frame.empty:
        return read.frame, np.zeros(0), None, np.zeros(0)
    rows = model_rows(predictor.spec, read.frame, read.weights, read.offset, binomial)
    X = rows.X[:, list(predictor.spec.kept)]
    return read.frame, rows.y, rows.weights, predictor.fitted_rows(X, rows.terms, rows.offset, re_form)


def partition_values(part: pd.DataFrame, predictor: Predictor, kind: str, re_form: str | None,
                     sigma: float, binomial: bool = False) -> pd.Series:
    """Per-row values of the partition's complete rows: 'fitted' or 'prediction' (η with the
    random effects re_form names), 'residuals' (y − η), 'scaled residuals' (√w (y − η) / σ)."""
    frame, y, w, eta = partition_fit(part, predictor, re_form, binomial)
    values = eta
    if kind in ("residuals", "scaled residuals"):
        values = y - values
    if kind == "scaled residuals":
        values = values / sigma if w is None else values * np.sqrt(w) / sigma
    return pd.Series(values, index=frame.index, name=kind, dtype=float)


def partition_prediction(part: pd.DataFrame, predictor: Predictor, re_form: str | None, allow_new_levels: bool,
                         offset: object) -> pd.Series:
    """``predict`` on one frame of new data; ``offset`` a column name of it or a vector."""
    part = _plain_strings(part)
    if isinstance(offset, str):
        if offset not in part.columns:
            raise DataError(f"offset={offset!r} is not a column of newdata")
        offset = part[offset].to_numpy(dtype=float, na_value=np.nan)
    eta = predictor.new_rows(part, re_form, allow_new_levels, offset)
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


class LazyRows:
    """Per-row quantities of a Dask fit as lazy Dask Series over its fitted frame ``data``:
    one pass over the rows each, nothing computed until asked for.

    A result using it provides ``data``, ``spec``, ``model``, ``fixef``, ``_b``, ``sigma``
    and ``binomial``.
    """

    data: Any  # a dask.dataframe.DataFrame
    binomial: bool = False  # whether the response takes glmer's binomial forms
    spec: ModelSpec
    model: Any  # the Dask engine: CrossproductLMM or DaskGLMM

    if TYPE_CHECKING:  # supplied by the result

        @property
        def fixef(self) -> pd.Series: ...

        @property
        def _b(self) -> list[np.ndarray]: ...

        @property
        def sigma(self) -> float: ...

    @property
    def nobs(self) -> int:
        return self.model.n

    @property
    def dropped_columns(self) -> tuple[str, ...]:
        return self.spec.dropped

    @cached_property
    def predictor(self) -> Predictor:
        """The spec, β̂ and the modes: what every partition's per-row values need."""
        return Predictor(self.spec, self.fixef.to_numpy(), tuple(self._b), self.spec.offset is not None)

    @cached_property
    def _shipped(self):
        """The predictor as one Dask graph entry, shared by every task that reads it."""
        import dask

        return dask.delayed(self.predictor)

    def over_rows(self, kind: str, re_form: str | None = None):
        """``kind`` ('fitted', 'residuals', 'scaled residuals', 'prediction') over the fitted rows."""
        self.predictor.check_re_form(re_form)  # a bad re_form raises now, not when computed
        meta = pd.Series([], dtype=float, index=self.data._meta.index, name=kind)
        return self.data.map_partitions(partition_values, self._shipped, kind, re_form, self.sigma, self.binomial,
                                        meta=meta)

    def linear_predictions(self, newdata, re_form: str | None, allow_new_levels: bool, offset: object):
        """η as ``predict(type='link')``: a Dask Series for the fitted rows (no newdata) or a Dask
        newdata (same index and divisions), a pandas Series for a pandas newdata.

        ``offset`` is a column of newdata (a vector too for a pandas newdata); it is
        required when the model was fitted with ``offset=``.  New levels in a Dask
        newdata raise their DataError when the predictions are computed.
        """
        if newdata is None:
            return self.over_rows("prediction", re_form)
        spec = self.predictor.spec
        if spec.offset is not None and offset is None:
            raise DataError(f"the model was fitted with offset={spec.offset!r}; pass offset= "
                            "(a column of newdata) for newdata too")
        if not is_dask_dataframe(newdata):
            if not isinstance(newdata, pd.DataFrame):
                raise DataError(f"newdata must be a pandas or Dask DataFrame, not {newdata.__class__.__name__}")
            return partition_prediction(newdata, self.predictor, re_form, allow_new_levels, offset)
        if offset is not None and not isinstance(offset, str):
            raise DataError(f"offset must be a column name for Dask newdata, not {offset.__class__.__name__}")
        if offset is not None and offset not in newdata.columns:
            raise DataError(f"offset={offset!r} is not a column of newdata")
        # the checks that need no rows (columns, re_form) now, on an empty frame like newdata's
        partition_prediction(_empty_probe(newdata), self.predictor, re_form, allow_new_levels, offset)
        meta = pd.Series([], dtype=float, index=newdata._meta.index, name="prediction")
        return newdata.map_partitions(partition_prediction, self._shipped, re_form, allow_new_levels, offset,
                                      meta=meta)
