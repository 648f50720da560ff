"""Model features beyond the basic references: weights, offsets, factor slopes,
``a:b`` and three-level grouping, formula transforms, missing values, data types
of grouping factors, and the error paths of ``lmer``.

The numbers come from lme4 1.1-31 (``tests/fixtures/reference_extra``, see its
README) on the data in ``tests/fixtures/data``.  Tolerances are those of
``test_lmer_reference.py``: objective within 1e-6 relative (or lower), fixed
effects within 2% of their SE, SEs within 2%, σ within 0.2%, VarCorr rows within
2%, conditional modes within 2% of their conditional SD, conditional SDs within 2%.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import RankDeficiencyWarning
from agreement import (check_conditional_modes, check_fixed_effects, check_icc_r2, check_objective,
                       check_sigma_and_theta, check_varcorr)
from reference import load_extra_reference, load_fixture_data

LMM_EXTRA = [
    "sleepstudy_weights",
    "sleepstudy_offset",
    "factor_slope",
    "interaction_group",
    "three_level",
    "fixed_terms",
    "fixed_transforms",
    "missing_rows",
    "ml_crossed",
]

# Fixed-effect names where the Python spelling of the formula differs from R's.
PY_NAMES = {  # the tests fit the Python spellings (formula_py); columns get R's names except np.log
    "log(Days + 1)": "np.log(Days + 1)",
}

# performance 0.10.2 computes the random-slope variance from the *fixed-effects*
# model matrix, which for (0 + f | g) lacks the column `fa`; its icc/r2 for this
# model are therefore not Johnson's (2014) values.  We check ours by hand below.
# performance 0.10.2's ICC for factor slopes is not Johnson's; checked by hand below instead
PERFORMANCE_COMPARABLE = [i for i in LMM_EXTRA if i != "factor_slope"]

_FITS: dict[str, tuple[dict, mm.LmerResult]] = {}


def fit_reference(ref: dict, data: pd.DataFrame | None = None) -> mm.LmerResult:
    data = load_fixture_data(ref["dataset"]) if data is None else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)
        return mm.lmer(
            ref["formula_py"], data, REML=ref["REML"],
            weights=ref.get("weights"), offset=ref.get("offset"),
        )


def fitted(ref_id: str) -> tuple[dict, mm.LmerResult]:
    """Fit each reference model once per test session."""
    if ref_id not in _FITS:
        ref = load_extra_reference(ref_id)
        _FITS[ref_id] = (ref, fit_reference(ref))
    return _FITS[ref_id]


@pytest.fixture(params=LMM_EXTRA)
def case(request):
    return fitted(request.param)


# ----- agreement with lme4 ------------------------------------------------------------


def test_objective_matches_or_beats_lme4(case):
    ref, fit = case
    check_objective(fit, ref)
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert fit.REML == ref["REML"]


def test_sizes(case):
    ref, fit = case
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngrps"]
    assert fit.nobs + fit.n_dropped == len(load_fixture_data(ref["dataset"]))


def test_fixed_effects_and_standard_errors(case):
    ref, fit = case
    check_fixed_effects(fit, ref, PY_NAMES)
    assert list(fit.vcov.index) == list(fit.fixef.index)


def test_sigma_and_theta(case):
    ref, fit = case
    check_sigma_and_theta(fit, ref)


def test_varcorr_rows(case):
    ref, fit = case
    check_varcorr(fit, ref)


def _text(value):
    return None if pd.isna(value) else value


def test_conditional_modes_and_sds(case):
    ref, fit = case
    check_conditional_modes(fit, ref)


@pytest.mark.parametrize("ref_id", PERFORMANCE_COMPARABLE)
def test_icc_and_r2(ref_id):
    ref, fit = fitted(ref_id)
    assert ref["icc"] and ref["r2"]
    check_icc_r2(fit, ref)


def test_factor_slope_icc_is_johnsons():
    """For (0 + f | g) each observation's random-effect variance is Σ[f, f]: the mean
    over observations is the mean of the diagonal weighted by the level counts."""
    ref, fit = fitted("factor_slope")
    data = load_fixture_data(ref["dataset"])
    vc = fit.varcorr
    var = {r.var1: r.vcov for r in vc.itertuples() if r.grp == "g" and pd.isna(r.var2)}
    re = data["f"].map(lambda lev: var[f"f{lev}"]).astype(float).mean()
    resid = fit.sigma**2
    assert fit.icc()["adjusted"] == pytest.approx(re / (re + resid), rel=1e-8)
    # the 3×3 covariance: three variances and three correlations in lme4's order
    assert [(r.var1, _text(r.var2)) for r in vc.itertuples() if r.grp == "g"] == [
        ("fa", None), ("fb", None), ("fc", None), ("fa", "fb"), ("fa", "fc"), ("fb", "fc"),
    ]
    assert fit.covariances[0].shape == (3, 3)


def test_fixed_effect_names_follow_r_for_factors():
    """Treatment contrasts against the first category: R's schgendboys, sexM, standLRT:sexM."""
    _, fit = fitted("fixed_terms")
    names = list(fit.fixef.index)
    assert {"sexM", "schgendboys", "schgendgirls", "standLRT:sexM"} <= set(names)
    assert "schgendmixed" not in names and "sexF" not in names


