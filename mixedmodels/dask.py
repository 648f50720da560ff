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
fixef, vcov, sigma, theta, objective, varcorr, deviance and the likelihood
criteria.  It is not an ``LmerResult``: residuals, fitted values, conditional
modes, predictions and refits need the rows, which stay on the cluster.

Not supported on Dask frames: stateful formula transforms (``center``, ``scale``,
``poly``, ``bs``: their state would come from one partition; compute such columns
first), numeric columns made factors inside the formula (``C(x)``: convert the
column to a categorical first), weights or offsets given as vectors (give column
names), and ``start``.  Results are those of ``mm.lmer`` on the same data up to
the rounding of summing A in another order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .criteria import InformationCriteria
from .crossprod import CrossproductBuilder, Crossproducts
from .design import _check_finite, _numeric, _optional_vector, _response, _used_columns, evaluate
from .errors import (
    ConvergenceWarning,
    DataError,
    DroppedRowsWarning,
    FormulaError,
    RankDeficiencyWarning,
    SingularFitWarning,
    warn,
)
from .formula import ParsedFormula, parse_formula
from .lmm import LinearMixedModel
from .optimizer import OptimumReport
from .results import MixedModelResult
from .threads import fitting_threads
from .reterm import ReTerm, TermSet

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
                 REML: bool = True, log_weights: float = 0.0):
        TermSet.__init__(self, reterms)
        self.design = None
        self.reterms = tuple(reterms)
        self.REML = REML
        self.crossprod = crossprod
        self._n, self._p = int(n), int(p)
        self._log_weights = float(log_weights)

    @property
    def n(self) -> int:
        return self._n

    @property
    def p(self) -> int:
        return self._p


@dataclass
class DaskLmerResult(InformationCriteria):
    """A linear mixed model fitted from crossproducts (Dask data): the estimates, no per-row quantities.

    Terms are reported in lme4's order (decreasing number of levels), as ``LmerResult``.
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
    dropped_columns: tuple[str, ...] = ()

    @property
    def loglik(self) -> float:
        return -0.5 * self.objective

    @property
    def df(self) -> int:
        return len(self.fixef) + len(self.theta) + 1

    def coefficients(self) -> pd.DataFrame:
        """Estimate, Std. Error, t value (lme4's summary table)."""
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se, "t value": self.fixef / self.se})

    def __repr__(self) -> str:
        kind = "REML" if self.REML else "maximum likelihood"
        return (f"<Linear mixed model fit by {kind} on Dask data: {self.formula}; nobs={self.nobs}, "
                f"objective={self.objective:.4f}>")


# ----- the fit ---------------------------------------------------------------------------

def lmer_dask(formula: str, ddf, REML: bool = True, weights: str | None = None, offset: str | None = None,
              maxeval: int = 100_000, safe: bool = False) -> DaskLmerResult:
    """Fit ``formula`` to the Dask DataFrame ``ddf`` as ``mm.lmer`` fits a pandas one.

    ``weights`` and ``offset`` are column names.  Computations run on the current
    Dask scheduler (a ``dask.distributed.Client`` when one is active); two passes
    over the data: the levels, then the crossproducts.
    """
    import dask

    if safe:
        from .safety import check_formula

        check_formula(formula)
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError("lmer needs at least one random-effects term such as (1 | group); "
                           "for a model without random effects use mixedmodels.lm", formula)
    if not parsed.response:
        raise FormulaError("the formula has no response on the left of '~'", parsed.text, 0)
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{what} must be a column name for Dask data, not {type(value).__name__}")
        if value is not None and value not in ddf.columns:
            raise DataError(f"{what}={value!r} is not a column of data")
    used = _used_columns(parsed, pd.DataFrame(columns=ddf.columns))
    extra = [c for c in (weights, offset) if c is not None and c not in used]
    sub = ddf[used + extra]
    plan = _plan(parsed, sub, used, weights, offset, dask)
    partials = [dask.delayed(_partition_crossproducts)(part, plan) for part in sub.to_delayed()]
    total = _tree(dask, partials, _add).compute()
    with fitting_threads():
        return _fit(parsed, plan, total, REML, maxeval)


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
    bars: tuple  # per random term in formula order: (bar index, column indices, column names)
    order: tuple[int, ...]  # the engine's order of the terms


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
    fixed, xnames = evaluate(parsed.fixed, proto, "the fixed part")
    _no_stateful_transforms(fixed, parsed.fixed)
    bars, placeholders = [], []
    for b, bar in enumerate(parsed.random):
        mat, names = evaluate(bar.expr, proto, f"the random-effects term ({bar.expr} | {bar.group_name}), left part")
        _no_stateful_transforms(mat, bar.expr)
        if not names:
            raise FormulaError(f"the random-effects term ({bar.expr} | {bar.group_name}) has no columns")
        pieces = [tuple(range(len(names)))] if bar.correlated else [(j,) for j in range(len(names))]
        for idx in pieces:
            columns = tuple(names[j] for j in idx)
            bars.append((b, idx, columns))
            placeholders.append(_placeholder(bar, labels[bar.group], columns))
    order = tuple(TermSet(tuple(placeholders)).order)
    return _Plan(parsed=parsed, used=tuple(used), weights=weights, offset=offset, categories=categories,
                 groups=groups, labels=labels, xnames=tuple(xnames), bars=tuple(bars), order=order)


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


