import pickle
import warnings

import pytest

from mixedmodels.errors import (
    ConvergenceWarning,
    DataError,
    DroppedRowsWarning,
    FamilyError,
    FormulaError,
    MixedModelsError,
    MixedModelsWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
    did_you_mean,
)


@pytest.mark.parametrize("cls", [FormulaError, DataError, FamilyError])
def test_errors_are_value_errors(cls):
    assert issubclass(cls, MixedModelsError)
    assert issubclass(cls, ValueError)
    with pytest.raises(ValueError):
        raise cls("bad")


@pytest.mark.parametrize(
    "cls", [ConvergenceWarning, SingularFitWarning, RankDeficiencyWarning, DroppedRowsWarning]
)
def test_warnings_share_a_base(cls):
    assert issubclass(cls, MixedModelsWarning)
    assert issubclass(cls, UserWarning)
    with pytest.warns(MixedModelsWarning):
        warnings.warn("careful", cls)


def test_formula_error_shows_caret_under_position():
    err = FormulaError("unmatched ')'", "y ~ x)", 5)
    assert str(err) == "unmatched ')'\n  y ~ x)\n       ^"
    assert (err.message, err.formula, err.position) == ("unmatched ')'", "y ~ x)", 5)


def test_formula_error_without_context_is_just_the_message():
    err = FormulaError("oops")
    assert str(err) == "oops"
    assert err.formula is None and err.position is None


def test_formula_error_with_formula_only_shows_formula():
    assert str(FormulaError("no tilde", "y x")) == "no tilde\n  y x"


def test_formula_error_keeps_caret_aligned_across_newlines():
    err = FormulaError("bad", "y ~\n\tx)", 6)
    lines = str(err).splitlines()
    assert lines[1] == "  y ~  x)"
    assert lines[2].index("^") == lines[1].index(")")


def test_formula_error_pickles_with_context():
    err = pickle.loads(pickle.dumps(FormulaError("bad", "y ~ (", 4)))
    assert (err.formula, err.position) == ("y ~ (", 4)
    assert str(err).endswith("      ^")


def test_did_you_mean_suggests_close_name():
    assert did_you_mean("days", ["Reaction", "Days", "Subject"]) == " Did you mean 'Days'?"
    assert did_you_mean("Subjct", iter(["Reaction", "Days", "Subject"])) == (
        " Did you mean 'Subject'?"
    )


def test_did_you_mean_is_empty_when_nothing_is_close():
    assert did_you_mean("zzz", ["Reaction", "Days"]) == ""
    assert did_you_mean("Days", []) == ""


def test_warnings_point_at_the_callers_line():
    """Fit warnings name the user's file and line, not a line inside the package."""
    import numpy as np
    import warnings

    import mixedmodels as mm

    data = mm.datasets.load("sleepstudy")
    data.loc[[3, 7], "Reaction"] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mm.lmer("Reaction ~ Days + (Days|Subject)", data)
    dropped = [w for w in caught if issubclass(w.category, mm.DroppedRowsWarning)]
    assert len(dropped) == 1 and dropped[0].filename == __file__
    assert "2 of 180 rows have missing values (in 'Reaction')" in str(dropped[0].message)
    assert fit.n_dropped == 2
