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
    family: str = "gaussian"  # "gaussian" -> lmer, else glmer (Laplace) with that family
    link: str | None = None  # the family's link when not its default
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


@case("glmm_many_fixed", "y ~ f + x1 + x2 + (1 | g)", family="binomial")
def glmm_many_fixed() -> pd.DataFrame:
    """Simulated binary GLMM with 16 fixed effects: 20,000 rows, 500 groups of 40, a 14-level factor f.

    logit P(y=1) = -0.5 + a[f] + 0.8 x1 - 0.4 x2 + u[g], a = 0.3 (0, 1, ..., 13) / 13 centred,
    x1, x2 ~ N(0, 1), f uniform over its levels, u ~ N(0, 0.8²); draws from
    numpy.random.default_rng(20261122) in the order x1, x2, f, u, then y via uniforms.
    """
    groups, size, levels = 500, 40, 14
    n = groups * size
    rng = np.random.default_rng(SEED)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    f = rng.integers(0, levels, n)
    u = 0.8 * rng.standard_normal(groups)
    g = _group_factor(groups, size)
    a = 0.3 * (np.arange(levels) / (levels - 1) - 0.5)
    eta = -0.5 + a[f] + 0.8 * x1 - 0.4 * x2 + u[g.codes]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    factor = pd.Categorical.from_codes(f, categories=[f"f{i:02d}" for i in range(levels)])
    return pd.DataFrame({"y": y, "f": factor, "x1": x1, "x2": x2, "g": g})


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
@case("nested_5k", "y ~ x + (1 | school/class)", reps=1)
def nested_5k() -> pd.DataFrame:
    """Simulated nested LMM: 5,000 schools × 10 classes × 10 pupils (500,000 rows), (1 | school/class).

    y = 1 + 0.5 x + u[school] + v[class] + e with u ~ N(0, 1), v ~ N(0, 0.5²), x, e ~ N(0, 1);
    draws from numpy.random.default_rng(20261122) in the order x, u, v, e.
    """
    schools, classes, pupils = 5_000, 10, 10
    n = schools * classes * pupils
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(n)
    u = rng.standard_normal(schools)
    v = 0.5 * rng.standard_normal(schools * classes)
    e = rng.standard_normal(n)
    school = np.repeat(np.arange(schools), classes * pupils)
    klass = np.repeat(np.arange(schools * classes), pupils)
    y = 1.0 + 0.5 * x + u[school] + v[klass] + e
    return pd.DataFrame({"y": y, "x": x, "school": _group_factor(schools, classes * pupils),
                         "class": pd.Categorical.from_codes(klass % classes, categories=[f"c{i}" for i in range(classes)])})


def _crossed(users: int, items: int, slope: bool) -> pd.DataFrame:
    """200,000 rows with users and items drawn uniformly: y = 1 + 0.5 x + a[u] (+ s[u] x) + c[i] + e.

    a ~ N(0, 1), s ~ N(0, 0.3²), c ~ N(0, 0.7²), x, e ~ N(0, 1); draws from
    numpy.random.default_rng(20261122) in the order u, i, x, a, s, c, e.
    """
    n = 200_000
    rng = np.random.default_rng(SEED)
    u = rng.integers(0, users, n)
    i = rng.integers(0, items, n)
    x = rng.standard_normal(n)
    a = rng.standard_normal(users)
    s = 0.3 * rng.standard_normal(users)
    c = 0.7 * rng.standard_normal(items)
    y = 1.0 + 0.5 * x + a[u] + (s[u] * x if slope else 0.0) + c[i] + rng.standard_normal(n)
    label = lambda codes, k, prefix: pd.Categorical.from_codes(  # noqa: E731
        codes, categories=[f"{prefix}{j:0{len(str(k))}d}" for j in range(k)])
    return pd.DataFrame({"y": y, "x": x, "u": label(u, users, "u"), "i": label(i, items, "i")})


