"""The model specification: everything needed to evaluate a fitted formula on any rows again.

A :class:`ModelSpec` is what formulaic's specs, the levels of the data's factors and
grouping factors, the kept columns of X and the random-effects terms' layout amount
to.  It is immutable and small (no rows), so one object serves the in-memory fit,
prediction on new data, persistence and every partition of a Dask fit.

The random-effects terms have one canonical order, the order the engine factorises
in: decreasing number of random effects ℓᵢpᵢ, ties in formula order, so that the
largest term keeps its block-diagonal block and fill-in lands in the smaller ones.
lme4 reports terms by decreasing number of levels (ties in formula order); that
order is kept only as ``report_order``, for printing and reporting.
"""

from __future__ import annotations

from typing import Any
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from ..formula.parse import ParsedFormula
from .covstruct import UNSTRUCTURED, CovStructure
from .reterm import ReTerm


@dataclass(frozen=True)
class Factor:
    """The levels of a non-numeric column of the data, in the order a fit codes them."""

    levels: pd.Index
    ordered: bool = False

    @classmethod
    def of(cls, values: pd.Series, dtype: object, known: bool = True) -> Factor:
        """The levels of ``values`` as R's ``factor`` finds them: a categorical's category order
        restricted to the values present (when ``known``), else the sorted distinct values."""
        ordered = bool(getattr(dtype, "ordered", False))
        if isinstance(dtype, pd.CategoricalDtype) and known:
            same = isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.categories.equals(dtype.categories)
            codes = values.array.codes if same else pd.Categorical(values, dtype=dtype).codes
            present = np.bincount(codes[codes >= 0], minlength=len(dtype.categories)) > 0
            return cls(dtype.categories[present], ordered)
        present = values.dropna()
        if isinstance(present.dtype, pd.CategoricalDtype):  # categories unknown (Dask): sort the values
            present = present.astype(object)
        return cls(pd.Index(pd.unique(present)).sort_values(), ordered)

    def codes(self, column: pd.Series, name: str) -> np.ndarray:
        """Codes of a column's values among the levels; a value outside them is a DataError."""
        if isinstance(column.dtype, pd.CategoricalDtype) and column.dtype.categories.equals(self.levels):
            codes = column.array.codes.astype(np.int64)  # coded already (a model frame's factor)
        else:
            codes = pd.Categorical(column, categories=self.levels).codes.astype(np.int64)
        if np.any(codes < 0):
            raise DataError(f"a value of {name!r} is not among its levels found in the data")
        return codes


@dataclass(frozen=True)
class GroupingFactor:
    """A grouping factor ``g`` or ``a:b``: the levels of its columns and the combinations used.

    Levels of ``a:b`` are labelled 'la:lb', first factor slowest, and only the
    combinations present in the data are levels (R's ``interaction(drop=TRUE)``).
    """

    columns: tuple[str, ...]
    factors: tuple[Factor, ...]
    keys: np.ndarray | None  # sorted mixed-radix keys of the combinations present; None for one column
    labels: pd.Index

    @classmethod
    def of(cls, values: pd.DataFrame, columns: tuple[str, ...], factors: tuple[Factor, ...]) -> GroupingFactor:
        """The grouping factor of ``columns`` of ``values`` (rows, duplicates allowed), whose levels are ``factors``."""
        columns = tuple(map(str, columns))
        name = ":".join(columns)
        if len(columns) == 1:
            return cls(columns, factors, None, pd.Index(np.asarray(factors[0].levels.astype(str)), name=name))
        keys = np.unique(_mixed_radix(values, columns, factors))
        return cls(columns, factors, keys, pd.Index(_combination_labels(keys, factors), name=name))

    @property
    def nlevels(self) -> int:
        return len(self.labels)

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """The level code of each row of ``frame``."""
        if self.keys is None:
            return self.factors[0].codes(frame[self.columns[0]], self.columns[0])
        key = _mixed_radix(frame, self.columns, self.factors)
        pos = np.searchsorted(self.keys, key)
        if np.any(pos >= len(self.keys)) or np.any(self.keys[np.minimum(pos, len(self.keys) - 1)] != key):
            raise DataError(f"a combination of {':'.join(self.columns)} is not among those found in the data")
        return pos.astype(np.int64)


