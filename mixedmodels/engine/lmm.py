"""The linear mixed model's profiled deviance and its optimisation over θ.

After set-up the model needs only the crossproduct blocks A and n (``ProfiledLMM``):
each evaluation of the objective is one blocked Cholesky factorisation
(docs/design.md).  ``LinearMixedModel`` computes A from a design's rows; a Dask fit
sums it over partitions.  The terms come in the spec's canonical order.
"""

from __future__ import annotations

import copy
from typing import TypeVar
from functools import cached_property
from dataclasses import dataclass, replace

import numpy as np

from ..linalg.blockchol import BlockedCholesky, factorize
from ..linalg.crossprod import CrossproductBuilder, Crossproducts, stacked_crossproducts
from ..design.build import Design
from .control import DEFAULT_CONTROL, Control
from .gradient import GradientPlan, deviance_gradient, reflect_bound_columns
from .optimizer import OptimumReport, optimize
from ..design.reterm import ReTerm, TermSet, same_factor_groups, stacked_term
from .starting import moment_start, reliable_theta_limit, rescaled_start

_LOG_2PI = np.log(2 * np.pi)


_Model = TypeVar("_Model", bound="ProfiledLMM")


class ProfiledLMM(TermSet):
    """Profiled (RE)ML deviance of y = Xβ + Zb + ε from the crossproducts alone (no rows).

    ``crossprod`` holds the blocks of A for the terms in this order and [X y] (y minus
    any offset) as the last block; ``log_weights`` is Σ log wᵢ.  The terms need only
    their structure (levels, columns): a Dask fit's have no rows.
    """

    def __init__(self, terms: tuple[ReTerm, ...], crossprod: Crossproducts, n: int, p: int,
                 REML: bool = True, log_weights: float = 0.0, control: Control = DEFAULT_CONTROL):
        super().__init__(terms)
        self.crossprod = crossprod
        self.n, self.p = int(n), int(p)
        self.REML = REML
        self._log_weights = float(log_weights)
        self.control = control

    def factor(self, theta: np.ndarray) -> BlockedCholesky:
        return factorize(self.crossprod, self.lambdas(theta), self.p)

    def objective(self, theta: np.ndarray, REML: bool | None = None) -> float:
        """−2 log-likelihood (ML) or the REML criterion, profiled over β and σ."""
        REML = self.REML if REML is None else REML
        try:
            L = self.amalgamated.factor(np.asarray(theta, dtype=float), self.p)
        except np.linalg.LinAlgError:
            return np.inf
        return deviance_from_factor(L, self.n, REML) - self._log_weights

    def with_REML(self: _Model, REML: bool) -> _Model:
        """The same model under the other criterion, sharing the crossproducts (they do not depend on it)."""
        other = copy.copy(self)
        other.REML = REML
        return other

    def fit(self, theta0: np.ndarray | None = None) -> OptimumReport:
        """Minimise the objective over θ, θ's diagonal bounded below by 0, as ``self.control`` says
        (L-BFGS-B with the analytic gradient where ``uses_gradient``, else BOBYQA).

        Without ``theta0`` the start is the method-of-moments θ of ``mixedmodels.engine.starting``;
        a given ``theta0`` is first rescaled when a multiple of it is far better (``rescaled_start``).
        """
        if theta0 is None:
            start, step = moment_start(self.crossprod, self, self.n, self.p, self.control.initial_step)
        else:
            start, step = rescaled_start(self.objective, np.asarray(theta0, dtype=float),
                                         reliable_theta_limit(self.crossprod), self.theta_scales), None
        if not self.uses_gradient():
            return optimize(self.objective, start, self.theta_lower, self.control, initial_step=step)
        return optimize(self.objective, start, self.theta_lower, self.control, initial_step=step,
                        gradient=self.objective_and_gradient,
                        reflect=lambda theta, grad: reflect_bound_columns(self, theta, grad))

    def uses_gradient(self) -> bool:
        """Whether the fit takes L-BFGS-B with the gradient: always for ``optimizer="lbfgsb"``; for
        "auto" while the gradient's dense blocks hold at most ``control.gradient_max_entries`` numbers
        and the model has at least ``control.gradient_min_theta`` parameters."""
        ctl = self.control
        if ctl.optimizer != "auto":
            return ctl.optimizer == "lbfgsb"
        q = [t.q for t in self.amalgamated.terms.terms]
        rest = sum(q[1:]) + self.p
        return self.ntheta >= ctl.gradient_min_theta and rest * (rest + q[0]) <= ctl.gradient_max_entries

    def objective_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its analytic gradient in θ (engine/gradient.py); (inf, NaN) where it has none."""
        theta = np.asarray(theta, dtype=float)
        merged = self.amalgamated
        try:
            L = merged.factor(theta, self.p)
            value = deviance_from_factor(L, self.n, self.REML) - self._log_weights
            if not np.isfinite(value):
                raise np.linalg.LinAlgError
            grad = deviance_gradient(L, self.gradient_plan, merged.terms, self.n, self.REML, merged.theta(theta))
            return value, merged.model_order(grad)
        except np.linalg.LinAlgError:
            return np.inf, np.full(len(theta), np.nan)

    @cached_property
    def gradient_plan(self) -> GradientPlan:
        return GradientPlan.from_crossproducts(self.amalgamated.crossprod)

    @cached_property
    def amalgamated(self) -> Amalgamation:
        """The terms with those of each grouping factor taken as one, for the evaluations."""
        return amalgamate(self, self.crossprod)


@dataclass(frozen=True)
class Amalgamation:
    """A model's terms with those of each grouping factor taken as one (``stacked_term``; in
    the canonical order, by decreasing ℓᵢpᵢ), as MixedModels.jl does: ``(1 + x || g)`` and
    other terms of one factor become one block per level, so an evaluation handles each
    level's effects at once instead of looping over pairs of terms.  The deviance is the
    same function of θ (the effects are only reordered); ``order`` says where the stacked
    terms' θ sits in the model's θ (None: nothing was stacked)."""

    terms: TermSet
    crossprod: Crossproducts
    order: np.ndarray | None

    def theta(self, theta: np.ndarray) -> np.ndarray:
        """The stacked terms' θ from the model's."""
        return theta if self.order is None else theta[self.order]

    def model_order(self, values: np.ndarray) -> np.ndarray:
        """A vector over the stacked terms' θ (a gradient) in the model's θ order."""
        if self.order is None:
            return values
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def factor(self, theta: np.ndarray, p: int) -> BlockedCholesky:
        """L at the model's θ, in the stacked layout."""
        return factorize(self.crossprod, self.terms.lambdas(self.theta(theta)), p)


