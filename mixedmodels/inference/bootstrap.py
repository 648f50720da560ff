"""Parametric bootstrap (lme4's ``bootMer``) and confidence intervals.

Each replicate simulates a response from the fitted model (new random effects
and noise), refits, and records the statistics — by default every parameter:
the random-effect SDs and correlations, σ, and the fixed effects.  Replicates
are reproducible by seed: replicate i always uses the i-th child seed, serially or
spread over an executor (``mixedmodels.runtime.parallel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..runtime import parallel
from .parameters import parameters, percent_label


@dataclass
class BootstrapResult:
    """Bootstrap replicates of a statistic, one row per successful replicate."""

    estimate: pd.Series
    replicates: pd.DataFrame
    n_failed: int
    seed: int | None

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Percentile intervals."""
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        q = self.replicates.quantile([lo, hi]).T
        q.columns = [percent_label(lo), percent_label(hi)]
        return q

    def summary(self) -> pd.DataFrame:
        """Original value, bootstrap bias and standard error of each statistic."""
        return pd.DataFrame({
            "original": self.estimate,
            "bias": self.replicates.mean() - self.estimate,
            "std. error": self.replicates.std(ddof=1),
        })


def bootstrap(fit, nsim: int = 1000, seed: int | None = None, statistic: Callable | None = None,
              progress: bool | None = None, executor=None) -> BootstrapResult:
    """Parametric bootstrap of ``statistic(fit) -> Series`` (default: all parameters).

    ``executor`` spreads the refits over a ``concurrent.futures`` executor or a
    ``dask.distributed.Client`` (see ``mixedmodels.runtime.parallel``); the replicates are the
    same as serially.  For process pools and Dask, ``statistic`` must be picklable
    (a module-level function; lambdas need cloudpickle).
    """
    if nsim < 1:
        raise ValueError(f"nsim must be at least 1, not {nsim}")
    statistic = parameters if statistic is None else statistic
    estimate = statistic(fit)  # also computes, before any thread shares the fit, what simulate reads
    children = np.random.SeedSequence(seed).spawn(nsim)
    results = parallel.run(_replicate, (fit, statistic), children, executor, progress, desc="bootstrap")
    rows = [r for r in results if r is not None]
    failed = nsim - len(rows)
    if not rows:
        raise MixedModelsError(f"all {nsim} bootstrap refits failed")
    return BootstrapResult(estimate=estimate, replicates=pd.DataFrame(rows).reset_index(drop=True),
                           n_failed=failed, seed=seed)


def _replicate(payload: tuple, child: np.random.SeedSequence):
    """One replicate: simulate from the fit with ``child``, refit, the statistic; None if the refit fails."""
    fit, statistic = payload
    y = fit.simulate(1, seed=np.random.default_rng(child))["sim_1"]
    try:
        return statistic(fit.refit(y))
    except (MixedModelsError, np.linalg.LinAlgError):
        return None
