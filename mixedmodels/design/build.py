"""From a parsed formula and a data frame to the numbers a fit needs.

``build_design`` does every data-frame operation of a fit exactly once: it finds
the rows with missing values, evaluates the fixed-effects matrix X with formulaic,
the response, weights and offset, and one :class:`ReTerm` per random-effects bar.
The caller's data frame is only read, never modified.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from functools import lru_cache

import formulaic
import numpy as np
import pandas as pd
from formulaic.parser.types import Factor
from formulaic.utils.code import sanitize_variable_names

from ..errors import DataError, DroppedRowsWarning, FormulaError, RankDeficiencyWarning, did_you_mean, type_name, warn
from ..formula.parse import ParsedFormula, RandomTerm, with_dot_expanded
from ..formula.rdialect import python_part, r_spelling
from ..formula.safety import check_part
from .reterm import ReTerm
from .size import check_design_size
from .transforms import FORMULA_CONTEXT

MAX_THETA = 1_000  # covariance parameters of all random-effects terms
WEIGHT_SCALE = 1e8  # weights whose geometric mean is beyond 1/WEIGHT_SCALE..WEIGHT_SCALE are refused


@dataclass(frozen=True)
class Design:
    """Plain arrays of one model: y, X, weights, offset and the random-effects terms."""

    y: np.ndarray
    X: np.ndarray
    xnames: tuple[str, ...]
    reterms: tuple[ReTerm, ...]  # in the formula's order (bars after || and / expansion)
    weights: np.ndarray | None
    offset: np.ndarray | None
    rows: pd.Index  # labels of the rows of `data` that the model uses
    n_dropped: int  # rows dropped for missing values
    response_name: str
    model_spec: object = field(repr=False)  # formulaic ModelSpec of the fixed part
    dropped_columns: tuple[str, ...] = ()  # aliased columns of X removed
    kept_columns: tuple[int, ...] = ()  # columns of model_spec's matrix that X keeps
    frame: pd.DataFrame | None = field(default=None, repr=False)  # the complete rows of the used columns
    contrasts: Mapping[str, str] = field(default_factory=dict)  # factor → R's coding given by the caller
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


def build_design(
    parsed: ParsedFormula,
    data: pd.DataFrame,
    weights: object = None,
    offset: object = None,
    binomial: bool = False,
    contrasts: Mapping[str, str] | None = None,
    na_action: str = "omit",
) -> Design:
    """Evaluate every part of the model on the complete cases of ``data``.

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
    if not parsed.response:
        raise FormulaError("the formula has no response on the left of '~'", parsed.text, 0)
    duplicated = sorted(set(map(str, data.columns[data.columns.duplicated()])))
    if duplicated:
        raise DataError(f"data has more than one column named {', '.join(map(repr, duplicated))}; rename them")

    parsed = with_dot_expanded(parsed, list(data.columns))
    used = used_columns(parsed, data)
    w = optional_vector(weights, data, "weights")
    o = optional_vector(offset, data, "offset")
    complete = ~data[used].isna().any(axis=1).to_numpy()
    for vec in (w, o):
        if vec is not None:
            complete &= ~np.isnan(vec)
    outside = {c: _outside(data[c], levels) for c, levels in restricted_levels(parsed) if c in data.columns}
    for mask in outside.values():
        complete &= ~mask
    n_dropped = int((~complete).sum())
    if not complete.any():
        raise DataError(
            "no complete rows: every row has a missing value in one of "
            + ", ".join(repr(c) for c in used)
        )
    if n_dropped:
        missing = [c for c in used if data[c].isna().any()] + [
            name for name, vec in (("weights", w), ("offset", o)) if vec is not None and np.isnan(vec).any()]
        restricted = [f"{mask.sum()} with a value of {c!r} outside its C(levels=...), which R's factor(levels=) "
                      "makes missing" for c, mask in outside.items() if mask.any()]
        warn(
            f"{n_dropped} of {len(data)} rows have missing values ("
            + "; ".join(([f"in {', '.join(map(repr, missing))}"] if missing else []) + restricted)
            + ") and were left out; the rows used are in m.rows_used",
            DroppedRowsWarning,
        )
    frame = _model_frame(data.loc[complete, used] if n_dropped else data[used])
    _check_factor_levels(parsed, frame)

    y, trials = response_values(parsed, frame, binomial)
    contrasts = check_contrasts(contrasts, frame)
    check_design_size(python_part(parsed.fixed), parsed.text, frame)
    X, xnames, spec = _fixed_part(parsed, frame, contrasts)
    X, kept = _drop_aliased(X, xnames)
    dropped = tuple(n for j, n in enumerate(xnames) if j not in kept)
    xnames = tuple(xnames[j] for j in kept)
    reterms = tuple(t for bar in parsed.random for t in _reterms(bar, frame, parsed.checked))
    if w is not None:
        w = w[complete]
        if np.any(w <= 0) or not np.all(np.isfinite(w)):
            raise DataError("weights must be finite and positive")
        scale = float(np.exp(np.mean(np.log(w))))
        if not 1 / WEIGHT_SCALE <= scale <= WEIGHT_SCALE:
            raise DataError(
                f"the weights are of the order of {scale:.3g}; the relative covariance θ scales with "
                f"1/√weights, so the optimizer cannot reach it from its start; divide the weights by their mean "
                "(θ̂ then changes by √mean and σ̂ by 1/√mean, as in lme4)"
            )
    if trials is not None:
        w = trials if w is None else w * trials
    if o is not None:
        o = o[complete]
        if not np.all(np.isfinite(o)):
            raise DataError("offset must be finite")
    for expr in parsed.offsets:
        term = numeric_column(expr, frame, "the offset", parsed.checked)
        o = term if o is None else o + term
    return Design(
        y=y,
        X=X,
        xnames=xnames,
        reterms=reterms,
        weights=w,
        offset=o,
        rows=frame.index,
        n_dropped=n_dropped,
        response_name=parsed.response,
        model_spec=spec,
        dropped_columns=dropped,
        kept_columns=tuple(kept),
        frame=frame,
        contrasts=contrasts,
        na_action=na_action,
        data_index=data.index if na_action == "exclude" else None,
        data_positions=np.flatnonzero(complete) if na_action == "exclude" else None,
    )