# ----- weights and offsets ---------------------------------------------------------------


def test_weights_and_offset_as_vectors_equal_column_names():
    data = load_fixture_data("sleepstudyWO")
    by_name = mm.lmer("Reaction ~ Days + (Days | Subject)", data, weights="w")
    by_vector = mm.lmer("Reaction ~ Days + (Days | Subject)", data, weights=data["w"].to_numpy())
    assert by_vector.objective == pytest.approx(by_name.objective, rel=1e-10)
    off_name = mm.lmer("Reaction ~ Days + (1 | Subject)", data, offset="o")
    off_series = mm.lmer("Reaction ~ Days + (1 | Subject)", data, offset=data["o"])
    assert off_series.objective == pytest.approx(off_name.objective, rel=1e-10)


def test_offset_shifts_slope_and_fitted_values():
    """An offset of 2·Days lowers the Days slope by exactly 2; fitted values include it."""
    data = load_fixture_data("sleepstudyWO")
    plain = mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    shifted = mm.lmer("Reaction ~ Days + (1 | Subject)", data, offset="o")
    assert shifted.objective == pytest.approx(plain.objective, rel=1e-8)
    assert shifted.fixef["Days"] == pytest.approx(plain.fixef["Days"] - 2, abs=1e-6)
    np.testing.assert_allclose(shifted.fitted, plain.fitted, rtol=1e-7)
    assert "Offset" in str(shifted.summary())


def test_unit_weights_equal_no_weights():
    data = load_fixture_data("sleepstudyWO")
    plain = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    ones = mm.lmer("Reaction ~ Days + (Days | Subject)", data, weights=np.ones(len(data)))
    assert ones.objective == pytest.approx(plain.objective, rel=1e-10)
    np.testing.assert_allclose(ones.fixef, plain.fixef, rtol=1e-7)


# ----- missing values -------------------------------------------------------------------

NA_ROWS = sorted([4, 22, 76, 139, 170] + [9, 49, 99])  # 0-based rows with NA Reaction / Days


def test_missing_rows_are_dropped_and_counted():
    ref, fit = fitted("missing_rows")
    data = load_fixture_data("sleepstudyNA")
    assert sorted(np.flatnonzero(data[["Reaction", "Days"]].isna().any(axis=1))) == NA_ROWS
    assert fit.n_dropped == 8
    assert fit.nobs == ref["nobs"] == 172
    assert list(fit.rows_used) == [i for i in range(180) if i not in NA_ROWS]
    assert list(fit.fitted.index) == list(fit.rows_used)
    assert list(fit.residuals.index) == list(fit.rows_used)
    assert "(8 observations deleted due to missingness)" in str(fit.summary())


