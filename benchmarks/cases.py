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
    family: str = "gaussian"  # "gaussian" -> lmer (REML), "binomial" -> glmer (Laplace)
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


QUICK = ["sleepstudy", "insteval"]
