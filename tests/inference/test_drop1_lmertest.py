"""mm.drop1(m, test="F"): lmerTest 3.1-3's drop1 of an lmer fit (what R gives with lmerTest attached),
against tests/fixtures/parity/sweep.R on sleepstudy and Orthodont."""

from __future__ import annotations

import pytest

import mixedmodels as mm
from parity import SWEEP, close, orthodont

COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


@pytest.mark.parametrize("name, formula, term", [("sleep", "Reaction ~ Days + (Days | Subject)", "Days"),
                                                 ("orth", "distance ~ age * Sex + (1 | Subject)", "age:Sex")])
def test_f_tests_of_the_marginal_terms(name, formula, term):
    data = orthodont() if name == "orth" else mm.datasets.load("sleepstudy")
    fit = mm.lmer(formula, data)
    table = mm.drop1(fit, test="F")
    assert list(table.index) == [term] and list(table.columns) == COLUMNS
    close(table.iloc[0], [SWEEP[name]["drop1"][c] for c in COLUMNS], 5e-4)  # sleepstudy θ̂ agrees to 1e-5, p to 1e-4
    assert "Single term deletions using Satterthwaite's method:" in str(table)
    kr = mm.drop1(fit, test="F", ddf="Kenward-Roger")
    assert kr["DenDF"].iloc[0] == pytest.approx(table["DenDF"].iloc[0], rel=1e-4)  # one df: the same here


def test_f_needs_an_lmer_fit():
    cbpp = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                    family="binomial")
    with pytest.raises(ValueError, match="'F' for lmer fits"):
        mm.drop1(cbpp, test="F")
