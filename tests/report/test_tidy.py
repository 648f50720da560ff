"""report/tidy.py: broom.mixed's effects chosen as R's match.arg does, bad choices refused by name."""

from __future__ import annotations

import pytest

import mixedmodels as mm


@pytest.fixture(scope="module")
def fit():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


def test_effects_abbreviate_as_match_arg(fit):
    """broom.mixed 0.2 on lme4 1.1-31: tidy(m, effects = "ran_pars") (R printed 24.74065799,
    0.06555124, 5.92213766, 25.59179572)."""
    pars = fit.tidy("ran_p")
    assert list(pars["term"]) == ["sd__(Intercept)", "cor__(Intercept).Days", "sd__Days", "sd__Observation"]
    assert list(pars["group"]) == ["Subject"] * 3 + ["Residual"]
    assert list(pars["estimate"]) == pytest.approx([24.74065799, 0.06555124, 5.92213766, 25.59179572], rel=2e-5)
    assert list(fit.tidy("fix")["term"]) == ["(Intercept)", "Days"]


def test_ran_pars_follow_broom_mixeds_order():
    """A 3 × 3 block and a second group: each SD followed by its correlations with later columns
    (broom.mixed's order, read from R for ``(Days + D2 | Subject) + (1 | Days)``)."""
    data = mm.datasets.load("sleepstudy").assign(D2=lambda d: (d.Days - 4.5) ** 2 / 10)
    with pytest.warns(mm.SingularFitWarning):
        fit = mm.lmer("Reaction ~ Days + (Days + D2 | Subject) + (1 | Days)", data)
    assert list(fit.tidy("ran_pars")["term"]) == [
        "sd__(Intercept)", "cor__(Intercept).Days", "cor__(Intercept).D2", "sd__Days", "cor__Days.D2", "sd__D2",
        "sd__(Intercept)", "sd__Observation"]


@pytest.mark.parametrize("effects, message", [("ran", "abbreviates several choices"),
                                              ("random", "effects must be one of")])
def test_bad_effects_get_the_package_error(fit, effects, message):
    with pytest.raises(mm.MixedModelsError, match=message):
        fit.tidy(effects)