def amalgamate(terms: TermSet, A: Crossproducts) -> Amalgamation:
    """The ``Amalgamation`` of a model's terms and crossproducts."""
    groups = same_factor_groups(terms.terms)
    if len(groups) == len(terms.terms):  # a TermSet of its own: the model holding it is no reference cycle
        return Amalgamation(TermSet(terms.terms), A, None)
    groups.sort(key=lambda g: -sum(terms.terms[j].q for j in g))
    slices = terms.theta_slices()
    order = np.concatenate([np.arange(slices[j].start, slices[j].stop) for g in groups for j in g])
    stacked = TermSet(tuple(stacked_term([terms.terms[j] for j in g]) for g in groups))
    return Amalgamation(stacked, stacked_crossproducts(A, groups), order)


class LinearMixedModel(ProfiledLMM):
    """The profiled deviance of one design: its crossproducts from the rows, in one pass."""

    def __init__(self, design: Design, REML: bool = True, control: Control = DEFAULT_CONTROL):
        y = design.y if design.offset is None else design.y - design.offset
        b0 = least_squares(design.X, y, design.weights)  # the response enters as y − Xb₀: see shift_response
        A = CrossproductBuilder(design.reterms)(np.column_stack([design.X, y - design.X @ b0]), design.weights)
        w = design.weights
        super().__init__(design.reterms, replace(A, beta_shift=b0), design.n, design.X.shape[1], REML,
                         0.0 if w is None else float(np.log(w).sum()), control)
        self.design = design


def least_squares(X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """The (weighted) least-squares coefficients of y on X."""
    if not X.shape[1]:
        return np.zeros(0)
    sw = np.ones(len(y)) if w is None else np.sqrt(w)
    return np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]


def deviance_from_factor(L: BlockedCholesky, n: int, REML: bool) -> float:
    """The profiled deviance of docs/design.md from the blocked Cholesky factor."""
    return profiled_deviance(L.logdet_z(), L.logdet_x(), L.r**2, n, L.p, REML)


def profiled_deviance(logdet_z: float, logdet_x: float, r2: float, n: int, p: int, REML: bool) -> float:
    """log|L_Z|² + n(1 + log 2π + log(r²/n)) (ML), or with log|L_X|² and ν = n − p in place of n (REML)."""
    if REML:
        nu = n - p
        return logdet_z + logdet_x + nu * (1.0 + _LOG_2PI + np.log(r2 / nu))
    return logdet_z + n * (1.0 + _LOG_2PI + np.log(r2 / n))
