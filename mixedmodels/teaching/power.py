"""Power of a fixed-effect test by simulation, as R's simr (``powerSim``, ``powerCurve``).

For each design size, a new design is built from the fitted one by resampling
whole clusters of the grouping factor ``group``:

* ``n_groups`` cluster ids are drawn with replacement from the fitted clusters and
  each draw becomes a distinct new cluster (``None``: every fitted cluster once);
* each new cluster takes its original rows in data order, the first ``n_per_group``
  of them, cycling through them again when it needs more (``None``: all its rows);
* grouping factors nested in ``group`` (each level inside one cluster) are relabelled
  per copy as well; crossed factors keep their levels.

Responses are drawn from the *fitted* model (β, random-effect covariances, σ; the
tested coefficient may be replaced by ``effect``) on the new design, the model is
refitted and the coefficient tested: Satterthwaite t test for LMMs, Wald z test for
GLMMs.  Power is the share of successful refits that reject at ``alpha``, with a
Clopper–Pearson 95% interval; refits that fail are counted in ``failed``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..report import display
from ..runtime import parallel
from ..design.build import Design
from ..errors import DataError, MixedModelsError, did_you_mean
from ..engine.glmm import GeneralizedLinearMixedModel
from ..results.glmer import GlmerResult
from ..engine.lmm import LinearMixedModel
from ..design.reterm import ReTerm, z_times_b
from ..results.lmer import LmerResult, MixedModelResult
from ..inference.simulate import with_response

_FAILURES = (MixedModelsError, np.linalg.LinAlgError, FloatingPointError, OverflowError)


@dataclass
class PowerResult:
    """Simulated power of the test of one coefficient, one table row per design size."""

    table: pd.DataFrame  # n_groups, n_per_group, power, ci_lower, ci_upper, nsim, failed
    test: str
    effect: float
    alpha: float
    seed: int | None

    def curve(self, x: str = "n_groups") -> tuple[np.ndarray, np.ndarray]:
        """(x, power) sorted by x, for a plot; the other size must be the same in every row."""
        if x not in ("n_groups", "n_per_group"):
            raise ValueError(f"x must be 'n_groups' or 'n_per_group', not {x!r}")
        other = "n_per_group" if x == "n_groups" else "n_groups"
        if self.table[other].nunique() > 1:
            raise ValueError(f"the table varies {other} too; select rows of .table with one {other} first")
        rows = self.table.sort_values(x)
        return rows[x].to_numpy(), rows["power"].to_numpy()

    def __str__(self) -> str:
        head = (f"Power to detect {self.test} = {self.effect:.4g} at alpha = {self.alpha} "
                "(simulation; 95% Clopper-Pearson intervals)")
        return head + "\n" + self.table.to_string(index=False) + "\n"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return display.pre(str(self))


def power(model: MixedModelResult, test: str, nsim: int = 100,
          n_groups: int | Sequence[int] | None = None, n_per_group: int | Sequence[int] | None = None,
          alpha: float = 0.05, effect: float | None = None, group: str | None = None,
          seed: int | None = None, progress: bool | None = None, executor=None) -> PowerResult:
    """Simulated power to detect the fixed effect ``test`` for each design in the grid
    ``n_groups`` × ``n_per_group`` (scalars or lists; ``None``: the fitted design).

    ``effect`` replaces the coefficient's value in the simulations (simr's
    ``fixef(model)["x"] <- value``; 0 gives the type I error rate).  ``group`` is the
    grouping factor whose clusters are resampled, needed when the model has several.
    The same ``seed`` gives the same table, also when ``executor`` (a ``concurrent.futures``
    executor or a ``dask.distributed.Client``, see ``mixedmodels.runtime.parallel``) spreads the
    simulations over workers.
    """
    if not isinstance(model, (LmerResult, GlmerResult)):
        raise TypeError(f"power needs an lmer or glmer fit, not {type(model).__name__}")
    if test not in model.fixef.index:
        raise DataError(f"{test!r} is not a fixed effect of the model; the fixed effects are "
                        + ", ".join(map(repr, model.fixef.index)) + "." + did_you_mean(test, model.fixef.index))
    if nsim < 1:
        raise ValueError(f"nsim must be at least 1, not {nsim}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    groups_grid, sizes_grid = _grid(n_groups, "n_groups", 2), _grid(n_per_group, "n_per_group", 1)
    resample = n_groups is not None or n_per_group is not None
    cluster = _cluster_term(model, group) if resample else None
    beta = model.fixef.copy()
    if effect is not None:
        beta[test] = effect
    grid = list(itertools.product(groups_grid, sizes_grid))
    designs, jobs = [], []
    for cell, child in enumerate(np.random.SeedSequence(seed).spawn(len(grid))):
        ng, npg = grid[cell]
        seeds = child.spawn(nsim + 1)
        designs.append(model.design if cluster is None else _resample(model.design, cluster, ng, npg,
                                                                      np.random.default_rng(seeds[0])))
        jobs.extend((cell, s) for s in seeds[1:])
    _ = model.sigma, model._factor  # computed here once, before any thread shares the model
    p_values = np.asarray(parallel.run(_replicate, (model, designs, beta.to_numpy(), test), jobs, executor,
                                       progress, desc="power"), dtype=float).reshape(len(grid), nsim)
    rows = []
    for (ng, npg), design, p in zip(grid, designs, p_values):
        failed = int(np.sum(~np.isfinite(p)))
        rejected = int(np.sum(p < alpha))
        clusters = design.reterms[cluster].nlevels if cluster is not None else model.ngroups[model.reterms[0].group]
        rows.append(_row(clusters, npg if npg is not None else design.n / clusters, rejected, nsim, failed))
    return PowerResult(pd.DataFrame(rows), test, float(beta[test]), alpha, seed)


def _replicate(payload: tuple, job: tuple) -> float:
    """One simulation of design cell ``job[0]`` with seed ``job[1]``: the refit's p-value (NaN: failed)."""
    model, designs, beta, test = payload
    cell, seed = job
    design = designs[cell]
    y = _simulate(model, design, beta, np.random.default_rng(seed))
    return _p_value(model, with_response(design, y), test)


