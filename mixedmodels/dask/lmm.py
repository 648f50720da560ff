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
evaluated by the in-memory code with the fit's ``Predictor`` (its spec, β̂ and the
modes), which enters the task graph once: the fitted rows from X and the terms'
codes built as for the crossproducts, a newdata by replaying the spec.  ``predict``
on a pandas newdata returns ``LmerResult.predict``'s pandas Series.

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

What any model on Dask frames shares (the spec from the whole data, the partitions'
rows, the lazy per-row quantities) is in ``mixedmodels.dask.frames``; this module
has the LMM's crossproducts per partition and, on the client, its fit and result.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..design.build import check_groups, check_residual_df, model_rows
from ..design.spec import ModelSpec
from ..engine.control import Control, resolve_control
from ..engine.lmm import ProfiledLMM
from ..engine.optimizer import OptimumReport
from ..formula.parse import ParsedFormula
from ..linalg.crossprod import CrossproductBuilder, Crossproducts, add_crossproducts, shift_response
from ..results.lmer import ProfiledEstimates, fit_warnings
from ..runtime.threads import fitting_threads
from .frames import (
    LazyRows,
    final_format,
    is_dask_dataframe,
    kept_spec,
    model_columns,
    plan_spec,
    read_partition,
    structural_terms,
    tree,
)

__all__ = ["lmer_dask", "DaskLmerResult", "is_dask_dataframe"]


class DaskLmerResult(LazyRows, ProfiledEstimates):
    """A linear mixed model fitted from crossproducts (Dask data): the estimates and the
    conditional modes as ``LmerResult`` computes them (a common base), per-row quantities
    as lazy Dask Series over the fitted frame.

    Terms are reported in lme4's order, as ``LmerResult``.  ``data`` is the Dask frame
    fitted (the columns the model uses): its rows stay on the cluster.
    """

    def __init__(self, parsed: ParsedFormula, spec: ModelSpec, model: ProfiledLMM, report: OptimumReport,
                 n_dropped: int, data):
        self.formula = parsed.text
        self.parsed, self.spec, self.model, self.optimum = parsed, spec, model, report
        self.REML = model.REML
        self.n_dropped = n_dropped
        self.data = data
        self._theta_engine = report.x
        self._factor = model.factor(report.x)
        fit_warnings(report, self.is_singular())

    # ----- per-row quantities: lazy, one pass over the rows each ----------------------------
    @cached_property
    def fitted(self):
        """Xβ̂ + Zb̂ (+ offset) for the rows used: a Dask Series indexed as ``data``."""
        return self.over_rows("fitted")

    @cached_property
    def residuals(self):
        """Response residuals y − fitted for the rows used: a Dask Series."""
        return self.over_rows("residuals")

    def scaled_residuals(self):
        """Pearson residuals divided by σ̂ (what lme4's summary tabulates): a Dask Series."""
        return self.over_rows("scaled residuals")

    def predict(self, newdata=None, re_form: str | None = None, allow_new_levels: bool = False,
                type: str = "response", offset: object = None):
        """Predictions as ``LmerResult.predict``: a Dask Series for the fitted rows (no newdata)
        or a Dask newdata (same index and divisions), a pandas Series for a pandas newdata
        (see ``LazyRows.linear_predictions``)."""
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', not {type!r}")
        return self.linear_predictions(newdata, re_form, allow_new_levels, offset)

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
    columns = model_columns("lmer", formula, ddf, weights, offset, safe)
    parsed, sub = columns.parsed, columns.frame
    spec = plan_spec(parsed, sub, columns.used, columns.weights, columns.offset, False, dask)
    shipped = dask.delayed(spec)
    shift = _rough_shift(sub, spec)
    partials = [dask.delayed(_partition_crossproducts)(part, shipped, shift) for part in sub.to_delayed()]
    total = tree(dask, partials, _add).compute()
    with fitting_threads():
        return _fit(parsed, spec, total, REML, ctl, sub, shift)


def _rough_shift(sub, spec: ModelSpec) -> np.ndarray:
    """b over X's columns that centres the response: the first rows' mean response in the
    intercept's place (zeros without an intercept).  The partitions' crossproducts are of
    y − Xb, so the cancellation ``crossprod.shift_response`` avoids is avoided here too."""
    b = np.zeros(len(spec.xnames))
    if "(Intercept)" in spec.xnames:
        with warnings.catch_warnings():  # a first partition of under 1,000 rows is fine
            warnings.filterwarnings("ignore", "Insufficient elements", UserWarning)
            first = sub.head(1000, npartitions=1, compute=True)
        read = read_partition(first, spec)
        if not read.frame.empty:
            rows = model_rows(spec, read.frame, read.weights, read.offset)
            y = rows.y if rows.offset is None else rows.y - rows.offset
            b[spec.xnames.index("(Intercept)")] = float(np.mean(y))
    return b


def _partition_crossproducts(part: pd.DataFrame, spec: ModelSpec, shift: np.ndarray) -> dict:
    """One partition's blocks of A for the response y − X·shift (terms in the canonical order,
    off-diagonal blocks sparse) and counts."""
    read = read_partition(part, spec)
    out = {"n": len(read.frame), "n_dropped": read.n_dropped, "missing": set(read.missing),
           "log_weights": 0.0, "A": None}
    if read.frame.empty:
        return out
    rows = model_rows(spec, read.frame, read.weights, read.offset)
    if rows.weights is not None:
        out["log_weights"] = float(np.log(rows.weights).sum())
    y = rows.y if rows.offset is None else rows.y - rows.offset
    A = CrossproductBuilder(rows.terms)(np.column_stack([rows.X, y - rows.X @ shift]), rows.weights)
    out["A"] = Crossproducts(diag=A.diag, off=tuple(tuple(sp.csr_matrix(B) for B in row) for row in A.off),
                             xz=A.xz, xx=A.xx)
    return out


def _add(*partials: dict) -> dict:
    """The sum of partitions' crossproducts and counts."""
    out: dict[str, Any] = {"n": 0, "n_dropped": 0, "missing": set(), "log_weights": 0.0, "A": None}
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


# ----- on the client ---------------------------------------------------------------------

def _fit(parsed: ParsedFormula, spec: ModelSpec, total: dict, REML: bool, control: Control, data,
         shift: np.ndarray) -> DaskLmerResult:
    n, A = total["n"], total["A"]
    spec = kept_spec(spec, n, total["n_dropped"], total["missing"], None if A is None else A.xx[:-1, :-1])
    keep = list(spec.kept)
    rows = np.array(keep + [len(spec.xnames)])
    A = shift_response(Crossproducts(diag=A.diag, off=tuple(tuple(final_format(B) for B in row) for row in A.off),
                                     xz=tuple(B[rows] for B in A.xz), xx=A.xx[np.ix_(rows, rows)],
                                     beta_shift=shift[keep]))
    check_groups(spec.terms, n)
    check_residual_df(len(keep), n)
    model = ProfiledLMM(structural_terms(spec), A, n, len(keep), REML=REML, log_weights=total["log_weights"],
                        control=control)
    report = model.fit()
    return DaskLmerResult(parsed, spec, model, report, total["n_dropped"], data)
