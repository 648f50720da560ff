"""Generalized linear mixed models: PIRLS, the Laplace approximation and adaptive quadrature.

For given θ (and β) the conditional modes u come from penalised iteratively
reweighted least squares: each iteration is the LMM's blocked Cholesky on the
crossproducts with working weights and working response (docs/design.md).  Then

    Laplace:  −2ℓ ≈ Σ −2 log f(yᵢ | μᵢ) + ‖u‖² + log |L|²,

and for a single scalar random-effects term, adaptive Gauss–Hermite quadrature
replaces each group's Gaussian approximation by nAGQ nodes.  As lme4, the fit
first optimises θ with β inside PIRLS (lme4's nAGQ = 0), then (θ, β) together.
"""

from __future__ import annotations

import copy

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..linalg.blockchol import BlockedCholesky, factorize
from ..linalg.crossprod import Crossproducts
from ..design.build import Design
from ..errors import FamilyError, FitError, MemoryBudgetError
from .control import DEFAULT_CONTROL, Control
from .families import Family
from .gradient import theta_gradient
from .laplace_gradient import laplace_gradient
from .quadrature import Quadrature, agq_gradient
from .optimizer import OptimumReport, derivative_free_minimizer, optimize
from ..design.reterm import ReTerm, TermSet
from .rows import InMemoryRows, fit_glm
from .starting import MIN_STEP, STEP_FRACTION

MAX_NAGQ = 100  # lme4's GHrule(ord) needs ord < 101
#: PIRLS's Newton steps (non-canonical links) give way to a Fisher step below this relative size:
#: Newton's error is then about its square, so the expected information's factor confirms the modes
#: (gamma_slopes: 4.3 factorisations per evaluation instead of 5.2; at 1e-4 5.8, at 1e-7 4.5)
NEWTON_SWITCH = 1e-6


@dataclass(frozen=True)
class PirlsStart:
    """Where PIRLS starts: the spherical modes u and, when β is updated with u, β."""

    u: tuple[np.ndarray, ...]
    beta: np.ndarray | None


@dataclass
class PirlsState:
    """Conditional modes and the factor at them for one (θ, β)."""

    u: list[np.ndarray]
    beta: np.ndarray
    eta: np.ndarray | None  # per row where the rows are in memory
    mu: np.ndarray | None
    kernel: float  # the deviance kernel at μ
    L: BlockedCholesky
    crossprod: Crossproducts | None = None  # what L was factorised from (the expected information at u)

    @property
    def start(self) -> PirlsStart:
        """A PIRLS start at these modes (a start at the solution stops after one factorisation)."""
        return PirlsStart(tuple(self.u), self.beta)

    @property
    def rows_eta(self) -> np.ndarray:
        """η per row: only for rows in memory (a Dask fit keeps them on the workers)."""
        if self.eta is None:
            raise ValueError("the rows are not in memory: per-row values come from the partitions")
        return self.eta

    @property
    def rows_mu(self) -> np.ndarray:
        """μ per row: only for rows in memory."""
        if self.mu is None:
            raise ValueError("the rows are not in memory: per-row values come from the partitions")
        return self.mu


class WarmPirls:
    """PIRLS during one fit: each evaluation starts from the modes of the one before, which is
    fast and makes the deviance smooth enough for the optimizer.  ``start`` is the latest."""

    def __init__(self, model: PirlsModel, start: PirlsStart):
        self.model = model
        self.start = start

    def __call__(self, theta: np.ndarray, beta: np.ndarray | None = None) -> PirlsState:
        state = self.model.pirls(theta, beta, self.start)
        self.start = PirlsStart(tuple(state.u), self.start.beta if beta is not None else state.beta)
        return state


