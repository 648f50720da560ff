"""Likelihood-ratio comparisons of fitted models: lme4's ``anova(m0, m1)`` and ``drop1(m)``, and
lmerTest's ``ranova(m)``.

Both return an :class:`AnovaTable`: a pandas DataFrame (``t["Pr(>Chisq)"]``) whose
printed form follows R's ``print.anova``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import formulaic
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MixedModelsError, MixedModelsWarning, RefitWarning, match_arg, warn
from ..formula.parse import ParsedFormula, RandomTerm
from ..results.glmer import GlmerResult
from ..results.glm import GlmResult
from ..results.lm import LmResult
from ..engine.glmm import GeneralizedLinearMixedModel, final_report
from ..engine.lmm import LinearMixedModel
from ..design.build import with_terms
from ..design.reterm import ReTerm
from ..results.lmer import LmerResult
from ..results.residual import GlsResult, ResidualLmerResult
from ..report.tables import AnovaTable
from .fixed_tests import FixedTerm, f_tests, fixed_terms_of, type1_contrasts
from .kenward_roger import check_applicable

_INTERCEPT = "(Intercept)"
#: the fits anova compares: likelihoods of linear models, or of generalized ones
Comparable = LmerResult | GlmerResult | LmResult | GlmResult | GlsResult


# ----- anova ---------------------------------------------------------------------------------
def anova(*models: object, refit: bool = True, names: Sequence[str] | None = None) -> AnovaTable:
    """Likelihood-ratio tests of nested models, as lme4's ``anova(m0, m1, ...)``.

    Models (``lmer`` or ``lm`` fits, or ``glmer`` or ``glm`` fits) are sorted by their number of
    parameters; each row tests the model against the one above it.  REML fits are
    refitted by ML first (with a :class:`RefitWarning`) unless ``refit=False``.
    Rows are named by ``names`` or else by the formulas.
    """
    if len(models) < 2:
        raise MixedModelsError("anova compares two or more fitted models, e.g. anova(m0, m1)")
    fitted = tuple(_comparable(m) for m in models)
    generalized = [isinstance(m, (GlmerResult, GlmResult)) for m in fitted]
    if any(generalized) and not all(generalized):
        raise MixedModelsError(
            "cannot compare a generalized model (glmer or glm) with a linear model (lmer or lm): "
            "their likelihoods are not on the same scale; compare glmer with mm.glm, lmer with mm.lm"
        )
    nobs = [m.nobs for m in fitted]
    if len(set(nobs)) > 1:
        used = ", ".join(f"{m.formula!r} used {m.nobs}" for m in fitted)
        raise MixedModelsError(f"models were not all fitted to the same number of observations: {used}")
    labels = _model_names(fitted, names)
    reml = [getattr(m, "REML", False) for m in fitted]
    if refit and any(reml):
        warn("refitting model(s) with ML (instead of REML)", RefitWarning)
        fitted = tuple(m.refit_ml() if isinstance(m, (LmerResult, GlsResult)) and m.REML else m for m in fitted)
    elif any(reml) and not all(reml):
        warn("some models fit with REML = TRUE, some not", MixedModelsWarning)

    order = sorted(range(len(fitted)), key=lambda i: fitted[i].df)  # stable, as R's order()
    fits = {labels[i]: fitted[i] for i in order}
    npar = np.array([m.df for m in fits.values()], dtype=float)
    loglik = np.array([m.loglik for m in fits.values()])
    chisq = np.concatenate([[np.nan], 2 * np.maximum(0.0, np.diff(loglik))])
    df = np.concatenate([[np.nan], np.diff(npar)])
    table = pd.DataFrame(
        {
            "npar": npar.astype(int),
            "AIC": [m.aic for m in fits.values()],
            "BIC": [m.bic for m in fits.values()],
            "logLik": loglik,
            "deviance": -2 * loglik,
            "Chisq": chisq,
            "Df": df,
            "Pr(>Chisq)": _chisq_pvalues(chisq, df),
        },
        index=list(fits),
    )
    first = next(iter(fits.values()))
    heading = ([f"Data: {first.data_name}"] if first.data_name else []) + ["Models:"]
    heading += [f"{name}: {m.formula}" if name != m.formula else name for name, m in fits.items()]
    return AnovaTable(table, heading, fits)


def _comparable(model: object) -> Comparable:
    if not isinstance(model, (LmerResult, GlmerResult, LmResult, GlmResult, GlsResult)):
        raise TypeError(f"anova compares lmer, glmer, lm, glm and gls fits, not {type(model).__name__}")
    return model


def _no_structure(fit: object, what: str) -> None:
    """drop1 and ranova refit without the residual structure, so they refuse a fit that has one."""
    if isinstance(fit, ResidualLmerResult):
        raise MixedModelsError(f"{what} not offered for fits with a residual structure (its refits would drop "
                               "it); compare the models you want with mm.anova(m0, m1)")


def _model_names(models: Sequence[Comparable], names: Sequence[str] | None) -> list[str]:
    """Given names, else formulas; duplicates become 'MODEL1', 'MODEL2', ... as lme4."""
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(models):
            raise MixedModelsError(f"names has {len(names)} entries for {len(models)} models")
        if len(set(names)) != len(names):
            raise MixedModelsError(f"model names must be distinct, got {names}")
        return names
    formulas = [m.formula for m in models]
    if len(set(formulas)) == len(formulas):
        return formulas
    return [f"MODEL{i + 1}" for i in range(len(models))]


def _chisq_pvalues(chisq: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Upper chi-square tail probabilities; NaN where Df is missing or not positive."""
    with np.errstate(invalid="ignore"):
        return np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)


