"""m.anova(): type III F tests with Satterthwaite df against lmerTest 3.1-3's anova(m).

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
import pytest

import mixedmodels as mm
from reference import load_fixture_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "satterthwaite"
EXAM_LMERTEST = {  # term: (F value, Pr(>F))
    "standLRT": (777.1399123, 1.340238246e-34),
    "sex": (25.62731256, 4.326264182e-07),
    "I(standLRT ** 2)": (2.098179239, 1.476105628e-01),
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
    with pytest.raises(ValueError, match="type must be 3"):
        fit.anova(type=1)
