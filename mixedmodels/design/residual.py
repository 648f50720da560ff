"""Residual correlation and variance structures of Gaussian models, with nlme's meaning.

The residuals of group g have covariance σ² V_g(φ), V_g = D_g R_g D_g: R_g a correlation
matrix (``correlation=``: nlme's corAR1, corCAR1, corCompSymm, corSymm) and D_g = diag(gᵢ)
a variance function (``weights=``: varIdent, varPower).  A model with this covariance is
an ordinary one after whitening each group's rows by W_g, any matrix with W_gᵀW_g = V_g⁻¹:

    y ↦ W y,  X ↦ W X,  Z ↦ W Z,   −2 log-likelihood gains log|V| = Σ_g log|V_g|,

so the profiled deviance of ``engine/lmm.py`` applies unchanged at each φ.  W = C_g⁻¹ D_g⁻¹,
C_g a square root of R_g:

    AR(1):  Rᵢⱼ = φ^|tᵢ − tⱼ| (whole-number times; a continuous time for CAR(1)), a Markov
            chain, so C⁻¹ is bidiagonal: e₁ = x₁, eₖ = (xₖ − ρₖ xₖ₋₁)/√(1 − ρₖ²), ρₖ = φ^(tₖ − tₖ₋₁),
            log|R| = Σₖ log(1 − ρₖ²): O(n);
    compound symmetry: R = (1 − ρ)I + ρ11ᵀ, whitened by nlme's Helmert contrasts (one cumulative
            sum), log|R| = (m − 1) log(1 − ρ) + log(1 + (m − 1)ρ);
    general (corSymm): R over the distinct times, each group's submatrix by Cholesky, groups
            sharing a pattern of times whitened together.

Every parameter is unbounded: φ of AR(1) = a/√(1 + a²) and ρ of compound symmetry in
[−1/(m − 1), 1] by ``CovStructure``'s map; CAR(1)'s φ = 1/(1 + e⁻ᵃ) (nlme's); the general
correlation is R = L Lᵀ, L the rows of a unit lower-triangular matrix normalised to length 1;
varIdent's ratios e^a (the first level 1) and varPower's power itself.  Rows are handled
sorted by group, then time (``order``); nothing of the caller's data is changed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd

from ..errors import DataError, did_you_mean
from .covstruct import CovStructure
from .reterm import ReTerm

MAX_TIMES = 40  # distinct times of a general (corSymm) correlation: its parameters grow as their square


# ----- what users write ---------------------------------------------------------------------
@dataclass(frozen=True)
class Correlation:
    """A residual correlation within groups; ``time`` orders the rows of a group (None: data order),
    ``group`` names the grouping column (None: the random effects' grouping factor, or one group)."""

    time: str | None = None
    group: str | None = None
    title: ClassVar[str] = ""
    nlme: ClassVar[str] = ""

    def formula(self) -> str:
        """nlme's ``form``: '~week | id', '~1 | id', '~week'."""
        return f"~{self.time or 1}" + (f" | {self.group}" if self.group else "")

    def arguments(self) -> dict[str, str]:
        return {k: v for k, v in (("time", self.time), ("group", self.group)) if v is not None}


@dataclass(frozen=True)
class AR1(Correlation):
    """First-order autoregressive correlation φ^|tᵢ − tⱼ| over whole-number times (nlme's corAR1)."""

    title: ClassVar[str] = "AR(1)"
    nlme: ClassVar[str] = "corAR1"


@dataclass(frozen=True)
class CAR1(Correlation):
    """Continuous-time AR(1), φ^|tᵢ − tⱼ| for any times, 0 ≤ φ < 1 (nlme's corCAR1)."""

    title: ClassVar[str] = "Continuous AR(1)"
    nlme: ClassVar[str] = "corCAR1"


@dataclass(frozen=True)
class CompSymm(Correlation):
    """Compound symmetry: one correlation ρ between any two rows of a group (nlme's corCompSymm)."""

    title: ClassVar[str] = "Compound symmetry"
    nlme: ClassVar[str] = "corCompSymm"


@dataclass(frozen=True)
class Symm(Correlation):
    """Unstructured (general) correlation between the distinct times (nlme's corSymm)."""

    title: ClassVar[str] = "General"
    nlme: ClassVar[str] = "corSymm"


@dataclass(frozen=True)
class VarIdent:
    """A residual standard deviation per level of ``by`` (nlme's ``varIdent(form = ~1 | by)``)."""

    by: str
    title: ClassVar[str] = "Different standard deviations per stratum"

    def formula(self) -> str:
        return f"~1 | {self.by}"

    def arguments(self) -> dict[str, str]:
        return {"by": self.by}


@dataclass(frozen=True)
class VarPower:
    """Residual standard deviation proportional to |v|^power of a positive covariate v (nlme's varPower)."""

    covariate: str
    title: ClassVar[str] = "Power of variance covariate"

    def formula(self) -> str:
        return f"~{self.covariate}"

    def arguments(self) -> dict[str, str]:
        return {"covariate": self.covariate}


Variance = VarIdent | VarPower


def structure_columns(correlation: Correlation | None, variance: Variance | None,
                      columns: pd.Index) -> list[str]:
    """The data columns the structures name, each checked to be a column of ``columns`` (the structures'
    kinds are checked where the arguments are read, ``design.nlme.structures``)."""
    used = []
    for spec in (correlation, variance):
        if spec is None:
            continue
        for argument, name in spec.arguments().items():
            if name not in columns:
                raise DataError(f"{_call(spec)}: {argument}={name!r} is not a column of data."
                                + did_you_mean(str(name), map(str, columns)))
            used.append(name)
    return list(dict.fromkeys(used))


def _call(spec: Correlation | Variance) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in spec.arguments().items())
    return f"{type(spec).__name__}({args})"


