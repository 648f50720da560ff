"""R's formula dialect gives R's answer: every spelling fitted as lme4 fits it (fixtures from R).

tests/fixtures/rdialect/make_rdialect.R fitted each formula with lme4 1.1-31; here the same
text, as an R user types it, must give the same coefficient names, estimates and REML
criterion, with and without the safety check.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.design.transforms import as_numeric, factor, ns
from mixedmodels.errors import FormulaError
from mixedmodels.formula import check_formula, parse_formula
from mixedmodels.formula.rdialect import python_part, r_spelling

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rdialect"
REFERENCE = json.loads((FIXTURES / "rdialect.json").read_text())


def sleep_extra() -> pd.DataFrame:
    data = pd.read_csv(FIXTURES / "sleep_extra.csv")
    data["Subject"] = pd.Categorical(data["Subject"].astype(str))
    data["grp"] = pd.Categorical(data["grp"], categories=["even", "odd"])
    return data


def data_for(name: str) -> pd.DataFrame:
    if name == "bare_bar":
        return mm.datasets.load("Dyestuff")
    data = sleep_extra()
    return data[["Reaction", "Days", "grp", "Subject"]] if name == "dot" else data


@pytest.mark.parametrize("safe", [False, True])
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_r_spellings_fit_as_lme4_fits_them(name, safe):
    ref = REFERENCE[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)  # '.' includes Subject: rank deficient, as in R
        m = mm.lmer(ref["formula"], data_for(name), safe=safe)
    assert list(m.fixef.index) == ref["beta_names"]
    assert m.objective == pytest.approx(ref["objective"], rel=1e-6)
    assert m.objective <= ref["objective"] + 1e-6 * abs(ref["objective"])
    np.testing.assert_allclose(m.fixef.to_numpy(), ref["beta"], rtol=1e-5, atol=1e-6 * np.abs(ref["beta"]).max())
    if name != "dot":  # '.' makes Subject a fixed factor too: its random intercept is not identified
        np.testing.assert_allclose(m.se.to_numpy(), ref["se"], rtol=1e-3)  # (lme4 warns; θ is arbitrary)


def test_predictions_replay_r_transforms_on_new_data():
    m = mm.lmer("Reaction ~ factor(Days) + ns(Days, 3) - 1 + (1 | Subject)", sleep_extra())
    new = pd.DataFrame({"Days": [2.0, 7.0], "Subject": ["308", "308"]})
    fitted = m.fitted[m.fitted.index[[2, 7]]].to_numpy()  # Subject 308's rows at days 2 and 7
    np.testing.assert_allclose(m.predict(new).to_numpy(), fitted, rtol=1e-10)


def test_python_spelling_of_each_r_form():
    assert python_part("I(Days^2)") == "I(Days**2)"
    assert python_part("poly(x, 2, raw = TRUE)") == "poly(x, 2, raw = True)"
    assert python_part("as.factor(x) + as.numeric(z)") == "as_factor(x) + as_numeric(z)"
    assert python_part("x %in% g") == "x : g"
    assert python_part("(a + b + c)^2") == "(a + b + c)^2"  # a formula power stays one
    assert python_part("ordered(x)") == "C(ordered(x), contr.poly)"
    assert python_part("`odd^name` + 'a^b'") == "`odd^name` + 'a^b'"  # quoted text untouched


def test_columns_get_r_names_whichever_spelling_was_used():
    assert r_spelling("I(Days ** 2)") == "I(Days^2)"
    assert r_spelling("poly(x, 2, raw=True)[1]") == "poly(x, 2, raw = TRUE)[1]"
    assert r_spelling("exp(Days / 10)") == "exp(Days/10)"
    assert r_spelling("as_factor(Days)[T.1]") == "as.factor(Days)[T.1]"
    assert r_spelling("C(ordered(Days), contr.poly).L") == "ordered(Days).L"
    assert r_spelling("np.log(Days + 1)") == "np.log(Days + 1)"
    m = mm.lmer("Reaction ~ Days + I(Days**2) + (1 | Subject)", mm.datasets.load("sleepstudy"))
    assert list(m.fixef.index) == ["(Intercept)", "Days", "I(Days^2)"]


def test_the_translation_is_idempotent():
    for text in ["I(Days^2) + factor(g)", "poly(x, 2, raw = TRUE)", "as.numeric(h) + x %in% g"]:
        once = python_part(text)
        assert python_part(once) == once


def test_bare_bar_is_a_random_term_as_in_lme4():
    parsed = parse_formula("Yield ~ 1 | Batch")
    assert parsed.text == "Yield ~ 1 | Batch"
    assert parsed.fixed == "1" and [t.group for t in parsed.random] == [("Batch",)]


def test_checked_formulas_accept_r_spellings_and_still_refuse_code():
    check_formula("Reaction ~ factor(Days) + I(Days^2) + poly(Days, 2, raw = TRUE) + (1 | Subject)")
    with pytest.raises(FormulaError):
        check_formula("Reaction ~ factor(__import__('os').getcwd()) + (1 | Subject)")


@pytest.mark.parametrize("call, hint", [
    ("relevel(g, 'b')", "C(x, contr.treatment('level'))"),
    ("interaction(a, b)", "a:b"),
    ("ifelse(x > 1, 1, 0)", "numpy.where"),
])
def test_unsupported_r_calls_say_the_python_spelling(call, hint):
    with pytest.raises(FormulaError, match="is not supported in formulas; write") as info:
        mm.lmer(f"Reaction ~ {call} + (1 | Subject)", sleep_extra())
    assert hint in str(info.value)


def test_factor_sorts_and_labels_levels_as_r():
    f = factor(np.array([2.0, 10.0, 1.0, 2.0]))
    assert list(f.categories) == ["1", "2", "10"]  # numeric order, R's labels
    assert list(factor(pd.Series([True, False])).categories) == ["FALSE", "TRUE"]
    cat = pd.Categorical(["b", "a"], categories=["b", "a", "unused"])
    assert list(factor(cat).categories) == ["b", "a"]  # category order kept, unused dropped


def test_as_numeric_of_a_factor_gives_its_codes():
    np.testing.assert_array_equal(as_numeric(pd.Categorical(["b", "a", "b"], categories=["b", "a"])), [1, 2, 1])
    np.testing.assert_array_equal(as_numeric(pd.Series([True, False])), [1, 0])


def test_ns_matches_r_splines_ns():
    # R: round(splines::ns(0:9, 3)[2:4, ], 6)
    expected = np.array([[-0.075653, 0.245478, -0.163652], [-0.098134, 0.442550, -0.295033],
                         [-0.014269, 0.542807, -0.361871]])
    basis = np.asarray(ns(np.arange(10.0), 3))
    np.testing.assert_allclose(basis[1:4], expected, atol=5e-7)
    np.testing.assert_allclose(basis[0], 0, atol=1e-12)


@pytest.mark.parametrize("safe", [False, True])
def test_trigonometric_terms_and_pi_as_r_writes_them(safe):
    """nlme's Ovary model written as in R: the same fit as with the precomputed columns, R's names."""
    ovary = pd.read_csv(Path(__file__).resolve().parents[1] / "fixtures" / "rspell" / "ovary.csv")
    r_way = mm.lmer("follicles ~ sin(2*pi*Time) + cos(2*pi*Time) + (1 | Mare)", ovary, safe=safe)
    columns = mm.lmer("follicles ~ sin2pi + cos2pi + (1 | Mare)", ovary, safe=safe)
    assert list(r_way.fixef.index) == ["(Intercept)", "sin(2 * pi * Time)", "cos(2 * pi * Time)"]
    np.testing.assert_allclose(r_way.fixef.to_numpy(), columns.fixef.to_numpy(), rtol=1e-9)
    assert r_way.objective == pytest.approx(columns.objective, rel=1e-12)
    numpy_way = mm.lmer("follicles ~ np.sin(2*np.pi*Time) + np.tan(Time) + (1 | Mare)", ovary, safe=safe)
    expected = np.column_stack([np.sin(2 * np.pi * ovary["Time"]), np.tan(ovary["Time"])])
    np.testing.assert_allclose(numpy_way.design.X[:, 1:], expected, rtol=1e-12)


def test_a_column_named_pi_masks_the_constant_as_in_r():
    ovary = pd.read_csv(Path(__file__).resolve().parents[1] / "fixtures" / "rspell" / "ovary.csv")
    m = mm.lmer("follicles ~ sin(2*pi*Time) + (1 | Mare)", ovary.assign(pi=0.5))
    np.testing.assert_allclose(m.design.X[:, 1], np.sin(ovary["Time"]), rtol=1e-12)