def _model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy coded as R's model frames: unused factor levels dropped (no column, no aliasing,
    for an empty level) and pandas' "string" columns as plain strings (factors, as R)."""
    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].cat.remove_unused_categories()
        elif isinstance(out[c].dtype, pd.StringDtype):
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
            if factor.eval_method is not Factor.EvalMethod.PYTHON:
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


def _check_factor_levels(parsed: ParsedFormula, frame: pd.DataFrame) -> None:
    """R stops on a fixed-effect or slope factor with one level; so do we, naming it."""
    texts = " ".join([parsed.fixed, *(t.expr for t in parsed.random)])
    for c in frame.columns:
        column = frame[c]
        factor = isinstance(column.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype))
        if factor and _mentions(texts, str(c)) and column.nunique() < 2:
            raise DataError(
                f"the factor {c!r} has a single level ({column.iloc[0]!r}) in the rows used: contrasts can be "
                "applied only to factors with 2 or more levels (R's error); remove it from the formula"
            )


def used_columns(parsed: ParsedFormula, data: pd.DataFrame) -> list[str]:
    """The columns of ``data`` that the formula mentions, in data order."""
    texts = [parsed.response, parsed.fixed, *parsed.offsets] + [t.expr for t in parsed.random]
    groups = {g for t in parsed.random for g in t.group}
    for g in groups:
        if g not in data.columns:
            raise DataError(
                f"grouping factor {g!r} is not a column of data." + did_you_mean(g, map(str, data.columns))
            )
    for text in texts:
        for name in _names_in(python_part(text)):
            if name not in data.columns and not _is_known_name(name):
                raise DataError(
                    f"{name!r} in the formula is not a column of data."
                    + did_you_mean(name, map(str, data.columns))
                )
    mentioned = " ".join(texts)
    return [
        c for c in data.columns
        if c in groups or _mentions(mentioned, str(c))
    ]