def _grid(values: int | Sequence[int] | None, name: str, minimum: int) -> list[int | None]:
    if values is None:
        return [None]
    values = [values] if np.isscalar(values) else list(values)
    if not values or any(int(v) != v or v < minimum for v in values):
        raise ValueError(f"{name} must be whole numbers of at least {minimum}, not {values}")
    return [int(v) for v in values]


def _cluster_term(model: MixedModelResult, group: str | None) -> int:
    """Index (formula order) of a random-effects term of the grouping factor whose clusters are resampled."""
    names = list(dict.fromkeys(t.group for t in model.design.reterms))
    if group is None:
        if len(names) > 1:
            raise DataError("the model has several grouping factors (" + ", ".join(map(repr, names))
                            + "); say which one's clusters to resample with group=")
        group = names[0]
    if group not in names:
        raise DataError(f"{group!r} is not a grouping factor of the model." + did_you_mean(group, names))
    return next(i for i, t in enumerate(model.design.reterms) if t.group == group)


def _resample(design: Design, cluster: int, n_groups: int | None, n_per_group: int | None,
              rng: np.random.Generator) -> Design:
    """The design of the module docstring's resampling scheme."""
    codes = design.reterms[cluster].codes
    nclusters = design.reterms[cluster].nlevels
    chosen = np.arange(nclusters) if n_groups is None else rng.integers(0, nclusters, n_groups)
    members = [np.flatnonzero(codes == c) for c in range(nclusters)]
    pieces = [members[c] if n_per_group is None else members[c][np.arange(n_per_group) % len(members[c])]
              for c in chosen]
    rows = np.concatenate(pieces)
    copy = np.repeat(np.arange(len(pieces)), [len(p) for p in pieces])
    reterms = tuple(_resample_term(t, rows, copy, _nested(t.codes, codes)) for t in design.reterms)
    return dataclasses.replace(
        design, y=design.y[rows], X=design.X[rows], reterms=reterms,
        weights=None if design.weights is None else design.weights[rows],
        offset=None if design.offset is None else design.offset[rows],
        rows=pd.RangeIndex(len(rows)), n_dropped=0,
        frame=None if design.frame is None else design.frame.iloc[rows].reset_index(drop=True),
    )


