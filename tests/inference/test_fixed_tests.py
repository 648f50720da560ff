"""m.anova(): F tests with Satterthwaite/Kenward-Roger df against lmerTest 3.1-3's anova(m, type=).

The single-model fixtures in tests/fixtures/satterthwaite/ hold lmerTest's table
for each model; the Exam model (an interaction, a squared term and a 3-level
factor) was checked with:

    m <- lmerTest::lmer(normexam ~ standLRT * sex + I(standLRT^2) + schgend +
                        (standLRT | school), mlmRev::Exam); anova(m)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference.fixed_tests import fixed_terms_of, type1_contrasts
from reference import load_fixture_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "satterthwaite"
TOOLBOX = Path(__file__).resolve().parents[1] / "fixtures" / "toolbox"
TYPES = json.loads((TOOLBOX / "anova_types.json").read_text())
EXAM_LMERTEST = {  # term: (F value, Pr(>F))
    "standLRT": (777.1399123, 1.340238246e-34),
    "sex": (25.62731256, 4.326264182e-07),
    "I(standLRT^2)": (2.098179239, 1.476105628e-01),
    "schgend": (3.055570365, 5.407693476e-02),
    "standLRT:sex": (5.558977466e-03, 9.405910563e-01),
}


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_type3_tables_match_lmertest(path):
    ref = json.loads(path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.SingularFitWarning)  # cbpp's herd variance is zero
        fit = mm.lmer(ref["formula"], mm.datasets.load(ref["dataset"]), REML=ref["REML"])
    table = fit.anova().table
    assert list(table.index) == [row["term"] for row in ref["anova_type3"]]
    for row in ref["anova_type3"]:
        ours = table.loc[row["term"]]
        assert ours["NumDF"] == row["NumDF"]
        assert ours["F value"] == pytest.approx(row["F"], rel=0.01)
        assert ours["DenDF"] == pytest.approx(row["DenDF"], rel=0.01)
        assert abs(np.log10(ours["Pr(>F)"]) - np.log10(row["p"])) <= 0.05 * abs(np.log10(row["p"])) + 1e-9
        assert ours["Mean Sq"] == pytest.approx(ours["F value"] * fit.sigma**2)


def test_interaction_model_matches_lmertest():
    data = load_fixture_data("Exam")
    fit = mm.lmer("normexam ~ standLRT * sex + I(standLRT**2) + schgend + (standLRT | school)", data)
    out = fit.anova()
    assert list(out.table.index) == list(EXAM_LMERTEST)
    assert out.table.loc["schgend", "NumDF"] == 2
    for term, (F, p) in EXAM_LMERTEST.items():
        assert out.table.loc[term, "F value"] == pytest.approx(F, rel=0.01)
        assert abs(np.log10(out.table.loc[term, "Pr(>F)"]) - np.log10(p)) <= 0.05 * abs(np.log10(p))
    text = str(out)
    assert text.startswith("Type III Analysis of Variance Table with Satterthwaite's method")
    assert "Sum Sq Mean Sq NumDF" in text


def test_single_df_f_test_is_the_squared_t_test():
    fit = mm.lmer("Reaction ~ Days + (Days|Subject)", mm.datasets.load("sleepstudy"))
    t = fit.satterthwaite().loc["Days"]
    row = fit.anova().table.loc["Days"]
    assert row["F value"] == pytest.approx(t["t value"] ** 2, rel=1e-8)
    assert row["DenDF"] == pytest.approx(t["df"], rel=1e-8)
    with pytest.raises(ValueError, match="type must be one of"):
        fit.anova(type=4)


def _types_fit(case: dict) -> mm.LmerResult:
    data = load_fixture_data("Exam") if case["data"] == "Exam" else pd.read_csv(TOOLBOX / "sleepstudy_grp.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.RankDeficiencyWarning)
        return mm.lmer(case["formula"].replace("^2", "**2"), data)


@pytest.mark.parametrize("type", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(TYPES))
def test_type_1_2_3_tables_match_lmertest(name, type):
    """anova_types.R: an interaction with a covariate, a design with empty cells, Satterthwaite and KR."""
    case = TYPES[name]
    table = _types_fit(case).anova(type=type, ddf=case["ddf"]).table
    rows = case[f"type{type}"]
    assert list(table.index) == [row["term"] for row in rows]  # R's spelling: I(standLRT^2)
    for row in rows:
        ours = table.loc[row["term"]]
        if row["NumDF"] is None:  # every column of the term aliased: an empty row, as lmerTest
            assert ours.isna().all()
            continue
        assert ours["NumDF"] == row["NumDF"]
        assert ours["F value"] == pytest.approx(row["F value"], rel=1e-3)
        assert ours["DenDF"] == pytest.approx(row["DenDF"], rel=1e-3)
        assert ours["Pr(>F)"] == pytest.approx(row["Pr(>F)"], rel=1e-2)
        assert ours["Sum Sq"] == pytest.approx(row["Sum Sq"], rel=1e-3)


def test_missing_cells_are_noted_as_lmertest_notes_them():
    case = TYPES["exam_missing_cells"]
    fit = _types_fit(case)
    text = str(fit.anova())
    assert text.startswith("Missing cells for: schgendboys:sexF, schgendgirls:sexM. \n"
                           "Interpret type III hypotheses with care.\n"
                           "Type III Analysis of Variance Table with Satterthwaite's method")
    assert "\nschgend:sex\n" in text  # the untestable term prints as an empty row (R's na.print = "")
    assert "Missing" not in str(fit.anova(type=2))
    assert str(fit.anova(type="I")).startswith("Type I Analysis of Variance Table")


def test_sequential_contrasts_are_unit_upper_triangular():
    """Type I rows come from XᵀX = UᵀDU (U unit upper triangular, lmerTest's doolittle): a term is
    adjusted for the terms before it only, so the last term's test is its marginal test."""
    data = pd.read_csv(TOOLBOX / "sleepstudy_grp.csv")
    fit = mm.lmer("Reaction ~ Days + grp + (1 | Subject)", data)
    X = fit.design.X
    L = np.vstack(list(type1_contrasts(X, fixed_terms_of(fit)).values()))
    assert np.allclose(L, np.triu(L)) and np.allclose(np.diag(L[:, 1:]), 1.0)
    XtX = X.T @ X
    U = np.vstack([XtX[:1] / XtX[0, 0], L])  # the intercept's row: adjusted for nothing
    D = np.linalg.solve(U.T, np.linalg.solve(U.T, XtX).T)  # U⁻ᵀ XᵀX U⁻¹
    assert D == pytest.approx(np.diag(np.diag(D)), abs=1e-8 * np.abs(D).max())
    last_1, last_3 = fit.anova(type=1).table.loc["grp"], fit.anova(type=3).table.loc["grp"]
    assert last_1["F value"] == pytest.approx(last_3["F value"], rel=1e-10)
