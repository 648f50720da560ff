"""nlme's constructors, call strings and keywords (mixedmodels.design.nlme) give the structures of
design.residual, and refuse what is not offered with errors that say what exists."""

from __future__ import annotations

import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.design.nlme import UNAVAILABLE, from_string, reml_of, structures
from mixedmodels.errors import DataError, FormulaError, MixedModelsError

COLUMNS = pd.Index(["y", "week", "id", "arm", "w", "dose"])


@pytest.mark.parametrize("written, structure", [
    (mm.corAR1(form="~ week | id"), mm.AR1(time="week", group="id")),
    (mm.corAR1(), mm.AR1()),
    (mm.corAR1(form="~ 1 | id"), mm.AR1(group="id")),
    (mm.corCAR1(form="~ week | id"), mm.CAR1(time="week", group="id")),
    (mm.corCompSymm(form="~ 1 | id"), mm.CompSymm(group="id")),
    (mm.corSymm(form="~ week | id", fixed=False), mm.Symm(time="week", group="id")),
    (mm.varIdent(form="~ 1 | arm"), mm.VarIdent("arm")),
    (mm.varPower(form="~ dose"), mm.VarPower("dose")),
    (from_string("corAR1(form = ~ week | id)"), mm.AR1(time="week", group="id")),
    (from_string("nlme::corCAR1(form=~week|id, fixed = F)"), mm.CAR1(time="week", group="id")),
    (from_string("corCompSymm(form = ~ 1 | id)"), mm.CompSymm(group="id")),
    (from_string("corSymm(form = ~ 1 | `id`)"), mm.Symm(group="id")),
    (from_string("varIdent(form = ~ 1 | arm)"), mm.VarIdent("arm")),
    (from_string("varPower(form = ~dose)"), mm.VarPower("dose")),
])
def test_nlme_spellings_are_the_structures(written, structure):
    assert written == structure
    assert written.formula() == structure.formula()  # nlme's form, as the summary prints it


@pytest.mark.parametrize("name", sorted(UNAVAILABLE))
def test_nlme_structures_not_offered_name_what_exists(name):
    with pytest.raises(FormulaError, match=f"{name}\\(\\) is nlme's .* not have; correlation= takes corAR1, "
                                           "corCAR1, corCompSymm, corSymm and weights= takes varIdent, varPower"):
        from_string(f"{name}(form = ~ week | id)")


@pytest.mark.parametrize("text, error, message", [
    ("corAr1(form = ~ week | id)", FormulaError, "Did you mean 'corAR1'"),
    ("corAR1(0.5, form = ~ week | id)", DataError, "value= .* is not supported"),
    ("corSymm(value = c(0.1, 0.2), form = ~ 1 | id)", DataError, "value= .* is not supported"),
    ("corAR1(form = ~ week | id, fixed = TRUE)", DataError, "fixed = TRUE .* is not supported"),
    ("corAR1(form = ~ week | id, fixed = yes)", FormulaError, "takes TRUE or FALSE"),
    ("corAR1(form = ~ week | id, form = ~ 1 | id)", FormulaError, "form is given twice"),
    ("corAR1(0, ~ 1 | id, FALSE, 1)", FormulaError, "a fourth unnamed argument"),
    ("corAR1(method = 'ML')", FormulaError, "takes value, form and fixed, not method"),
    ("corAR1(value = x)", FormulaError, "value= takes numbers"),
    ("varIdent(~ 1 | arm)", FormulaError, "the first unnamed argument is nlme's value=, not the formula; "
                                          "write form = ~ 1 \\| arm"),
    ("corAR1(form = ~ week | id / day)", FormulaError, "nested groups"),
    ("varIdent(form = ~ 1)", FormulaError, "varIdent\\(\\) takes form = '~ 1 \\| stratum'"),
    ("varIdent(form = ~ dose | arm)", FormulaError, "varIdent\\(\\) takes form"),
    ("varIdent()", FormulaError, "varIdent\\(\\) takes form"),
    ("varPower()", DataError, "fitted values"),
    ("varPower(form = ~ dose | arm)", FormulaError, "a power per stratum"),
    ("varPower(form = ~ fitted(.))", FormulaError, "not allowed here"),
])
def test_what_is_not_offered_is_refused(text, error, message):
    with pytest.raises(error, match=message):
        from_string(text)


