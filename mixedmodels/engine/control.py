"""How a fit is run: the optimizer, its tolerances and the checks of its optimum (lme4's lmerControl).

Every tolerance and optimizer setting the engine uses is a field of ``Control``, with
its default here and nowhere else.  A ``Control`` is immutable, validated when it is
made, stored with the fit (``m.control``), saved with it, and reused by refits,
``refit_ml`` and the bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import FitError, did_you_mean
from .optimizer import OPTIMIZERS


LAPLACE = ("exact", "lme4")  # the values of Control.laplace


@dataclass(frozen=True)
class Control:
    """Settings of a mixed-model fit, as lme4's ``lmerControl()``/``glmerControl()``.

    ``mm.lmer(formula, data, control=mm.Control(maxeval=2000, check_singular_tol=1e-5))``.
    """

    #: the minimiser of the profiled deviance (one of ``engine.optimizer.OPTIMIZERS``): "auto" (L-BFGS-B
    #: with the analytic gradient for LMMs whose gradient is cheap and for GLMM stage 2 where the Laplace
    #: or quadrature deviance has one, else BOBYQA), "lbfgsb" or "bobyqa" (a GLMM's stage 1 always takes BOBYQA)
    optimizer: str = "auto"
    #: most evaluations of the objective per optimisation (lme4's optCtrl maxfun)
    maxeval: int = 100_000
    #: stop when an optimizer step changes the objective by less than this, relative to it
    ftol_rel: float = 1e-12
    #: ... or by less than this, absolutely (deviance units)
    ftol_abs: float = 1e-11
    #: ... or moves every parameter by less than this
    xtol_abs: float = 1e-10
    #: L-BFGS-B stops when a step lowers the objective by less than this, relative to it ...
    lbfgsb_ftol: float = 1e-15
    #: ... or when no element of the projected gradient exceeds this
    lbfgsb_gtol: float = 1e-7
    #: corrections L-BFGS-B keeps for its Hessian approximation
    lbfgsb_memory: int = 20
    #: "auto" takes L-BFGS-B while the gradient's dense blocks (the terms after the largest, and X,
    #: by all random effects) hold at most this many numbers; a GLMM uses its gradient only then
    gradient_max_entries: int = 4_000_000
    #: ... and the model has at least this many variance parameters: with fewer, BOBYQA's extra
    #: evaluations cost less than the gradients (sleepstudy's random slope: 44 evaluations in 5.5 ms
    #: against 21 gradients in 8.1 ms; a 1M-row random slope: 5.8 s against 9.5 s)
    gradient_min_theta: int = 4
    #: most L-BFGS-B restarts after the first, while the check fails or a fake optimum on a bound is left
    gradient_restarts: int = 5
    #: the optimizer's first step for the bounded (diagonal) elements of θ
    initial_step: float = 0.75
    #: converged when a Newton step could lower the objective by less than this, relative to it ...
    check_conv_tol: float = 1e-6
    #: ... and by less than this many deviance units (far below what any test can see)
    check_conv_abs_tol: float = 1e-3
    #: when the check fails, optimise once more from the optimum found
    restart: bool = True
    #: a parameter this close to its lower bound is tried on it (lme4's boundary.tol)
    boundary_tol: float = 1e-6
    #: relative rounding noise of the LMM deviance: polishing steps may raise it by 10 times this
    deviance_noise: float = 1e-13
    #: a fit is singular when a θ on a diagonal is below this (lme4's check.conv.singular tol)
    check_singular_tol: float = 1e-4
    #: GLMM stage 1 (θ with β inside PIRLS) as a start only: its relative objective tolerance
    stage1_ftol_rel: float = 1e-10
    #: PIRLS stops when no conditional mode moves by more than this, relative to their size;
    #: it is also the relative noise of the Laplace deviance that polishing allows for
    pirls_tol: float = 1e-10
    #: PIRLS accepts a step that raises the penalised deviance by this much, relative (round-off)
    pirls_rise_tol: float = 1e-11
    #: most PIRLS iterations at one θ
    pirls_maxit: int = 100
    #: most halvings of a PIRLS step before the fit fails
    pirls_max_halvings: int = 20
    #: the GLMM Laplace deviance (nAGQ = 1): "exact" (at the converged modes, the factor at them)
    #: or "lme4" (as lme4 evaluates it, which gives lme4's estimates and standard errors)
    laplace: str = "exact"
    #: with laplace="lme4": PIRLS stops when the penalised deviance changes by less than this,
    #: relative (lme4's tolPwrss)
    lme4_pirls_tol: float = 1e-7
    #: glmer_nb: the search for the dispersion θ stops when log θ is known to within this
    nb_dispersion_tol: float = 1e-5
    #: profile intervals: relative objective tolerance of the optimisations at each trial value
    profile_ftol_rel: float = 1e-10

    def __new__(cls, *args: Any, **settings: Any) -> Control:
        valid = [f.name for f in fields(cls)]
        for name in settings:
            if name not in valid:
                raise FitError(f"Control has no setting {name!r}.{did_you_mean(name, valid)} "
                               f"The settings are: {', '.join(valid)}")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if self.laplace not in LAPLACE:
            raise FitError(f"laplace must be one of {', '.join(map(repr, LAPLACE))}, not {self.laplace!r}")
        if self.optimizer not in OPTIMIZERS:
            raise FitError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, not {self.optimizer!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise FitError(f"Control's {f.name} must be True or False, not {value!r}")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise FitError(f"Control's {f.name} must be a whole number of at least 1, not {value!r}")
            if f.type == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise FitError(f"Control's {f.name} must be a positive finite number, not {value!r}")

    def changes(self) -> dict[str, Any]:
        """The settings that differ from the defaults, in field order."""
        default = DEFAULT_CONTROL
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> Control:
        """The Control of :meth:`as_dict`; settings it does not name keep their defaults."""
        return cls(**settings)

    def __repr__(self) -> str:
        return "Control(" + ", ".join(f"{k}={v!r}" for k, v in self.changes().items()) + ")"


DEFAULT_CONTROL = Control()


def resolve_control(control: Control | None, maxeval: int | None) -> Control:
    """The fit's Control from ``control=`` and the ``maxeval=`` shortcut (both given: they must agree)."""
    if control is not None and not isinstance(control, Control):
        raise FitError(f"control must be a mixedmodels.Control, not {type(control).__name__}")
    if maxeval is None:
        return DEFAULT_CONTROL if control is None else control
    if control is None:
        return Control(maxeval=maxeval)
    if control.maxeval != maxeval:
        raise FitError(f"maxeval={maxeval!r} contradicts control's maxeval={control.maxeval!r}; "
                       "give one of them (maxeval= is a shortcut for Control(maxeval=...))")
    return control
