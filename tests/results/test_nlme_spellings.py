"""Fits written with nlme's spellings (correlation=, weights=, method=, corAR1(form = ...), whole call
strings) agree with nlme's own fits of the same models (tests/fixtures/rspell: make_nlme.R,
nlme_fits.json, on nlme's Ovary, Orthodont and BodyWeight data).

Tolerances: −2 log-likelihood, AIC and BIC within 1e-6 (absolute, as nlme's optimum is converged to
1e-10), β within 1e-5 relative, SEs and σ within 1e-4, the structure's parameters within 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError, FormulaError, MixedModelsError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rspell"
NLME = json.loads((FIXTURES / "nlme_fits.json").read_text(encoding="utf-8"))


def load(name: str) -> pd.DataFrame:
    d = pd.read_csv(FIXTURES / f"{name}.csv")
    if name == "ovary":
        d["Mare"] = pd.Categorical(d["Mare"].astype(str), categories=[str(i) for i in range(1, 12)])
    elif name == "orthodont":
        d["Sex"] = pd.Categorical(d["Sex"], categories=["Male", "Female"])
    else:
        d["Rat"], d["Diet"] = d["Rat"].astype(str), d["Diet"].astype(str)
    return d


DATA = {name: load(name) for name in ("ovary", "orthodont", "bodyweight")}
OVARY = "follicles ~ sin2pi + cos2pi"
CASES = {  # fixture stem: fit by method ("REML" or "ML"), in the spellings an R user brings
    "ovary_gls_ar1": lambda method: mm.gls(OVARY, DATA["ovary"], correlation="corAR1(form = ~ 1 | Mare)",
                                           method=method),
    "ovary_lme_ar1": lambda method: mm.lmer(OVARY + " + (1 | Mare)", DATA["ovary"],
                                            correlation=mm.corAR1(form="~ 1 | Mare"), method=method),
    "ovary_gls_car1": lambda method: mm.gls(OVARY, DATA["ovary"], correlation=mm.corCAR1(form="~ Time | Mare"),
                                            method=method),
    "orth_gls_cs_varident": lambda method: mm.gls("distance ~ age + Sex", DATA["orthodont"],
                                                  correlation=mm.corCompSymm(form="~ 1 | Subject"),
                                                  weights="varIdent(form = ~ 1 | Sex)", method=method),
    "orth_gls_symm": lambda method: mm.gls("distance ~ age + Sex", DATA["orthodont"],
                                           correlation="nlme::corSymm(form = ~ 1 | Subject)", method=method),
    "bw_lme_varpower": lambda method: mm.lmer("weight ~ Time * Diet + (1 | Rat)", DATA["bodyweight"],
                                              weights="varPower(form = ~ Time)", method=method),
    "bw_lme_car1_varident": lambda method: mm.lmer("weight ~ Time * Diet + (1 | Rat)", DATA["bodyweight"],
                                                   correlation="corCAR1(form = ~ Time | Rat)",
                                                   weights=mm.varIdent(form="~ 1 | Diet"), method=method),
}
_FITS: dict[str, object] = {}


def fitted(key: str):
    if key not in _FITS:
        stem, method = key.rsplit("_", 1)
        _FITS[key] = CASES[stem](method)
    return _FITS[key]


@pytest.mark.parametrize("key", [f"{stem}_{method}" for stem in CASES for method in ("REML", "ML")])
def test_fits_agree_with_nlme(key):
    m, ref = fitted(key), NLME[key]
    assert m.REML is key.endswith("_REML")
    assert m.objective == pytest.approx(ref["objective"], abs=1e-6)
    assert (m.df, m.aic, m.bic) == (ref["df"], pytest.approx(ref["AIC"], abs=1e-6), pytest.approx(ref["BIC"], abs=1e-6))
    np.testing.assert_allclose(m.fixef.to_numpy(), list(ref["beta"].values()), rtol=1e-5)
    assert list(m.fixef.index) == list(ref["beta"])
    np.testing.assert_allclose(m.se.to_numpy(), list(ref["se"].values()), rtol=1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    if "correlation" in ref:
        expected = ref["correlation"]
        values = list(expected.values()) if isinstance(expected, dict) else expected
        np.testing.assert_allclose(m.correlation_parameters.to_numpy(), values, atol=1e-4)
    if "variance" in ref:
        for level, value in ref["variance"].items():
            assert m.variance_parameters[level] == pytest.approx(value, abs=1e-4)
    if "re_sd" in ref:
        assert float(m.varcorr["sdcor"].iloc[0]) == pytest.approx(ref["re_sd"]["(Intercept)"], rel=1e-4)


def test_nlme_spellings_fit_the_same_model_as_the_package_names():
    ours = mm.gls("distance ~ age + Sex", DATA["orthodont"], residual=mm.CompSymm(group="Subject"),
                  variance=mm.VarIdent("Sex"), REML=False)
    nlme = fitted("orth_gls_cs_varident_ML")
    assert nlme.objective == ours.objective
    np.testing.assert_array_equal(nlme.fixef.to_numpy(), ours.fixef.to_numpy())


def test_the_summary_shows_nlmes_structures():
    text = str(fitted("bw_lme_car1_varident_REML").summary())
    assert "Correlation Structure: Continuous AR(1)" in text and "Formula: ~Time | Rat" in text
    assert "Variance function:" in text and "~1 | Diet" in text


def test_corAR1_without_form_in_lmer_takes_the_random_effects_groups():
    m = mm.lmer(OVARY + " + (1 | Mare)", DATA["ovary"], correlation=mm.corAR1(), REML=False)
    assert m.objective == pytest.approx(NLME["ovary_lme_ar1_ML"]["objective"], abs=1e-6)


def test_method_on_an_lmer_fit_without_a_structure():
    sleep = mm.datasets.load("sleepstudy")
    by_method = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep, method="ML")
    assert not by_method.REML
    assert by_method.objective == mm.lmer("Reaction ~ Days + (Days | Subject)", sleep, REML=False).objective
    with pytest.raises(DataError, match="disagree"):
        mm.lmer("Reaction ~ Days + (Days | Subject)", sleep, REML=True, method="ML")
    with pytest.raises(DataError, match="disagree"):
        mm.gls("Reaction ~ Days", sleep, REML=False, method="REML")


def test_lme4_prior_weights_keep_their_meaning():
    d = DATA["orthodont"].assign(w=np.linspace(0.5, 2.0, len(DATA["orthodont"])))
    by_name = mm.lmer("distance ~ age + (1 | Subject)", d, weights="w")
    by_vector = mm.lmer("distance ~ age + (1 | Subject)", d, weights=d["w"].to_numpy())
    assert type(by_name) is mm.LmerResult and by_name.objective == by_vector.objective
    assert by_name.objective != mm.lmer("distance ~ age + (1 | Subject)", d).objective
    with pytest.raises(DataError, match="'wt' is not a column|not a column"):
        mm.lmer("distance ~ age + (1 | Subject)", d, weights="wt")


@pytest.mark.parametrize("call, error, message", [
    (lambda d: mm.glmer("distance ~ age + (1 | Subject)", d, "poisson", weights=mm.varIdent(form="~ 1 | Sex")),
     DataError, "glmer's weights= are prior weights .* not a VarIdent"),
    (lambda d: mm.glmer("distance ~ age + (1 | Subject)", d, "poisson", weights="varIdent(form = ~ 1 | Sex)"),
     DataError, "glmer's weights= are prior weights"),
    (lambda d: mm.glmer_nb("distance ~ age + (1 | Subject)", d, weights=mm.varPower(form="~ age")),
     DataError, "glmer_nb's weights= are prior weights"),
    (lambda d: mm.gls("distance ~ age", d, weights="w"), DataError, "gls has no prior weights"),
    (lambda d: mm.lmer("distance ~ age + (1 | Subject)", d, weights="w", correlation="corAR1(form = ~ age | Subject)"),
     DataError, "prior weights .* cannot be combined with a residual structure"),
    (lambda d: mm.lmer("distance ~ age + (1 | Subject)", d, weights="~ age"), FormulaError, "varFixed"),
    (lambda d: mm.gls("distance ~ age", d, correlation="corExp(form = ~ age | Subject)"), FormulaError,
     "corExp\\(\\) is nlme's exponential spatial correlation, which mixedmodels does not have"),
    (lambda d: mm.gls("distance ~ age", d, weights="varComb(varIdent(form = ~ 1 | Sex), varPower())"), FormulaError,
     "varComb\\(\\) is nlme's combination of variance functions"),
    (lambda d: mm.gls("distance ~ age", d, correlation="corAR1(form = ~ age | Subjet)"), DataError,
     "'Subjet' is not a column of data. Did you mean 'Subject'"),
    (lambda d: mm.gls("distance ~ age", d, correlation=mm.corAR1(form="~ age | Subject"), residual=mm.AR1()),
     DataError, "residual= and correlation="),
    (lambda d: mm.gls("distance ~ age", d, correlation="corAR1(form = ~ age | Subject)", method="GLS"),
     MixedModelsError, "method must be one of 'REML', 'ML'"),
])
def test_errors(call, error, message):
    d = DATA["orthodont"].assign(w=1.0)
    with pytest.raises(error, match=message):
        call(d)