# ----- bound to the rows of a model ------------------------------------------------------------
@dataclass(frozen=True)
class Groups:
    """The rows sorted by group, then time: ``order`` takes the model's rows to that order."""

    order: np.ndarray
    codes: np.ndarray  # group code of each sorted row
    labels: pd.Index
    first: np.ndarray  # whether a sorted row is its group's first
    time: np.ndarray | None  # sorted times (None: data order)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.labels))


class BoundCorrelation(ABC):
    """A correlation structure on a model's sorted rows: its parameters, whitening and log|R|."""

    names: tuple[str, ...] = ()

    def __init__(self, spec: Correlation, groups: Groups):
        self.spec, self.groups = spec, groups

    @property
    def nparams(self) -> int:
        return len(self.names)

    def start(self) -> np.ndarray:
        return np.zeros(self.nparams)

    @abstractmethod
    def estimates(self, a: np.ndarray) -> pd.Series:
        """The parameters nlme prints (Phi, Rho or the correlations)."""

    @abstractmethod
    def whiten(self, a: np.ndarray, M: np.ndarray) -> np.ndarray:
        """C⁻¹ M for the sorted rows M, C the square root of R whose inverse whitens."""

    @abstractmethod
    def logdet(self, a: np.ndarray) -> float:
        """Σ_g log|R_g|."""


_AR1_MAP = CovStructure("ar1")  # φ = a/√(1 + a²), glmmTMB's map
_CS_MAP = CovStructure("cs")  # ρ in [−1/(m − 1), 1]


class Autoregressive(BoundCorrelation):
    """AR(1) and CAR(1): a bidiagonal whitening with ρₖ = φ^(tₖ − tₖ₋₁)."""

    names = ("Phi",)

    def __init__(self, spec: Correlation, groups: Groups):
        super().__init__(spec, groups)
        t = groups.time if groups.time is not None else _positions(groups)
        gap = np.diff(t, prepend=t[0])
        self.gap = np.where(groups.first, 0.0, gap)
        self.continuous = isinstance(spec, CAR1)
        # φ^gap for the distinct gaps only (a few for whole-number times), then spread to the rows
        self.distinct_gaps, self.gap_index = np.unique(self.gap, return_inverse=True)
        self._last: tuple[float, np.ndarray] | None = None  # (φ, ρ) of the last φ asked

    def start(self) -> np.ndarray:
        return np.array([np.log(0.2 / 0.8)]) if self.continuous else np.zeros(1)

    def phi(self, a: np.ndarray) -> float:
        return float(1.0 / (1.0 + np.exp(-a[0]))) if self.continuous else _AR1_MAP.rho(float(a[0]), 2)

    def estimates(self, a: np.ndarray) -> pd.Series:
        return pd.Series([self.phi(a)], index=["Phi"])

    def _lag_correlations(self, a: np.ndarray) -> np.ndarray:
        """ρₖ of every row (0 for a group's first), computed once per φ: the whitening and the
        log-determinant at one φ share it."""
        phi = self.phi(a)
        if self._last is None or self._last[0] != phi:
            rho = np.power(phi, self.distinct_gaps)[self.gap_index]
            self._last = (phi, np.where(self.groups.first, 0.0, rho))
        return self._last[1]

    def whiten(self, a: np.ndarray, M: np.ndarray) -> np.ndarray:
        rho = self._lag_correlations(a)
        out = M.copy()
        out[1:] -= rho[1:, None] * M[:-1]
        return out / np.sqrt(1.0 - rho * rho)[:, None]

    def logdet(self, a: np.ndarray) -> float:
        rho = self._lag_correlations(a)
        return float(np.log1p(-rho * rho).sum())


