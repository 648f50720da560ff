"""Bound-constrained minimisation of a profiled deviance, and its check.

BOBYQA (through NLopt, the optimizer lme4 uses by default) minimises over θ
without derivatives; where the objective comes with its analytic gradient,
L-BFGS-B (scipy) uses it, and the check differentiates the gradient.
Convergence is then judged by what matters to a user: the decrease in the
objective that a Newton step from the optimum could still achieve.  A fit whose
remaining possible improvement is far below a deviance unit is converged, however
large the raw gradient looks on a badly scaled problem (the source of lme4's
false alarms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import nlopt
import numpy as np
from scipy.optimize import Bounds, minimize

from ..errors import FitError
from ..linalg.derivatives import finite_difference_hessian, forward_difference_jacobian, shifted
from ..runtime.threads import fitting_threads

if TYPE_CHECKING:
    from .control import Control

#: f(x) with its gradient; (inf, anything) where f cannot be evaluated
ValueAndGradient = Callable[[np.ndarray], "tuple[float, np.ndarray]"]
#: (x, gradient at x) -> a point of the same f from which f falls inward, or None
Reflection = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]

_HUGE = 1e100  # returned for θ where the objective cannot be evaluated
ESCAPE_STEPS = 10.0 ** -np.arange(5)  # steps (× the parameter's scale) tried off a bound f falls from


@dataclass(frozen=True)
class OptimumReport:
    """Where BOBYQA stopped and how sure we are that it is a minimum."""

    x: np.ndarray
    fun: float
    nfev: int
    converged: bool
    gradient: np.ndarray
    message: str
    hessian: np.ndarray | None = None  # finite-difference Hessian at x (NaN for parameters held at a bound)


def minimize_bobyqa(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    control: Control,
    *,
    ftol_rel: float | None = None,
    initial_step: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> tuple[np.ndarray, float, int, str]:
    """Minimise f over lower ≤ x (≤ upper) by BOBYQA; returns (x, f(x), evaluations, stop reason).

    Tolerances and the evaluation budget come from ``control``; ``ftol_rel`` overrides its
    relative objective tolerance (for optimisations that only give a start).
    """
    n = len(x0)
    count = 0
    best_f, best_x = np.inf, None

    def objective(x: np.ndarray, grad: np.ndarray) -> float:
        nonlocal count, best_f, best_x
        count += 1
        value = f(x)
        if value < best_f:
            best_f, best_x = value, x.copy()
        return value if np.isfinite(value) else _HUGE

    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(objective)
    opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
    if upper is not None:
        opt.set_upper_bounds(upper)
    opt.set_ftol_rel(control.ftol_rel if ftol_rel is None else ftol_rel)
    opt.set_ftol_abs(control.ftol_abs)
    opt.set_xtol_abs(control.xtol_abs)
    opt.set_maxeval(control.maxeval)
    opt.set_initial_step(np.where(np.isfinite(lower), control.initial_step, 1.0) if initial_step is None
                         else initial_step)
    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    try:
        with fitting_threads():
            opt.optimize(x0 if upper is None else np.minimum(x0, upper))
        reason = _NLOPT_RESULTS.get(opt.last_optimize_result(), "stopped")
    except nlopt.RoundoffLimited:
        reason = "round-off limited"  # no further progress possible; the best point stands
    if best_x is None:
        best_x, best_f = x0, f(x0)
    return best_x, best_f, count, reason


_NLOPT_RESULTS = {
    nlopt.SUCCESS: "success",
    nlopt.FTOL_REACHED: "objective tolerance reached",
    nlopt.XTOL_REACHED: "parameter tolerance reached",
    nlopt.MAXEVAL_REACHED: "maximum number of evaluations reached",
    nlopt.STOPVAL_REACHED: "stop value reached",
    nlopt.MAXTIME_REACHED: "time limit reached",
}
MAXEVAL_REACHED = _NLOPT_RESULTS[nlopt.MAXEVAL_REACHED]

#: the derivative-free minimisers ``Control.optimizer`` names; each is called as ``minimize_bobyqa``
MINIMIZERS: dict[str, Callable[..., tuple[np.ndarray, float, int, str]]] = {"bobyqa": minimize_bobyqa}
#: every value of ``Control.optimizer``: "lbfgsb" (L-BFGS-B with the analytic gradient: LMMs, GLMM stage 2),
#: "auto" (L-BFGS-B where the LMM's gradient is cheap, ``Control.gradient_max_entries``; else BOBYQA)
OPTIMIZERS = ("auto", "lbfgsb", *MINIMIZERS)


def derivative_free_minimizer(control: Control) -> Callable[..., tuple[np.ndarray, float, int, str]]:
    """The minimiser ``control.optimizer`` names for an objective without a gradient ("auto": BOBYQA)."""
    if control.optimizer == "lbfgsb":
        raise FitError("optimizer 'lbfgsb' needs the objective's analytic gradient, which lmer fits and "
                       "glmer fits by the exact Laplace approximation (nAGQ = 1) or adaptive quadrature (nAGQ > 1) "
                       "have, but not this one: "
                       "use Control(optimizer='auto') or 'bobyqa'")
    return MINIMIZERS["bobyqa" if control.optimizer == "auto" else control.optimizer]


def minimize_lbfgsb(
    fg: ValueAndGradient,
    x0: np.ndarray,
    lower: np.ndarray,
    control: Control,
    maxeval: int | None = None,
) -> tuple[np.ndarray, float, int, str]:
    """Minimise f over lower ≤ x by L-BFGS-B with f's analytic gradient; returns (x, f(x), evaluations,
    stop reason), an evaluation being one value with its gradient.  Tolerances from ``control``;
    ``maxeval`` overrides its budget."""
    count = [0]
    budget = control.maxeval if maxeval is None else maxeval
    best: dict[str, tuple[float, np.ndarray]] = {}

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        if count[0] >= budget:
            raise _BudgetSpent
        count[0] += 1
        value, grad = fg(x)
        if np.isfinite(value) and ("x" not in best or value < best["x"][0]):
            best["x"] = (float(value), x.copy())
        return (value, grad) if np.isfinite(value) else (_HUGE, np.zeros(len(x)))

    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    try:
        res = minimize(value_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=Bounds(lower, np.inf),
                       options={"maxfun": budget, "ftol": control.lbfgsb_ftol, "gtol": control.lbfgsb_gtol,
                                "maxcor": control.lbfgsb_memory})
        reason = _lbfgsb_reason(str(res.message))
    except _BudgetSpent:
        reason = MAXEVAL_REACHED
    if "x" not in best:
        return x0, float(fg(x0)[0]), count[0], reason
    fun, x = best["x"]
    return x, fun, count[0], MAXEVAL_REACHED if count[0] >= budget else reason


class _BudgetSpent(Exception):
    """L-BFGS-B asked for an evaluation beyond its budget (scipy's maxfun is checked only between steps)."""


def optimize(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    control: Control,
    initial_step: np.ndarray | None = None,
    noise: float | None = None,
    gradient: ValueAndGradient | None = None,
    reflect: Reflection | None = None,
    check_gradient: ValueAndGradient | None = None,
) -> OptimumReport:
    """The minimiser ``control.optimizer`` (L-BFGS-B when f's ``gradient`` is given), a check of the
    optimum (restarts from it when the check fails, if ``control.restart``), a Newton polish and
    parameters within ``control.boundary_tol`` of their bound put on it.  ``check_gradient``: f's
    gradient for the check alone (a derivative-free minimiser, a check by differences of the gradient).

    ``noise`` is the relative rounding noise of f (default ``control.deviance_noise``): the
    polish and the snap to a bound accept a rise of f within ten times it.
    """
    with fitting_threads():
        return _optimize(f, x0, lower, control, initial_step, control.deviance_noise if noise is None else noise,
                         gradient, reflect, check_gradient)


def _lbfgsb_reason(message: str) -> str:
    """L-BFGS-B's stopping message in words: scipy reports a failed line search as a bare "ABNORMAL: "."""
    reason = message.strip().rstrip(":").strip().lower()
    if reason.startswith("abnormal"):
        return "line search could not lower the objective"
    return reason


def _optimize(f: Callable[[np.ndarray], float], x0: np.ndarray, lower: np.ndarray, control: Control,
              initial_step: np.ndarray | None, noise: float, gradient: ValueAndGradient | None,
              reflect: Reflection | None, check_gradient: ValueAndGradient | None) -> OptimumReport:
    scale = np.ones(len(x0)) if initial_step is None else np.asarray(initial_step, dtype=float)
    if gradient is not None:
        x, fun, nfev, reason, (ok, grad, gain, H) = _minimize_by_gradient(f, gradient, x0, lower, control, scale,
                                                                             reflect)
    else:
        minimize = derivative_free_minimizer(control)

        def check(x: np.ndarray, fun: float) -> tuple[bool, np.ndarray, float, np.ndarray]:
            if check_gradient is None:
                return check_optimum(f, x, lower, fun, control, scale=scale)
            return check_optimum_by_gradient(check_gradient, x, lower, fun, control, scale=scale)[:4]

        x, fun, nfev, reason = minimize(f, x0, lower, control, initial_step=initial_step)
        ok, grad, gain, H = check(x, fun)
        if not ok and control.restart and reason != MAXEVAL_REACHED:
            x2, fun2, nfev2, reason = minimize(f, x, lower, control, initial_step=initial_step)
            nfev += nfev2
            if fun2 <= fun:
                x, fun = x2, fun2
            ok, grad, gain, H = check(x, fun)
    slack = 10 * noise * abs(fun)
    x, fun = newton_polish(f, x, fun, lower, H, grad, slack=slack)
    x, fun = snap_to_bounds(f, x, fun, lower, slack, control.boundary_tol)
    if ok:
        message = f"converged ({reason})"
    else:
        message = (
            f"not converged ({reason}): a Newton step from the optimum would lower the "
            f"objective by about {gain:.2g}"
        )
    return OptimumReport(x=x, fun=fun, nfev=nfev, converged=ok, gradient=grad, message=message, hessian=H)


def _minimize_by_gradient(f: Callable[[np.ndarray], float], fg: ValueAndGradient, x0: np.ndarray,
                          lower: np.ndarray, control: Control, scale: np.ndarray, reflect: Reflection | None
                          ) -> tuple[np.ndarray, float, int, str, tuple[bool, np.ndarray, float, np.ndarray]]:
    """L-BFGS-B and its check, restarted (at most ``control.gradient_restarts`` times, if
    ``control.restart``) while the check fails or ``reflect`` offers a point of equal f from which
    f falls.

    A diagonal element of Tᵢ at its bound 0 has a zero gradient (the deviance is even in it
    for a scalar term), so a gradient method stops there even where f falls inward; the check
    finds such parameters and the restart moves them inside (``_step_off_bounds``).
    """
    x, fun, nfev, reason = minimize_lbfgsb(fg, x0, lower, control)
    ok, grad, gain, H, escape = _escape_or_check(fg, x, lower, fun, control, scale)
    for _ in range(control.gradient_restarts if control.restart else 0):
        if nfev >= control.maxeval:
            break
        if ok:
            restart = None if reflect is None else reflect(x, grad)
            if restart is None:
                break
        else:
            restart, tried = _step_off_bounds(f, x, lower, escape, scale)
            nfev += tried
        x2, fun2, nfev2, reason = minimize_lbfgsb(fg, restart, lower, control, control.maxeval - nfev)
        nfev += nfev2
        if not fun2 < fun:
            if ok:
                break
            continue
        x, fun = x2, fun2
        ok, grad, gain, H, escape = _escape_or_check(fg, x, lower, fun, control, scale)
    if H is None:  # the restarts ran out on an escape: the report needs the full check
        ok, grad, gain, H, escape = check_optimum_by_gradient(fg, x, lower, fun, control, scale=scale)
    return x, fun, nfev, reason, (ok, grad, gain, H)


def _escape_or_check(fg: ValueAndGradient, x: np.ndarray, lower: np.ndarray, fx: float, control: Control,
                     scale: np.ndarray) -> tuple[bool, np.ndarray, float, np.ndarray | None, np.ndarray]:
    """``check_optimum_by_gradient``'s answer, or sooner, with no Hessian (None), the parameters on
    their bound that f falls from when there are any: their derivative a step inside is negative.

    L-BFGS-B stops on bounds where the deviance is flat (a scalar term's θ = 0, where it is even
    in θ), often several times in one fit; the escape costs one gradient per parameter on its
    bound, the full check k + 1 (sleepstudy with 11 terms: 163 -> 120 gradients a fit).
    """
    h = gradient_check_steps(x, scale)
    inside = {i: fg(shifted(x, i, h[i]))[1] for i in map(int, np.flatnonzero((x - lower) <= h))}
    escape = np.zeros(len(x), dtype=bool)
    escape[[i for i, g in inside.items() if g[i] < 0]] = True
    if escape.any():
        return False, np.full(len(x), np.nan), np.inf, None, escape
    return check_optimum_by_gradient(fg, x, lower, fx, control, scale=scale, inside=inside)


def _step_off_bounds(f: Callable[[np.ndarray], float], x: np.ndarray, lower: np.ndarray, escape: np.ndarray,
                     scale: np.ndarray) -> tuple[np.ndarray, int]:
    """x with the ``escape`` parameters moved off their bound by the best of ``ESCAPE_STEPS`` × their
    scale; and the number of evaluations spent.  The deviance falls only a short way in from the
    bound where the optimum is near it, and far where it is not."""
    trials = [np.where(escape, lower + step * scale, x) for step in ESCAPE_STEPS]
    values = [f(t) for t in trials]  # values only: cheaper than with the gradient
    return trials[int(np.argmin(values))], len(trials)


def newton_polish(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    lower: np.ndarray,
    H: np.ndarray,
    grad: np.ndarray,
    slack: float = 0.0,
) -> tuple[np.ndarray, float]:
    """One Newton step from x with the check's gradient and Hessian, kept unless it raises f by over ``slack``.

    BOBYQA stops anywhere in a small region where its model is flat to the
    tolerance; the step moves to the optimum of the local quadratic, so fits of
    the same data that differ only by rounding (row order, Dask partitions) agree
    to many more digits.  The check's central differences (steps 1e-3 of the
    parameter's scale) carry a truncation error of order h², but a smooth one that
    every such fit shares, and less rounding noise than smaller steps: permuted
    refits agree to 1e-11–2e-9 in θ (measured; 3e-10–2e-9 with a gradient of
    its own at steps of the noise's cube root, for 2k more evaluations).
    Near the optimum, f cannot tell points apart that the gradient still can: a
    rise within ``slack`` (f's noise) is accepted.  Costs one evaluation.
    """
    free = np.flatnonzero(np.all(np.isfinite(H), axis=1))
    if not len(free):
        return x, fx
    Hf = H[np.ix_(free, free)]
    try:
        np.linalg.cholesky(Hf)
    except np.linalg.LinAlgError:
        return x, fx  # not a local quadratic bowl: leave BOBYQA's point
    trial = x.copy()
    trial[free] = np.maximum(x[free] - np.linalg.solve(Hf, grad[free]), lower[free])
    f_trial = f(trial)
    return (trial, f_trial) if f_trial <= fx + slack else (x, fx)


def snap_to_bounds(f: Callable[[np.ndarray], float], x: np.ndarray, fx: float, lower: np.ndarray,
                   slack: float, distance: float) -> tuple[np.ndarray, float]:
    """Put parameters within ``distance`` of their lower bound on it, if f does not rise by over ``slack``.

    BOBYQA approaches a bound without reaching it (a singular fit's θ = 2e-11 rather
    than 0); on the bound the fit reads as singular, as in lme4.  One evaluation,
    only when some parameter is that close.
    """
    near = np.isfinite(lower) & (x > lower) & (x - lower < distance)
    if not near.any():
        return x, fx
    trial = np.where(near, lower, x)
    f_trial = f(trial)
    return (trial, f_trial) if f_trial <= fx + slack else (x, fx)


def check_optimum(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    lower: np.ndarray,
    fx: float,
    control: Control,
    scale: np.ndarray | None = None,
) -> tuple[bool, np.ndarray, float, np.ndarray]:
    """Is x a minimum? Compare the improvement a Newton step could make with ``control.check_conv_tol``.

    That tolerance is relative to the objective, and capped at ``control.check_conv_abs_tol``
    deviance units for large data sets: either is far below anything
    a test or a comparison of models can see.  The gradient and Hessian come from
    central differences, with steps proportional to each parameter's ``scale``
    (e.g. its standard error), over the parameters
    not held at their bound (a parameter at its bound whose gradient points into
    the bound is fine).  Returns (converged, gradient, predicted improvement, Hessian),
    the Hessian with NaN in the rows and columns of parameters held at a bound.
    """
    n = len(x)
    h = 1e-3 * np.maximum(np.abs(x), 1.0 if scale is None else np.minimum(scale, 1.0))
    at_bound = (x - lower) <= h
    f_plus = np.array([f(shifted(x, i, h[i])) for i in range(n)])
    f_minus = np.array([np.nan if at_bound[i] else f(shifted(x, i, -h[i])) for i in range(n)])
    grad = np.where(at_bound, (f_plus - fx) / h, (f_plus - f_minus) / (2 * h))
    free = ~(at_bound & (grad >= 0))
    full = np.full((n, n), np.nan)
    if not free.any():
        return True, grad, 0.0, full
    idx = np.flatnonzero(free)
    g = grad[free]
    H = finite_difference_hessian(f, x, fx, h, idx, f_plus, f_minus)
    full[np.ix_(idx, idx)] = H
    gain = newton_gain(H, g, h)
    return gain < min(control.check_conv_tol * max(1.0, abs(fx)), control.check_conv_abs_tol), grad, gain, full


def newton_gain(H: np.ndarray, g: np.ndarray, h: np.ndarray) -> float:
    """The decrease ½ gᵀH⁻¹g a Newton step would make; where H is not positive definite, the
    gradient's largest element times the largest difference step."""
    try:
        step = np.linalg.solve(H, g)
        if not np.all(np.linalg.eigvalsh(H) > 0):
            raise np.linalg.LinAlgError
        return 0.5 * float(g @ step)
    except np.linalg.LinAlgError:
        return float(np.abs(g).max()) * float(h.max())


def check_optimum_by_gradient(
    fg: ValueAndGradient,
    x: np.ndarray,
    lower: np.ndarray,
    fx: float,
    control: Control,
    scale: np.ndarray | None = None,
    inside: dict[int, np.ndarray] | None = None,
) -> tuple[bool, np.ndarray, float, np.ndarray, np.ndarray]:
    """``check_optimum`` with f's analytic gradient, and its Hessian from forward differences of it
    (k gradients instead of k(k + 1) values; their O(h) error is smooth in x, as the polish needs).

    Also returns which parameters held at their bound should leave it: those whose
    derivative turns negative a step inside (f falls inward although its gradient on the
    bound is zero); any such parameter fails the check.  ``inside`` holds gradients at x + hᵢeᵢ
    already evaluated, by i (steps ``gradient_check_steps``).
    """
    n = len(x)
    h = gradient_check_steps(x, scale)
    _, grad = fg(x)
    at_bound = (x - lower) <= h
    columns = forward_difference_jacobian(lambda z: fg(z)[1], x, grad, h, inside)
    escape = at_bound & (grad + h * np.diag(columns) < 0)  # the derivative a step inside the bound
    free = ~(at_bound & (grad >= 0)) | escape
    full = np.full((n, n), np.nan)
    if not free.any():
        return True, grad, 0.0, full, escape
    idx = np.flatnonzero(free)
    H = columns[np.ix_(idx, idx)]
    H = (H + H.T) / 2
    full[np.ix_(idx, idx)] = H
    gain = newton_gain(H, grad[free], h)
    ok = gain < min(control.check_conv_tol * max(1.0, abs(fx)), control.check_conv_abs_tol) and not escape.any()
    return ok, grad, gain, full, escape


def gradient_check_steps(x: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """The forward-difference steps of the check with a gradient: 1e-4 of each parameter's size or scale."""
    return 1e-4 * np.maximum(np.abs(x), 1.0 if scale is None else np.minimum(scale, 1.0))
