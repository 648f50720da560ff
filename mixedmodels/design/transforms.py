"""R's transforms inside formulas, computed as R computes them.

formulaic evaluates a formula's calls in a context of functions; these are R's:
``factor``/``as.factor`` (levels sorted as R sorts them, labelled as R prints them),
``ordered`` (the same levels, ordered: polynomial contrasts), ``as.numeric`` and friends,
``ns`` (splines::ns, the natural cubic spline basis, stateful so that predictions on new
data use the fitted knots), and R's spellings of the elementary functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from formulaic.materializers.types import FactorValues
from formulaic.transforms import poly as orthogonal_poly
from formulaic.utils.stateful_transforms import stateful_transform
from scipy.interpolate import BSpline

from ..errors import DataError


def r_label(value: object) -> str:
    """A level as R prints it: 1 not 1.0, TRUE not True."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.15g}"
    return str(value)


def factor(x: object) -> pd.Categorical:
    """R's factor(x): categories kept in their order (unused dropped), else the sorted values."""
    series = pd.Series(x)
    if isinstance(series.dtype, pd.CategoricalDtype):
        return pd.Categorical(series).remove_unused_categories()
    values = series.dropna().unique()
    try:
        levels = sorted(values)
    except TypeError:
        raise DataError("factor() needs values of one kind (numbers, strings or booleans)") from None
    labels = [r_label(v) for v in levels]
    codes = pd.Series(series).map(dict(zip(levels, range(len(levels))))).fillna(-1).astype(int)
    return pd.Categorical.from_codes(codes.to_numpy(), categories=labels)


def ordered(x: object) -> pd.Categorical:
    """R's ordered(x): factor(x) with ordered levels (polynomial contrasts)."""
    return factor(x).as_ordered()


def as_numeric(x: object) -> np.ndarray:
    """R's as.numeric: numbers as they are, booleans as 0/1, a factor as its level codes 1, 2, ..."""
    series = pd.Series(x)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(float) + 1
        codes[series.isna().to_numpy()] = np.nan
        return codes
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    raise DataError(f"as.numeric() needs numbers, booleans or a factor, not values of dtype {series.dtype}")


def as_integer(x: object) -> np.ndarray:
    """R's as.integer: as.numeric truncated toward zero."""
    return np.trunc(as_numeric(x))


def as_logical(x: object) -> np.ndarray:
    """R's as.logical of numbers or booleans: nonzero is TRUE."""
    return as_numeric(x) != 0


@stateful_transform
def ns(x: object, df: int | None = None, knots: object = None, intercept: bool = False,
       Boundary_knots: object = None, _state: dict = {}) -> FactorValues:  # noqa: B006 (formulaic's state)
    """R's splines::ns: a natural cubic spline basis, linear beyond the boundary knots.

    Interior knots at quantiles of x (df − 1 − intercept of them, or ``knots``), boundary
    knots at its range; the B-spline basis is projected on the null space of the second
    derivatives at the boundary knots, by the same Householder QR as R's.
    """
    values = np.asarray(x, dtype=float)
    if "interior" not in _state:
        finite = values[np.isfinite(values)]
        boundary = np.sort(np.asarray(Boundary_knots, dtype=float)) if Boundary_knots is not None else \
            np.array([finite.min(), finite.max()])
        if knots is not None:
            interior = np.sort(np.asarray(knots, dtype=float))
        else:
            count = (1 if df is None else int(df)) - 1 - int(intercept)
            if count < 0:
                raise DataError(f"ns(): df = {df} is too small (at least {1 + int(intercept)})")
            inside = finite[(finite >= boundary[0]) & (finite <= boundary[1])]
            probs = np.linspace(0, 1, count + 2)[1:-1]
            interior = np.quantile(inside, probs) if count else np.zeros(0)  # R's quantile type 7
        _state.update(interior=interior.tolist(), boundary=boundary.tolist(), intercept=bool(intercept))
    interior = np.asarray(_state["interior"], dtype=float)
    boundary = np.asarray(_state["boundary"], dtype=float)
    knots_all = np.concatenate([np.repeat(boundary[0], 4), interior, np.repeat(boundary[1], 4)])
    ncoef = len(knots_all) - 4

    def design(points: np.ndarray, derivative: int = 0) -> np.ndarray:
        out = np.empty((len(points), ncoef))
        for j in range(ncoef):
            coef = np.zeros(ncoef)
            coef[j] = 1.0
            spline = BSpline(knots_all, coef, 3, extrapolate=True)
            out[:, j] = spline.derivative(derivative)(points) if derivative else spline(points)
        return out

    basis = np.full((len(values), ncoef), np.nan)
    ok = np.isfinite(values)
    below, above = ok & (values < boundary[0]), ok & (values > boundary[1])
    inside = ok & ~below & ~above
    basis[inside] = design(values[inside])
    for mask, edge in ((below, boundary[0]), (above, boundary[1])):
        if mask.any():  # linear beyond the boundary, as R's ns
            at = design(np.array([edge]))
            slope = design(np.array([edge]), 1)
            basis[mask] = at + (values[mask] - edge)[:, None] * slope
    const = design(boundary, 2)
    if not _state["intercept"]:
        basis, const = basis[:, 1:], const[:, 1:]
    q, _ = np.linalg.qr(const.T, mode="complete")
    values = basis @ q[:, 2:]
    return FactorValues(values, column_names=tuple(str(i) for i in range(1, values.shape[1] + 1)))


@stateful_transform
def poly(x: object, degree: int = 1, raw: bool = False, _state: dict = {}) -> FactorValues:  # noqa: B006
    """R's poly: orthogonal polynomials (formulaic's, which are R's), or raw powers with
    R's column names 1, 2, ... (formulaic numbers raw columns from 0)."""
    if not raw:
        return orthogonal_poly(x, degree, _state=_state)
    values = np.asarray(x, dtype=float)
    return FactorValues(np.column_stack([values**k for k in range(1, degree + 1)]),
                        column_names=tuple(str(k) for k in range(1, degree + 1)))


#: the functions a formula may call by R's names, next to numpy's (``np.log``)
FORMULA_CONTEXT = {
    "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "sin": np.sin, "cos": np.cos, "tan": np.tan, "pi": np.pi, "factor": factor, "as_factor": factor, "ordered": ordered,
    "as_numeric": as_numeric, "as_integer": as_integer, "as_logical": as_logical, "ns": ns, "poly": poly,
}
