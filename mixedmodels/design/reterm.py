"""Random-effects terms: one grouping factor and the raw model matrix of one bar.

The term's model matrix Zᵢ is the row-wise Khatri–Rao product of the level
indicators Jᵢ (from ``codes``) and the raw matrix Xᵢ; it is never built densely.
Its random effects are ordered level-major: level 0's pᵢ effects, then level 1's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .covstruct import UNSTRUCTURED, CovStructure, StackedStructure


@dataclass(frozen=True)
class ReTerm:
    """One random-effects term ``(expr | group)``."""

    group: str  # name of the grouping factor, e.g. "Subject" or "cask:batch"
    codes: np.ndarray  # level code of each observation, int64 in [0, nlevels)
    levels: pd.Index  # level labels in factor order
    matrix: np.ndarray  # raw model matrix Xᵢ, n × p, float64
    columns: tuple[str, ...]  # names of the columns of Xᵢ, e.g. ("(Intercept)", "Days")
    expr: str  # the left-hand side of the bar as written
    group_columns: tuple[str, ...] = ()  # the data columns forming the grouping factor
    spec: Any = field(default=None, repr=False, compare=False)  # formulaic ModelSpec of the matrix
    column_index: tuple[int, ...] = ()  # which columns of spec's matrix this term uses (|| splits)
    structure: CovStructure = UNSTRUCTURED  # us(), diag(), cs() or ar1(): how θ gives Tᵢ

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def p(self) -> int:
        return self.matrix.shape[1]

    @property
    def q(self) -> int:
        """Number of random effects of the term, ℓᵢ pᵢ."""
        return self.nlevels * self.p

    @property
    def ntheta(self) -> int:
        return self.structure.ntheta(self.p)

    def theta_lower(self) -> np.ndarray:
        """Lower bounds of θ: 0 for the diagonal of Tᵢ (or a structure's standard deviations), −∞ elsewhere."""
        return self.structure.lower(self.p)

    def theta_start(self) -> np.ndarray:
        """Tᵢ = I, lme4's and MixedModels.jl's starting value."""
        return self.structure.start(self.p)

    def lambda_factor(self, theta: np.ndarray) -> np.ndarray:
        """The lower-triangular pᵢ×pᵢ factor Tᵢ from its θ (unstructured: the lower triangle, column-major)."""
        return self.structure.factor(theta, self.p)

    def times_b(self, b: np.ndarray) -> np.ndarray:
        """Zᵢ b for random effects b arranged as (nlevels, p)."""
        if self.p == 1:
            return self.matrix[:, 0] * b[self.codes, 0]
        return np.einsum("ij,ij->i", self.matrix, b[self.codes])


def same_factor_groups(terms: Sequence[ReTerm]) -> list[list[int]]:
    """The positions of the terms, grouped by grouping factor (same name, levels and codes), in
    the order of each group's first term."""
    groups: list[list[int]] = []
    for i, t in enumerate(terms):
        for g in groups:
            first = terms[g[0]]
            if (first.group == t.group and first.levels.equals(t.levels)
                    and np.array_equal(first.codes, t.codes)):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def stacked_term(parts: Sequence[ReTerm]) -> ReTerm:
    """Terms of one grouping factor as one term: their columns side by side, each level's effects
    the parts' effects in turn, T block diagonal (``StackedStructure``)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return ReTerm(group=first.group, codes=first.codes, levels=first.levels,
                  matrix=np.hstack([t.matrix for t in parts]),
                  columns=tuple(c for t in parts for c in t.columns),
                  expr=" + ".join(t.expr for t in parts), group_columns=first.group_columns,
                  structure=StackedStructure(parts=tuple((t.structure, t.p) for t in parts)))


def z_times_b(terms: Sequence[ReTerm], b: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Z b = Σⱼ Zⱼ bⱼ over n rows, each term's random effects bⱼ as (nlevels, p): the one place it is summed."""
    out = np.zeros(n)
    for t, bj in zip(terms, b):
        out += t.times_b(bj)
    return out


class TermSet:
    """The random-effects terms in the spec's canonical order (``design.spec``), and θ's layout over them."""

    def __init__(self, reterms: tuple[ReTerm, ...]):
        self.terms: tuple[ReTerm, ...] = tuple(reterms)
        ends = np.cumsum([t.ntheta for t in self.terms], dtype=int)
        self._slices = [slice(int(e - t.ntheta), int(e)) for t, e in zip(self.terms, ends)]
        self.ntheta = int(ends[-1]) if len(ends) else 0
        self.theta_lower = np.concatenate([t.theta_lower() for t in self.terms])
        self.theta_start = np.concatenate([t.theta_start() for t in self.terms])

    def theta_slices(self) -> list[slice]:
        return list(self._slices)

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """The Tᵢ factors of every term from the engine-ordered θ."""
        return [t.lambda_factor(theta[s]) for t, s in zip(self.terms, self._slices)]

    def random_effects(self, u: Sequence[np.ndarray], lambdas: Sequence[np.ndarray]) -> list[np.ndarray]:
        """b = Λu from the spherical effects u, each term's as (levels, p)."""
        return [uj.reshape(t.nlevels, t.p) @ T.T for t, T, uj in zip(self.terms, lambdas, u)]

    @property
    def theta_scales(self) -> np.ndarray:
        """Which elements of θ scale Tᵢ (multiplying them by c multiplies Tᵢ by c): all but correlations'."""
        return np.concatenate([t.structure.scales(t.p) for t in self.terms])

    def singular(self, theta: np.ndarray, tol: float) -> bool:
        """Whether some term's covariance is (nearly) singular at θ (``CovStructure.at_boundary``)."""
        return any(t.structure.at_boundary(theta[s], t.p, tol) for t, s in zip(self.terms, self._slices))