@case("crossed_5k_2k", "y ~ x + (1 | u) + (1 | i)", reps=1)
def crossed_5k_2k() -> pd.DataFrame:
    """Simulated crossed LMM: 200,000 rows, 5,000 users × 2,000 items drawn uniformly."""
    return _crossed(5_000, 2_000, slope=False)


@case("crossed_20k_5k", "y ~ x + (1 | u) + (1 | i)", reps=1)
def crossed_20k_5k() -> pd.DataFrame:
    """Simulated crossed LMM: 200,000 rows, 20,000 users × 5,000 items drawn uniformly."""
    return _crossed(20_000, 5_000, slope=False)


@case("crossed_50k_20k", "y ~ x + (1 | u) + (1 | i)", reps=1)
def crossed_50k_20k() -> pd.DataFrame:
    """Simulated crossed LMM: 200,000 rows, 50,000 users × 20,000 items drawn uniformly."""
    return _crossed(50_000, 20_000, slope=False)


@case("crossed_slope_20k_5k", "y ~ x + (1 + x | u) + (1 | i)", reps=1)
def crossed_slope_20k_5k() -> pd.DataFrame:
    """Simulated crossed LMM with a random slope per user: 200,000 rows, 20,000 users × 5,000 items."""
    return _crossed(20_000, 5_000, slope=True)


@case("gamma_slopes", "y ~ 1 + (1 + x1 | g1) + (1 + x2 | g2)", family="Gamma", link="log", reps=3)
def gamma_slopes() -> pd.DataFrame:
    """Simulated Gamma(log) GLMM as lme4's isSingular test: 400 rows, g1 = g2 = 20 groups of 20.

    x1, x2 ~ N(0, 1); η = 2 + b[g2] + s[g2] x2 with (b, s) = T₂ z, T₂ = [[1, 0], [0.5, 0.3]]
    (lme4's θ = (0, 0, 0, 1, 0.5, 0.3): g1's effects zero); y ~ Gamma with shape 1/2² and mean
    exp(η).  Draws from numpy.random.default_rng(20261122) in the order x1, x2, z, y.
    """
    groups, size = 20, 20
    n = groups * size
    rng = np.random.default_rng(SEED)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    effects = rng.standard_normal((groups, 2)) @ np.array([[1.0, 0.0], [0.5, 0.3]]).T
    g = _group_factor(groups, size)
    eta = 2.0 + effects[g.codes, 0] + effects[g.codes, 1] * x2
    shape = 1.0 / 2.0**2
    y = rng.gamma(shape, np.exp(eta) / shape)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g1": g, "g2": g.copy()})


# --------------------------------------------------------------------------- shapes beyond the benchmark
# Everyday model shapes (issue 14): many variance parameters, wide blocks, three crossed factors,
# partial nesting, factor-valued slopes, many fixed effects, GLMMs with slopes, growth curves.


def _labels(codes: np.ndarray, k: int, prefix: str) -> pd.Categorical:
    """Codes 0..k-1 as a factor with zero-padded labels prefix0.. in code order."""
    return pd.Categorical.from_codes(codes, categories=[f"{prefix}{j:0{len(str(k))}d}" for j in range(k)])


def _correlated_effects(rng: np.random.Generator, groups: int, sd: np.ndarray, rho: float) -> np.ndarray:
    """groups × len(sd) effects ~ N(0, Σ), Σ with standard deviations sd and all correlations rho."""
    corr = np.full((len(sd), len(sd)), rho)
    np.fill_diagonal(corr, 1.0)
    return rng.multivariate_normal(np.zeros(len(sd)), corr * np.outer(sd, sd), size=groups)


WIDE_X = " + ".join(f"x{k}" for k in range(1, 6))


