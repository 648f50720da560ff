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
tested coefficient may be replaced by ``effect``) on the new design, or, without a pilot
fit, from *assumed* values on a design of covariates (:func:`make_lmer`,
:func:`make_glmer`: simr's ``makeLmer``/``makeGlmer``); the model is
refitted and the coefficient tested: Satterthwaite t test for LMMs, Wald z test for
GLMMs.  Power is the share of successful refits that reject at ``alpha``, with a
Clopper–Pearson 95% interval; refits that fail are counted in ``failed``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from ..report import display
from ..runtime import parallel
from ..design.build import Design, build_design, check_groups
from ..engine.control import Control
from ..engine.families import Family, get_family
from ..errors import DataError, FamilyError, FormulaError, MixedModelsError, did_you_mean
from ..formula.parse import ParsedFormula, parse_formula
from ..engine.glmm import GeneralizedLinearMixedModel, final_report
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


@dataclass(frozen=True)
class AssumedModel:
    """The truth power simulations draw from: a design and the parameter values on it.

    ``covariances`` holds each random-effects term's covariance matrix in ``design.reterms``' order;
    ``family`` is None for a linear mixed model.  Built from a fit by :meth:`from_fit`, or
    from assumed values by :func:`make_lmer` and :func:`make_glmer`.
    """

    parsed: ParsedFormula
    design: Design
    fixef: pd.Series
    covariances: tuple[np.ndarray, ...]
    sigma: float
    family: Family | None
    REML: bool
    nAGQ: int
    control: Control

    @classmethod
    def from_fit(cls, model: LmerResult | GlmerResult) -> AssumedModel:
        """The fitted values as the truth."""
        position = {id(t): i for i, t in enumerate(model.design.reterms)}  # model.reterms: lme4's order
        by_design = sorted(zip(model.reterms, model.covariances), key=lambda pair: position[id(pair[0])])
        family, nagq, reml = ((model.family, model.nAGQ, True) if isinstance(model, GlmerResult)
                              else (None, 1, model.REML))
        return cls(model.parsed, model.design, model.fixef.copy(), tuple(S for _, S in by_design),
                   float(model.sigma), family, reml, nagq, model.control)

    def __str__(self) -> str:
        kind = "linear" if self.family is None else f"{self.family.name} ({self.family.link.name} link)"
        lines = [f"Assumed {kind} mixed model: {self.parsed.text}",
                 f"design: {self.design.n} rows"
                 + "".join(f", {t.nlevels} levels of {t.group}" for t in self.design.reterms),
                 "fixed effects: " + ", ".join(f"{k} = {v:.4g}" for k, v in self.fixef.items())]
        for t, S in zip(self.design.reterms, self.covariances):
            lines.append(f"covariance of ({' + '.join(t.columns)} | {t.group}): "
                         + np.array2string(S, precision=4, separator=", ").replace("\n", ""))
        if self.family is None:
            lines.append(f"residual SD: {self.sigma:.4g}")
        return "\n".join(lines) + "\n"

    __repr__ = __str__


def make_lmer(formula: str, data: pd.DataFrame, fixef: Mapping[str, float],
              varcorr: Mapping[str, float | ArrayLike] | Sequence[float | ArrayLike], sigma: float,
              REML: bool = True) -> AssumedModel:
    """A linear mixed model with assumed parameters on the covariates in ``data``, for
    :func:`power` without a pilot fit (simr's ``makeLmer``).

    ``fixef``: a value for every fixed-effect column (names as a fit would report them);
    ``varcorr``: each random-effects term's variance (a number) or covariance matrix (in the
    term's column order), by grouping factor, or a list in the formula's order of terms;
    ``sigma``: the residual SD.  ``data`` needs the covariates and grouping columns; the
    response column may be absent (it is simulated).  ``mm.power(..., n_groups=, n_per_group=)``
    then resamples its clusters to the design sizes.
    """
    if not np.isfinite(sigma) or sigma <= 0:
        raise DataError(f"sigma (the residual SD) must be a positive number, not {sigma}")
    return _assumed(formula, data, fixef, varcorr, float(sigma), None, REML)


def make_glmer(formula: str, data: pd.DataFrame, family: str | Family, fixef: Mapping[str, float],
               varcorr: Mapping[str, float | ArrayLike] | Sequence[float | ArrayLike]) -> AssumedModel:
    """A generalized linear mixed model with assumed parameters (simr's ``makeGlmer``): as
    :func:`make_lmer`, with fixed effects on the link scale and no residual SD (binomial and
    Poisson families)."""
    fam = get_family(family)
    if fam.name not in ("binomial", "poisson"):
        raise FamilyError(f"make_glmer simulates binomial and Poisson models, not {fam.name}; fit a pilot "
                          "model and pass it to mm.power instead")
    return _assumed(formula, data, fixef, varcorr, 1.0, fam, True)


def _assumed(formula: str, data: pd.DataFrame, fixef: Mapping[str, float],
             varcorr: Mapping[str, float | ArrayLike] | Sequence[float | ArrayLike], sigma: float,
             family: Family | None, REML: bool) -> AssumedModel:
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError("an assumed mixed model needs at least one random-effects term such as (1 | group)",
                           formula)
    frame = data.copy()
    for name in _response_columns(parsed.response):
        if name not in frame.columns:
            frame[name] = 0.0  # a placeholder: every simulation draws its own response
    design = build_design(parsed, frame, binomial=family is not None and family.name == "binomial")
    check_groups(design.reterms, design.n, lmm=family is None)
    names = list(design.xnames)
    unknown = [k for k in fixef if k not in names]
    missing = [k for k in names if k not in fixef]
    if unknown or missing:
        raise DataError("fixef must give a value for every fixed-effect column of the formula: "
                        + ", ".join(map(repr, names))
                        + (f"; missing {', '.join(map(repr, missing))}" if missing else "")
                        + (f"; unknown {', '.join(map(repr, unknown))}" if unknown else "")
                        + (did_you_mean(unknown[0], names) if unknown else ""))
    beta = pd.Series([float(fixef[k]) for k in names], index=names, name="Estimate")
    return AssumedModel(parsed, design, beta, _covariances(design, varcorr), sigma, family, REML, 1, Control())


def _response_columns(response: str) -> list[str]:
    """Plain column names in the response (``y``, or the columns of ``cbind(s, f)``)."""
    inner = response[len("cbind("):-1] if response.startswith("cbind(") and response.endswith(")") else response
    return [p.strip() for p in inner.split(",") if p.strip().isidentifier()]


def _covariances(design: Design, varcorr: Mapping[str, float | ArrayLike] | Sequence[float | ArrayLike]
                 ) -> tuple[np.ndarray, ...]:
    """Each term's covariance matrix (in ``design.reterms``' order) from ``varcorr`` by group, or by
    position in the formula's order of terms."""
    order = design.spec.formula_order()
    terms = [design.reterms[k] for k in order]
    if isinstance(varcorr, Mapping):
        groups = [t.group for t in terms]
        repeated = sorted({g for g in groups if groups.count(g) > 1})
        if repeated:
            raise DataError(f"{repeated[0]!r} has several random-effects terms; give varcorr as a list, one "
                            "entry per term in the formula's order")
        unknown = [g for g in varcorr if g not in groups]
        if unknown or len(varcorr) != len(groups):
            raise DataError("varcorr must give the variance (or covariance matrix) of each grouping factor: "
                            + ", ".join(map(repr, groups)) + (did_you_mean(unknown[0], groups) if unknown else ""))
        values = [varcorr[g] for g in groups]
    else:
        values = list(varcorr)
        if len(values) != len(terms):
            raise DataError(f"varcorr has {len(values)} entries for {len(terms)} random-effects terms")
    out = []
    for t, v in zip(terms, values):
        S = np.atleast_2d(np.asarray(v, dtype=float))
        label = f"({' + '.join(t.columns)} | {t.group})"
        if S.shape != (t.p, t.p):
            raise DataError(f"the covariance of {label} must be {t.p} x {t.p} (columns {', '.join(t.columns)}), "
                            f"not {S.shape[0]} x {S.shape[1]}")
        if not np.allclose(S, S.T) or np.linalg.eigvalsh(S).min() < -1e-10 * max(1.0, np.abs(S).max()):
            raise DataError(f"the covariance of {label} must be symmetric with no negative variance direction")
        out.append(S)
    return tuple(out[order.index(k)] for k in range(len(terms)))


def power(model: MixedModelResult | AssumedModel, test: str, nsim: int = 100,
          n_groups: int | Sequence[int] | None = None, n_per_group: int | Sequence[int] | None = None,
          alpha: float = 0.05, effect: float | None = None, group: str | None = None,
          seed: int | None = None, progress: bool | None = None, executor=None) -> PowerResult:
    """Simulated power to detect the fixed effect ``test`` for each design in the grid
    ``n_groups`` × ``n_per_group`` (scalars or lists; ``None``: the model's design).

    ``model`` is a fit (its estimates are the truth) or an :class:`AssumedModel` from
    :func:`make_lmer` / :func:`make_glmer` (assumed values, no pilot data needed).

    ``effect`` replaces the coefficient's value in the simulations (simr's
    ``fixef(model)["x"] <- value``; 0 gives the type I error rate).  ``group`` is the
    grouping factor whose clusters are resampled, needed when the model has several.
    The same ``seed`` gives the same table, also when ``executor`` (a ``concurrent.futures``
    executor or a ``dask.distributed.Client``, see ``mixedmodels.runtime.parallel``) spreads the
    simulations over workers.
    """
    if isinstance(model, (LmerResult, GlmerResult)):
        truth = AssumedModel.from_fit(model)
    elif isinstance(model, AssumedModel):
        truth = model
    else:
        raise TypeError(f"power needs an lmer or glmer fit or an AssumedModel, not {type(model).__name__}")
    if test not in truth.fixef.index:
        raise DataError(f"{test!r} is not a fixed effect of the model; the fixed effects are "
                        + ", ".join(map(repr, truth.fixef.index)) + "." + did_you_mean(test, truth.fixef.index))
    if nsim < 1:
        raise ValueError(f"nsim must be at least 1, not {nsim}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    groups_grid, sizes_grid = _grid(n_groups, "n_groups", 2), _grid(n_per_group, "n_per_group", 1)
    resample = n_groups is not None or n_per_group is not None
    cluster = _cluster_term(truth.design, group) if resample else None
    beta = truth.fixef.copy()
    if effect is not None:
        beta[test] = effect
    grid = list(itertools.product(groups_grid, sizes_grid))
    designs: list[Design] = []
    jobs: list[tuple[int, np.random.SeedSequence]] = []
    for cell, child in enumerate(np.random.SeedSequence(seed).spawn(len(grid))):
        ng, npg = grid[cell]
        seeds = child.spawn(nsim + 1)
        designs.append(truth.design if cluster is None else _resample(truth.design, cluster, ng, npg,
                                                                      np.random.default_rng(seeds[0])))
        jobs.extend((cell, s) for s in seeds[1:])
    p_values = np.asarray(parallel.run(_replicate, (truth, designs, beta.to_numpy(), test), jobs, executor,
                                       progress, desc="power"), dtype=float).reshape(len(grid), nsim)
    rows = []
    for (ng, npg), design, p in zip(grid, designs, p_values):
        failed = int(np.sum(~np.isfinite(p)))
        rejected = int(np.sum(p < alpha))
        clusters = design.reterms[0 if cluster is None else cluster].nlevels
        rows.append(_row(clusters, npg if npg is not None else design.n / clusters, rejected, nsim, failed))
    return PowerResult(pd.DataFrame(rows), test, float(beta[test]), alpha, seed)


def _replicate(payload: tuple, job: tuple) -> float:
    """One simulation of design cell ``job[0]`` with seed ``job[1]``: the refit's p-value (NaN: failed)."""
    truth, designs, beta, test = payload
    cell, seed = job
    design = designs[cell]
    y = _simulate(truth, design, beta, np.random.default_rng(seed))
    return _p_value(truth, with_response(design, y), test)


def _grid(values: int | Sequence[int] | None, name: str, minimum: int) -> list[int | None]:
    """The grid of one design size: ``None`` (the model's design) or whole numbers ≥ ``minimum``."""
    if values is None:
        return [None]
    sizes = list(np.ravel(values))  # a number, a list or an array
    if not sizes or any(int(v) != v or v < minimum for v in sizes):
        raise ValueError(f"{name} must be whole numbers of at least {minimum}, not {sizes}")
    return [int(v) for v in sizes]


def _cluster_term(design: Design, group: str | None) -> int:
    """Index (formula order) of a random-effects term of the grouping factor whose clusters are resampled."""
    names = list(dict.fromkeys(t.group for t in design.reterms))
    if group is None:
        if len(names) > 1:
            raise DataError("the model has several grouping factors (" + ", ".join(map(repr, names))
                            + "); say which one's clusters to resample with group=")
        group = names[0]
    if group not in names:
        raise DataError(f"{group!r} is not a grouping factor of the model." + did_you_mean(group, names))
    return next(i for i, t in enumerate(design.reterms) if t.group == group)


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


def _simulate(truth: AssumedModel, design: Design, beta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """y = Xβ + Zb + noise on ``design``, each term's b drawn with its covariance Σᵢ = Rᵢ Rᵢᵀ."""
    eta = design.X @ beta + (0.0 if design.offset is None else design.offset)
    b = [rng.standard_normal((t.nlevels, t.p)) @ _root(S).T for t, S in zip(design.reterms, truth.covariances)]
    eta = eta + z_times_b(design.reterms, b, design.n)
    weights = np.ones(design.n) if design.weights is None else design.weights
    if truth.family is not None:
        return truth.family.sample(truth.family.link.inverse(eta), weights, truth.sigma**2, rng)
    return eta + truth.sigma * rng.standard_normal(design.n) / np.sqrt(weights)


def _root(S: np.ndarray) -> np.ndarray:
    """A square root R of a covariance matrix, R Rᵀ = S: its Cholesky factor, or from its
    eigen-decomposition when S is singular (a variance or correlation at its boundary)."""
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(S)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def _p_value(truth: AssumedModel, design: Design, test: str) -> float:
    """The refitted model's p-value for ``test``; NaN when the refit fails."""
    try:
        with parallel.quiet_refits(), np.errstate(all="ignore"):
            if truth.family is not None:
                glmm = GeneralizedLinearMixedModel(design, truth.family, nAGQ=truth.nAGQ, control=truth.control)
                stage1, stage2 = glmm.fit()
                glmer_fit = GlmerResult(truth.parsed, glmm, final_report(stage1, stage2))
                return float(glmer_fit.coefficients().loc[test, "Pr(>|z|)"])
            lmm = LinearMixedModel(design, REML=truth.REML, control=truth.control)
            return float(LmerResult(truth.parsed, lmm, lmm.fit()).satterthwaite().loc[test, "Pr(>|t|)"])
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