# ----- drop1 ---------------------------------------------------------------------------------
def drop1(fit: LmerResult | GlmerResult | LmResult, test: str = "none", ddf: str = "Satterthwaite") -> AnovaTable:
    """Each droppable fixed-effect term removed in turn, as lme4's ``drop1(m, test = "Chisq")``
    (R's ``drop1(lm_fit, test = "F")`` for an ``lm`` fit); ``test="F"`` on an lmer fit is
    lmerTest's ``drop1(m, ddf =)``, what R gives when lmerTest is attached: an F test of each
    marginal term by Satterthwaite's (``ddf``, default) or Kenward–Roger's method, no refits.

    A term is droppable when no other term contains all its variables (R's
    ``drop.scope``: ``Days`` in ``Days * grp`` is not).  The models are compared by
    their maximum likelihood (REML fits are refitted by ML, as lme4's
    ``extractAIC``): AIC, and with ``test="Chisq"`` the likelihood-ratio statistic
    and its χ² p-value on the number of coefficients dropped.  An ``lm`` fit gets R's
    ``drop1.lm`` table instead: Df, Sum of Sq, RSS and AIC, with ``test="F"`` the F test.
    """
    if isinstance(fit, LmResult):
        return _drop1_lm(fit, test)
    if not isinstance(fit, (LmerResult, GlmerResult)):
        raise MixedModelsError(f"drop1 needs an lmer, glmer or lm fit, not {type(fit).__name__}")
    _no_structure(fit, "drop1")
    if test == "F" and isinstance(fit, LmerResult):
        ddf = match_arg(ddf, ("Satterthwaite", "Kenward-Roger"), "ddf")
        if ddf == "Kenward-Roger":
            check_applicable(fit)
        return _drop1_f(fit, ddf)
    if test not in ("none", "Chisq"):
        raise ValueError(f"test must be 'none' or 'Chisq' for a mixed model ('F' for lmer fits), not {test!r}")
    if getattr(fit, "extra_parameters", 0):
        raise MixedModelsError("drop1 does not refit glmer_nb's dispersion; compare glmer_nb fits with mm.anova")
    full = fit.refit_ml() if isinstance(fit, LmerResult) else fit
    fits: dict[str, LmerResult | GlmerResult | LmResult] = {"<none>": full}
    for t in droppable_terms(fit):
        fits[t.name] = without_fixed_term(full, t.name, t.columns)
    npar = np.array([np.nan] + [full.df - m.df for m in list(fits.values())[1:]])
    columns: dict[str, object] = {"npar": npar, "AIC": [m.aic for m in fits.values()]}
    if test == "Chisq":
        lrt = np.array([np.nan] + [2 * (full.loglik - m.loglik) for m in list(fits.values())[1:]])
        columns.update({"LRT": lrt, "Pr(Chi)": _chisq_pvalues(lrt, npar)})
    heading = ["Single term deletions", "", "Model:", fit.formula]
    return AnovaTable(pd.DataFrame(columns, index=list(fits)), heading, dict(fits))