@case("wide_6x6", f"y ~ {WIDE_X} + (1 + {WIDE_X} | g)")
def wide_6x6() -> pd.DataFrame:
    """Simulated wide block: 500 groups × 20 rows (10,000), (1 + x1 + … + x5 | g), 6 × 6 correlated (21 θ).

    x1..x5, e ~ N(0, 1); effects with SDs (1, .5, .4, .3, .2, .1) and correlations 0.2;
    y = 1 + 0.5 Σ xₖ + b₀[g] + Σ bₖ[g] xₖ + e; draws from default_rng(20261122) in the order x, b, e.
    """
    groups, size = 500, 20
    n = groups * size
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((n, 5))
    b = _correlated_effects(rng, groups, np.array([1.0, 0.5, 0.4, 0.3, 0.2, 0.1]), 0.2)
    e = rng.standard_normal(n)
    g = _group_factor(groups, size)
    design = np.column_stack([np.ones(n), x])
    y = 1.0 + 0.5 * x.sum(1) + (design * b[g.codes]).sum(1) + e
    frame = pd.DataFrame({f"x{k}": x[:, k - 1] for k in range(1, 6)})
    frame.insert(0, "y", y)
    frame["g"] = g
    return frame


@case("crossed3_100k", "y ~ x + (1 | a) + (1 | b) + (1 | c)", reps=1)
def crossed3_100k() -> pd.DataFrame:
    """Simulated three crossed intercepts: 100,000 rows, a × b × c = 2,000 × 300 × 50 levels drawn uniformly.

    y = 1 + 0.5 x + u[a] + v[b] + w[c] + e with SDs 1, 0.7, 0.5; x, e ~ N(0, 1);
    draws from default_rng(20261122) in the order a, b, c, x, u, v, w, e.
    """
    n, ka, kb, kc = 100_000, 2_000, 300, 50
    rng = np.random.default_rng(SEED)
    a, b, c = rng.integers(0, ka, n), rng.integers(0, kb, n), rng.integers(0, kc, n)
    x = rng.standard_normal(n)
    u, v, w = rng.standard_normal(ka), 0.7 * rng.standard_normal(kb), 0.5 * rng.standard_normal(kc)
    y = 1.0 + 0.5 * x + u[a] + v[b] + w[c] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "a": _labels(a, ka, "a"), "b": _labels(b, kb, "b"),
                         "c": _labels(c, kc, "c")})


@case("school_class_rater", "y ~ x + (1 | school) + (1 | school:class) + (1 | rater)", reps=1)
def school_class_rater() -> pd.DataFrame:
    """Simulated partially nested/crossed design: 500 schools × 4 classes × 25 pupils (50,000 rows),
    each pupil scored by one of 200 raters drawn uniformly; (1 | school) + (1 | school:class) + (1 | rater).

    y = 1 + 0.5 x + u[school] + v[class] + r[rater] + e with SDs 1, 0.5, 0.3; x, e ~ N(0, 1);
    draws from default_rng(20261122) in the order rater, x, u, v, r, e.
    """
    schools, classes, pupils, raters = 500, 4, 25, 200
    n = schools * classes * pupils
    rng = np.random.default_rng(SEED)
    rater = rng.integers(0, raters, n)
    x = rng.standard_normal(n)
    u = rng.standard_normal(schools)
    v = 0.5 * rng.standard_normal(schools * classes)
    r = 0.3 * rng.standard_normal(raters)
    school = np.repeat(np.arange(schools), classes * pupils)
    klass = np.repeat(np.arange(schools * classes), pupils)
    y = 1.0 + 0.5 * x + u[school] + v[klass] + r[rater] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "school": _labels(school, schools, "s"),
                         "class": _labels(klass % classes, classes, "c"), "rater": _labels(rater, raters, "r")})


