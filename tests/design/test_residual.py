"""Residual structures (design/residual.py): the whitening is R's inverse square root and log|V| its
log-determinant, for any parameters and times (hypothesis); bad structures fail with errors naming
the column; the caller's data frame is not changed; rows missing a structure's column are counted."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.design.residual import bind
from mixedmodels.errors import DataError


def one_group_frame(times: list[float], strata: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"t": times, "g": "a", "v": np.arange(1, len(times) + 1, dtype=float)})
    frame["s"] = strata if strata is not None else ["x", "y"] * (len(times) // 2) + ["x"] * (len(times) % 2)
    return frame


def covariance(spec, params: np.ndarray, frame: pd.DataFrame, variance=None) -> tuple[np.ndarray, np.ndarray, float]:
    """The structure's W (rows in the frame's order) and V = D R D from its definition, and log|V|."""
    s = bind(spec, variance, frame, ())
    n = len(frame)
    W = np.empty((n, n))
    W[s.order] = s.whiten(params, np.eye(n)[s.order])  # W's columns index the frame's rows
    a_cor, a_var = s.split(params)
    t = frame["t"].to_numpy(float)
    lag = np.abs(np.subtract.outer(t, t))
    if isinstance(spec, (mm.AR1, mm.CAR1)):
        R = s.correlation.phi(a_cor) ** lag
    elif isinstance(spec, mm.CompSymm):
        rho = s.correlation.rho(a_cor)
        R = (1 - rho) * np.eye(n) + rho
    else:
        full = s.correlation.correlation(a_cor)
        position = np.searchsorted(s.correlation.times, t)
        R = full[np.ix_(position, position)]
    g = s.sd_ratios(params)
    V = g[:, None] * R * g[None, :]
    return W, V, s.logdet(params)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["AR1", "CAR1", "CompSymm", "Symm"]), n=st.integers(2, 6),
       a=st.floats(-2.0, 2.0), b=st.floats(-1.0, 1.0), gaps=st.lists(st.integers(1, 3), min_size=5, max_size=5),
       power=st.booleans())
def test_whitening_is_the_inverse_square_root_of_the_covariance(kind, n, a, b, gaps, power):
    times = np.concatenate([[0.0], np.cumsum(gaps)])[:n] + (0.5 if kind == "CAR1" else 0.0)
    frame = one_group_frame(list(times[::-1]))  # unsorted: the structure sorts by time
    spec = {"AR1": mm.AR1(time="t", group="g"), "CAR1": mm.CAR1(time="t", group="g"),
            "CompSymm": mm.CompSymm(group="g"), "Symm": mm.Symm(time="t", group="g")}[kind]
    variance = mm.VarPower("v") if power else mm.VarIdent("s")
    s = bind(spec, variance, frame, ())
    params = np.concatenate([np.full(s.correlation.nparams, a), np.full(s.variance.nparams, b)])
    W, V, logdet = covariance(spec, params, frame, variance)
    np.testing.assert_allclose(W @ V @ W.T, np.eye(n), atol=1e-8)
    assert logdet == pytest.approx(np.linalg.slogdet(V)[1], abs=1e-8)


@pytest.fixture
def growth() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": np.repeat(np.arange(20), 5), "week": np.tile(np.arange(5), 20),
                          "arm": np.repeat(["A", "B"], 50), "dose": np.tile([1.0, 2.0, 3.0, 4.0, 5.0], 20)})
    frame["y"] = frame["week"] + np.repeat(rng.normal(size=20), 5) + rng.normal(size=100)
    return frame


FORMULA = "y ~ week + (1 | id)"


@pytest.mark.parametrize("kwargs, message", [
    ({"residual": mm.AR1(time="wk", group="id")}, r"AR1\(time='wk', group='id'\): time='wk' is not a column of data.*week"),
    ({"residual": mm.AR1(time="arm", group="id")}, "column 'arm' must be numeric"),
    ({"variance": mm.VarIdent("sex")}, "by='sex' is not a column"),
    ({"variance": mm.VarPower("arm")}, "column 'arm' must be numeric"),
    ({"residual": 3}, "residual= takes an nlme structure such as mm.corAR1"),
    ({"variance": mm.AR1()}, "corAR1\\(form = ~1\\) is a correlation structure: give it as correlation= .* not variance="),
])
def test_bad_structures_name_the_column(growth, kwargs, message):
    with pytest.raises(DataError, match=message):
        mm.lmer(FORMULA, growth, **kwargs)


def test_fractional_times_need_car1(growth):
    data = growth.assign(week=growth["week"] + 0.5 * (growth["id"] == 3))
    with pytest.raises(DataError, match="whole-number times.*'week'.*use CAR1"):
        mm.lmer(FORMULA, data, residual=mm.AR1(time="week", group="id"))
    mm.lmer(FORMULA, data, residual=mm.CAR1(time="week", group="id"))


def test_duplicate_times_within_a_group(growth):
    data = growth.copy()
    data.loc[7, "week"] = 1
    with pytest.raises(DataError, match=r"time 1 appears twice in group '1' of 'id'.*column 'week'"):
        mm.lmer(FORMULA, data, residual=mm.AR1(time="week", group="id"))


def test_varpower_needs_a_positive_covariate(growth):
    with pytest.raises(DataError, match=r"2 value\(s\) of 'dose' are zero or negative"):
        mm.lmer(FORMULA, growth.assign(dose=growth["dose"].where(growth.index > 1, 0.0)), variance=mm.VarPower("dose"))


def test_varident_needs_two_levels(growth):
    with pytest.raises(DataError, match="column 'arm' has one level"):
        mm.lmer(FORMULA, growth.assign(arm="A"), variance=mm.VarIdent("arm"))


def test_residual_groups_must_be_nested_in_the_random_effects(growth):
    with pytest.raises(DataError, match="residual group 'A' spans several levels of the random-effects factor 'id'"):
        mm.lmer(FORMULA, growth, residual=mm.CompSymm(group="arm"))


def test_the_group_defaults_to_the_only_grouping_factor(growth):
    a = mm.lmer(FORMULA, growth, residual=mm.AR1(time="week"))
    b = mm.lmer(FORMULA, growth, residual=mm.AR1(time="week", group="id"))
    assert a.objective == pytest.approx(b.objective, abs=1e-10)
    crossed = growth.assign(site=growth["week"] % 2)
    with pytest.raises(DataError, match="several grouping factors.*group="):
        mm.lmer("y ~ week + (1 | id) + (1 | site)", crossed, residual=mm.AR1(time="week"))


def test_gls_needs_a_group_for_compound_symmetry(growth):
    with pytest.raises(DataError, match="without random effects name the groups"):
        mm.gls("y ~ week", growth, residual=mm.CompSymm())
    with pytest.raises(mm.FormulaError, match="gls fits no random effects"):
        mm.gls(FORMULA, growth, residual=mm.AR1())


def test_weights_are_refused_with_a_structure(growth):
    with pytest.raises(DataError, match="prior weights .* cannot be combined with a residual structure"):
        mm.lmer(FORMULA, growth.assign(w=1.0), weights="w", residual=mm.AR1(time="week"))


def test_unsorted_rows_give_the_same_fit_and_the_data_is_not_changed(growth):
    shuffled = growth.sample(frac=1.0, random_state=3)
    before = shuffled.copy()
    a = mm.lmer(FORMULA, growth, residual=mm.AR1(time="week", group="id"), variance=mm.VarIdent("arm"))
    b = mm.lmer(FORMULA, shuffled, residual=mm.AR1(time="week", group="id"), variance=mm.VarIdent("arm"))
    pd.testing.assert_frame_equal(shuffled, before)
    assert a.objective == pytest.approx(b.objective, abs=1e-8)
    np.testing.assert_allclose(b.residuals_of("normalized").loc[growth.index], a.residuals_of("normalized"), atol=1e-6)


def test_rows_missing_a_structure_column_are_dropped_and_counted(growth):
    data = growth.assign(week=growth["week"].where(growth.index != 4))
    with pytest.warns(mm.DroppedRowsWarning, match="1 of 100 rows have missing values \\(in 'week'\\)"):
        m = mm.lmer(FORMULA, data, residual=mm.AR1(time="week", group="id"))
    assert m.nobs == 99 and m.n_dropped == 1


def test_what_a_structured_fit_does_not_offer(growth):
    m = mm.lmer(FORMULA, growth, residual=mm.AR1(time="week"))
    for call in (m.satterthwaite, lambda: m.summary(ddf="Satterthwaite"), lambda: m.simulate(), m.hatvalues,
                 lambda: m.confint(method="profile"), m.rstudent, lambda: mm.influence(m, groups="id"),
                 lambda: mm.step(m), lambda: mm.drop1(m), lambda: mm.ranova(m), lambda: m.save("x.npz")):
        with pytest.raises(mm.MixedModelsError, match="not offered for fits with a residual structure"):
            call()
    assert "t value" in str(m.summary())
