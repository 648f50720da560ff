"""Parametric bootstrap (lme4's ``bootMer``) and confidence intervals.

Each replicate simulates a response from the fitted model (new random effects
and noise), refits, and records the statistics — by default every parameter:
the random-effect SDs and correlations, σ, and the fixed effects.  Replicates
are reproducible by seed: replicate i always uses the i-th child seed, serially or
spread over an executor (``mixedmodels.parallel``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ..runtime import parallel
from ..errors import MixedModelsError


def parameters(fit) -> pd.Series:
    """Every parameter, one row each: 'sd_(Intercept)|Subject', 'cor_(Intercept).Days|Subject', 'sigma', β."""
    values, names = [], []
    for r in fit.varcorr.itertuples(index=False):
        if r.grp == "Residual":
            names.append("sigma")
        elif pd.isna(r.var2):
            names.append(f"sd_{r.var1}|{r.grp}")
        else:
            names.append(f"cor_{r.var1}.{r.var2}|{r.grp}")
        values.append(r.sdcor)
    return pd.concat([pd.Series(values, index=names, dtype=float), fit.fixef.rename(None)])


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
        q.columns = [_pct(lo), _pct(hi)]
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
    ``dask.distributed.Client`` (see ``mixedmodels.parallel``); the replicates are the
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


def confint(fit, method: str = "wald", level: float = 0.95, nsim: int = 500, seed: int | None = None,
            progress: bool | None = None, executor=None) -> pd.DataFrame:
    """Confidence intervals, one row per parameter (see ``parameters``); ``executor`` as in bootstrap."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    if method == "wald":
        return _wald(fit, level)
    if method == "boot":
        return bootstrap(fit, nsim, seed, progress=progress, executor=executor).confint(level)
    if method == "profile":
        from .profile import profile_confint

        return profile_confint(fit, level)
    raise ValueError(f"method must be 'wald', 'profile' or 'boot', not {method!r}")


def _wald(fit, level: float) -> pd.DataFrame:
    """β ± z·SE; variance parameters get no Wald interval (NaN), as in lme4."""
    z = stats.norm.ppf(1 - (1 - level) / 2)
    params = parameters(fit)
    lower = pd.Series(np.nan, index=params.index)
    upper = lower.copy()
    lower[fit.fixef.index] = fit.fixef - z * fit.se
    upper[fit.fixef.index] = fit.fixef + z * fit.se
    return pd.DataFrame({_pct((1 - level) / 2): lower, _pct(1 - (1 - level) / 2): upper})


def _pct(p: float) -> str:
    return f"{100 * p:.3g} %"


class _Progress:
    """A progress bar: tqdm's (terminals and notebooks) when installed, else one line on stderr.

    Shown by default when stderr is a terminal or tqdm can draw in a notebook.
    """

    def __init__(self, total: int, enabled: bool | None, desc: str = "bootstrap"):
        self.total, self.done = total, 0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.enabled = (sys.stderr.isatty() or tqdm is not None and "ipykernel" in sys.modules) if enabled is None else enabled
        self.desc = desc
        self.bar = tqdm(total=total, desc=desc) if tqdm is not None and self.enabled else None

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            filled = int(30 * self.done / self.total)
            sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")