def _drop1_f(fit: LmerResult, ddf: str) -> AnovaTable:
    """lmerTest's ``drop1(m)``: an F test of each marginal term's coefficients being zero (the
    term's rows of the identity; with at most one term or coefficient, the type I hypotheses)."""
    terms = [t for t in fixed_terms_of(fit) if t.columns]
    X = fit.design.X
    if X.shape[1] <= 1 or len(terms) <= 1:
        contrasts = type1_contrasts(X, terms)
    else:
        contrasts = {t.name: np.eye(X.shape[1])[list(t.columns)] for t in terms}
    table = f_tests(fit, {t.name: contrasts[t.name] for t in droppable_terms(fit)}, ddf)
    heading = [f"Single term deletions using {ddf}'s method:", "", "Model:", fit.formula]
    return AnovaTable(table, heading, {})


def droppable_terms(fit: LmerResult | GlmerResult | LmResult) -> list[FixedTerm]:
    """The fixed terms with coefficients that no other term contains (R's ``drop.scope``)."""
    terms = [t for t in fixed_terms_of(fit) if t.columns]
    return [t for t in terms if not any(set(t.variables) < set(o.variables) for o in terms)]


def _drop1_lm(fit: LmResult, test: str) -> AnovaTable:
    """R's ``drop1.lm``: the residual sum of squares without each droppable term, AIC as
    ``extractAIC`` (n log(RSS/n) + 2p), and with ``test="F"`` F = (ΔRSS/Df) / (RSS/(n − p))."""
    if test not in ("none", "F"):
        raise ValueError(f"test must be 'none' or 'F' for an lm fit, not {test!r}")
    fits: dict[str, LmResult] = {"<none>": fit}
    for t in droppable_terms(fit):
        reduced = without_fixed_term(fit, t.name, t.columns)
        assert isinstance(reduced, LmResult)
        fits[t.name] = reduced
    rss = np.array([m.rss for m in fits.values()])
    df = np.array([np.nan] + [fit.p - m.p for m in list(fits.values())[1:]])
    n = fit.nobs
    columns: dict[str, object] = {"Df": df, "Sum of Sq": np.concatenate([[np.nan], rss[1:] - rss[0]]),
                                  "RSS": rss, "AIC": [n * np.log(m.rss / n) + 2 * m.p for m in fits.values()]}
    if test == "F":
        F = (rss - rss[0]) / df / (rss[0] / fit.df_resid)
        with np.errstate(invalid="ignore"):
            columns.update({"F value": F, "Pr(>F)": stats.f.sf(F, df, fit.df_resid)})
    heading = ["Single term deletions", "", "Model:", fit.formula]
    return AnovaTable(pd.DataFrame(columns, index=list(fits)), heading, dict(fits))


