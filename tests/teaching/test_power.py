"""Power by simulation: type I error at effect 0, power near 1 for huge effects, the noncentral-t
power of a balanced design, reproducibility, and the cluster-resampling scheme."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedmodels as mm
from mixedmodels.errors import DataError
from mixedmodels.teaching.power import PowerResult, _resample, power

X_VALUES = np.arange(6.0)  # the same x in every cluster: Σ(x − x̄)² = 17.5 per cluster


@pytest.fixture(scope="module")
def small() -> mm.LmerResult:
    """12 clusters of 6 observations, x within clusters, random intercepts."""
    rng = np.random.default_rng(2024)
    g = np.repeat(np.arange(12), 6)
    x = np.tile(X_VALUES, 12)
    y = 1 + 0.3 * x + rng.normal(0, 1, 12)[g] + rng.normal(0, 1, 72)
    return mm.lmer("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]}))


def _exact_power(effect: float, sigma: float, n_groups: int, alpha: float = 0.05) -> float:
    """Balanced design, identical x in each cluster: β̂ is the within estimator, var σ²/Σ(x − x̄ⱼ)²,
    tested by t with N − J − 1 df; power from the noncentral t."""
    df = n_groups * len(X_VALUES) - n_groups - 1
    ncp = effect / (sigma / np.sqrt(n_groups * 17.5))
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def test_huge_effect_has_power_one(small, capsys):
    result = power(small, "x", nsim=40, effect=5 * small.se["x"], seed=1, progress=True)
    row = result.table.iloc[0]
    assert (row["n_groups"], row["n_per_group"], row["nsim"], row["failed"]) == (12, 6, 40, 0)
    assert row["power"] >= 0.95
    assert row["ci_lower"] <= row["power"] <= row["ci_upper"] == 1.0
    assert "40/40" in capsys.readouterr().err


def test_zero_effect_rejects_at_alpha(small):
    result = power(small, "x", nsim=200, effect=0.0, seed=11)
    row = result.table.iloc[0]
    assert row["failed"] == 0 and result.effect == 0.0
    tolerance = 3 * np.sqrt(0.05 * 0.95 / 200)
    assert abs(row["power"] - 0.05) <= tolerance
    assert row["ci_lower"] <= 0.05 <= row["ci_upper"]
    k = round(row["power"] * 200)  # Clopper–Pearson limits from beta quantiles
    assert row["ci_lower"] == pytest.approx(stats.beta.ppf(0.025, k, 200 - k + 1), rel=1e-6)
    assert row["ci_upper"] == pytest.approx(stats.beta.ppf(0.975, k + 1, 200 - k), rel=1e-6)


def test_power_grows_with_clusters_as_the_noncentral_t(small):
    effect = 0.15
    assert small.se["x"] == pytest.approx(small.sigma / np.sqrt(12 * 17.5), rel=1e-6)  # the premise
    result = power(small, "x", nsim=60, n_groups=[4, 8, 16], n_per_group=6, effect=effect, seed=3)
    x, p = result.curve("n_groups")
    assert x.tolist() == [4, 8, 16]
    assert np.all(np.diff(p) >= 0) and p[-1] - p[0] > 0.3
    for n_groups, simulated in zip(x, p):
        exact = _exact_power(effect, small.sigma, int(n_groups))
        assert abs(simulated - exact) <= 3 * np.sqrt(exact * (1 - exact) / 60) + 0.02


def test_same_seed_same_table(small):
    first = power(small, "x", nsim=8, n_groups=[5, 7], n_per_group=[3], effect=0.2, seed=42)
    again = power(small, "x", nsim=8, n_groups=[5, 7], n_per_group=[3], effect=0.2, seed=42)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert list(first.table.columns) == ["n_groups", "n_per_group", "power", "ci_lower", "ci_upper", "nsim", "failed"]
    assert first.table[["n_groups", "n_per_group"]].values.tolist() == [[5, 3], [7, 3]]


def test_resampling_cycles_rows_within_whole_clusters(small):
    design = _resample(small.design, 0, n_groups=5, n_per_group=8, rng=np.random.default_rng(0))
    term = design.reterms[0]
    assert design.n == 40 and term.nlevels == 5
    original = small.design.reterms[0].codes
    for k in range(5):
        rows = np.flatnonzero(term.codes == k)
        assert len(rows) == 8
        source = original[np.flatnonzero(small.design.y == design.y[rows[0]])[0]]
        first = np.flatnonzero(original == source)  # the source cluster's rows in data order
        np.testing.assert_array_equal(design.y[rows], small.design.y[first[np.arange(8) % 6]])
        np.testing.assert_array_equal(design.X[rows], small.design.X[first[np.arange(8) % 6]])


def test_nested_factors_are_relabelled_and_crossed_kept():
    pastes = mm.lmer("strength ~ 1 + (1 | batch/cask)", mm.datasets.load("Pastes"))
    batch = next(i for i, t in enumerate(pastes.design.reterms) if t.group == "batch")
    design = _resample(pastes.design, batch, n_groups=4, n_per_group=None, rng=np.random.default_rng(1))
    sizes = {t.group: t.nlevels for t in design.reterms}
    assert sizes == {"batch": 4, "cask:batch": 12} and design.n == 24  # 3 casks × 2 assays per batch

    penicillin = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.datasets.load("Penicillin"))
    with pytest.raises(DataError, match="group="):
        power(penicillin, "(Intercept)", nsim=1, n_groups=5)
    plate = next(i for i, t in enumerate(penicillin.design.reterms) if t.group == "plate")
    design = _resample(penicillin.design, plate, n_groups=5, n_per_group=None, rng=np.random.default_rng(1))
    assert {t.group: t.nlevels for t in design.reterms} == {"plate": 5, "sample": 6} and design.n == 30


def test_glmer_power_uses_z_tests():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(15), 8)
    x = np.tile(np.linspace(-1, 1, 8), 15)
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.5 * x + rng.normal(0, 0.5, 15)[g]))))
    fit = mm.glmer("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}), family="binomial")
    result = power(fit, "x", nsim=10, effect=6.0, seed=2)
    assert result.table["power"].iloc[0] == 1.0 and result.table["failed"].iloc[0] == 0


def test_curve_needs_one_value_of_the_other_size():
    table = pd.DataFrame({"n_groups": [8, 4, 8], "n_per_group": [5, 5, 10], "power": [0.6, 0.3, 0.8],
                          "ci_lower": 0.0, "ci_upper": 1.0, "nsim": 10, "failed": 0})
    x, p = PowerResult(table.iloc[:2], test="x", effect=1.0, alpha=0.05, seed=None).curve()
    assert x.tolist() == [4, 8] and p.tolist() == [0.3, 0.6]  # sorted by x
    x, p = PowerResult(table.iloc[[0, 2]], test="x", effect=1.0, alpha=0.05, seed=None).curve("n_per_group")
    assert x.tolist() == [5, 10] and p.tolist() == [0.6, 0.8]
    with pytest.raises(ValueError, match="varies n_per_group"):
        PowerResult(table, test="x", effect=1.0, alpha=0.05, seed=None).curve("n_groups")


def test_unknown_coefficient(small):
    with pytest.raises(DataError, match="Did you mean 'x'"):
        power(small, "xx", nsim=1)
