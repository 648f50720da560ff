"""User-facing model functions with lme4's names and arguments."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from .dask.glmm import DaskGlmerResult, glmer_dask
from .dask.lmm import DaskLmerResult, is_dask_dataframe, lmer_dask
from .design.build import build_design, check_groups, check_residual_df, mixed_formula, response_values
from .engine.control import Control, resolve_control
from .errors import ConvergenceWarning, DataError, FitError, MixedModelsWarning, warn
from .engine.families import Family, NegativeBinomial, get_family
from .engine.glmm import GeneralizedLinearMixedModel, final_report
from .results.glmer import GlmerResult
from .engine.lmm import LinearMixedModel
from .results.lmer import LmerResult, different_scales
from .runtime.threads import with_fitting_threads
from .design.nlme import check_prior_weights, reml_of, structures
from .design.residual import Correlation, Variance, bind, structure_columns
from .engine.residual import GlsModel, ResidualLMM
from .errors import FormulaError
from .formula.parse import parse_formula
from .formula.safety import check_formula
from .formula.update import update_formula
from .results.residual import GlsResult, ResidualLmerResult

EXACT_FIT = 1e-6  # a residual SD below this fraction of the response's SD is an exact fit


@with_fitting_threads
def lmer(
    formula: str,
    data: pd.DataFrame,
    REML: bool | None = None,
    weights: object = None,
    offset: object = None,
    start: object = None,
    maxeval: int | None = None,
    safe: bool = False,
    control: Control | None = None,
    contrasts: dict[str, str] | None = None,
    na_action: str = "omit",
    residual: Correlation | str | None = None,
    variance: Variance | str | None = None,
    correlation: Correlation | str | None = None,
    method: str | None = None,
) -> LmerResult | DaskLmerResult:
    """Fit a linear mixed model from an lme4 formula, by REML (default) or ML.

    ``residual=`` correlates the residuals within groups and ``variance=`` lets their variance
    vary, as nlme's ``correlation=`` and ``weights=``: ``mm.AR1(time="week", group="id")``,
    ``mm.CAR1``, ``mm.CompSymm``, ``mm.Symm``; ``mm.VarIdent("arm")``, ``mm.VarPower("dose")``
    (see ``mixedmodels.design.residual``; the fit is then a ``ResidualLmerResult``).  nlme's
    spellings work too (``mixedmodels.design.nlme``): ``correlation=mm.corAR1(form="~ week | id")``
    or the string ``"corAR1(form = ~ week | id)"``, ``weights=mm.varIdent(form="~ 1 | arm")`` or
    ``"varIdent(form = ~ 1 | arm)"``, and ``method="ML"`` for ``REML=False``.  ``weights=`` given a
    column name or a vector keeps lme4's meaning, prior weights.

    Random-effects terms may carry lme4 2.0's covariance structures: ``us(1 + x | g)``,
    ``diag(1 + x | g)``, ``cs(0 + f | g)``, ``ar1(0 + f | g)`` (``hom = TRUE/FALSE``; see
    ``mixedmodels.design.covstruct``).

    ``weights`` and ``offset`` are column names or vectors as long as ``data``.
    Rows with a missing value in any variable the model uses are dropped and
    counted (``m.n_dropped``); ``data`` itself is never modified.  A Dask DataFrame
    is fitted from partition-wise crossproducts (see ``mixedmodels.dask.lmm``).  ``safe=True``
    checks the formula first (``mixedmodels.formula.check_formula``): use it for
    formulas from untrusted sources, since formulaic runs Python code in formulas.
    ``control`` (a ``mixedmodels.Control``) sets the optimizer, its tolerances and the
    checks, as lme4's lmerControl; ``maxeval=`` is a shortcut for ``Control(maxeval=...)``.
    ``contrasts`` codes factors of the fixed part as R's ``contrasts=``: a dict such as
    ``{"f": "contr.sum"}`` (contr.treatment, contr.sum, contr.helmert, contr.SAS, contr.poly).
    ``na_action="exclude"`` (R's na.exclude) pads fitted values, residuals and predict()
    without newdata with NaN to all the data's rows; "omit" (default) gives the rows used.
    """
    ctl = resolve_control(control, maxeval)
    REML = reml_of(REML, method)
    asked = structures(residual, correlation, variance, weights, getattr(data, "columns", pd.Index([])))
    weights = asked.prior_weights
    if asked.correlation is not None or asked.variance is not None:
        return _lmer_structured(formula, data, REML, asked.correlation, asked.variance, weights, offset, start,
                                safe, ctl, contrasts, na_action)
    if is_dask_dataframe(data):
        if start is not None:
            raise DataError("start is not supported for Dask data")
        _dask_options(contrasts, na_action)
        return lmer_dask(formula, data, REML=REML, weights=weights, offset=offset, safe=safe, control=ctl)
    parsed, design = _mixed_design("lmer", formula, data, safe, weights, offset, contrasts=contrasts,
                                   na_action=na_action)
    model = LinearMixedModel(design, REML=REML, control=ctl)
    report = model.fit(theta0=_engine_start(model, start))
    fit = LmerResult(parsed, model, report, data_name=data.attrs.get("name"))
    _warn_if_exact(fit)
    return fit


def _lmer_structured(formula: str, data: pd.DataFrame, REML: bool, residual: Correlation | None,
                     variance: Variance | None, weights: object, offset: object, start: object, safe: bool,
                     ctl: Control, contrasts: dict[str, str] | None, na_action: str) -> ResidualLmerResult:
    """lmer with a residual structure: the joint fit of θ and the structure's parameters."""
    _structure_options(data, weights, start)
    extra = structure_columns(residual, variance, data.columns)
    parsed, design = _mixed_design("lmer", formula, data, safe, None, offset, contrasts=contrasts,
                                   na_action=na_action, extra=tuple(extra))
    assert design.frame is not None
    structure = bind(residual, variance, design.frame, design.reterms)
    engine = ResidualLMM(design, structure, REML=REML, control=ctl)
    model, report = engine.fit()
    return ResidualLmerResult(parsed, engine, model, report, data_name=data.attrs.get("name"))


def _structure_options(data: object, weights: object, start: object) -> None:
    """What a fit with a residual structure does not take is refused, never ignored."""
    if is_dask_dataframe(data):
        raise DataError("residual= and variance= are not supported for Dask DataFrames; fit a pandas DataFrame")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if weights is not None:
        raise DataError("lme4's prior weights (weights= a column or a vector) cannot be combined with a residual "
                        "structure; express unequal variances with nlme's weights=mm.varIdent(...) or "
                        "mm.varPower(...) (or variance=)")
    if start is not None:
        raise DataError("start= is not supported with residual= or variance=")


@with_fitting_threads
def gls(formula: str, data: pd.DataFrame, residual: Correlation | str | None = None,
        variance: Variance | str | None = None, REML: bool | None = None, offset: object = None, safe: bool = False,
        control: Control | None = None, contrasts: dict[str, str] | None = None, na_action: str = "omit",
        correlation: Correlation | str | None = None, weights: Variance | str | None = None,
        method: str | None = None) -> GlsResult:
    """Generalized least squares, nlme's ``gls``: a linear model (no random effects) whose residuals
    are correlated within groups (``residual=``) or of unequal variance (``variance=``), by REML
    (default) or ML.  Without either it is ``lm``'s fit with nlme's likelihood.  nlme's spellings
    work too: ``correlation=mm.corAR1(form="~ week | id")`` or ``"corAR1(form = ~ week | id)"``,
    ``weights=mm.varIdent(form="~ 1 | arm")`` or ``"varIdent(form = ~ 1 | arm)"``, ``method="ML"``.
    """
    ctl = resolve_control(control, None)
    _structure_options(data, None, None)
    REML = reml_of(REML, method)
    asked = structures(residual, correlation, variance, weights, data.columns, prior_weights=False)
    residual, variance = asked.correlation, asked.variance
    parsed = check_formula(formula) if safe else parse_formula(formula)
    if parsed.random:
        bar = parsed.random[0]
        raise FormulaError(f"gls fits no random effects; for the term ({bar.expr} | {bar.group_name}) use "
                           "lmer(..., residual=...)", formula)
    extra = structure_columns(residual, variance, data.columns)
    design = build_design(parsed, data, offset=offset, contrasts=contrasts, na_action=na_action,
                          extra=tuple(extra))
    check_residual_df(design.X.shape[1], design.n)
    assert design.frame is not None
    model = GlsModel(design, bind(residual, variance, design.frame, ()), REML=REML, control=ctl)
    return GlsResult(parsed, model, model.fit(), data_name=data.attrs.get("name"))


def _warn_if_exact(fit: LmerResult) -> None:
    """A residual SD of nearly 0 means the random effects reproduce y: θ runs off to infinity."""
    spread = float(np.std(fit.design.y))
    if spread > 0 and fit.sigma < EXACT_FIT * spread:
        warn(
            f"the residual standard deviation is {fit.sigma:.3g}, nearly 0 against the response's SD of "
            f"{spread:.3g}: the fixed and random effects reproduce the response exactly (is it a function of a "
            "grouping factor?), so θ has no finite optimum and the estimates are not meaningful",
            ConvergenceWarning,
        )


def _dask_options(contrasts: dict[str, str] | None, na_action: str) -> None:
    """Options a Dask fit does not offer are refused, never ignored."""
    if contrasts is not None:
        raise DataError("contrasts= is not supported for Dask DataFrames; code the factor yourself "
                        "(numeric columns) or fit a pandas DataFrame")
    if na_action != "omit":
        raise DataError(f"na_action={na_action!r} is not supported for Dask DataFrames: a Dask fit's "
                        "per-row values cover the rows used (na_action='omit')")


def _mixed_design(kind: str, formula: str, data: pd.DataFrame, safe: bool, weights: object,
                  offset: object, binomial: bool = False, contrasts: dict[str, str] | None = None,
                  na_action: str = "omit", extra: tuple[str, ...] = ()):
    """The parsed formula and the design of a mixed model, after the checks every fit shares."""
    parsed = mixed_formula(kind, formula, safe)
    design = build_design(parsed, data, weights=weights, offset=offset, binomial=binomial, contrasts=contrasts,
                          na_action=na_action, extra=extra)
    check_groups(design.reterms, design.n, lmm=kind == "lmer")
    if kind == "lmer":
        check_residual_df(design.X.shape[1], design.n)
    spread = different_scales(design.X, design.xnames)
    if spread:
        warn(f"Some predictor variables are on very different scales: consider rescaling ({spread})",
             MixedModelsWarning)
    return parsed, design


def _engine_start(model: LinearMixedModel, start: object):
    """A user's starting θ is in lme4's order; the engine's is the spec's canonical order."""
    if start is None:
        return None
    start = np.asarray(start, dtype=float)
    if start.shape != model.theta_start.shape:
        raise DataError(f"start must have {model.theta_start.size} values (θ in lme4's order), not {start.size}")
    report = model.design.spec.report_order
    sizes = [model.terms[k].ntheta for k in report]
    pieces = dict(zip(report, np.split(start, np.cumsum(sizes)[:-1])))
    return np.concatenate([pieces[k] for k in range(len(model.terms))])


@with_fitting_threads
def glmer(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    nAGQ: int = 1,
    weights: object = None,
    offset: object = None,
    maxeval: int | None = None,
    safe: bool = False,
    control: Control | None = None,
    contrasts: dict[str, str] | None = None,
    na_action: str = "omit",
) -> GlmerResult | LmerResult | DaskGlmerResult | DaskLmerResult:
    """Fit a generalized linear mixed model from an lme4 formula by maximum likelihood.

    Random-effects terms may carry lme4 2.0's covariance structures, as in ``lmer``.

    ``family`` is a name ('binomial', 'poisson', 'Gamma', 'inverse_gaussian',
    'gaussian') or a family object such as ``mm.families.Binomial(link="probit")``.
    ``nAGQ=1`` is the Laplace approximation, ``nAGQ>1`` adaptive Gauss–Hermite
    quadrature (one scalar random-effects term), ``nAGQ=0`` the faster fit with β
    estimated inside PIRLS.  Binomial responses may be 0/1, booleans, two-level
    factors (second level = success), proportions with ``weights=`` trials, or
    ``cbind(successes, failures)``.  ``safe=True`` checks the formula first, ``control``
    (or its ``maxeval=`` shortcut) sets how the fit runs, ``contrasts`` codes factors and
    ``na_action`` pads per-row results, as in lmer.
    A Dask DataFrame is fitted by PIRLS over its persisted partitions, one pass per
    iteration (see ``mixedmodels.dask.glmm``; nAGQ > 1 is not supported there).
    ``family="gaussian"`` with the identity link is lme4's shortcut: the lmer (REML) fit,
    with lme4's warning.
    """
    ctl = resolve_control(control, maxeval)
    check_prior_weights(weights, getattr(data, "columns", pd.Index([])), "glmer")
    fam = get_family(family)
    if fam.name == "gaussian" and fam.link.name == "identity":  # lme4 fits lmer (REML), with this warning
        warn("calling glmer() with family=gaussian (identity link) as a shortcut to lmer() is deprecated; "
             "please call lmer() directly", MixedModelsWarning)
        return lmer(formula, data, weights=weights, offset=offset, safe=safe, control=ctl, contrasts=contrasts,
                    na_action=na_action)
    if is_dask_dataframe(data):
        _dask_options(contrasts, na_action)
        return glmer_dask(formula, data, family=fam, nAGQ=nAGQ, weights=weights, offset=offset, safe=safe,
                          control=ctl)
    parsed, design = _mixed_design("glmer", formula, data, safe, weights, offset, binomial=fam.name == "binomial",
                                   contrasts=contrasts, na_action=na_action)
    model = GeneralizedLinearMixedModel(design, fam, nAGQ=nAGQ, control=ctl)
    try:
        stage1, stage2 = model.fit()
    except (np.linalg.LinAlgError, FloatingPointError, OverflowError) as exc:
        raise FitError(
            f"the fit failed numerically ({exc}); look for extreme values in the response or predictors, "
            "rescale predictors with very large or small values, or simplify the random effects"
        ) from exc
    return GlmerResult(parsed, model, final_report(stage1, stage2), data_name=data.attrs.get("name"))


@with_fitting_threads
def glmer_nb(
    formula: str,
    data: pd.DataFrame,
    link: str = "log",
    nAGQ: int = 1,
    weights: object = None,
    offset: object = None,
    maxeval: int | None = None,
    safe: bool = False,
    control: Control | None = None,
) -> GlmerResult:
    """Negative binomial GLMM (lme4's ``glmer.nb``): the dispersion θ is estimated too.

    Starts from the Poisson fit, then maximises the Laplace likelihood over log θ,
    refitting (θ_RE, β) at each trial value from the best fit so far.  The result's
    ``family.theta`` is the estimate; ``df`` counts it.  ``safe=True`` checks the
    formula first, and ``control`` (or ``maxeval=``) sets how each fit runs, as in lmer.
    """
    ctl = resolve_control(control, maxeval)
    check_prior_weights(weights, getattr(data, "columns", pd.Index([])), "glmer_nb")
    if is_dask_dataframe(data):
        raise DataError("glmer_nb is not available for Dask DataFrames: each trial dispersion is a "
                        "whole refit; fit a sample with .compute(), or use glmer(family='poisson') on Dask")
    parsed, design = _mixed_design("glmer_nb", formula, data, safe, weights, offset)
    poisson = GeneralizedLinearMixedModel(design, get_family("poisson", link), nAGQ=nAGQ, control=ctl)
    report = final_report(*poisson.fit())
    at_optimum = poisson.pirls(report.x[: poisson.ntheta], report.x[poisson.ntheta:])
    mu = at_optimum.rows_mu
    best: dict = {"x": report.x}

    def deviance(log_k: float) -> float:
        model = poisson.with_family(NegativeBinomial(float(np.exp(log_k)), link), warm_start=at_optimum.start)
        rep = final_report(*model.fit(start=best["x"]))
        if rep.fun < best.get("fun", np.inf):
            best.update(x=rep.x, fun=rep.fun, model=model, report=rep)
        return rep.fun

    log_k0 = np.log(theta_ml(design.y, mu, poisson.prior_weights))
    minimize_scalar(deviance, bounds=(log_k0 - 6, log_k0 + 6), method="bounded",
                    options={"xatol": ctl.nb_dispersion_tol})
    fit = GlmerResult(parsed, best["model"], best["report"], data_name=data.attrs.get("name"))
    fit.extra_parameters = 1
    return fit


def theta_ml(y: np.ndarray, mu: np.ndarray, weights: np.ndarray) -> float:
    """Maximum-likelihood negative binomial θ for fixed means μ."""
    def minus_loglik(log_k: float) -> float:
        return NegativeBinomial(float(np.exp(log_k))).minus_two_loglik(y, mu, weights, 1.0).sum()

    res = minimize_scalar(minus_loglik, bounds=(-10, 15), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def update(fit: LmerResult | GlmerResult, formula: str | None = None, data: pd.DataFrame | None = None,
           **changes) -> LmerResult | GlmerResult:
    """R's ``update(m, . ~ . - x, REML = FALSE)``: the model refitted with a formula written against
    its own (``.`` for each side, as R's ``update.formula``; see ``formula.update``) and other
    arguments of ``lmer``/``glmer``/``glmer_nb`` changed by keyword.

    The fit's settings carry over: REML, family, nAGQ, control, contrasts, na_action, a safe
    formula check, and the weights= and offset= given.  Without ``data`` the model is refitted on
    the rows and columns it used (R re-reads the data, so a term whose missing values had dropped
    rows takes them back there); a formula naming other columns needs ``data=``.
    """
    if isinstance(fit, (ResidualLmerResult, GlsResult)) or not isinstance(fit, (LmerResult, GlmerResult)):
        raise FitError(f"update() refits lmer, glmer and glmer_nb fits, not a {type(fit).__name__}; "
                       "call the fitting function again")
    d = fit.design
    text = fit.formula if formula is None else update_formula(fit.formula, formula)
    arguments: dict = {"control": fit.control, "contrasts": dict(d.contrasts) or None, "na_action": d.na_action,
                       "safe": fit.parsed.checked}
    given = {"weights": _weights_argument(fit), "offset": d.offset if fit.predictor.offset_argument else None}
    for name, value in given.items():
        if value is not None and data is not None and name not in changes:
            raise DataError(f"the fit had {name}= for its own rows; pass {name}= for the new data too")
        if value is not None and data is None:
            arguments[name] = value
    if isinstance(fit, GlmerResult) and isinstance(fit.family, NegativeBinomial):
        refit, arguments = glmer_nb, {**arguments, "link": fit.family.link.name, "nAGQ": fit.nAGQ}
        arguments.pop("contrasts"), arguments.pop("na_action")
    elif isinstance(fit, GlmerResult):
        refit, arguments = glmer, {**arguments, "family": fit.family, "nAGQ": fit.nAGQ}
    else:
        refit, arguments = lmer, {**arguments, "REML": fit.REML}
    try:
        return refit(text, d.frame if data is None else data, **{**arguments, **changes})
    except DataError as error:
        if data is not None:
            raise
        raise DataError(f"{str(error).rstrip('.')}; update() refits on the columns the model used: "
                        "pass data= for others") from error


def _weights_argument(fit: LmerResult | GlmerResult) -> np.ndarray | None:
    """The weights= the fit was given: its prior weights, less a cbind response's trials."""
    w = fit.design.weights
    if w is None or not isinstance(fit, GlmerResult):
        return w
    _, trials = response_values(fit.parsed, fit.design.frame, binomial=True) if fit.family.name == "binomial" \
        else (None, None)
    if trials is None:
        return w
    given = w / trials
    return None if np.allclose(given, 1.0) else given