def _nested(codes: np.ndarray, cluster_codes: np.ndarray) -> bool:
    """Whether every level of a factor occurs in one cluster only."""
    pairs = np.unique(np.column_stack([codes, cluster_codes]), axis=0)
    return len(np.unique(pairs[:, 0])) == len(pairs)


def _resample_term(t: ReTerm, rows: np.ndarray, copy: np.ndarray, nested: bool) -> ReTerm:
    """The term on the resampled rows: nested factors get one level per (copy, level), others keep theirs."""
    if nested:
        keys, codes = np.unique(np.column_stack([copy, t.codes[rows]]), axis=0, return_inverse=True)
        levels = pd.Index([f"{k + 1}:{t.levels[c]}" for k, c in keys])
    else:
        used, codes = np.unique(t.codes[rows], return_inverse=True)
        levels = t.levels[used]
    return dataclasses.replace(t, codes=codes.ravel().astype(np.int64), levels=levels, matrix=t.matrix[rows])


def _simulate(model: MixedModelResult, design: Design, beta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """y = Xβ + Zb + noise on ``design``, b drawn with the fitted model's covariances."""
    eta = design.X @ beta + (0.0 if design.offset is None else design.offset)
    lambdas = dict(zip(model.model.order, model._factor.lambdas))  # formula index → Tᵢ
    b = [model.sigma * rng.standard_normal((t.nlevels, t.p)) @ lambdas[i].T for i, t in enumerate(design.reterms)]
    eta = eta + z_times_b(design.reterms, b, design.n)
    weights = np.ones(design.n) if design.weights is None else design.weights
    if isinstance(model, GlmerResult):
        return model.family.sample(model.inverse_link(eta), weights, model.sigma**2, rng)
    return eta + model.sigma * rng.standard_normal(design.n) / np.sqrt(weights)


def _p_value(model: MixedModelResult, design: Design, test: str) -> float:
    """The refitted model's p-value for ``test``; NaN when the refit fails."""
    try:
        with parallel.quiet_refits(), np.errstate(all="ignore"):
            if isinstance(model, GlmerResult):
                glmm = GeneralizedLinearMixedModel(design, model.family, nAGQ=model.nAGQ, control=model.control)
                stage1, stage2 = glmm.fit()
                fit = GlmerResult(model.parsed, glmm, stage2 if stage2 is not None else stage1)
                return float(fit.coefficients().loc[test, "Pr(>|z|)"])
            lmm = LinearMixedModel(design, REML=model.REML, control=model.control)
            fit = LmerResult(model.parsed, lmm, lmm.fit())
            return float(fit.satterthwaite().loc[test, "Pr(>|t|)"])
    except _FAILURES:
        return np.nan


def _row(n_groups: int, n_per_group: float, rejected: int, nsim: int, failed: int) -> dict:
    done = nsim - failed
    if done:
        ci = stats.binomtest(rejected, done).proportion_ci(0.95, method="exact")
        power, lower, upper = rejected / done, ci.low, ci.high
    else:
        power = lower = upper = np.nan
    return {"n_groups": n_groups, "n_per_group": n_per_group, "power": power, "ci_lower": lower,
            "ci_upper": upper, "nsim": nsim, "failed": failed}