def _placeholder(bar, labels: pd.Index, columns: tuple[str, ...]) -> ReTerm:
    """A term's structure without rows: what TermSet and the factorisation need."""
    return ReTerm(group=bar.group_name, codes=np.zeros(0, dtype=np.int64), levels=labels,
                  matrix=np.zeros((0, len(columns))), columns=columns, expr=bar.expr, group_columns=bar.group)


# ----- per partition ---------------------------------------------------------------------

def _partition_crossproducts(part: pd.DataFrame, plan: _Plan) -> dict:
    """One partition's blocks of A (terms in the engine order, off-diagonal blocks sparse) and counts."""
    used = list(plan.used)
    w = _optional_vector(plan.weights, part, "weights")
    o = _optional_vector(plan.offset, part, "offset")
    complete = ~part[used].isna().any(axis=1).to_numpy()
    for vec in (w, o):
        if vec is not None:
            complete &= ~np.isnan(vec)
    missing = {c for c in used if part[c].isna().any()} | {
        name for name, vec in (("weights", w), ("offset", o)) if vec is not None and np.isnan(vec).any()}
    out = {"n": int(complete.sum()), "n_dropped": int((~complete).sum()), "missing": missing,
           "log_weights": 0.0, "A": None}
    if not complete.any():
        return out
    frame = part.loc[complete, used].copy()
    for c, (lv, ordered) in plan.categories.items():
        frame[c] = pd.Categorical(frame[c], categories=lv, ordered=ordered)
    y, _ = _response(plan.parsed, frame, False)
    mat, xnames = evaluate(plan.parsed.fixed, frame, "the fixed part")
    if tuple(xnames) != plan.xnames:
        raise DataError(
            f"a partition's fixed-effects columns ({', '.join(xnames)}) differ from the data's "
            f"({', '.join(plan.xnames)}); make factors categorical columns of the data instead of "
            "converting them in the formula")
    X = mat.to_numpy(dtype=float)
    for j, name in enumerate(xnames):
        _check_finite(X[:, j], name)
    if w is not None:
        w = w[complete]
        if np.any(w <= 0) or not np.all(np.isfinite(w)):
            raise DataError("weights must be finite and positive")
        out["log_weights"] = float(np.log(w).sum())
    if o is not None:
        o = o[complete]
        if not np.all(np.isfinite(o)):
            raise DataError("offset must be finite")
    for expr in plan.parsed.offsets:
        term = _numeric(expr, frame, "the offset")
        o = term if o is None else o + term
    terms, matrices = [], {}
    for b, idx, columns in plan.bars:
        bar = plan.parsed.random[b]
        if b not in matrices:
            m, names = evaluate(bar.expr, frame,
                                f"the random-effects term ({bar.expr} | {bar.group_name}), left part")
            Xi = m.to_numpy(dtype=float)
            for j, name in enumerate(names):
                _check_finite(Xi[:, j], name)
            matrices[b] = (Xi, names)
        Xi, names = matrices[b]
        if tuple(names[j] for j in idx) != columns:
            raise DataError(f"a partition's columns of the term ({bar.expr} | {bar.group_name}) differ "
                            "from the data's; make factors categorical columns of the data")
        terms.append(ReTerm(group=bar.group_name, codes=_codes(frame, bar.group, plan),
                            levels=plan.labels[bar.group], matrix=np.ascontiguousarray(Xi[:, list(idx)]),
                            columns=columns, expr=bar.expr, group_columns=bar.group))
    engine = tuple(terms[i] for i in plan.order)
    yo = y if o is None else y - o
    A = CrossproductBuilder(engine)(np.column_stack([X, yo]), w)
    out["A"] = Crossproducts(diag=A.diag, off=tuple(tuple(sp.csr_matrix(B) for B in row) for row in A.off),
                             xz=A.xz, xx=A.xx)
    return out


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
        out["A"] = b if a is None else Crossproducts(
            diag=tuple(x + y for x, y in zip(a.diag, b.diag)),
            off=tuple(tuple((x + y).tocsr() for x, y in zip(ra, rb)) for ra, rb in zip(a.off, b.off)),
            xz=tuple(x + y for x, y in zip(a.xz, b.xz)),
            xx=a.xx + b.xx,
        )
    return out