class CompoundSymmetry(BoundCorrelation):
    """ρ between any two rows of a group, whitened by nlme's Helmert factor (so the normalized
    residuals agree with nlme's): a group's first row becomes its sum over √(m(1 + (m − 1)ρ)), its
    k-th row ((k − 1)xₖ − Σ_{j<k} xⱼ)/√((1 − ρ)(k − 1)k), with log|R| = log(1 + (m − 1)ρ) + (m − 1) log(1 − ρ)."""

    names = ("Rho",)

    def __init__(self, spec: Correlation, groups: Groups):
        super().__init__(spec, groups)
        self.k = _positions(groups)
        self.m = groups.sizes.astype(float)
        self.largest = max(int(self.m.max()), 2)
        self.head = np.flatnonzero(groups.first)

    def start(self) -> np.ndarray:
        return np.array([_CS_MAP.a_of(0.0, self.largest)])

    def rho(self, a: np.ndarray) -> float:
        return _CS_MAP.rho(float(a[0]), self.largest)

    def estimates(self, a: np.ndarray) -> pd.Series:
        return pd.Series([self.rho(a)], index=["Rho"])

    def whiten(self, a: np.ndarray, M: np.ndarray) -> np.ndarray:
        rho, k, codes = self.rho(a), self.k[:, None], self.groups.codes
        total = np.cumsum(M, axis=0)
        before = total - M
        before -= np.repeat(before[self.head], np.diff(np.append(self.head, len(M))), axis=0)  # within the group
        with np.errstate(divide="ignore", invalid="ignore"):
            out = ((k - 1.0) * M - before) / np.sqrt((1.0 - rho) * (k - 1.0) * k)
        sums = (before + M)[np.append(self.head[1:], len(M)) - 1]  # each group's total
        out[self.head] = sums / np.sqrt(self.m * (1.0 + (self.m - 1.0) * rho))[:, None]
        return out

    def logdet(self, a: np.ndarray) -> float:
        rho = self.rho(a)
        return float(np.sum(np.log(1.0 + (self.m - 1.0) * rho) + (self.m - 1.0) * np.log(1.0 - rho)))


class General(BoundCorrelation):
    """A free correlation matrix over the distinct times; groups whitened by the Cholesky factor of
    their submatrix, all groups with the same times at once."""

    def __init__(self, spec: Correlation, groups: Groups):
        super().__init__(spec, groups)
        t = groups.time if groups.time is not None else _positions(groups)
        self.times, position = np.unique(t, return_inverse=True)
        if len(self.times) > MAX_TIMES:
            raise DataError(f"{_call(spec)}: {len(self.times)} distinct times; a general correlation has one "
                            f"parameter per pair, so at most {MAX_TIMES} are allowed; use AR1 or CAR1")
        T = len(self.times)
        pairs = [(i, j) for j in range(T) for i in range(j + 1, T)]  # nlme's order: by column of the lower triangle
        self.pairs = (np.array([i for i, _ in pairs], dtype=int), np.array([j for _, j in pairs], dtype=int))
        self.names = tuple(f"cor({_label(self.times[j])},{_label(self.times[i])})" for i, j in pairs)
        self.lower = np.tril_indices(T, -1)
        starts = np.flatnonzero(groups.first)
        ends = np.append(starts[1:], len(position))
        patterns: dict[tuple[int, ...], list[int]] = {}
        for s, e in zip(starts, ends):
            patterns.setdefault(tuple(position[s:e]), []).append(int(s))
        self.patterns = [(np.array(key), np.array(firsts)[:, None] + np.arange(len(key)))
                         for key, firsts in patterns.items()]

    def correlation(self, a: np.ndarray) -> np.ndarray:
        T = len(self.times)
        B = np.eye(T)
        B[self.lower] = a  # unit lower triangle, rows normalised: R = L Lᵀ has a unit diagonal
        L = B / np.linalg.norm(B, axis=1)[:, None]
        return L @ L.T

    def estimates(self, a: np.ndarray) -> pd.Series:
        R = self.correlation(a)
        return pd.Series(R[self.pairs], index=list(self.names))

    def whiten(self, a: np.ndarray, M: np.ndarray) -> np.ndarray:
        R = self.correlation(a)
        out = np.empty_like(M)
        for key, rows in self.patterns:
            C = np.linalg.cholesky(R[np.ix_(key, key)])
            Cinv = np.linalg.inv(C)
            out[rows] = np.einsum("ij,gjk->gik", Cinv, M[rows])
        return out

    def logdet(self, a: np.ndarray) -> float:
        R = self.correlation(a)
        return float(sum(len(rows) * 2.0 * np.log(np.diag(np.linalg.cholesky(R[np.ix_(key, key)]))).sum()
                         for key, rows in self.patterns))


