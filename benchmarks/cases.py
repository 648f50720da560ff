"""The benchmark cases: a registry of data builders and formulas.

Each case names a data builder (deterministic: bundled data or a simulation
with a fixed seed), the formula for mixedmodels, the formula for lme4, the
family, and optionally how statsmodels' MixedLM would fit it (only models with
a single grouping factor; ``None`` means "not available").  Add a case by
decorating a builder with ``@case(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

SEED = 20261122


@dataclass(frozen=True)
class StatsmodelsSpec:
    """How statsmodels.formula.api.mixedlm fits the case (REML, one grouping factor)."""

    formula: str
    groups: str
    re_formula: str | None = None


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], pd.DataFrame]
    formula: str  # mixedmodels
    r_formula: str  # lme4
    family: str = "gaussian"  # "gaussian" -> lmer, "binomial" -> glmer (Laplace)
    REML: bool = True  # lmer's criterion (ML when False)
    start: tuple[float, ...] | None = None  # lmer's start θ (lme4's order), for both tools
    reps: int = 3  # default number of timed fits
    statsmodels: StatsmodelsSpec | None = None
    description: str = ""


CASES: dict[str, Case] = {}


def case(name: str, formula: str, r_formula: str | None = None, **kwargs) -> Callable:
    def register(build: Callable[[], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
        CASES[name] = Case(
            name=name,
            build=build,
            formula=formula,
            r_formula=r_formula or formula,
            description=(build.__doc__ or "").strip().splitlines()[0] if build.__doc__ else "",
            **kwargs,
        )
        return build

    return register


def _load(name: str) -> pd.DataFrame:
    import mixedmodels as mm

    return mm.datasets.load(name)


@case(
    "sleepstudy",
    "Reaction ~ Days + (Days | Subject)",
    statsmodels=StatsmodelsSpec("Reaction ~ Days", groups="Subject", re_formula="~Days"),
)
def sleepstudy() -> pd.DataFrame:
    """lme4's sleepstudy (180 rows, 18 subjects), correlated random intercept and slope."""
    return _load("sleepstudy")


@case("insteval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept)")
def insteval() -> pd.DataFrame:
    """lme4's InstEval (73,421 rows), three crossed/partially nested random intercepts."""
    return _load("InstEval")


@case(
    "verbagg",
    "r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
    family="binomial",
)
def verbagg() -> pd.DataFrame:
    """lme4's VerbAgg (7,584 rows), binomial GLMM with crossed random intercepts (id, item)."""
    return _load("VerbAgg")


def _group_factor(groups: int, size: int) -> pd.Categorical:
    width = len(str(groups))
    labels = [f"g{i:0{width}d}" for i in range(1, groups + 1)]
    return pd.Categorical.from_codes(np.repeat(np.arange(groups), size), categories=labels)


@case(
    "sim_lmm_1m",
    "y ~ x + (1 + x | g)",
    reps=1,
    statsmodels=StatsmodelsSpec("y ~ x", groups="g", re_formula="~x"),
)
def sim_lmm_1m() -> pd.DataFrame:
    """Simulated LMM: 1,000,000 rows, 20,000 groups of 50, y = 1 + 0.5 x + b0[g] + b1[g] x + 1.5 e.

    x, e ~ N(0, 1); (b0, b1) ~ N(0, [[1, .3], [.3, .5]]); draws from
    numpy.random.default_rng(20261122) in the order x, b, e.
    """
    groups, size = 20_000, 50
    n = groups * size
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(n)
    b = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.3], [0.3, 0.5]], size=groups)
    e = rng.standard_normal(n)
    g = _group_factor(groups, size)
    codes = g.codes
    y = 1.0 + 0.5 * x + b[codes, 0] + b[codes, 1] * x + 1.5 * e
    return pd.DataFrame({"y": y, "x": x, "g": g})


@case("sim_glmm_200k", "y ~ x + (1 | g)", family="binomial")
def sim_glmm_200k() -> pd.DataFrame:
    """Simulated binary GLMM: 200,000 rows, 5,000 groups of 40, logit P(y=1) = -0.5 + x + u[g].

    x ~ N(0, 1), u ~ N(0, 1); draws from numpy.random.default_rng(20261122)
    in the order x, u, then y ~ Bernoulli via uniforms.
    """
    groups, size = 5_000, 40
    n = groups * size
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(n)
    u = rng.standard_normal(groups)
    g = _group_factor(groups, size)
    eta = -0.5 + x + u[g.codes]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "g": g})


MAXIMAL_FIXED = "y ~ 1 + S * T * U"
MAXIMAL_RANDOM = "(1 + S * T * U | subj) + (1 + S * T * U | item)"
MAXIMAL_RANDOM_4 = "(1 + S + T + U | subj) + (1 + S + T + U | item)"