def _subject_conditions() -> pd.DataFrame:
    """300 subjects × 6 conditions × 10 trials (18,000 rows); condition effects per subject correlated.

    y = condition mean (0, .2, .4, .6, .8, 1) + b[subj, cond] + e, b ~ N(0, Σ) with SDs 1, .8, .8, .6, .6, .5
    and correlations 0.5; e ~ N(0, 1); draws from default_rng(20261122) in the order b, e.
    """
    subjects, conditions, trials = 300, 6, 10
    rng = np.random.default_rng(SEED)
    b = _correlated_effects(rng, subjects, np.array([1.0, 0.8, 0.8, 0.6, 0.6, 0.5]), 0.5)
    subj = np.repeat(np.arange(subjects), conditions * trials)
    cond = np.tile(np.repeat(np.arange(conditions), trials), subjects)
    y = 0.2 * cond + b[subj, cond] + rng.standard_normal(len(subj))
    return pd.DataFrame({"y": y, "subj": _labels(subj, subjects, "s"),
                         "cond": _labels(cond, conditions, "c")})


@case("dummy_slopes_6", "y ~ cond + (0 + cond | subj)")
def dummy_slopes_6() -> pd.DataFrame:
    """Factor-valued random slopes: 300 subjects × 6 conditions × 10 trials, (0 + cond | subj), 6 × 6 (21 θ)."""
    return _subject_conditions()


@case("subj_cond", "y ~ cond + (1 | subj) + (1 | subj:cond)")
def subj_cond() -> pd.DataFrame:
    """The same data as dummy_slopes_6 with lme4's cheaper alternative (1 | subj) + (1 | subj:cond)."""
    return _subject_conditions()


@case("reml_p100", "y ~ x + f + (1 | g)")
def reml_p100() -> pd.DataFrame:
    """REML with many fixed effects: 50,000 rows, a 100-level factor f as fixed effect (p = 101), 1,000 groups g.

    f and g drawn uniformly; y = 0.5 x + f effect ~ N(0, 1) + u[g] ~ N(0, 1) + e; x, e ~ N(0, 1);
    draws from default_rng(20261122) in the order f, g, x, f effect, u, e.
    """
    n, kf, kg = 50_000, 100, 1_000
    rng = np.random.default_rng(SEED)
    f, g = rng.integers(0, kf, n), rng.integers(0, kg, n)
    x = rng.standard_normal(n)
    fe, u = rng.standard_normal(kf), rng.standard_normal(kg)
    y = 0.5 * x + fe[f] + u[g] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "f": _labels(f, kf, "f"), "g": _labels(g, kg, "g")})


@case("binomial_slope", "y ~ x + (1 + x | g)", family="binomial")
def binomial_slope() -> pd.DataFrame:
    """Binomial GLMM with a random slope: 1,000 groups × 50 rows (50,000), (1 + x | g).

    logit P(y=1) = -0.5 + x + b₀[g] + b₁[g] x, (b₀, b₁) SDs (1, 0.5), correlation 0.3; x ~ N(0, 1);
    draws from default_rng(20261122) in the order x, b, then y via uniforms.
    """
    groups, size = 1_000, 50
    n = groups * size
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(n)
    b = _correlated_effects(rng, groups, np.array([1.0, 0.5]), 0.3)
    g = _group_factor(groups, size)
    eta = -0.5 + x + b[g.codes, 0] + b[g.codes, 1] * x
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "g": g})


@case("poisson_crossed_slope", "y ~ x + (1 + x | g) + (1 | h)", family="poisson")
def poisson_crossed_slope() -> pd.DataFrame:
    """Poisson GLMM, random slope plus a crossed intercept: 50,000 rows, g × h = 1,000 × 200 drawn uniformly.

    log μ = 0.5 + 0.3 x + b₀[g] + b₁[g] x + c[h], (b₀, b₁) SDs (0.5, 0.3), correlation 0.3, c SD 0.4;
    x ~ N(0, 1); draws from default_rng(20261122) in the order g, h, x, b, c, y.
    """
    n, kg, kh = 50_000, 1_000, 200
    rng = np.random.default_rng(SEED)
    g, h = rng.integers(0, kg, n), rng.integers(0, kh, n)
    x = rng.standard_normal(n)
    b = _correlated_effects(rng, kg, np.array([0.5, 0.3]), 0.3)
    c = 0.4 * rng.standard_normal(kh)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + b[g, 0] + b[g, 1] * x + c[h]))
    return pd.DataFrame({"y": y, "x": x, "g": _labels(g, kg, "g"), "h": _labels(h, kh, "h")})