def test_missing_rows_equal_fit_on_complete_cases():
    data = load_fixture_data("sleepstudyNA")
    with_na = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    complete = mm.lmer("Reaction ~ Days + (Days | Subject)", data.dropna())
    assert complete.n_dropped == 0
    assert with_na.objective == pytest.approx(complete.objective, rel=1e-10)
    np.testing.assert_allclose(with_na.fixef, complete.fixef, rtol=1e-7)


def test_rows_used_are_labels_of_a_non_default_index():
    data = load_fixture_data("sleepstudyNA")
    data.index = [f"r{i}" for i in range(len(data))]
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    assert list(fit.rows_used) == [f"r{i}" for i in range(180) if i not in NA_ROWS]
    assert list(fit.fitted.index) == list(fit.rows_used)


def test_missing_value_in_unused_column_drops_nothing():
    data = load_fixture_data("sleepstudy")
    data["unused"] = np.nan
    fit = mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    assert fit.n_dropped == 0 and fit.nobs == 180


def test_missing_weight_drops_its_row():
    data = load_fixture_data("sleepstudyWO")
    w = data["w"].to_numpy().copy()
    w[[0, 5]] = np.nan
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data, weights=w)
    assert fit.n_dropped == 2 and fit.nobs == 178
    assert 0 not in fit.rows_used and 5 not in fit.rows_used


def test_caller_data_is_unchanged():
    data = load_fixture_data("sleepstudyNA")
    data["w"] = 1 + (np.nan_to_num(data["Days"].to_numpy()) % 3) / 2
    data["Subject"] = data["Subject"].cat.add_categories(["999"])
    before = data.copy(deep=True)
    fit = mm.lmer("Reaction ~ Days + I(Days**2) + (Days | Subject)", data, weights="w", REML=False)
    _ = (fit.fixef, fit.ranef, fit.fitted, fit.summary(), fit.tidy("fixed"), fit.varcorr)
    pd.testing.assert_frame_equal(data, before)
    assert list(data["Subject"].cat.categories) == list(before["Subject"].cat.categories)


# ----- grouping factors -----------------------------------------------------------------


def _sleep_as(dtype: str) -> pd.DataFrame:
    data = load_fixture_data("sleepstudy")
    subject = data["Subject"].astype(str)
    if dtype == "int":
        data["Subject"] = subject.astype(np.int64)
    elif dtype == "str":
        data["Subject"] = subject.astype(object)
    elif dtype == "string":
        data["Subject"] = subject.astype("string")
    elif dtype == "float":
        data["Subject"] = subject.astype(float)
    return data


