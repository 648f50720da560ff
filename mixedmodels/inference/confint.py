"""Confidence intervals of every parameter: Wald, profile likelihood or parametric bootstrap (lme4's confint)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import match_arg
from .bootstrap import bootstrap
from .parameters import parameters, percent_label
from .profile import profile_confint


def confint(fit, method: str = "wald", level: float = 0.95, nsim: int = 500, seed: int | None = None,
            progress: bool | None = None, executor=None, scale: str = "sd") -> pd.DataFrame:
    """Confidence intervals, one row per parameter (see ``parameters``); ``executor`` as in bootstrap.
    ``scale="variance"``: profile intervals of variances and covariances (lme4's ``prof.scale = "varcov"``)."""
    method = confint_method(method)
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    if scale != "sd" and method != "profile":
        raise ValueError(f"scale={scale!r} is for method='profile'; the {method!r} intervals are on the SD scale")
    if method == "wald":
        return wald_confint(fit, level)
    if method == "boot":
        return bootstrap(fit, nsim, seed, progress=progress, executor=executor).confint(level)
    return profile_confint(fit, level, scale)


def confint_method(method: str) -> str:
    """'wald', 'profile' or 'boot' from R's spellings (``"Wald"``) and abbreviations, as lme4's match.arg."""
    return match_arg(method.lower() if isinstance(method, str) else method, ("wald", "profile", "boot"), "method")


def wald_confint(fit, level: float) -> pd.DataFrame:
    """β ± z·SE; variance parameters get no Wald interval (NaN), as in lme4."""
    z = stats.norm.ppf(1 - (1 - level) / 2)
    params = parameters(fit)
    lower = pd.Series(np.nan, index=params.index)
    upper = lower.copy()
    lower[fit.fixef.index] = fit.fixef - z * fit.se
    upper[fit.fixef.index] = fit.fixef + z * fit.se
    return pd.DataFrame({percent_label((1 - level) / 2): lower, percent_label(1 - (1 - level) / 2): upper})