@case("binomial_3x3", "y ~ x1 + x2 + (1 + x1 + x2 | g)", family="binomial")
def binomial_3x3() -> pd.DataFrame:
    """Binomial GLMM with a 3 × 3 block: 500 groups × 40 rows (20,000), (1 + x1 + x2 | g).

    logit P(y=1) = x1 - 0.5 x2 + b₀ + b₁ x1 + b₂ x2, SDs (1, 0.5, 0.5), correlations 0.3; x1, x2 ~ N(0, 1);
    draws from default_rng(20261122) in the order x, b, then y via uniforms.
    """
    groups, size = 500, 40
    n = groups * size
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((n, 2))
    b = _correlated_effects(rng, groups, np.array([1.0, 0.5, 0.5]), 0.3)
    g = _group_factor(groups, size)
    eta = x[:, 0] - 0.5 * x[:, 1] + b[g.codes, 0] + b[g.codes, 1] * x[:, 0] + b[g.codes, 2] * x[:, 1]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1], "g": g})


@case("binomial_crossed_slopes", "y ~ x + (1 + x | subj) + (1 + x | item)", family="binomial")
def binomial_crossed_slopes() -> pd.DataFrame:
    """Binomial GLMM with crossed random slopes (a psycholinguistics experiment): 200 subjects × 100 items,
    each subject sees each item once (20,000 rows), x = ±0.5 by (subject + item) mod 2.

    logit P(y=1) = 0.2 + 0.8 x + subject (SDs 1, 0.5) and item (SDs 0.7, 0.4) intercepts and slopes,
    correlations 0.3; draws from default_rng(20261122) in the order subject effects, item effects, y via uniforms.
    """
    subjects, items = 200, 100
    rng = np.random.default_rng(SEED)
    subj, item = np.repeat(np.arange(subjects), items), np.tile(np.arange(items), subjects)
    x = (subj + item) % 2 - 0.5
    bs = _correlated_effects(rng, subjects, np.array([1.0, 0.5]), 0.3)
    bi = _correlated_effects(rng, items, np.array([0.7, 0.4]), 0.3)
    eta = 0.2 + 0.8 * x + bs[subj, 0] + bs[subj, 1] * x + bi[item, 0] + bi[item, 1] * x
    y = (rng.random(len(x)) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "subj": _labels(subj, subjects, "s"), "item": _labels(item, items, "i")})


@case("growth_quadratic", "y ~ t + I(t^2) + (1 + t + I(t^2) | id)")
def growth_quadratic() -> pd.DataFrame:
    """Longitudinal growth curve: 2,000 ids × 8 waves (16,000 rows), t = 0..7, (1 + t + I(t^2) | id).

    y = 10 + 1.0 t - 0.05 t² + b₀ + b₁ t + b₂ t² + e, SDs (2, 0.5, 0.05), correlations 0.2, e ~ N(0, 1);
    draws from default_rng(20261122) in the order b, e.
    """
    ids, waves = 2_000, 8
    rng = np.random.default_rng(SEED)
    b = _correlated_effects(rng, ids, np.array([2.0, 0.5, 0.05]), 0.2)
    t = np.tile(np.arange(waves, dtype=float), ids)
    code = np.repeat(np.arange(ids), waves)
    y = 10.0 + t - 0.05 * t**2 + b[code, 0] + b[code, 1] * t + b[code, 2] * t**2 + rng.standard_normal(len(t))
    return pd.DataFrame({"y": y, "t": t, "id": _group_factor(ids, waves)})


QUICK = ["sleepstudy", "insteval"]
