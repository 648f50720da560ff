"""Simulated responses from a fitted model, and refits to new responses.

As lme4's ``simulate``: ``re_form="~0"`` (the default) draws new random effects
b ~ N(0, σ²ΛΛᵀ) for every replicate; ``re_form=None`` keeps the estimated modes
(only the observation noise is new).  Draws are reproducible by seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..design.reterm import z_times_b
from ..errors import DataError, FormulaError


def simulate(fit, nsim: int = 1, seed: int | np.random.Generator | None = None, re_form: str | None = "~0") -> pd.DataFrame:
    """``nsim`` simulated responses for the rows of the fit, one column per replicate."""
    rng = np.random.default_rng(seed)
    keep_modes = re_form is None
    if re_form is not None and (not isinstance(re_form, str) or re_form.replace(" ", "") not in ("~0", "NA", "~NA")):
        raise FormulaError(f"re_form must be '~0' (new random effects) or None (the fitted modes), not {re_form!r}")
    fixed = fit.design.X @ fit.fixef.to_numpy()
    if fit.design.offset is not None:
        fixed = fixed + fit.design.offset
    columns = {}
    for i in range(nsim):
        eta = fixed + (_fitted_random_part(fit) if keep_modes else _random_draw(fit, rng))
        columns[f"sim_{i + 1}"] = fit.draw_response(fit.inverse_link(eta), rng)
    return pd.DataFrame(columns, index=fit.rows_used)


def _fitted_random_part(fit) -> np.ndarray:
    return z_times_b(fit.model.terms, fit._b, fit.nobs)


def _random_draw(fit, rng: np.random.Generator) -> np.ndarray:
    """Z b for b = σΛu drawn from the fitted random-effects distribution (u standard normal)."""
    b = [fit.sigma * rng.standard_normal((t.nlevels, t.p)) @ T.T for t, T in zip(fit.model.terms, fit._factor.lambdas)]
    return z_times_b(fit.model.terms, b, fit.nobs)


def with_response(design, y: object):
    """The design with a new response vector (same rows, same everything else)."""
    y = np.asarray(y, dtype=float).ravel()
    if y.shape != design.y.shape:
        raise DataError(f"the new response has {y.size} values; the model has {design.y.size} observations")
    if not np.all(np.isfinite(y)):
        raise DataError("the new response has missing or infinite values")
    return dataclasses.replace(design, y=y)
