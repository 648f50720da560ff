"""tidy() and glance() against broom.mixed 0.2.9.4 (tests/fixtures/parity/sweep.R): tidy's default
effects (fixed, then ran_pars), Wald conf.int (t with Satterthwaite df for lmer, z for glmer),
and glance's columns (REMLcrit for REML fits, lme4's deviance() for glmer fits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from parity import SWEEP, close, orthodont


@pytest.fixture(scope="module")
def fits() -> dict:
    return {
        "sleep": mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy")),
        "cbpp": mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                         family="binomial"),
        "orth": mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont()),
    }


@pytest.mark.parametrize("name", ["sleep", "cbpp", "orth"])
def test_default_tidy_is_broom_mixeds_fixed_and_ran_pars(fits, name):
    ours, theirs = fits[name].tidy(), SWEEP[name]["tidy"]
    assert list(ours.columns) == list(theirs)
    assert list(ours["effect"]) == theirs["effect"] and list(ours["term"]) == theirs["term"]
    assert [None if pd.isna(g) else g for g in ours["group"]] == theirs["group"]
    rel = 2e-3 if name == "cbpp" else 1e-4  # glmer: the Laplace deviance (see lme4-translation.md)
    close(ours["estimate"], theirs["estimate"], rel)
    assert ours["std.error"].isna().tolist() == [v is None for v in theirs["std.error"]]


@pytest.mark.parametrize("name, effects", [("sleep", "fixed"), ("orth", ("ran_pars", "fixed"))])
def test_conf_int_uses_t_with_satterthwaite_df_for_lmer(fits, name, effects):
    """sleep: tidy(m, effects = "fixed", conf.int = TRUE); orth: tidy(m, conf.int = TRUE)."""
    ours, theirs = fits[name].tidy(effects, conf_int=True), SWEEP[name]["tidy_ci"]
    assert list(ours.columns) == list(theirs)
    close(ours["conf.low"], theirs["conf.low"], 1e-5)
    close(ours["conf.high"], theirs["conf.high"], 1e-5)


def test_conf_int_of_glmer_is_normal_and_levels_change_the_width(fits):
    ours, theirs = fits["cbpp"].tidy("fixed", conf_int=True), SWEEP["cbpp"]["tidy_ci"]
    assert list(ours.columns) == list(theirs)
    width = (ours["conf.high"] - ours["conf.low"]) / ours["std.error"]
    np.testing.assert_allclose(width, 2 * 1.959963984540054, rtol=1e-12)
    close(ours["conf.low"], theirs["conf.low"], 2e-2)  # the SEs differ from lme4's by 0.2-1.3 %
    narrower = fits["cbpp"].tidy("fixed", conf_int=True, conf_level=0.5)
    assert (narrower["conf.high"] < ours["conf.high"]).all()


def test_conf_int_of_ran_vals_and_nan_for_ran_pars(fits):
    t = fits["sleep"].tidy(["ran_vals", "ran_pars"], conf_int=True)
    assert list(t["effect"].unique()) == ["ran_pars", "ran_vals"]
    assert t.loc[t["effect"] == "ran_pars", "conf.low"].isna().all()
    vals = t[t["effect"] == "ran_vals"]
    np.testing.assert_allclose(vals["conf.high"] - vals["estimate"], 1.959963984540054 * vals["std.error"])


@pytest.mark.parametrize("name", ["sleep", "cbpp", "orth"])
def test_glance_has_broom_mixeds_columns_and_values(fits, name):
    ours, theirs = fits[name].glance(), SWEEP[name]["glance"]
    assert list(ours.columns) == list(theirs)
    rel = 1e-3 if name == "cbpp" else 1e-6
    for column in theirs:
        close(ours[column], [theirs[column]], rel)


def test_glance_of_an_ml_fit_has_the_deviance():
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"), REML=False)
    out = fit.glance()
    assert list(out.columns) == ["nobs", "sigma", "logLik", "AIC", "BIC", "deviance", "df.residual"]
    assert out["deviance"].iloc[0] == pytest.approx(-2 * fit.loglik)


def test_bad_conf_level_and_effects_are_refused(fits):
    with pytest.raises(mm.MixedModelsError, match="conf_level"):
        fits["sleep"].tidy(conf_int=True, conf_level=95)
    with pytest.raises(mm.MixedModelsError, match="effects must be one of"):
        fits["sleep"].tidy(["fixed", "random"])