def _maximal_design() -> pd.DataFrame:
    """56 subjects × 32 items, each subject sees each item once, in one of the 8 conditions of three
    ±0.5-coded two-level factors S, T, U (a Latin square: condition (subject + item) mod 8); two rows
    dropped at random, as a psycholinguistics experiment loses a few trials (1,790 rows).

    y = 2 + effects + subject and item effects on all 8 columns (standard deviations 0.5 for the
    intercept, 0.2 for the main effects, 0.1 for the interactions, correlation 0.3 between the
    intercept and the main effects) + N(0, 1) noise; draws from numpy.random.default_rng(20261122)
    in the order subject effects, item effects, noise, dropped rows.
    """
    subjects, items = 56, 32
    rng = np.random.default_rng(SEED)
    subj = np.repeat(np.arange(subjects), items)
    item = np.tile(np.arange(items), subjects)
    cond = (subj + item) % 8
    S, T, U = (((cond >> k) & 1) - 0.5 for k in range(3))
    X = np.column_stack([np.ones_like(S), S, T, U, S * T, S * U, T * U, S * T * U])
    sd = np.array([0.5, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])
    corr = np.eye(8)
    corr[0, 1:4] = corr[1:4, 0] = 0.3
    cov = corr * np.outer(sd, sd)
    b_subj = rng.multivariate_normal(np.zeros(8), cov, size=subjects)
    b_item = rng.multivariate_normal(np.zeros(8), cov, size=items)
    beta = np.array([2.0, 0.3, -0.2, 0.1, 0.05, 0.0, 0.0, 0.0])
    y = X @ beta + (X * b_subj[subj]).sum(1) + (X * b_item[item]).sum(1) + rng.standard_normal(len(S))
    keep = np.sort(rng.permutation(len(S))[2:])
    frame = pd.DataFrame({
        "y": y, "S": S, "T": T, "U": U,
        "subj": pd.Categorical.from_codes(subj, [f"s{i:02d}" for i in range(1, subjects + 1)]),
        "item": pd.Categorical.from_codes(item, [f"i{i:02d}" for i in range(1, items + 1)]),
    })
    return frame.iloc[keep].reset_index(drop=True)


@case("maximal_8x8", f"{MAXIMAL_FIXED} + {MAXIMAL_RANDOM}", REML=False, reps=1)
def maximal_8x8() -> pd.DataFrame:
    """Simulated maximal model, ML: 56 subjects × 32 items, 1,790 rows, 8 × 8 correlated effects per factor."""
    return _maximal_design()


@case("maximal_4x4", f"{MAXIMAL_FIXED} + {MAXIMAL_RANDOM_4}", REML=False)
def maximal_4x4() -> pd.DataFrame:
    """The maximal design with 4 × 4 correlated effects per factor (intercept and main effects), ML."""
    return _maximal_design()


ELEVEN_TERMS = "Reaction ~ Days + (1 + d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7 + d8 + d9 || Subject)"
#: lme4 1.1-31's θ for it (REML 1763.240118, with a warning: degenerate Hessian), the misscaled starts' base
ELEVEN_TERMS_LME4_THETA = (2.554728, 2.105634, 1.429543, 1.198310, 0.029833, 0.498086, 1.931001, 3.040473,
                           2.229134, 2.803399, 3.348508)


def _sleepstudy_days() -> pd.DataFrame:
    """sleepstudy with day indicators d0 … d9 (dk = 1 on day k)."""
    data = _load("sleepstudy")
    for k in range(10):
        data[f"d{k}"] = (data["Days"] == k).astype(float)
    return data


@case("sleepstudy_11", ELEVEN_TERMS)
def sleepstudy_11() -> pd.DataFrame:
    """sleepstudy (180 rows) with 11 uncorrelated terms: an intercept and one per day."""
    return _sleepstudy_days()


@case("sleepstudy_11_1e6", ELEVEN_TERMS, start=tuple(t * 1e6 for t in ELEVEN_TERMS_LME4_THETA))
def sleepstudy_11_1e6() -> pd.DataFrame:
    """The 11-term sleepstudy model started from lme4's optimum θ × 1e6 (misscaled start)."""
    return _sleepstudy_days()


@case("sleepstudy_11_1e8", ELEVEN_TERMS, start=tuple(t * 1e8 for t in ELEVEN_TERMS_LME4_THETA))
def sleepstudy_11_1e8() -> pd.DataFrame:
    """The 11-term sleepstudy model started from lme4's optimum θ × 1e8 (misscaled start)."""
    return _sleepstudy_days()


QUICK = ["sleepstudy", "insteval"]
