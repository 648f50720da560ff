"""predict(): fitted rows, new data, re_form, new levels, unseen categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm


@pytest.fixture(scope="module")
def sleep():
    data = mm.datasets.load("sleepstudy")
    return data, mm.lmer("Reaction ~ Days + (Days | Subject)", data)


def test_predict_without_newdata_is_fitted(sleep):
    _, fit = sleep
    pd.testing.assert_series_equal(fit.predict(), fit.fitted.rename("prediction"))


@pytest.mark.parametrize("formula,dataset", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
])
def test_predict_on_the_training_data_reproduces_fitted(formula, dataset):
    data = mm.datasets.load(dataset)
    fit = mm.lmer(formula, data)
    np.testing.assert_allclose(fit.predict(newdata=data), fit.fitted, rtol=1e-12)


def test_factor_valued_random_term_replays_its_columns():
    data = mm.datasets.load("sleepstudy")
    data["half"] = pd.Categorical(np.where(data["Days"] < 5, "early", "late"))
    fit = mm.lmer("Reaction ~ half + (0 + half | Subject)", data)
    np.testing.assert_allclose(fit.predict(newdata=data.iloc[::-1]), fit.fitted.iloc[::-1], rtol=1e-12)


def test_re_form_zero_gives_the_population_prediction(sleep):
    data, fit = sleep
    beta = fit.fixef
    expected = beta["(Intercept)"] + beta["Days"] * data["Days"]
    np.testing.assert_allclose(fit.predict(newdata=data, re_form="~0"), expected)
    np.testing.assert_allclose(fit.predict(re_form="NA"), expected)
    np.testing.assert_allclose(fit.predict(newdata=data, re_form="~(Days | Subject)"), fit.fitted)
    with pytest.raises(mm.FormulaError, match="re_form must name"):
        fit.predict(re_form="~(1 | School)")


def test_new_levels_need_permission(sleep):
    _, fit = sleep
    new = pd.DataFrame({"Days": [0, 5], "Subject": ["999", "308"]})
    with pytest.raises(mm.DataError, match="level\\(s\\) of 'Subject' not seen when fitting: '999'"):
        fit.predict(newdata=new)
    pred = fit.predict(newdata=new, allow_new_levels=True)
    beta, b308 = fit.fixef, fit.ranef["Subject"].loc["308"]
    assert pred.iloc[0] == pytest.approx(beta["(Intercept)"])
    assert pred.iloc[1] == pytest.approx(beta["(Intercept)"] + b308["(Intercept)"] + 5 * (beta["Days"] + b308["Days"]))


def test_unseen_fixed_effect_category_is_an_error():
    data = mm.datasets.load("cbpp")
    fit = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
    new = pd.DataFrame({"period": ["5"], "herd": ["1"]})
    with pytest.raises(mm.DataError, match="factor levels not seen"):
        fit.predict(newdata=new)
    ok = data.iloc[:4]
    link = fit.predict(newdata=ok, type="link")
    np.testing.assert_allclose(fit.predict(newdata=ok), 1 / (1 + np.exp(-link)))
    np.testing.assert_allclose(fit.predict(newdata=ok), fit.fitted.iloc[:4])


def test_missing_predictor_gives_nan_and_missing_column_an_error(sleep):
    _, fit = sleep
    new = pd.DataFrame({"Days": [1.0, np.nan], "Subject": ["308", "308"]})
    pred = fit.predict(newdata=new)
    assert np.isfinite(pred.iloc[0]) and np.isnan(pred.iloc[1])
    with pytest.raises(mm.DataError, match="Subject"):
        fit.predict(newdata=pd.DataFrame({"Days": [1.0]}))


@pytest.mark.parametrize("dtype", [object, "string", "category"])
def test_a_missing_grouping_value_is_a_new_level(sleep, dtype):
    """As lme4: an error unless allow_new_levels=True, then the population prediction."""
    _, fit = sleep
    new = pd.DataFrame({"Days": [2.0, 3.0], "Subject": pd.Series(["308", None], dtype=dtype)})
    with pytest.raises(mm.DataError, match="1 row.* missing value of 'Subject'.*allow_new_levels=True"):
        fit.predict(newdata=new)
    pred = fit.predict(newdata=new, allow_new_levels=True)
    beta, b = fit.fixef, fit.ranef["Subject"].loc["308"]
    assert pred.iloc[0] == pytest.approx(beta["(Intercept)"] + b["(Intercept)"] + 2 * (beta["Days"] + b["Days"]))
    assert pred.iloc[1] == pytest.approx(beta["(Intercept)"] + 3 * beta["Days"])


def test_numeric_grouping_values_match_the_fitted_labels(sleep):
    data, fit = sleep
    as_numbers = data.assign(Subject=data["Subject"].astype(str).astype(int))
    np.testing.assert_allclose(fit.predict(newdata=as_numbers), fit.fitted)


def test_re_form_keeps_only_the_named_effects(sleep):
    """As lme4: re_form = ~(1 | Subject) on a (Days | Subject) model keeps the intercepts only."""
    data, fit = sleep
    b = fit.ranef["Subject"].loc[data["Subject"].astype(str)]
    beta = fit.fixef
    expected = beta["(Intercept)"] + beta["Days"] * data["Days"].to_numpy() + b["(Intercept)"].to_numpy()
    np.testing.assert_allclose(fit.predict(newdata=data, re_form="~(1 | Subject)"), expected)
    np.testing.assert_allclose(fit.predict(re_form="~(1 | Subject)"), expected)
    slopes_only = beta["(Intercept)"] + (beta["Days"] + b["Days"].to_numpy()) * data["Days"].to_numpy()
    np.testing.assert_allclose(fit.predict(newdata=data, re_form="~(0 + Days | Subject)"), slopes_only)