def test_constructor_arguments_are_checked_as_the_strings_are():
    with pytest.raises(DataError, match="value="):
        mm.corAR1(0.3, form="~ week | id")
    with pytest.raises(DataError, match="fixed = TRUE"):
        mm.varIdent(form="~ 1 | arm", fixed=True)
    with pytest.raises(FormulaError, match="starting with '~'"):
        mm.corAR1(form="week | id")
    with pytest.raises(FormulaError, match="write form = ~ 1 \\| arm"):
        mm.varIdent("~ 1 | arm")


# ----- correlation=, weights=, variance=, method= ------------------------------------------------
def test_correlation_and_weights_become_structures():
    got = structures(None, "corAR1(form = ~ week | id)", None, "varIdent(form = ~ 1 | arm)", COLUMNS)
    assert (got.correlation, got.variance, got.prior_weights) == (mm.AR1("week", "id"), mm.VarIdent("arm"), None)
    got = structures(mm.corCAR1(form="~ week | id"), None, mm.varPower(form="~ dose"), None, COLUMNS)
    assert (got.correlation, got.variance) == (mm.CAR1("week", "id"), mm.VarPower("dose"))


def test_a_column_or_a_vector_given_as_weights_stays_lme4s_prior_weights():
    assert structures(None, None, None, "w", COLUMNS).prior_weights == "w"
    vector = [1.0, 2.0]
    assert structures(None, None, None, vector, COLUMNS).prior_weights is vector
    odd = pd.Index([*COLUMNS, "varIdent(form = ~ 1 | arm)"])  # a column of that name is a column
    assert structures(None, None, None, "varIdent(form = ~ 1 | arm)", odd).prior_weights == "varIdent(form = ~ 1 | arm)"


@pytest.mark.parametrize("arguments, message", [
    (dict(residual=mm.AR1(), correlation=mm.corAR1()), "residual= and correlation= give the same structure"),
    (dict(variance=mm.VarIdent("arm"), weights="varIdent(form = ~ 1 | arm)"), "variance= and weights= give"),
    (dict(correlation=mm.varIdent(form="~ 1 | arm")), "is a variance function: give it as weights="),
    (dict(correlation="varPower(form = ~ dose)"), "is a variance function"),
    (dict(weights=mm.corAR1(form="~ week | id")), "is a correlation structure: give it as correlation="),
    (dict(variance="corCompSymm(form = ~ 1 | id)"), "is a correlation structure"),
    (dict(correlation=0.5), "correlation= takes an nlme structure"),
    (dict(weights="~ dose"), "varFixed"),
])
def test_mixed_up_arguments_are_refused(arguments, message):
    given = dict(residual=None, correlation=None, variance=None, weights=None) | arguments
    with pytest.raises(MixedModelsError, match=message):
        structures(given["residual"], given["correlation"], given["variance"], given["weights"], COLUMNS)


def test_gls_has_no_prior_weights():
    with pytest.raises(DataError, match="gls's weights= takes an nlme variance function .* not 'w'"):
        structures(None, None, None, "w", COLUMNS, prior_weights=False)


@pytest.mark.parametrize("REML, method, expected", [
    (None, None, True), (False, None, False), (None, "ML", False), (None, "REML", True), (True, "REML", True),
    (False, "ML", False), (None, "M", False),
])
def test_method_is_nlmes_REML(REML, method, expected):
    assert reml_of(REML, method) is expected


@pytest.mark.parametrize("REML, method, message", [
    (True, "ML", "disagree"), (False, "REML", "disagree"), (None, "GLS", "method must be one of 'REML', 'ML'"),
])
def test_method_and_REML_disagreeing_or_unknown(REML, method, message):
    with pytest.raises(MixedModelsError, match=message):
        reml_of(REML, method)