class PirlsModel(TermSet):
    """Laplace deviance of a GLMM over any rows: PIRLS, the Laplace approximation and both
    optimisation stages.  ``rows`` make each pass over the observations (``InMemoryRows``,
    or a Dask fit's partitions: anything with ``working_pass``, ``glm_equations`` and
    ``pearson_chisq``); subclasses give what reads the response itself: ``minus_two_loglik``.
    """

    def __init__(self, terms: tuple[ReTerm, ...], rows, n: int, p: int, family: Family, nAGQ: int = 1,
                 control: Control = DEFAULT_CONTROL, whole_weights: bool = True):
        super().__init__(terms)
        self.n, self.p = int(n), int(p)
        self.family = family
        self.whole_weights = whole_weights  # every prior weight a whole number (binomial trials)
        self.nAGQ = int(nAGQ)
        self.rows = rows
        self.control = control
        #: the modes the last fit ended at: where the next fit and its result's PIRLS start (only fit() sets it)
        self.warm_start = PirlsStart(tuple(np.zeros(t.q) for t in self.terms), None)
        self._loglik_offset: float | None = None  # Σ −2 log f − deviance kernel, a constant of y
        if self.nAGQ < 0:
            raise FamilyError(f"nAGQ must be 0, 1 or a larger number of quadrature points, not {nAGQ}")
        if self.nAGQ > MAX_NAGQ:
            raise FamilyError(f"nAGQ = {self.nAGQ} is above lme4's limit of {MAX_NAGQ} quadrature points "
                              "(its GHrule table); use at most 100 (25 is usually plenty)")
        if self.nAGQ > 1 and (len(self.terms) != 1 or self.terms[0].p != 1):
            raise FamilyError(
                f"nAGQ = {self.nAGQ} (adaptive Gauss–Hermite quadrature) needs exactly one scalar "
                "random-effects term such as (1 | g); use nAGQ=1 (Laplace) for this model"
            )

    def minus_two_loglik(self, state: PirlsState) -> float:
        """Σ −2 log f(yᵢ | μᵢ) at the modes of ``state``."""
        raise NotImplementedError

    def agq(self, state: PirlsState, theta: np.ndarray) -> float:
        """−2 log-likelihood by adaptive Gauss–Hermite quadrature: needs the rows in memory."""
        raise FamilyError(f"nAGQ = {self.nAGQ} (adaptive Gauss–Hermite quadrature) needs the rows in memory")

    def scale(self, state: PirlsState) -> float:
        """lme4's σ̂² (``sigma(m)^2``): (Pearson χ² + ‖u‖²) / n for families with a scale, 1
        otherwise.  The Gamma shape is 1/σ̂², the inverse-Gaussian λ too."""
        if not self.family.has_dispersion:
            return 1.0
        b = self.random_effects(state.u, state.L.lambdas)
        return (self.rows.pearson_chisq(state.beta, b) + _sumsq(state.u)) / self.n

    # ----- PIRLS ---------------------------------------------------------------------------
    def _pass(self, beta: np.ndarray, u: list[np.ndarray], lambdas: list[np.ndarray], fixed_beta: bool,
              observed: bool = False):
        """The rows' working pass at (β, b = Λu)."""
        return self.rows.working_pass(beta, self.random_effects(u, lambdas), fixed_beta, observed)

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None, start: PirlsStart | None = None) -> PirlsState:
        """Conditional modes at θ from ``start`` (default: where the last fit ended); β fixed if
        given, else updated with u (lme4's nAGQ = 0).

        Each iteration is one pass over the rows (deviance and crossproducts at the
        current point), a blocked Cholesky and a Newton step for (β,) u, halved until
        the penalised deviance does not rise.  For a non-canonical link the steps use
        the observed information (quadratic convergence instead of Fisher scoring's
        linear) until a step is below ``NEWTON_SWITCH`` relative; the next pass has the
        expected information, whose factor, the one the Laplace approximation uses,
        then confirms the modes (one more pass gives it when PIRLS stops on a Newton
        factor).  Changes nothing in the model.
        """
        lambdas = self.lambdas(theta)
        ctl = self.control
        start = self.warm_start if start is None else start
        fixed_beta = beta is not None
        if beta is None:
            beta = self._glm_start() if start.beta is None else start.beta
        u = [x.copy() for x in start.u]
        newton = observed = not self.family.canonical  # whether current's weights are the observed information
        current = self._pass(beta, u, lambdas, fixed_beta, observed)
        if current is None:  # the warm start left the family's range: start afresh
            u = [np.zeros_like(x) for x in u]
            current = self._pass(beta, u, lambdas, fixed_beta, observed)
            if current is None:
                raise FitError(f"the linear predictor leaves the family's range at β = {np.round(beta, 4).tolist()}")
        pdev = current.kernel + _sumsq(u)
        p = 0 if fixed_beta else self.p
        for _ in range(ctl.pirls_maxit):
            L, crossprod = factorize(current.crossprod, lambdas, p), current.crossprod
            new_beta = beta if fixed_beta else L.beta()
            new_u = L.spherical_modes(np.zeros(0) if fixed_beta else new_beta)
            change = max(max((float(np.abs(a - b).max(initial=0)) for a, b in zip(new_u, u)), default=0.0),
                         float(np.abs(new_beta - beta).max(initial=0)))
            size = max(max((float(np.abs(a).max(initial=0)) for a in u), default=0.0), 1.0)
            # Stopping on the step (not on the deviance) makes the deviance smooth in (θ, β).
            if change < ctl.pirls_tol * size:
                break  # the current modes are the solution and L is the factor at them
            next_observed = newton and change >= NEWTON_SWITCH * size
            step = 1.0
            for _ in range(ctl.pirls_max_halvings):
                trial_u = [a + step * (b - a) for a, b in zip(u, new_u)]
                trial_beta = beta + step * (new_beta - beta)
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # an overflowing
                    trial = self._pass(trial_beta, trial_u, lambdas, fixed_beta, next_observed)  # halved below
                if trial is not None:
                    trial_pdev = trial.kernel + _sumsq(trial_u)
                    if np.isfinite(trial_pdev) and trial_pdev <= pdev + ctl.pirls_rise_tol * (1 + abs(pdev)):
                        break
                step /= 2
            else:
                raise FitError(
                    "PIRLS could not reduce the penalised deviance even with step halving "
                    f"(at θ = {np.round(theta, 4).tolist()}); the model may be overparameterised, the "
                    "response may be perfectly separated by a predictor, or predictors may need rescaling"
                )
            u, beta, current, pdev, observed = trial_u, trial_beta, trial, trial_pdev, next_observed
        else:
            L, crossprod = factorize(current.crossprod, lambdas, p), current.crossprod  # the factor at the last modes
        if observed:  # the Laplace approximation's factor: expected information at the modes
            crossprod = self._pass(beta, u, lambdas, fixed_beta).crossprod
            L = factorize(crossprod, lambdas, p)
        return PirlsState(u=u, beta=beta, eta=current.eta, mu=current.mu, kernel=current.kernel, L=L,
                          crossprod=crossprod)

    def beta_factor(self, theta: np.ndarray, state: PirlsState) -> BlockedCholesky:
        """The factor with [X z] at the modes of ``state`` (its L_X gives β's conditional covariance)."""
        lambdas = self.lambdas(theta)
        return factorize(self._pass(state.beta, state.u, lambdas, False).crossprod, lambdas, self.p)

    def _glm_start(self) -> np.ndarray:
        """β from the fixed-effects GLM (IRLS)."""
        return fit_glm(self.rows)

    # ----- deviances ---------------------------------------------------------------------
    def laplace(self, state: PirlsState) -> float:
        """−2 log-likelihood by the Laplace approximation at the modes of ``state``."""
        return float(self.minus_two_loglik(state) + _sumsq(state.u) + state.L.logdet_z())

    def deviance_from_modes(self, theta: np.ndarray, state: PirlsState) -> float:
        """The objective at θ and the modes ``state`` of PIRLS at (θ, β): Laplace for nAGQ ≤ 1, AGQ otherwise."""
        return self.agq(state, theta) if self.nAGQ > 1 else self.laplace(state)

    def lme4_laplace(self, theta: np.ndarray, beta: np.ndarray, eta0: np.ndarray) -> float:
        """lme4's Laplace deviance (``Control(laplace="lme4")``): PIRLS over u from the IRLS
        linearisation at the stage-1 linear predictor η₀ (lme4 resets μ to it at every
        evaluation), stopping when the penalised deviance changes by less than
        ``control.lme4_pirls_tol`` relative; the log-determinant is that of the last step's
        factor, at the previous iterate's weights, the rest at the final modes.  Its curvature
        in β gives lme4's standard errors (cbpp period2: 0.3032, where the exact deviance's is
        0.3066)."""
        lambdas = self.lambdas(theta)
        crossprod = self.rows.linearised_at(eta0, beta)
        previous = np.inf
        for _ in range(self.control.pirls_maxit):
            L = factorize(crossprod, lambdas, 0)
            u = L.spherical_modes(np.zeros(0))
            current = self._pass(beta, u, lambdas, True)
            if current is None:
                raise FitError(f"lme4's PIRLS left the family's range at θ = {np.round(theta, 4).tolist()}")
            pdev = current.kernel + _sumsq(u)
            if abs(previous - pdev) < self.control.lme4_pirls_tol * pdev:
                state = PirlsState(u=u, beta=beta, eta=current.eta, mu=current.mu, kernel=current.kernel, L=L)
                return float(self.minus_two_loglik(state) + pdev - current.kernel + L.logdet_z())
            previous, crossprod = pdev, current.crossprod
        raise FitError(f"lme4's PIRLS did not converge in {self.control.pirls_maxit} iterations at "
                       f"θ = {np.round(theta, 4).tolist()}; use Control(laplace='exact')")

    def deviance(self, theta: np.ndarray, beta: np.ndarray, start: PirlsStart | None = None) -> float:
        """The objective at (θ, β), PIRLS starting from ``start`` (default: where the last fit ended)."""
        return self.deviance_from_modes(theta, self.pirls(theta, beta, start))

    @property
    def has_gradient(self) -> bool:
        """Whether the objective comes with its analytic gradient in (θ, β) (``gradient_from_modes``):
        the exact Laplace deviance (nAGQ = 1, ``Control(laplace="exact")``, engine/laplace_gradient.py)
        where −2 log f is the deviance kernel plus a constant or has a dispersion, and the selected
        inverse's dense blocks (the terms after the first, by all random effects) hold at most
        ``control.gradient_max_entries`` numbers; lme4's Laplace deviance, a binomial with
        fractional trials and larger crossed designs keep finite differences."""
        q = [t.q for t in self.terms]
        rest = sum(q[1:])  # the dense blocks of the selected inverse, as the LMM's (Control.gradient_max_entries)
        return (self.nAGQ == 1 and self.control.laplace == "exact"
                and rest * (rest + q[0]) <= self.control.gradient_max_entries
                and (self.family.has_dispersion or self.loglik_is_kernel_plus_constant))

    @property
    def loglik_is_kernel_plus_constant(self) -> bool:
        """Whether Σ −2 log f(yᵢ | μᵢ) is the deviance kernel plus a constant of y."""
        return loglik_is_kernel_plus_constant(self.family, self.whole_weights)

    def dispersion_at(self, state: PirlsState) -> float:
        """φ inside the likelihood at the modes of ``state`` for families with a scale, 1 otherwise."""
        raise NotImplementedError

    def gradient_from_modes(self, theta: np.ndarray, state: PirlsState) -> np.ndarray:
        """∂D/∂(θ, β) at the modes ``state`` of PIRLS at (θ, β) with β fixed, where ``has_gradient``:
        two passes over the rows (``laplace_gradient``)."""
        A = state.crossprod  # with the response column alone: PIRLS held β fixed
        if not self.has_gradient or A is None or A.xx.shape[0] != 1:
            raise FitError("this model's deviance has no analytic gradient: its derivatives are finite differences")
        dispersion = self.dispersion_at(state) if self.family.has_dispersion else None
        at = None if state.eta is None or state.mu is None else (state.eta, state.mu)
        return laplace_gradient(self, self.rows, theta, state.u, state.beta, state.L, A, dispersion, at)

    def deviance_and_gradient(self, theta: np.ndarray, beta: np.ndarray,
                              start: PirlsStart | None = None) -> tuple[float, np.ndarray]:
        """The objective at (θ, β) and its gradient, PIRLS starting from ``start``."""
        state = self.pirls(theta, beta, start)
        return self.deviance_from_modes(theta, state), self.gradient_from_modes(theta, state)

    # ----- optimisation ------------------------------------------------------------------

    def fit_stage1(self, warm: WarmPirls, final: bool = True) -> OptimumReport:
        """Optimise θ with β inside PIRLS (lme4's nAGQ = 0), PIRLS warm-started by ``warm``.

        When it is only the start of stage 2 (``final=False``), the optimizer stops at
        ``control.stage1_ftol_rel`` and the optimum is neither checked nor polished: stage 2
        refines θ with β and checks the joint optimum.
        """
        ctl = self.control if self.control.optimizer != "lbfgsb" else replace(self.control, optimizer="bobyqa")
        warm.start = PirlsStart(warm.start.u, self._glm_start())

        def objective(theta: np.ndarray) -> float:
            return or_inf(lambda: self.laplace(warm(theta)))

        if final:
            return optimize(objective, self.theta_start, self.theta_lower, ctl, noise=ctl.pirls_tol)
        x, fun, nfev, reason = derivative_free_minimizer(ctl)(objective, self.theta_start, self.theta_lower, ctl,
                                                         ftol_rel=ctl.stage1_ftol_rel)
        return OptimumReport(x=x, fun=fun, nfev=nfev, converged=True, gradient=np.full(len(x), np.nan),
                             message=f"start for stage 2 ({reason})")

    def fit(self, start: np.ndarray | None = None) -> tuple[OptimumReport | None, OptimumReport | None]:
        """Stage 1, then (unless nAGQ = 0) θ and β together, as ``self.control`` says; returns both
        reports and leaves ``warm_start`` at the modes of the last evaluation.

        A ``start`` of (θ, β) from a related fit skips stage 1.
        """
        warm = WarmPirls(self, self.warm_start)
        try:
            return self._fit(warm, start)
        finally:
            self.warm_start = warm.start

    def _fit(self, warm: WarmPirls, start: np.ndarray | None) -> tuple[OptimumReport | None, OptimumReport | None]:
        k = self.ntheta
        if start is None:
            stage1 = self.fit_stage1(warm, final=self.nAGQ == 0)
            if self.nAGQ == 0:
                return stage1, None
            state = warm(stage1.x)
            start = np.concatenate([stage1.x, state.beta])
        else:
            stage1 = None
            warm.start = PirlsStart(warm.start.u, np.asarray(start[k:], dtype=float))
            state = warm(start[:k])
        # β in whitened coordinates z, β = β₀ + C z with C Cᵀ β's covariance given θ: the
        # deviance is then about as curved in every direction of z, which BOBYQA's round
        # trust region suits (VerbAgg: 545 evaluations in β's own coordinates, 445 in z)
        beta0 = np.asarray(start[k:], dtype=float)
        C = np.linalg.cholesky(state.L.beta_precision_inverse()) if self.p else np.zeros((0, 0))
        lower = np.concatenate([self.theta_lower, np.full(self.p, -np.inf)])
        # stage 1's θ is near the optimum: a trust region on its scale, not θ = 1's
        steps = np.concatenate([np.maximum(STEP_FRACTION * np.abs(start[:k]), MIN_STEP), np.ones(self.p)])

        if self.control.laplace == "lme4" and self.nAGQ == 1:
            if state.eta is None:
                raise FitError("Control(laplace='lme4') needs the rows in memory; it is not available for Dask data")
            eta0 = state.eta  # lme4's lp0: the linear predictor at stage 1's end

            def objective(x: np.ndarray) -> float:
                return or_inf(lambda: self.lme4_laplace(x[:k], beta0 + C @ x[k:], eta0))
        else:
            def objective(x: np.ndarray) -> float:
                theta, beta = x[:k], beta0 + C @ x[k:]
                return or_inf(lambda: self.deviance_from_modes(theta, warm(theta, beta)))

        x0 = np.concatenate([start[:k], np.zeros(self.p)])
        if not self.has_gradient:
            report = optimize(objective, x0, lower, self.control, initial_step=steps, noise=self.control.pirls_tol)
            return stage1, _from_whitened(report, beta0, C, k)

        def objective_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
            theta, beta = x[:k], beta0 + C @ x[k:]
            try:
                state = warm(theta, beta)
                value, grad = self.deviance_from_modes(theta, state), self.gradient_from_modes(theta, state)
            except MemoryBudgetError:
                raise
            except (FitError, np.linalg.LinAlgError, FloatingPointError):
                return np.inf, np.full(len(x), np.nan)
            return value, np.concatenate([grad[:k], C.T @ grad[k:]])

        if self.stage2_uses_lbfgsb(start[:k]):
            report = optimize(objective, x0, lower, self.control, initial_step=steps, noise=self.control.pirls_tol,
                              gradient=objective_and_gradient)
        else:
            report = optimize(objective, x0, lower, self.control, initial_step=steps, noise=self.control.pirls_tol,
                              check_gradient=objective_and_gradient)
        return stage1, _from_whitened(report, beta0, C, k)

    def stage2_uses_lbfgsb(self, theta: np.ndarray) -> bool:
        """Whether stage 2, starting at ``theta``, minimises by L-BFGS-B with the gradient; else
        BOBYQA, its optimum checked by differences of the gradient where there is one.

        "lbfgsb" where the model ``has_gradient``; "auto" too, unless stage 1 ended singular
        (``control.check_singular_tol``): L-BFGS-B stops on bounds where the deviance is flat and
        needs restarts, BOBYQA does not (the Gamma two-slope model: 0.23 s against 0.25–0.28 s).
        """
        ctl = self.control
        if not self.has_gradient or ctl.optimizer == "bobyqa":
            return False
        return ctl.optimizer == "lbfgsb" or not self.singular(theta, ctl.check_singular_tol)