_IDENT = re.compile(r"`([^`]*)`|'[^']*'|\"[^\"]*\"|(?<![\w.])([A-Za-z_][A-Za-z0-9_.]*)")
_KNOWN = {"np", "numpy", "I", "C", "log", "exp", "sqrt", "abs", "log2", "log10", "log1p", "center", "scale",
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
        if value not in data.columns:
            raise DataError(f"{what}={value!r} is not a column of data." + did_you_mean(value, map(str, data.columns)))
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


@lru_cache(maxsize=256)
def formula_part(expr: str) -> formulaic.Formula:
    """formulaic's parse of a formula part (nothing evaluated), kept: a fifth of a model matrix's
    cost on small data."""
    return formulaic.Formula(expr)


def _fixed_part(parsed: ParsedFormula, frame: pd.DataFrame, contrasts: Mapping[str, str]):
    """Fixed-effects matrix through formulaic, with R's column names."""
    rhs, names = evaluate(parsed.fixed, frame, "the fixed part", contrasts=contrasts, checked=parsed.checked)
    X = rhs.to_numpy(dtype=float)
    for j, name in enumerate(names):
        check_finite(X[:, j], name)
    return X, names, rhs.model_spec


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


def numeric_column(expr: str, frame: pd.DataFrame, what: str, checked: bool) -> np.ndarray:
    """One numeric column from an expression such as 'y', 'np.log(y)' or 'size - k'."""
    if expr in frame.columns and not pd.api.types.is_numeric_dtype(frame[expr].dtype):
        raise DataError(
            f"{what} {expr!r} must be numeric, but the column has dtype {frame[expr].dtype}"
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
    """0/1 from a boolean or a two-level factor: the second level is success (R)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=float)
    codes, levels = factor_codes(column)
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


def _drop_aliased(X: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, list[int]]:
    """Remove columns of X that are linear combinations of earlier ones, with a warning."""
    keep = independent_columns(X)
    dropped = tuple(names[j] for j in range(len(names)) if j not in keep)
    if dropped:
        warn(
            "fixed-effect model matrix is rank deficient; dropping aliased column(s) "
            + ", ".join(repr(d) for d in dropped),
            RankDeficiencyWarning,
        )
    return X[:, keep], keep


def independent_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of the columns of X that are not linear combinations of earlier ones (R's qr pivoting)."""
    keep: list[int] = []
    Q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        col = X[:, j]
        size = np.abs(col).max()
        col = col / size if size > 0 else col  # scale first: a norm of values near 1e200 overflows
        norm = np.linalg.norm(col)
        resid = col - Q @ (Q.T @ col)
        rnorm = np.linalg.norm(resid)
        if norm > 0 and rnorm > tol * norm:
            Q = np.column_stack([Q, resid / rnorm])
            keep.append(j)
    return keep


def grouping_factor(frame: pd.DataFrame, group: tuple[str, ...]) -> tuple[np.ndarray, pd.Index]:
    """Codes and level labels of a grouping factor; a:b levels are 'la:lb', first factor slowest.

    Unused levels are dropped, as R's ``factor()`` does.
    """
    codes = np.zeros(len(frame), dtype=np.int64)
    labels = None
    for name in group:
        c, lv = factor_codes(frame[name])
        codes = codes * len(lv) + c
        labels = lv.astype(str) if labels is None else _cross_labels(labels, lv.astype(str))
    used, codes = np.unique(codes, return_inverse=True)
    return codes.astype(np.int64), pd.Index(np.asarray(labels)[used], name=":".join(group))


def _cross_labels(a: pd.Index, b: pd.Index) -> pd.Index:
    return pd.Index([f"{x}:{y}" for x in a for y in b])


def factor_codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and levels of a column treated as a factor (R's ``factor``)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy(dtype=np.int64), pd.Index(cat.cat.categories)
    codes, levels = pd.factorize(column, sort=True)
    return codes.astype(np.int64), pd.Index(levels)


def _reterms(bar: RandomTerm, frame: pd.DataFrame, checked: bool) -> list[ReTerm]:
    """The ReTerms of one bar; ``||`` gives one scalar term per column of its matrix."""
    codes, levels = grouping_factor(frame, bar.group)
    mat, names = evaluate(bar.expr, frame, f"the random-effects term ({bar.expr} | {bar.group_name}), left part",
                          checked=checked)
    Xi = mat.to_numpy(dtype=float)
    if Xi.shape[1] == 0:
        raise FormulaError(f"the random-effects term ({bar.expr} | {bar.group_name}) has no columns")
    for j, name in enumerate(names):
        check_finite(Xi[:, j], name)
    pieces = [tuple(range(len(names)))] if bar.correlated else [(j,) for j in range(len(names))]
    return [
        ReTerm(group=bar.group_name, codes=codes, levels=levels, matrix=np.ascontiguousarray(Xi[:, list(idx)]),
               columns=tuple(names[j] for j in idx), expr=bar.expr, group_columns=bar.group,
               spec=mat.model_spec, column_index=idx)
        for idx in pieces
    ]


def check_groups(design: Design, lmm: bool = True) -> None:
    """Each grouping factor needs more than one level; an LMM's fewer effects than observations;
    at most MAX_THETA covariance parameters (the optimizer's memory grows with their square)."""
    ntheta = sum(t.ntheta for t in design.reterms)
    if ntheta > MAX_THETA:
        widest = max(design.reterms, key=lambda t: t.ntheta)
        raise DataError(
            f"the random effects have {ntheta:,} covariance parameters, more than the {MAX_THETA:,} the optimizer "
            f"can take; the term ({widest.expr} | {widest.group}) alone has {widest.p} columns and {widest.ntheta:,} "
            "(is a factor with many levels in the left part of a bar? use (1 | f:g) or '||')"
        )
    for t in design.reterms:
        if t.nlevels < 2:
            raise DataError(
                f"grouping factor {t.group!r} has {t.nlevels} level; a random effect needs at least 2 levels"
            )
        if lmm and t.q >= design.n:
            raise DataError(
                f"the term ({t.expr} | {t.group}) has {t.q} random effects for {design.n} observations; "
                "the random effects and the residual are not identifiable (is a grouping factor an "
                "observation id?)"
            )