def without_fixed_term(fit: LmerResult | GlmerResult | LmResult, term: str, columns: Sequence[int],
                       fixed: str | None = None) -> LmerResult | GlmerResult | LmResult:
    """The fit of the model without one fixed term's columns, by the fit's criterion (R's
    ``update(m, . ~ . - term)``); ``fixed`` is the new fixed part's text (default '<fixed> - term')."""
    d = fit.design
    keep = [j for j in range(d.X.shape[1]) if j not in columns]
    design = replace(d, X=np.ascontiguousarray(d.X[:, keep]),
                     spec=replace(d.spec, kept=tuple(d.spec.kept[j] for j in keep)))
    p = fit.parsed
    fixed = f"{p.fixed} - {term}" if fixed is None else fixed
    pieces = [f"offset({o})" for o in p.offsets] + [f"({b.expr} | {b.group_name})" for b in p.random]
    lead = [] if fixed == "1" and pieces else [fixed]  # R's update: 'y ~ (1 | g)', 'y ~ 1'
    parsed = replace(p, fixed=fixed, text=f"{p.response} ~ " + " + ".join([*lead, *pieces]))
    if isinstance(fit, LmResult):
        return LmResult(parsed, design, fit.data_name)
    if isinstance(fit, LmerResult):
        model = LinearMixedModel(design, REML=fit.REML, control=fit.control)
        return LmerResult(parsed, model, model.fit(), fit.data_name)
    glmm = GeneralizedLinearMixedModel(design, fit.family, nAGQ=fit.nAGQ, control=fit.control)
    stage1, stage2 = glmm.fit()
    return GlmerResult(parsed, glmm, final_report(stage1, stage2), fit.data_name)


# ----- ranova ---------------------------------------------------------------------------------
def ranova(fit: LmerResult) -> AnovaTable:
    """Likelihood-ratio test of each random-effects term, as lmerTest's ``ranova(m)``.

    A term ``(1 | g)`` is dropped; a term with slopes loses one slope term at a
    time (``(1 + x | g)`` becomes ``(1 | g)``), as lmerTest's ``reduce.terms``.
    The reduced models keep the fit's REML setting, so a REML fit is compared by
    restricted log-likelihoods; without any random term left the reduced model is
    an ``lm``.  The data are not needed: the reduced models reuse the fit's design.
    """
    _no_structure(fit, "ranova")
    if not isinstance(fit, LmerResult):
        raise MixedModelsError(f"ranova needs an lmer fit (a linear mixed model), not {type(fit).__name__}")
    structured = [t.structure.spelling(t.expr, t.group) for t in fit.reterms if t.structure.structured]
    if structured:
        raise MixedModelsError(f"ranova reduces unstructured terms only, not {', '.join(structured)}; compare "
                               "the models you mean with mixedmodels.anova(m0, m1)")
    fits: dict[str, LmerResult | LmResult] = {"<none>": fit}
    for label, reterms in _reductions(fit):
        fits[label] = _refit(fit, reterms)
    npar = np.array([m.df for m in fits.values()], dtype=float)
    loglik = np.array([m.reml_loglik if fit.REML and isinstance(m, LmResult) else m.loglik for m in fits.values()])
    lrt = np.concatenate([[np.nan], 2 * (loglik[0] - loglik[1:])])
    df = np.concatenate([[np.nan], npar[0] - npar[1:]])
    table = pd.DataFrame(
        {
            "npar": npar.astype(int),
            "logLik": loglik,
            "AIC": -2 * loglik + 2 * npar,
            "LRT": lrt,
            "Df": df,
            "Pr(>Chisq)": _chisq_pvalues(lrt, df),
        },
        index=list(fits),
    )
    heading = ["ANOVA-like table for random-effects: Single term deletions", "", "Model:", fit.formula]
    return AnovaTable(table, heading, fits)


def _reductions(fit: LmerResult) -> list[tuple[str, tuple[ReTerm, ...]]]:
    """Row label and random-effects terms of each reduced model, in lmerTest's order."""
    terms = tuple(fit.design.reterms[k] for k in fit.spec.formula_order())
    out = []
    for i, shown in enumerate(_shown_terms(fit.parsed.random, terms)):
        t, others = terms[i], terms[:i] + terms[i + 1 :]
        slopes = _slope_columns(t)
        if not slopes:
            out.append((shown, others))
        for label, columns in slopes.items():
            kept = _without(t, columns)
            duplicate = any(o.group == kept.group and o.columns == kept.columns for o in others)
            out.append((f"{label} in {shown}", others if duplicate else terms[:i] + (kept,) + terms[i + 1 :]))
    return out