class GeneralizedLinearMixedModel(PirlsModel):
    """Laplace / AGQ deviance of a GLMM for one design (its rows in memory) and family."""

    def __init__(self, design: Design, family: Family, nAGQ: int = 1, control: Control = DEFAULT_CONTROL):
        self.design = design
        n = design.n
        self.X = design.X
        self.y = design.y
        self.prior_weights = np.ones(n) if design.weights is None else design.weights
        self.offset = np.zeros(n) if design.offset is None else design.offset
        family.check_response(self.y, self.prior_weights)
        rows = InMemoryRows(design.reterms, self.X, self.y, self.prior_weights, self.offset, family)
        whole = bool(np.all(self.prior_weights == np.round(self.prior_weights)))
        super().__init__(design.reterms, rows, n, design.X.shape[1], family, nAGQ, control, whole)

    def with_family(self, family: Family, warm_start: PirlsStart | None = None) -> GeneralizedLinearMixedModel:
        """The same design under another family, sharing the crossproduct patterns; its fits start
        PIRLS from ``warm_start`` (default: where this model's last fit ended)."""
        family.check_response(self.y, self.prior_weights)
        other = copy.copy(self)
        other.family = family
        other.warm_start = self.warm_start if warm_start is None else warm_start
        other.rows = self.rows.with_family(family)
        other._loglik_offset = None
        return other

    def dispersion(self, mu: np.ndarray) -> float:
        """φ inside the likelihood for families with a scale (deviance / n, as R's family aic,
        which lme4's Laplace deviance uses); 1 otherwise.  The reported σ̂² is ``scale``."""
        if not self.family.has_dispersion:
            return 1.0
        return float(self.family.deviance_residuals(self.y, mu, self.prior_weights).sum() / self.n)

    def minus_two_loglik(self, state: PirlsState) -> float:
        """Σ −2 log f(yᵢ | μᵢ) as R's family aic.  Without a dispersion it is the deviance
        kernel plus a constant of y alone, found once (binomial only with whole-number trials)."""
        fam, y, wt, mu = self.family, self.y, self.prior_weights, state.rows_mu
        if not self.loglik_is_kernel_plus_constant:
            return float(fam.minus_two_loglik(y, mu, wt, self.dispersion(mu)).sum()) + fam.aic_dispersion_term
        if self._loglik_offset is None:
            self._loglik_offset = float(fam.minus_two_loglik(y, mu, wt, 1.0).sum()) - state.kernel
        return state.kernel + self._loglik_offset

    def dispersion_at(self, state: PirlsState) -> float:
        return self.dispersion(state.rows_mu)

    @property
    def has_gradient(self) -> bool:
        """Adaptive quadrature (nAGQ > 1, engine/quadrature.py) has its analytic gradient too."""
        return self.nAGQ > 1 or super().has_gradient

    def gradient_from_modes(self, theta: np.ndarray, state: PirlsState) -> np.ndarray:
        if self.nAGQ <= 1 or state.crossprod is None or state.crossprod.xx.shape[0] != 1:
            return super().gradient_from_modes(theta, state)  # the Laplace gradient, or the error
        d_t, d_beta = agq_gradient(self.quadrature(state, theta), self.family, self.X, self.y,
                                   self.prior_weights, state.rows_eta, state.rows_mu)
        return np.concatenate([theta_gradient(self, theta, [np.array([[d_t]])]), d_beta])

    def quadrature(self, state: PirlsState, theta: np.ndarray) -> Quadrature:
        """The adaptive Gauss–Hermite rule at the modes of ``state`` (engine/quadrature.py)."""
        return Quadrature.at_modes(self.terms[0], self.family, self.y, self.prior_weights, state.rows_eta,
                                   float(self.lambdas(theta)[0][0, 0]), state.u[0],
                                   1.0 / state.L.L[0][0][:, 0, 0], self.nAGQ)

    def agq(self, state: PirlsState, theta: np.ndarray) -> float:
        """−2 log-likelihood by adaptive Gauss–Hermite quadrature (one scalar term).

        On lme4's scale: deviance residuals in place of the full log-density, so
        the value omits the saturated model's constant, as lme4's nAGQ > 1 does.
        """
        return self.quadrature(state, theta).deviance()