# ----- on the client ---------------------------------------------------------------------

def _fit(parsed: ParsedFormula, plan: _Plan, total: dict, REML: bool, maxeval: int) -> DaskLmerResult:
    from .api import _check_groups

    n, A = total["n"], total["A"]
    if A is None:
        raise DataError("no complete rows: every row has a missing value in one of "
                        + ", ".join(repr(c) for c in plan.used))
    if total["n_dropped"]:
        warn(f"{total['n_dropped']} of {n + total['n_dropped']} rows have missing values (in "
             f"{', '.join(map(repr, sorted(total['missing'])))}) and were left out", DroppedRowsWarning)
    keep = _independent_columns(A.xx[:-1, :-1])
    dropped = tuple(name for j, name in enumerate(plan.xnames) if j not in keep)
    if dropped:
        warn("fixed-effect model matrix is rank deficient; dropping aliased column(s) "
             + ", ".join(repr(d) for d in dropped), RankDeficiencyWarning)
    rows = np.array(keep + [len(plan.xnames)])
    A = Crossproducts(diag=A.diag, off=tuple(tuple(_final_format(B) for B in row) for row in A.off),
                      xz=tuple(B[rows] for B in A.xz), xx=A.xx[np.ix_(rows, rows)])
    xnames = [plan.xnames[j] for j in keep]
    reterms = tuple(_placeholder(parsed.random[b], plan.labels[parsed.random[b].group], columns)
                    for b, idx, columns in plan.bars)
    _check_groups(SimpleNamespace(reterms=reterms, n=n))
    model = CrossproductLMM(reterms, A, n, len(keep), REML=REML, log_weights=total["log_weights"])
    report = model.fit(maxeval=maxeval)
    return _result(parsed, model, report, xnames, total["n_dropped"], dropped)


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
    """What ``MixedModelResult``'s variance-component properties read, without rows: they are
    borrowed from results.py, so that θ, its names, VarCorr and the groups are reported alike."""

    has_residual_row = True

    def __init__(self, model: CrossproductLMM, theta_engine: np.ndarray, factor, sigma: float):
        self.model, self._theta_engine, self._factor, self.sigma = model, theta_engine, factor, sigma
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


def _result(parsed, model: CrossproductLMM, report: OptimumReport, xnames: list[str], n_dropped: int,
            dropped: tuple[str, ...]) -> DaskLmerResult:
    L = model.factor(report.x)
    p, n = model.p, model.n
    sigma = float(L.r / np.sqrt(n - p if model.REML else n))
    parts = _Components(model, report.x, L, sigma)
    if not report.converged:
        warn(f"model failed to converge: {report.message}", ConvergenceWarning)
    if parts.is_singular():
        warn("boundary (singular) fit: a random-effect variance is (near) zero or a "
             "correlation is ±1; see the guide on singular fits", SingularFitWarning)
    return DaskLmerResult(
        formula=parsed.text, REML=model.REML, nobs=n, n_dropped=n_dropped,
        fixef=pd.Series(L.beta(), index=xnames, name="Estimate"),
        vcov=pd.DataFrame(sigma**2 * L.beta_precision_inverse(), index=xnames, columns=xnames),
        sigma=sigma, theta=parts.theta, theta_names=parts.theta_names, objective=float(report.fun),
        deviance=float(model.objective(report.x, REML=False)), varcorr=parts.varcorr, ngroups=parts.ngroups,
        optimum=report, model=model, dropped_columns=dropped,
    )
