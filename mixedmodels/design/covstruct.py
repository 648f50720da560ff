"""Covariance structures of a random-effects term: lme4 2.0's us(), diag(), cs() and ar1().

The random effects of one level of a term have covariance Σ = σ² TTᵀ, T the relative
factor.  Unstructured (``us``, the default) T is free: θ is its lower triangle, column by
column.  The structured terms write

    T = diag(τ) C(ρ),   C = chol(R(ρ)),   chol(D R D) = D chol(R) for D = diag(τ) ≥ 0,

with R a correlation matrix of at most one parameter:

    diag:  R = I
    cs:    R = (1 − ρ) I + ρ 11ᵀ,    −1/(p − 1) ≤ ρ ≤ 1   (compound symmetry)
    ar1:   Rᵢⱼ = ρ^|i−j|,             −1 ≤ ρ ≤ 1         (over the columns in their order)

and one τ for every column (``hom=True``) or one per column.  Their θ is (τ..., a): τ ≥ 0
(the relative standard deviations, σ_b/σ) and a unbounded, mapped into ρ's interval
[lo, 1] by ρ = lo + (1 − lo)(1 + s)/2 with s = a/√(1 + a²) (for ar1, lo = −1, glmmTMB's
ρ = a/√(1 + a²)); so θ's bounds stay lower bounds, as the optimizers take them.  T is
lower triangular and linear in τ; ``jacobian`` gives ∂T/∂θ for the LMM's analytic
gradient (the chain rule through dC/dρ = C Φ(C⁻¹ (dR/dρ) C⁻ᵀ), Φ the lower triangle with
half the diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

#: lme4 2.0's tags of the structures as VarCorr prints them (vcmat_<tag>), by (name, hom)
_TAGS = {("diag", False): "diag", ("diag", True): "homdiag", ("cs", False): "cs", ("cs", True): "homcs",
         ("ar1", False): "hetar1", ("ar1", True): "ar1"}


@dataclass(frozen=True)
class CovStructure:
    """The covariance structure of a term: ``name`` 'us', 'diag', 'cs' or 'ar1' and, for the
    structured ones, whether one standard deviation serves every column (``hom``)."""

    name: str = "us"
    hom: bool = False

    @property
    def structured(self) -> bool:
        return self.name != "us"

    @property
    def tag(self) -> str:
        """lme4 2.0's and glmmTMB's name of the structure: 'us', 'diag', 'homdiag', 'cs', 'homcs', 'ar1', 'hetar1'."""
        return _TAGS.get((self.name, self.hom), self.name)

    def spelling(self, expr: str, group: str) -> str:
        """The term as written in a formula: '(x | g)', 'ar1(0 + f | g)', 'cs(0 + f | g, hom = TRUE)'."""
        if not self.structured:
            return f"({expr} | {group})"
        default = self.name == "ar1"
        hom = "" if self.hom == default else f", hom = {'TRUE' if self.hom else 'FALSE'}"
        return f"{self.name}({expr} | {group}{hom})"

    # ----- θ's layout ---------------------------------------------------------------------
    def has_rho(self, p: int) -> bool:
        """Whether the term has a correlation parameter (cs and ar1 with two columns or more)."""
        return self.name in ("cs", "ar1") and p > 1

    def sd_columns(self, p: int) -> tuple[int, ...]:
        """The columns whose standard deviations are parameters: all, or the first when homogeneous."""
        return (0,) if self.structured and self.hom and p else tuple(range(p))

    def ntheta(self, p: int) -> int:
        if not self.structured:
            return p * (p + 1) // 2
        return len(self.sd_columns(p)) + self.has_rho(p)

    def lower(self, p: int) -> np.ndarray:
        """Lower bounds of θ: 0 for τ (and for us the diagonal of T), −∞ for the rest."""
        if not self.structured:
            rows, cols = lower_indices(p)
            return np.where(rows == cols, 0.0, -np.inf)
        return np.array([0.0] * len(self.sd_columns(p)) + [-np.inf] * self.has_rho(p))

    def start(self, p: int) -> np.ndarray:
        """T = I: τ = 1 and ρ = 0, lme4's start."""
        if not self.structured:
            rows, cols = lower_indices(p)
            return (rows == cols).astype(float)
        return np.array([1.0] * len(self.sd_columns(p)) + ([self.a_of(0.0, p)] if self.has_rho(p) else []))

    def scales(self, p: int) -> np.ndarray:
        """Which elements of θ scale T linearly (all for us; the τ of a structure, not its a)."""
        return np.ones(p * (p + 1) // 2, dtype=bool) if not self.structured else np.isfinite(self.lower(p))

    def correlation_pairs(self, p: int) -> tuple[tuple[int, int], ...]:
        """The (row, column) pairs whose correlations are parameters: every pair below the diagonal
        (us), the first, (1, 0), standing for the common ρ (cs, ar1), or none (diag)."""
        if not self.structured:
            return tuple((a, b) for b in range(p) for a in range(b + 1, p))
        return ((1, 0),) if self.has_rho(p) else ()

    # ----- ρ and its unbounded parameter --------------------------------------------------
    def rho_interval(self, p: int) -> tuple[float, float]:
        """ρ's interval: [−1/(p − 1), 1] for cs (R positive semi-definite), [−1, 1] for ar1."""
        return (-1.0 / (p - 1) if self.name == "cs" and p > 1 else -1.0), 1.0

    def rho(self, a: float, p: int) -> float:
        """ρ from its unbounded parameter a (a = ±∞ give the interval's ends)."""
        lo, hi = self.rho_interval(p)
        s = float(np.sign(a)) if np.isinf(a) else a / np.sqrt(1.0 + a * a)
        return lo + (hi - lo) * (1.0 + s) / 2.0

    def a_of(self, rho: float, p: int) -> float:
        """The unbounded parameter of ρ (±∞ at the interval's ends)."""
        lo, hi = self.rho_interval(p)
        s = float(np.clip(2.0 * (rho - lo) / (hi - lo) - 1.0, -1.0, 1.0))
        return float(np.sign(s) * np.inf) if abs(s) == 1.0 else s / np.sqrt(1.0 - s * s)

    def correlation_factor(self, rho: float, p: int) -> np.ndarray:
        """C = chol(R(ρ)), in closed form so that it exists on the closed interval (R singular at its ends)."""
        if self.name == "ar1":
            k = np.subtract.outer(np.arange(p), np.arange(p))
            C = np.where(k >= 0, rho ** np.maximum(k, 0), 0.0)
            C[:, 1:] *= np.sqrt(max(1.0 - rho * rho, 0.0))
            return C
        if self.name == "cs":  # every entry below the diagonal of column j is the same cⱼ
            C = np.zeros((p, p))
            used = 0.0  # Σ_{k<j} c_k²
            for j in range(p):
                d = np.sqrt(max(1.0 - used, 0.0))
                c = (rho - used) / d if d > 0 else 0.0
                C[j, j] = d
                C[j + 1:, j] = c
                used += c * c
            return C
        return np.eye(p)

    # ----- T from θ and back ----------------------------------------------------------------
    def split(self, theta: np.ndarray, p: int) -> tuple[np.ndarray, float]:
        """Each column's τ and ρ (0 without a correlation) from θ."""
        k = len(self.sd_columns(p))
        tau = np.full(p, theta[0]) if self.hom else np.asarray(theta[:k], dtype=float)
        return tau, (self.rho(float(theta[k]), p) if self.has_rho(p) else 0.0)

    def factor(self, theta: np.ndarray, p: int) -> np.ndarray:
        """The lower-triangular p×p relative factor T from θ."""
        if not self.structured:
            rows, cols = lower_indices(p)
            T = np.zeros((p, p))
            T[rows, cols] = theta
            return T
        tau, rho = self.split(theta, p)
        return tau[:, None] * self.correlation_factor(rho, p)

    def theta_of(self, tau: np.ndarray, rho: float, p: int) -> np.ndarray:
        """θ from the relative standard deviations of ``sd_columns`` and ρ."""
        return np.concatenate([np.asarray(tau, dtype=float), [self.a_of(rho, p)] if self.has_rho(p) else []])

    def jacobian(self, theta: np.ndarray, p: int) -> np.ndarray:
        """∂T/∂θₖ for each element k of a structured term's θ, as a (k, p, p) stack."""
        tau, rho = self.split(theta, p)
        C = self.correlation_factor(rho, p)
        k = len(self.sd_columns(p))
        out = np.zeros((self.ntheta(p), p, p))
        if self.hom:
            out[0] = C
        else:
            out[np.arange(k), np.arange(k)] = C
        if self.has_rho(p):
            a = float(theta[k])
            lo, hi = self.rho_interval(p)
            drho_da = (hi - lo) / 2.0 * (1.0 + a * a) ** -1.5
            out[k] = tau[:, None] * _cholesky_derivative(C, self._correlation_derivative(rho, p)) * drho_da
        return out

    def pullback(self, theta: np.ndarray, p: int, dT: np.ndarray) -> np.ndarray:
        """∂f/∂θ from ∂f/∂T (a p×p matrix of which the lower triangle counts): the chain rule."""
        return np.einsum("kij,ij->k", self.jacobian(theta, p), np.tril(dT))

    def _correlation_derivative(self, rho: float, p: int) -> np.ndarray:
        if self.name == "cs":
            return np.ones((p, p)) - np.eye(p)
        k = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
        return np.where(k > 0, k * rho ** np.maximum(k - 1, 0), 0.0)

    def at_boundary(self, theta: np.ndarray, p: int, tol: float) -> bool:
        """Whether the covariance is (nearly) singular: a τ below ``tol``, or ρ within ``tol`` of an end
        (for us: a diagonal element of T below ``tol``)."""
        lower = self.lower(p)
        if np.any(theta[np.isfinite(lower)] < tol):
            return True
        if not self.has_rho(p):
            return False
        lo, hi = self.rho_interval(p)
        rho = self.split(theta, p)[1]
        return bool(rho - lo < tol or hi - rho < tol)


@dataclass(frozen=True)
class StackedStructure(CovStructure):
    """Several terms of one grouping factor taken as one: T = blockdiag(T₁, …, Tₘ) over the
    parts' columns, θ the parts' θ one after another.

    The engine amalgamates the terms of a grouping factor into one term of this structure
    (as MixedModels.jl does), so that an evaluation handles each level's effects in one
    block instead of looping over pairs of terms; results and reports see the parts.
    """

    name: str = "stacked"
    parts: tuple[tuple[CovStructure, int], ...] = ()  # each part's structure and its number of columns

    def _offsets(self) -> list[tuple[CovStructure, int, slice, slice]]:
        """Each part with its columns' slice in T and its slice of θ."""
        out, col, at = [], 0, 0
        for structure, p in self.parts:
            k = structure.ntheta(p)
            out.append((structure, p, slice(col, col + p), slice(at, at + k)))
            col, at = col + p, at + k
        return out

    def spelling(self, expr: str, group: str) -> str:
        return f"({expr} || {group})"

    def ntheta(self, p: int) -> int:
        return sum(structure.ntheta(q) for structure, q in self.parts)

    def lower(self, p: int) -> np.ndarray:
        return np.concatenate([structure.lower(q) for structure, q in self.parts])

    def start(self, p: int) -> np.ndarray:
        return np.concatenate([structure.start(q) for structure, q in self.parts])

    def scales(self, p: int) -> np.ndarray:
        return np.concatenate([structure.scales(q) for structure, q in self.parts])

    @cached_property
    def _free(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Where θ's elements sit in T when every part is unstructured (each θ one element of T); else None."""
        if any(structure.structured for structure, _ in self.parts):
            return None
        pieces = [(lower_indices(q), cols.start) for _, q, cols, _ in self._offsets()]
        return (np.concatenate([rows + at for (rows, _), at in pieces]),
                np.concatenate([columns + at for (_, columns), at in pieces]))

    def factor(self, theta: np.ndarray, p: int) -> np.ndarray:
        free = self._free
        T = np.zeros((p, p))
        if free is not None:  # unstructured parts only: θ is a set of T's elements
            T[free] = theta
            return T
        for structure, q, cols, s in self._offsets():
            T[cols, cols] = structure.factor(theta[s], q)
        return T

    def jacobian(self, theta: np.ndarray, p: int) -> np.ndarray:
        out = np.zeros((self.ntheta(p), p, p))
        for structure, q, cols, s in self._offsets():
            if structure.structured:
                out[s, cols, cols] = structure.jacobian(theta[s], q)
            else:
                rows, columns = lower_indices(q)
                out[np.arange(s.start, s.stop), rows + cols.start, columns + cols.start] = 1.0
        return out

    def pullback(self, theta: np.ndarray, p: int, dT: np.ndarray) -> np.ndarray:
        free = self._free
        if free is not None:
            return dT[free]
        return np.concatenate([structure.pullback(theta[s], q, dT[cols, cols]) if structure.structured
                               else dT[cols, cols][lower_indices(q)] for structure, q, cols, s in self._offsets()])

    def at_boundary(self, theta: np.ndarray, p: int, tol: float) -> bool:
        return any(structure.at_boundary(theta[s], q, tol) for structure, q, _, s in self._offsets())


UNSTRUCTURED = CovStructure()


def _cholesky_derivative(C: np.ndarray, dR: np.ndarray) -> np.ndarray:
    """dC for C = chol(R) and a change dR of R: C Φ(C⁻¹ dR C⁻ᵀ), Φ the lower triangle with half its diagonal."""
    X = np.linalg.solve(C, np.linalg.solve(C, dR).T)  # C⁻¹ dR C⁻ᵀ (symmetric)
    Phi = np.tril(X) - 0.5 * np.diag(np.diag(X))
    return C @ Phi


@lru_cache(maxsize=None)
def lower_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a p×p lower triangle, column by column (lme4's θ order).

    Cached (read-only): Tᵢ is rebuilt from θ at every objective evaluation.
    """
    cols, rows = np.triu_indices(p)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols
