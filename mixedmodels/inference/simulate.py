"""Simulated responses from a fitted model or from given parameters, and refits to new responses.

As lme4's ``simulate``: ``re_form="~0"`` (the default) draws new random effects
b ~ N(0, σ²ΛΛᵀ) for every replicate; ``re_form=None`` keeps the estimated modes
(only the observation noise is new).  ``newdata`` simulates other rows than the
fitted ones, and ``simulate_formula`` simulates a model that was never fitted,
from its formula, a design and parameters (lme4's ``simulate.formula``), as a
study is planned.  Draws are reproducible by seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..design.build import build_design
from ..design.reterm import ReTerm, z_times_b
from ..design.spec import ModelSpec
from ..engine.families import Family, Gaussian, get_family
from ..errors import DataError, FormulaError
from ..formula.parse import parse_formula
from .prediction import is_population, random_term_rows


def simulate(fit, nsim: int = 1, seed: int | np.random.Generator | None = None, re_form: str | None = "~0",
             newdata: pd.DataFrame | None = None, allow_new_levels: bool = False,
             weights: object = None) -> pd.DataFrame:
    """``nsim`` simulated responses, one column per replicate: for the rows of the fit, or for
    ``newdata``'s rows (new random effects for each level it has with ``re_form="~0"``; with
    ``re_form=None`` the fitted modes, new levels at zero if ``allow_new_levels``).
    ``weights`` are newdata's prior weights (binomial trials; default 1)."""
    rng = np.random.default_rng(seed)
    if re_form is not None and not is_population(re_form):
        raise FormulaError(f"re_form must be '~0' (new random effects) or None (the fitted modes), not {re_form!r}")
    if newdata is None:
        if weights is not None:
            raise DataError("weights= is for newdata's rows; the fitted rows keep their own prior weights")
        fixed = fit.design.X @ fit.fixef.to_numpy()
        if fit.design.offset is not None:
            fixed = fixed + fit.design.offset
        terms, lambdas = fit.model.terms, fit._factor.lambdas
        modes = z_times_b(terms, fit._b, fit.nobs)
        draws = (fixed + (modes if re_form is None else random_effects_draw(terms, lambdas, fit.sigma, rng, fit.nobs))
                 for _ in range(nsim))

        def over_rows_used(values: np.ndarray, name: str) -> pd.Series:
            return pd.Series(values, index=fit.rows_used, name=name)

        return _responses(fit.draw_response, fit.inverse_link, draws, over_rows_used, rng)
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    w = _weights(weights, len(newdata))
    if re_form is None:
        eta = fit.predictor.new_rows(newdata, None, allow_new_levels)
        draws = (eta for _ in range(nsim))
    else:
        fixed = fit.predictor.new_rows(newdata, "~0")
        reported = (fit.spec.terms[k] for k in fit.spec.report_order)  # lme4's order, as the covariances
        rows = [(random_term_rows(t, newdata), S) for t, S in zip(reported, fit.covariances)]
        draws = (fixed + _new_levels_draw(rows, rng) for _ in range(nsim))
    family = getattr(fit, "family", Gaussian())
    dispersion = fit.sigma**2

    def draw(mu: np.ndarray, generator: np.random.Generator) -> np.ndarray:
        return family.sample(mu, w, dispersion, generator)

    def over_newdata(values: np.ndarray, name: str) -> pd.Series:
        return pd.Series(values, index=newdata.index, name=name)

    return _responses(draw, fit.inverse_link, draws, over_newdata, rng)


def simulate_formula(formula: str, newdata: pd.DataFrame, beta: Sequence[float] | pd.Series,
                     theta: Sequence[float], sigma: float | None = None, family: str | Family = "gaussian",
                     nsim: int = 1, seed: int | np.random.Generator | None = None, weights: object = None,
                     offset: object = None) -> pd.DataFrame:
    """Responses simulated from a model given by its formula and parameters (lme4's
    ``simulate(~ x + (1 | g), newdata = d, newparams = list(beta =, theta =, sigma =))``).

    ``beta`` follows the fixed-effects columns of ``formula`` on ``newdata`` (a Series by
    name, or values in column order), ``theta`` the relative covariance factors in lme4's
    order (terms by decreasing number of levels, each term's lower triangle by columns;
    ``m.theta`` of a fit), ``sigma`` the residual SD (LMMs; families with a dispersion).
    The response of a two-sided formula is ignored, as lme4's.  Rows with missing
    predictors are left out.  One column per replicate, over the rows used.
    """
    fam = get_family(family)
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError("simulating from a formula needs a random-effects term such as (1 | g)", formula)
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    response = "simulate_response_"
    while response in newdata.columns:
        response += "_"
    frame = newdata.assign(**{response: 0.0})  # a copy: the design needs a response, the caller's frame stays
    text = parsed.text.split("~", 1)[1]
    design = build_design(parse_formula(f"{response} ~ {text}"), frame, weights=weights, offset=offset)
    b = _coefficients(beta, design.xnames)
    if fam.has_dispersion or fam.name == "gaussian":
        if sigma is None or not np.isfinite(sigma) or sigma <= 0:
            raise DataError(f"the {fam.name} family needs sigma= (the residual SD), a positive number; got {sigma!r}")
    scale = 1.0 if sigma is None else float(sigma)
    terms, lambdas = _factors(design.reterms, design.spec, theta)
    fixed = design.X @ b + (0.0 if design.offset is None else design.offset)
    w = np.ones(design.n) if design.weights is None else design.weights
    rng = np.random.default_rng(seed)
    draws = (fixed + random_effects_draw(terms, lambdas, scale, rng, design.n) for _ in range(nsim))

    def draw(mu: np.ndarray, generator: np.random.Generator) -> np.ndarray:
        return fam.sample(mu, w, scale**2, generator)

    def over_rows(values: np.ndarray, name: str) -> pd.Series:
        return pd.Series(values, index=design.rows, name=name)

    return _responses(draw, fam.link.inverse, draws, over_rows, rng)


def random_effects_draw(terms: Sequence[ReTerm], lambdas: Sequence[np.ndarray], sigma: float,
                        rng: np.random.Generator, n: int) -> np.ndarray:
    """Z b over n rows for b = σTu drawn per level of each term (u standard normal, T its factor)."""
    b = [sigma * rng.standard_normal((t.nlevels, t.p)) @ T.T for t, T in zip(terms, lambdas)]
    return z_times_b(terms, b, n)


def _new_levels_draw(rows: list[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]],
                     rng: np.random.Generator) -> np.ndarray:
    """Z b on new rows, b ~ N(0, Σ) drawn afresh for each level the rows have (Σ a term's covariance)."""
    total: np.ndarray | float = 0.0
    for (Z, labels), S in rows:
        if pd.isna(labels).any():
            raise DataError("newdata has rows with a missing grouping value; give every row a level to simulate")
        codes, levels = pd.factorize(labels)
        b = rng.multivariate_normal(np.zeros(len(S)), S, size=len(levels), method="cholesky")
        total = total + np.einsum("ij,ij->i", Z, b[codes])
    return np.asarray(total)


def _factors(terms: tuple[ReTerm, ...], spec: ModelSpec,
             theta: Sequence[float]) -> tuple[list[ReTerm], list[np.ndarray]]:
    """The terms (the spec's canonical order) in lme4's order with their factors T from θ given in that order."""
    values = np.asarray(theta, dtype=float).ravel()
    order = spec.report_order
    needed = sum(terms[i].ntheta for i in order)
    if values.size != needed:
        layout = ", ".join(f"{terms[i].structure.spelling(terms[i].expr, terms[i].group)}: {terms[i].ntheta}" for i in order)
        raise DataError(f"theta has {values.size} values; the random effects need {needed} in lme4's order ({layout})")
    ordered, lambdas, start = [], [], 0
    for i in order:
        t = terms[i]
        ordered.append(t)
        lambdas.append(t.lambda_factor(values[start:start + t.ntheta]))
        start += t.ntheta
    return ordered, lambdas


def _coefficients(beta: Sequence[float] | pd.Series, names: tuple[str, ...]) -> np.ndarray:
    """β in the design's column order, from a Series by name or values in that order."""
    if isinstance(beta, pd.Series):
        unknown = [n for n in beta.index if n not in names]
        missing = [n for n in names if n not in beta.index]
        if unknown or missing:
            raise DataError(f"beta must name the fixed-effects columns {list(names)}; "
                            f"missing {missing}, unknown {unknown}")
        return beta.loc[list(names)].to_numpy(dtype=float)
    values = np.asarray(beta, dtype=float).ravel()
    if values.size != len(names):
        raise DataError(f"beta has {values.size} values for the {len(names)} fixed-effects columns {list(names)}")
    return values


def _weights(weights: object, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=float).ravel()
    if w.size != n or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise DataError(f"weights must be {n} finite positive numbers, one per row of newdata")
    return w


def _responses(draw, inverse_link, etas: Iterable[np.ndarray], as_series, rng: np.random.Generator) -> pd.DataFrame:
    """One column 'sim_k' per linear predictor: a response drawn at its mean."""
    columns = {}
    for k, eta in enumerate(etas, start=1):
        columns[f"sim_{k}"] = as_series(draw(inverse_link(eta), rng), f"sim_{k}")
    return pd.DataFrame(columns)


def with_response(design, y: object):
    """The design with a new response vector (same rows, same everything else)."""
    y = np.asarray(y, dtype=float).ravel()
    if y.shape != design.y.shape:
        raise DataError(f"the new response has {y.size} values; the model has {design.y.size} observations")
    if not np.all(np.isfinite(y)):
        raise DataError("the new response has missing or infinite values")
    return dataclasses.replace(design, y=y)
