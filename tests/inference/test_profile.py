"""Profile-likelihood intervals agree with lme4 1.1-31's confint(method = "profile").

R: confint(lmer(...), method = "profile"); lme4 profiles the ML deviance also for
REML fits, and so do we.  Agreement: 0.2% of the interval's half-width scale.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedmodels as mm

LME4 = {
    ("sleepstudy", "Reaction ~ Days + (Days|Subject)", 0.95): {
        "sd_(Intercept)|Subject": (14.38141816, 37.71599532),
        "cor_(Intercept).Days|Subject": (-0.48150076, 0.68498627),
        "sd_Days|Subject": (3.80116405, 8.75338075),
        "sigma": (22.89826688, 28.85799651),
        "(Intercept)": (237.68069551, 265.12951468),
        "Days": (7.35865328, 13.57591875),
    },
    ("Dyestuff", "Yield ~ 1 + (1|Batch)", 0.95): {
        "sd_(Intercept)|Batch": (12.198535, 84.063047),
        "sigma": (38.229985, 67.657696),
        "(Intercept)": (1486.451500, 1568.548494),
    },
    ("Dyestuff2", "Yield ~ 1 + (1|Batch)", 0.95): {
        "sd_(Intercept)|Batch": (0.0, 2.0840435),
        "sigma": (2.8928310, 4.8158326),
        "(Intercept)": (4.3121002, 7.0190923),
    },
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", 0.90): {
        "sd_(Intercept)|plate": (0.66208388, 1.11572236),
        "sd_(Intercept)|sample": (1.17167609, 3.11497385),
        "sigma": (0.49527699, 0.61543203),
        "(Intercept)": (21.60872242, 24.33572238),
    },
}


@pytest.mark.parametrize("key", list(LME4), ids=[k[0] for k in LME4])
def test_profile_intervals_match_lme4(key):
    dataset, formula, level = key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        fit = mm.lmer(formula, mm.datasets.load(dataset))
        ci = fit.confint(method="profile", level=level)
    assert list(ci.index) == list(fit.parameters().index)
    for name, (lo, hi) in LME4[key].items():
        tol = 2e-3 * (hi - lo)
        assert ci.loc[name].iloc[0] == pytest.approx(lo, abs=tol), name
        assert ci.loc[name].iloc[1] == pytest.approx(hi, abs=tol), name


def test_profile_is_for_lmer_fits_only():
    fit = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                   family="binomial")
    with pytest.raises(ValueError, match="method='boot'"):
        fit.confint(method="profile")
    assert np.all(np.isfinite(fit.confint().loc[fit.fixef.index]))