class BoundVariance:
    """A variance function on the sorted rows: gᵢ(a) and its parameters."""

    def __init__(self, spec: Variance, frame: pd.DataFrame, order: np.ndarray):
        self.spec = spec
        if isinstance(spec, VarIdent):
            codes, levels = _codes(frame[spec.by])
            if len(levels) < 2:
                raise DataError(f"{_call(spec)}: column {spec.by!r} has one level among the rows used; "
                                "a standard deviation per stratum needs two or more")
            self.codes, self.levels = codes[order], levels
            self.names: tuple[str, ...] = tuple(str(v) for v in levels[1:])
        else:
            v = _numeric(frame[spec.covariate], spec)
            bad = int((v <= 0).sum())
            if bad:
                raise DataError(f"{_call(spec)}: {bad} value(s) of {spec.covariate!r} are zero or negative; "
                                "varPower needs a positive covariate (shift or rescale it)")
            self.log_v = np.log(v)[order]
            self.names = ("power",)

    @property
    def nparams(self) -> int:
        return len(self.names)

    def sd_ratios(self, a: np.ndarray) -> np.ndarray:
        """gᵢ for every sorted row."""
        if isinstance(self.spec, VarIdent):
            return np.exp(np.concatenate([[0.0], a]))[self.codes]
        return np.exp(a[0] * self.log_v)

    def estimates(self, a: np.ndarray) -> pd.Series:
        if isinstance(self.spec, VarIdent):
            return pd.Series(np.exp(np.concatenate([[0.0], a])), index=[str(v) for v in self.levels])
        return pd.Series([float(a[0])], index=["power"])


@dataclass(frozen=True)
class ResidualStructure:
    """A model's residual correlation and variance function, bound to its rows; φ = (correlation's
    parameters, variance function's), each unbounded."""

    correlation: BoundCorrelation | None
    variance: BoundVariance | None
    groups: Groups

    @property
    def order(self) -> np.ndarray:
        return self.groups.order

    @property
    def parts(self) -> list[BoundCorrelation | BoundVariance]:
        return [s for s in (self.correlation, self.variance) if s is not None]

    @property
    def nparams(self) -> int:
        return sum(s.nparams for s in self.parts)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for s in self.parts for n in s.names)

    def start(self) -> np.ndarray:
        parts = [self.correlation.start()] if self.correlation is not None else []
        if self.variance is not None:
            parts.append(np.zeros(self.variance.nparams))
        return np.concatenate(parts) if parts else np.zeros(0)

    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = 0 if self.correlation is None else self.correlation.nparams
        return np.asarray(phi[:k], dtype=float), np.asarray(phi[k:], dtype=float)

    def whiten(self, phi: np.ndarray, M: np.ndarray) -> np.ndarray:
        """W M for the sorted rows M (n × k): divided by gᵢ, then by the correlation's square root."""
        a_cor, a_var = self.split(phi)
        if self.variance is not None:
            M = M / self.variance.sd_ratios(a_var)[:, None]
        return M if self.correlation is None else self.correlation.whiten(a_cor, M)

    def logdet(self, phi: np.ndarray) -> float:
        """log|V| = 2 Σ log gᵢ + Σ_g log|R_g|."""
        a_cor, a_var = self.split(phi)
        out = 0.0 if self.correlation is None else self.correlation.logdet(a_cor)
        if self.variance is not None:
            out += 2.0 * float(np.log(self.variance.sd_ratios(a_var)).sum())
        return out

    def normalized(self, phi: np.ndarray, r: np.ndarray) -> np.ndarray:
        """W r for residuals r in the model's row order, returned in that order (nlme's normalized residuals × σ)."""
        out = np.empty_like(r, dtype=float)
        out[self.order] = self.whiten(phi, np.asarray(r, dtype=float)[self.order][:, None])[:, 0]
        return out

    def sd_ratios(self, phi: np.ndarray) -> np.ndarray:
        """gᵢ in the model's row order (1 without a variance function)."""
        g = np.ones(len(self.order))
        if self.variance is not None:
            g[self.order] = self.variance.sd_ratios(self.split(phi)[1])
        return g