@pytest.mark.parametrize("dtype", ["int", "str", "string", "float"])
def test_grouping_dtype_does_not_matter(dtype):
    reference = mm.lmer("Reaction ~ Days + (Days | Subject)", _sleep_as("category"))
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", _sleep_as(dtype))
    assert fit.objective == pytest.approx(reference.objective, rel=1e-10)
    assert fit.ngroups == {"Subject": 18}
    np.testing.assert_allclose(fit.ranef["Subject"].to_numpy(), reference.ranef["Subject"].to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_unused_categories_of_grouping_factor_are_dropped():
    data = load_fixture_data("sleepstudy")
    data["Subject"] = data["Subject"].cat.add_categories(["900", "901"])
    keep = ~data["Subject"].isin(["308", "309"])
    subset = data[keep]
    assert len(subset["Subject"].cat.categories) == 20
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", subset)
    assert fit.ngroups == {"Subject": 16}
    assert len(fit.ranef["Subject"]) == 16
    assert not {"308", "309", "900", "901"} & set(map(str, fit.ranef["Subject"].index))
    plain = subset.copy()
    plain["Subject"] = plain["Subject"].astype(str)
    assert fit.objective == pytest.approx(mm.lmer("Reaction ~ Days + (Days | Subject)", plain).objective, rel=1e-10)


def test_interaction_grouping_equals_a_combined_column():
    """(1 | batch:cask) is the same model as (1 | sample) with sample = batch:cask."""
    _, fit = fitted("interaction_group")
    data = load_fixture_data("Pastes")
    combined = mm.lmer("strength ~ 1 + (1 | sample)", data)
    assert fit.objective == pytest.approx(combined.objective, rel=1e-10)
    assert fit.ngroups == {"batch:cask": 30}
    assert list(fit.ranef["batch:cask"].index[:3]) == ["A:a", "A:b", "A:c"]


def test_three_level_nesting_expands_like_lme4():
    """(1 | school/class) is (1 | school) + (1 | school:class), named 'class:school'."""
    ref, fit = fitted("three_level")
    data = load_fixture_data("ThreeLevel")
    explicit = mm.lmer("score ~ ses + (1 | school) + (1 | class:school)", data)
    assert explicit.objective == pytest.approx(fit.objective, rel=1e-10)
    assert fit.ngroups == ref["ngrps"] == {"class:school": 80, "school": 20}


# ----- categorical fixed effects --------------------------------------------------------


def test_categorical_fixed_effect_uses_first_category_as_reference():
    data = load_fixture_data("Exam")
    data["sex"] = data["sex"].cat.reorder_categories(["M", "F"])
    fit = mm.lmer("normexam ~ standLRT + sex + (1 | school)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "standLRT", "sexF"]
    # same model as with F first: the sex effect changes sign
    other = mm.lmer("normexam ~ standLRT + sex + (1 | school)", load_fixture_data("Exam"))
    assert list(other.fixef.index) == ["(Intercept)", "standLRT", "sexM"]
    assert fit.fixef["sexF"] == pytest.approx(-other.fixef["sexM"], rel=1e-6)
    assert fit.objective == pytest.approx(other.objective, rel=1e-9)


def test_string_fixed_effect_uses_sorted_first_level_as_reference():
    """A plain string column is a factor with sorted levels, as R's factor()."""
    data = load_fixture_data("Exam")
    data["schgend"] = data["schgend"].astype(str)
    fit = mm.lmer("normexam ~ standLRT + schgend + (1 | school)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "standLRT", "schgendgirls", "schgendmixed"]


# ----- error paths ----------------------------------------------------------------------


@pytest.fixture
def sleep():
    return load_fixture_data("sleepstudy")


def test_unknown_fixed_column_suggests_a_name(sleep):
    with pytest.raises(mm.DataError, match="Did you mean 'Days'"):
        mm.lmer("Reaction ~ Dayz + (1 | Subject)", sleep)


def test_unknown_grouping_column_suggests_a_name(sleep):
    with pytest.raises(mm.DataError, match="Did you mean 'Subject'"):
        mm.lmer("Reaction ~ Days + (1 | Subjct)", sleep)


def test_unknown_random_slope_column_suggests_a_name(sleep):
    with pytest.raises(mm.DataError, match="Did you mean 'Days'"):
        mm.lmer("Reaction ~ Days + (Dys | Subject)", sleep)


def test_no_random_term_is_a_formula_error(sleep):
    with pytest.raises(mm.FormulaError):
        mm.lmer("Reaction ~ Days", sleep)


def test_grouping_factor_with_one_level(sleep):
    sleep["one"] = "a"
    with pytest.raises(mm.DataError, match="level"):
        mm.lmer("Reaction ~ Days + (1 | one)", sleep)


def test_grouping_factor_with_one_used_level(sleep):
    """Only one level left after dropping missing rows is still one level."""
    sleep["g"] = np.where(np.arange(180) < 90, "a", "b")
    sleep.loc[90:, "Reaction"] = np.nan
    with pytest.raises(mm.DataError, match="level"):
        mm.lmer("Reaction ~ Days + (1 | g)", sleep)


def test_grouping_factor_as_many_levels_as_observations(sleep):
    sleep["id"] = np.arange(len(sleep))
    with pytest.raises(mm.DataError):
        mm.lmer("Reaction ~ Days + (1 | id)", sleep)


@pytest.mark.parametrize(
    "weights",
    [np.ones(10), np.r_[-1.0, np.ones(179)], np.r_[np.inf, np.ones(179)], "nonexistent"],
    ids=["short", "negative", "infinite", "unknown-column"],
)
def test_bad_weights(sleep, weights):
    with pytest.raises(mm.DataError):
        mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights=weights)


@pytest.mark.parametrize("offset", [np.ones(179), np.r_[np.inf, np.zeros(179)]], ids=["short", "infinite"])
def test_bad_offset(sleep, offset):
    with pytest.raises(mm.DataError):
        mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, offset=offset)


@pytest.mark.parametrize("column", ["text", "Subject"])
def test_non_numeric_response(sleep, column):
    sleep["text"] = sleep["Reaction"].map(lambda v: f"t{v:.0f}")
    with pytest.raises(mm.DataError):
        mm.lmer(f"{column} ~ Days + (1 | Subject)", sleep)


def test_infinite_predictor_is_a_data_error(sleep):
    sleep["x"] = sleep["Days"].astype(float)
    sleep.loc[3, "x"] = np.inf
    with pytest.raises(mm.DataError, match="x"):
        mm.lmer("Reaction ~ x + (1 | Subject)", sleep)


def test_all_rows_missing_is_a_data_error(sleep):
    sleep["Reaction"] = np.nan
    with pytest.raises(mm.DataError):
        mm.lmer("Reaction ~ Days + (1 | Subject)", sleep)


def test_duplicated_column_is_dropped_with_a_warning(sleep):
    sleep["Days2"] = sleep["Days"] * 1.0
    with pytest.warns(RankDeficiencyWarning, match="Days2"):
        fit = mm.lmer("Reaction ~ Days + Days2 + (Days | Subject)", sleep)
    plain = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]
    assert fit.objective == pytest.approx(plain.objective, rel=1e-10)
    np.testing.assert_allclose(fit.fixef, plain.fixef, rtol=1e-7)
    np.testing.assert_allclose(fit.se, plain.se, rtol=1e-6)
    assert fit.df == plain.df
    assert "Days2" in str(fit.summary())


