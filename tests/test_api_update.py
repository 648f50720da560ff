"""api.update (R's update(m, ...)) against lme4 1.1-31 (tests/fixtures/parity/update.R): new formulas
written with '.', REML = FALSE, the fit's settings carried over, and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from parity import PARITY_DIR, close, orthodont

R = json.loads((PARITY_DIR / "update.json").read_text())["fits"]


@pytest.fixture(scope="module")
def sleep() -> mm.LmerResult:
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def orth() -> mm.LmerResult:
    return mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont())


def test_fixed_term_dropped(sleep, orth):
    for fit, name, new in ((sleep, "no_days", ". ~ . - Days"), (orth, "orth_additive", ". ~ . - age:Sex")):
        u = mm.update(fit, new)
        assert u.formula == R[name]["formula"] and u.REML
        close(u.fixef, list(R[name]["fixef"].values()), 1e-5)
        close(u.objective, R[name]["REMLcrit"], 1e-8)


def test_reml_false_and_a_new_random_part(sleep, orth):
    ml = mm.update(sleep, REML=False)
    assert not ml.REML and ml.formula == R["ml"]["formula"]
    close(ml.loglik, R["ml"]["logLik"], 1e-8)
    slopes = mm.update(orth, ". ~ . - (1 | Subject) + (age | Subject)")
    assert slopes.formula == R["orth_slopes"]["formula"]
    close(slopes.objective, R["orth_slopes"]["REMLcrit"], 1e-7)  # 5.6e-6 below lme4's optimum
    close(slopes.theta, R["orth_slopes"]["theta"], 3e-3)


def test_settings_carry_over():
    data = mm.datasets.load("sleepstudy").assign(w=lambda d: np.arange(len(d)) % 3 + 1.0,
                                                 o=lambda d: np.arange(len(d)) / 100)
    fit = mm.lmer("Reaction ~ Days + (1 | Subject)", data, weights="w", offset="o", REML=False,
                  control=mm.Control(maxeval=5000))
    same = mm.update(fit)
    assert same.objective == pytest.approx(fit.objective, rel=1e-10)
    assert not same.REML and same.control == fit.control
    with pytest.raises(mm.DataError, match="pass weights= for the new data"):
        mm.update(fit, data=data)
    assert mm.update(fit, data=data, weights="w", offset="o").objective == pytest.approx(fit.objective, rel=1e-10)


def test_glmer_keeps_family_and_trials():
    cbpp = mm.datasets.load("cbpp")
    fit = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    u = mm.update(fit, ". ~ . - period")
    direct = mm.glmer("cbind(incidence, size - incidence) ~ (1 | herd)", cbpp, family="binomial")
    assert u.formula == direct.formula and u.family.name == "binomial"
    assert u.loglik == pytest.approx(direct.loglik, rel=1e-10)
    probit = mm.update(fit, family=mm.families.Binomial(link="probit"))
    assert probit.family.link.name == "probit"


def test_update_errors(sleep):
    with pytest.raises(mm.DataError, match="pass data= for others"):
        mm.update(sleep, ". ~ . + height")
    lm_fit = mm.lm("Reaction ~ Days", mm.datasets.load("sleepstudy"))
    with pytest.raises(mm.FitError, match="not a LmResult"):
        mm.update(lm_fit, ". ~ .")


def test_the_callers_data_is_left_alone(sleep):
    data = mm.datasets.load("sleepstudy")
    before = data.copy()
    mm.update(sleep, ". ~ . + I(Days^2)", data=data)
    pd.testing.assert_frame_equal(data, before)