_KINDS: dict[type, type[BoundCorrelation]] = {AR1: Autoregressive, CAR1: Autoregressive,
                                               CompSymm: CompoundSymmetry, Symm: General}


def bind(correlation: Correlation | None, variance: Variance | None, frame: pd.DataFrame,
         reterms: tuple[ReTerm, ...]) -> ResidualStructure:
    """The structures on a model's complete rows ``frame`` (in the design's row order), checked:
    the time numeric, whole for AR1, distinct within each group; each group inside one level of
    every random-effects grouping factor (nlme's nesting)."""
    spec = correlation
    group = None if spec is None else spec.group
    if spec is not None and group is None and reterms:
        factors = {t.group_columns: t for t in reterms}
        if len(factors) > 1:
            raise DataError(f"{_call(spec)}: the random effects have several grouping factors "
                            f"({', '.join(t.group for t in factors.values())}); name the residual groups with group=")
        term = next(iter(factors.values()))
        codes, labels = term.codes, term.levels
        if len(term.group_columns) == 1:  # the groups taken, named as nlme prints them: '~week | id'
            spec = replace(spec, group=term.group_columns[0])
    elif group is not None:
        codes, labels = _codes(frame[group])
    else:
        if isinstance(spec, (CompSymm, Symm)):
            raise DataError(f"{_call(spec)}: without random effects name the groups, e.g. group='subject'")
        codes, labels = np.zeros(len(frame), dtype=np.int64), pd.Index(["(all)"])
    time = None if spec is None or spec.time is None else _times(spec, frame)
    order = np.lexsort((np.arange(len(codes)),) + (() if time is None else (time,)) + (codes,))
    sorted_codes = codes[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_codes[1:] != sorted_codes[:-1]
    groups = Groups(order=order, codes=sorted_codes, labels=labels, first=first,
                    time=None if time is None else time[order])
    if spec is not None:
        _check_distinct_times(spec, groups)
        _check_nested(spec, groups, reterms)
    bound = None if spec is None else _KINDS[type(spec)](spec, groups)
    var = None if variance is None else BoundVariance(variance, frame, order)
    return ResidualStructure(bound, var, groups)


def _times(spec: Correlation, frame: pd.DataFrame) -> np.ndarray:
    """The time column, numeric and finite; whole numbers for AR1."""
    time = _numeric(frame[spec.time], spec)
    if isinstance(spec, AR1) and not np.all(time == np.round(time)):
        raise DataError(f"{_call(spec)}: AR1 needs whole-number times but {spec.time!r} has fractional "
                        "values; use CAR1 for continuous time")
    return time


def _check_distinct_times(spec: Correlation, groups: Groups) -> None:
    t = groups.time
    if t is None:
        return
    repeated = ~groups.first[1:] & (t[1:] == t[:-1])
    if repeated.any():
        k = int(np.flatnonzero(repeated)[0]) + 1
        raise DataError(f"{_call(spec)}: time {_label(t[k])} appears twice in group "
                        f"{str(groups.labels[groups.codes[k]])!r} of {spec.group or 'the residual groups'!r}; "
                        f"each time must be distinct within a group (column {spec.time!r})")


def _check_nested(spec: Correlation, groups: Groups, reterms: tuple[ReTerm, ...]) -> None:
    """Each residual group within one level of every grouping factor, as nlme requires."""
    head = np.maximum.accumulate(np.where(groups.first, np.arange(len(groups.order)), 0))
    for t in reterms:
        tc = t.codes[groups.order]
        split = tc != tc[head]
        if split.any():
            k = int(np.flatnonzero(split)[0])
            raise DataError(f"{_call(spec)}: residual group {str(groups.labels[groups.codes[k]])!r} spans several "
                            f"levels of the random-effects factor {t.group!r}; the residual groups must be nested "
                            "in every grouping factor (as nlme requires)")


def _positions(groups: Groups) -> np.ndarray:
    """1, 2, … within each group: the data's order (nlme's ``form = ~1 | g``)."""
    idx = np.arange(len(groups.codes))
    head = np.maximum.accumulate(np.where(groups.first, idx, 0))
    return (idx - head + 1).astype(float)


def _codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy().astype(np.int64), pd.Index(cat.cat.categories)
    levels, codes = np.unique(column.to_numpy(), return_inverse=True)
    return codes.astype(np.int64), pd.Index(levels)


def _numeric(column: pd.Series, spec: Correlation | Variance) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"{_call(spec)}: column {column.name!r} must be numeric, not {column.dtype}")
    values = column.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise DataError(f"{_call(spec)}: column {column.name!r} has infinite values")
    return values


def _label(value: float) -> str:
    return f"{value:g}"