def test_collinear_combination_is_dropped(sleep):
    """A column equal to a linear combination of others (not a plain copy) is aliased too."""
    sleep["z"] = 3.0 - 2.0 * sleep["Days"]
    with pytest.warns(RankDeficiencyWarning, match="'z'"):
        fit = mm.lmer("Reaction ~ Days + z + (1 | Subject)", sleep)
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]


def test_offset_in_formula_equals_offset_argument():
    data = load_fixture_data("sleepstudyWO")
    in_formula = mm.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", data)
    ref, by_argument = fitted("sleepstudy_offset")
    assert in_formula.objective == pytest.approx(ref["objective"], rel=1e-8)
    np.testing.assert_allclose(in_formula.fixef, by_argument.fixef, rtol=1e-7)


def test_unused_category_of_fixed_factor_is_dropped_silently():
    """lme4 builds its model frame with drop.unused.levels = TRUE: a category with no
    (complete) rows gives no column and no rank-deficiency warning."""
    data = load_fixture_data("Exam")
    subset = data[data["schgend"] != "girls"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankDeficiencyWarning)
        fit = mm.lmer("normexam ~ standLRT + schgend + (1 | school)", subset)
    assert list(fit.fixef.index) == ["(Intercept)", "standLRT", "schgendboys"]
    assert not fit.design.dropped_columns
    assert "rank deficient" not in str(fit.summary())


def test_missing_values_in_grouping_factor_and_slope_drop_rows():
    data = load_fixture_data("sleepstudyWO")
    data.loc[[3, 40], "Subject"] = np.nan  # missing group (categorical NA)
    data["x"] = data["Days"].astype(float)
    data.loc[[7], "x"] = np.nan  # used only in the random part
    fit = mm.lmer("Reaction ~ Days + (x | Subject)", data)
    assert fit.n_dropped == 3 and fit.nobs == 177
    assert not {3, 7, 40} & set(fit.rows_used)
    complete = mm.lmer("Reaction ~ Days + (x | Subject)", data.drop(index=[3, 7, 40]))
    assert fit.objective == pytest.approx(complete.objective, rel=1e-10)