def _mixed_radix(frame: pd.DataFrame, columns: tuple[str, ...], factors: tuple[Factor, ...]) -> np.ndarray:
    """Keys of a:b combinations, first factor slowest."""
    key = np.zeros(len(frame), dtype=np.int64)
    for name, factor in zip(columns, factors):
        key = key * len(factor.levels) + factor.codes(frame[name], name)
    return key


def _combination_labels(keys: np.ndarray, factors: tuple[Factor, ...]) -> np.ndarray:
    parts, rest = [], keys.copy()
    for factor in reversed(factors):
        size = len(factor.levels)
        parts.append(np.asarray(factor.levels.astype(str))[rest % size])
        rest //= size
    return np.array([":".join(p) for p in zip(*reversed(parts))], dtype=object)


@dataclass(frozen=True)
class TermLayout:
    """One random-effects term without its rows: its bar, its columns and its grouping factor."""

    bar: int  # index of its bar in ParsedFormula.random
    expr: str  # the left-hand side of the bar as written
    column_index: tuple[int, ...]  # which columns of the bar's matrix (|| splits a bar)
    columns: tuple[str, ...]
    grouping: GroupingFactor
    spec: Any = field(repr=False, compare=False)  # formulaic ModelSpec of the bar's matrix
    structure: CovStructure = UNSTRUCTURED  # us(), diag(), cs() or ar1()

    @property
    def group(self) -> str:
        return str(self.grouping.labels.name)

    @property
    def nlevels(self) -> int:
        return self.grouping.nlevels

    @property
    def q(self) -> int:
        """Number of random effects ℓᵢpᵢ."""
        return self.nlevels * len(self.columns)

    @property
    def p(self) -> int:
        return len(self.columns)

    @property
    def ntheta(self) -> int:
        return self.structure.ntheta(self.p)

    def term(self, codes: np.ndarray, matrix: np.ndarray) -> ReTerm:
        """The term on rows with these level codes and this raw model matrix Xᵢ."""
        return ReTerm(group=self.group, codes=codes, levels=self.grouping.labels,
                      matrix=np.ascontiguousarray(matrix), columns=self.columns, expr=self.expr,
                      group_columns=self.grouping.columns, spec=self.spec, column_index=self.column_index,
                      structure=self.structure)


def term_orders(terms: list[TermLayout]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The canonical order (formula positions by decreasing ℓᵢpᵢ) and lme4's report order
    (canonical positions by decreasing number of levels, ties in formula order)."""
    canonical = sorted(range(len(terms)), key=lambda i: -terms[i].q)
    lme4 = sorted(range(len(terms)), key=lambda i: -terms[i].grouping.nlevels)
    position = {formula_i: k for k, formula_i in enumerate(canonical)}
    return tuple(canonical), tuple(position[i] for i in lme4)


@dataclass(frozen=True)
class ModelSpec:
    """A fitted model's formula made replayable on any rows: levels, columns, terms' layout."""

    parsed: ParsedFormula
    used: tuple[str, ...]  # the data columns the formula uses, in data order
    weights: str | None  # the weights column, when weights were given by name
    offset: str | None  # likewise the offset column
    factors: dict[str, Factor]  # the non-numeric used columns' levels
    xnames: tuple[str, ...]  # every column of the fixed-effects matrix, aliased ones included
    kept: tuple[int, ...]  # the columns of that matrix the model keeps
    fixed_spec: Any = field(repr=False, compare=False)  # formulaic ModelSpec of the fixed part
    terms: tuple[TermLayout, ...] = ()  # the random-effects terms in the canonical order
    report_order: tuple[int, ...] = ()  # lme4's order of the terms, as canonical positions
    example: pd.DataFrame | None = field(default=None, repr=False, compare=False)  # one row coded as fitted
    contrasts: dict[str, str] = field(default_factory=dict)  # factor → R's coding given by the caller

    def formula_order(self) -> list[int]:
        """Canonical positions of the terms in the formula's order (bars as written, || pieces by column)."""
        return sorted(range(len(self.terms)), key=lambda k: (self.terms[k].bar, self.terms[k].column_index))

    @property
    def kept_names(self) -> tuple[str, ...]:
        return tuple(self.xnames[j] for j in self.kept)

    @property
    def dropped(self) -> tuple[str, ...]:
        """The aliased columns of X that the model leaves out."""
        return tuple(name for j, name in enumerate(self.xnames) if j not in self.kept)