def final_report(stage1: OptimumReport | None, stage2: OptimumReport | None) -> OptimumReport:
    """Where a GLMM fit ended (``fit()`` returns both stages): stage 2's optimum when it ran
    (nAGQ > 0), else stage 1's (nAGQ = 0)."""
    report = stage2 if stage2 is not None else stage1
    if report is None:
        raise ValueError("a GLMM fit has at least one stage")
    return report


def loglik_is_kernel_plus_constant(family: Family, whole_weights: bool) -> bool:
    """Whether Σ −2 log f(yᵢ | μᵢ) is the deviance kernel plus a constant of y: for families
    without a dispersion, binomial only with whole-number trials (prior weights)."""
    return not family.has_dispersion and (family.name != "binomial" or whole_weights)


def or_inf(f: Callable[[], float]) -> float:
    """f(), or inf where PIRLS or a factorisation fails (the optimizer then steps back)."""
    try:
        return f()
    except MemoryBudgetError:
        raise  # the model's size, not this point: no point is better
    except (FitError, np.linalg.LinAlgError, FloatingPointError):
        return np.inf


def _sumsq(u: list[np.ndarray]) -> float:
    return sum(float(x @ x) for x in u)


def _from_whitened(report: OptimumReport, beta0: np.ndarray, C: np.ndarray, k: int) -> OptimumReport:
    """The report of an optimisation over (θ, z) in the coordinates (θ, β = β₀ + C z).

    Gradient and Hessian transform with C⁻¹ block by block, so that the NaN rows
    of θs held at a bound do not spread into the β block.
    """
    Ci = np.linalg.inv(C) if len(C) else C
    x = np.concatenate([report.x[:k], beta0 + C @ report.x[k:]])
    grad = np.concatenate([report.gradient[:k], Ci.T @ report.gradient[k:]])
    H = report.hessian
    if H is not None:
        H = H.copy()
        H[k:, k:] = Ci.T @ H[k:, k:] @ Ci
        H[:k, k:] = H[:k, k:] @ Ci
        H[k:, :k] = H[:k, k:].T
    return replace(report, x=x, gradient=grad, hessian=H)