def test_missing_category_of_fixed_factor_drops_rows():
    data = load_fixture_data("Exam")
    data.loc[[0, 10, 20], "sex"] = np.nan
    fit = mm.lmer("normexam ~ standLRT + sex + (1 | school)", data)
    assert fit.n_dropped == 3 and fit.nobs == len(data) - 3


def test_unused_category_of_random_term_factor_gives_no_random_effect():
    """(0 + f | g) with an unused category of f (as after subsetting a DataFrame) is the
    3×3 model lme4 fits, not a 4×4 one with a phantom, unidentified variance."""
    ref, _ = fitted("factor_slope")
    data = load_fixture_data("FactorSlope")
    data["f"] = data["f"].cat.add_categories(["z"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankDeficiencyWarning)
        fit = fit_reference(ref, data)
    assert fit.theta_names == ref["theta_names"]
    assert fit.df == ref["df"]
    assert fit.objective == pytest.approx(ref["objective"], rel=1e-6)
    assert len(fit.varcorr) == len(ref["varcorr"])


# ----- R's coding of ordered factors and logicals ----------------------------------------
# lme4 1.1-31: d <- sleepstudy; d$ph <- factor(cut(d$Days, c(-1, 2, 5, 9),
#   labels = c("a", "b", "c")), ordered = TRUE); lmer(Reaction ~ ph + (1 | Subject), d)
ORDERED_REF = {
    "REMLcrit": 1798.41103817471,
    "fixef": {"(Intercept)": 295.05294722222101, "ph.L": 47.68202843645644, "ph.Q": 2.04081392563737},
    "se": {"(Intercept)": 9.05615103374939, "ph.L": 4.20985534732143, "ph.Q": 4.40576617326674},
}


def _sleep_phases() -> pd.DataFrame:
    data = load_fixture_data("sleepstudy")
    phase = pd.cut(data["Days"], [-1, 2, 5, 9], labels=["a", "b", "c"])
    data["ph"] = pd.Categorical(phase, categories=["a", "b", "c"], ordered=True)
    return data


def test_ordered_factor_ml_fit_is_the_same_model():
    """Contrasts only reparametrise X: the ML fit (not REML's) is invariant to them."""
    ordered = _sleep_phases()
    plain = ordered.assign(ph=ordered["ph"].cat.as_unordered())
    a = mm.lmer("Reaction ~ ph + (1 | Subject)", ordered, REML=False)
    b = mm.lmer("Reaction ~ ph + (1 | Subject)", plain, REML=False)
    assert a.objective == pytest.approx(b.objective, rel=1e-9)


def test_ordered_factor_uses_polynomial_contrasts_as_r():
    """R codes an ordered factor by contr.poly (ph.L, ph.Q), also in lme4; the bundled
    InstEval (studage, lectage) and VerbAgg load such columns as ordered Categoricals.
    The REML criterion depends on the coding of X (log|XᵀV⁻¹X|): with treatment
    coding it is 1797.312, log 3 below lme4's."""
    fit = mm.lmer("Reaction ~ ph + (1 | Subject)", _sleep_phases())
    assert list(fit.fixef.index) == list(ORDERED_REF["fixef"])
    se = pd.Series(ORDERED_REF["se"])
    assert np.all(np.abs(fit.fixef - pd.Series(ORDERED_REF["fixef"])) <= 0.02 * se)
    assert fit.objective == pytest.approx(ORDERED_REF["REMLcrit"], rel=1e-6)


def test_logical_fixed_effect_is_named_as_r():
    """R names the column of a logical x 'xTRUE' (lme4: '(Intercept)', 'lateTRUE')."""
    data = load_fixture_data("sleepstudy")
    data["late"] = data["Days"] > 4
    fit = mm.lmer("Reaction ~ late + (1 | Subject)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "lateTRUE"]