def _shown_terms(bars: Sequence[RandomTerm], terms: Sequence[ReTerm]) -> list[str]:
    """Each ReTerm as lmerTest shows it: '(Days | Subject)'; '||' pieces as '(0 + Days | Subject)'."""
    shown: list[str] = []
    for bar in bars:
        if bar.correlated:
            shown.append(f"({bar.expr} | {bar.group_name})")
            continue
        seen: set[str] = set()
        while len(shown) < len(terms):
            t = terms[len(shown)]
            if t.group != bar.group_name or t.expr != bar.expr or t.columns[0] in seen:
                break
            seen.add(t.columns[0])
            shown.append(f"({_lhs(t.columns)} | {t.group})")
    return shown


def _lhs(columns: Sequence[str]) -> str:
    """The left side of a bar with these columns: '1', '1 + Days', '0 + Days'."""
    slopes = [c for c in columns if c != _INTERCEPT]
    return " + ".join((["1"] if _INTERCEPT in columns else ["0"] if slopes else []) + slopes) or "1"


def _slope_columns(t: ReTerm) -> dict[str, list[int]]:
    """Columns of each droppable slope term of ``t`` (lmerTest's drop.scope: marginal terms only)."""
    terms = [term for term in formulaic.Formula(t.expr) if str(term) != "1"]
    factors = {str(term): [f.expr for f in term.factors] for term in terms}
    owned: dict[str, list[int]] = {}
    for j, column in enumerate(t.columns):
        if column != _INTERCEPT:
            owned.setdefault(_owner(column, factors, t), []).append(j)
    return {
        label: cols for label, cols in owned.items()
        if not any(set(factors[label]) < set(factors[other]) for other in owned)
    }


def _owner(column: str, factors: dict[str, list[str]], t: ReTerm) -> str:
    """The term a model-matrix column comes from: 'Days' from 'Days', 'f' from 'fb', 'f:x' from 'fb:x'."""
    parts = column.split(":")
    scored = []
    for label, names in factors.items():
        if len(names) == len(parts) and all(p.startswith(n) for p, n in zip(parts, names)):
            scored.append((sum(p == n for p, n in zip(parts, names)), sum(map(len, names)), label))
    scored.sort(reverse=True)
    if not scored or (len(scored) > 1 and scored[0][:2] == scored[1][:2]):
        raise MixedModelsError(
            f"cannot tell which term of ({t.expr} | {t.group}) the column {column!r} belongs to; "
            "rename the variables so that no name starts with another"
        )
    return scored[0][2]


def _without(t: ReTerm, columns: Sequence[int]) -> ReTerm:
    """``t`` without the given columns; with no slope left it becomes ``(1 | g)``, as lmerTest."""
    keep = [j for j in range(t.p) if j not in columns]
    if all(t.columns[j] == _INTERCEPT for j in keep):
        return replace(t, matrix=np.ones((len(t.codes), 1)), columns=(_INTERCEPT,), expr="1")
    kept = tuple(t.columns[j] for j in keep)
    return replace(t, matrix=np.ascontiguousarray(t.matrix[:, keep]), columns=kept, expr=_lhs(kept))


def _refit(fit: LmerResult, reterms: tuple[ReTerm, ...]) -> LmerResult | LmResult:
    """The fit's model with other random-effects terms, by the same criterion (REML or ML)."""
    p = fit.parsed
    bars = tuple(RandomTerm(t.expr, tuple(t.group.split(":"))) for t in reterms)
    pieces = [f"offset({o})" for o in p.offsets] + [f"({b.expr} | {b.group_name})" for b in bars]
    text = " + ".join([p.fixed_formula, *pieces])
    parsed = ParsedFormula(text=text, response=p.response, fixed=p.fixed, random=bars, offsets=p.offsets,
                           checked=p.checked)
    design = with_terms(fit.design, parsed, reterms)
    if not reterms:
        return LmResult(parsed, design, fit.data_name)
    model = LinearMixedModel(design, REML=fit.REML, control=fit.control)
    return LmerResult(parsed, model, model.fit(), fit.data_name)
