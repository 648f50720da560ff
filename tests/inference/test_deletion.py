"""mm.influence (group deletion) and m.rstudent() against lme4 1.1-31's influence.merMod,
cooks.distance, dfbetas and rstudent (tests/fixtures/toolbox/influence_groups.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

REF = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "toolbox" / "influence_groups.json").read_text())


def fitted(name: str):
    ref = REF["deletion"][name]
    data = mm.datasets.load(ref["data"])
    if name == "cbpp":  # lme4's two-stage Laplace deviance: the refits agree with lme4's to its digits
        return mm.glmer(ref["formula"], data, family="binomial", control=mm.Control(laplace="lme4"))
    return mm.lmer(ref["formula"], data)


@pytest.mark.parametrize("name", sorted(REF["deletion"]))
def test_group_deletion_matches_lme4(name):
    ref = REF["deletion"][name]
    inf = mm.influence(fitted(name), groups=ref["groups"] or None)
    if ref["groups"]:
        assert list(inf.deleted) == ref["deleted"]
    else:  # case deletion: rows named by the data's index (R: its 1-based row names)
        assert list(inf.deleted) == [str(int(r) - 1) for r in ref["deleted"]]
    assert inf.converged.all()
    assert inf.fixed_effects.to_numpy() == pytest.approx(list(ref["fixed"].values()), rel=1e-5)
    assert inf.fixed_effects_deleted.to_numpy() == pytest.approx(np.array(ref["fixed_deleted"]), rel=2e-4)
    assert list(inf.var_cov_comps.index) == list(ref["var_cov"])
    got, want = inf.var_cov_comps_deleted.to_numpy(), np.array(ref["var_cov_deleted"])
    assert np.all(np.abs(got - want).max(axis=0) <= 1e-3 * np.abs(want).max(axis=0))  # lme4 stops near 1e-4
    assert inf.vcov_deleted[inf.deleted[0]].to_numpy() == pytest.approx(np.array(ref["vcov_deleted_first"]), rel=1e-3)
    assert inf.cooks_distance().to_numpy() == pytest.approx(ref["cooks"], rel=2e-3)
    if ref["dfbetas"]:  # lme4's dfbetas fails on a model with one coefficient
        assert inf.dfbetas().to_numpy() == pytest.approx(np.array(ref["dfbetas"]), abs=2e-3)


def test_dfbeta_is_the_change_in_the_estimates():
    inf = mm.influence(fitted("slope"), groups="Subject")
    assert inf.dfbeta().loc["308"].to_numpy() == pytest.approx(
        (inf.fixed_effects_deleted.loc["308"] - inf.fixed_effects).to_numpy())
    assert inf.dfbeta("var.cov").columns.tolist() == inf.var_cov_comps.index.tolist()
    assert "Influence of deleting each Subject (18 refits)" in str(inf)


def test_deleting_a_group_equals_fitting_without_it():
    data = mm.datasets.load("sleepstudy")
    inf = mm.influence(mm.lmer("Reaction ~ Days + (Days | Subject)", data), groups="Subject")
    alone = mm.lmer("Reaction ~ Days + (Days | Subject)", data[data["Subject"].astype(str) != "335"])
    assert inf.fixed_effects_deleted.loc["335"].to_numpy() == pytest.approx(alone.fixef.to_numpy(), rel=1e-6)


def test_groups_outside_the_model_come_from_data():
    data = mm.datasets.load("sleepstudy").assign(week=lambda d: (d["Days"] // 5).astype(int))
    fit = mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    with pytest.raises(mm.DataError, match="pass the data frame"):
        mm.influence(fit, groups="week")
    inf = mm.influence(fit, groups="week", data=data)
    assert list(inf.deleted) == ["0", "1"]
    with pytest.raises(mm.DataError, match="not a column of data"):
        mm.influence(fit, groups="month", data=data)


def test_deleting_a_fixed_factors_only_rows_is_refused():
    data = pd.read_csv(Path(__file__).resolve().parents[1] / "fixtures" / "toolbox" / "sleepstudy_grp.csv")
    fit = mm.lmer("Reaction ~ Days + grp + (1 | Subject)", data)
    with pytest.raises(mm.DataError, match="loses rank"):
        mm.influence(fit, groups="grp")


@pytest.mark.parametrize("name", sorted(REF["rstudent"]))
def test_rstudent_matches_lme4(name):
    ref = REF["rstudent"][name]
    fit = mm.lmer(ref["formula"], mm.datasets.load(ref["data"]), weights=ref["weights"] or None)
    assert fit.rstudent().to_numpy() == pytest.approx(ref["rstudent"], rel=1e-3)


def test_rstudent_from_leverage_and_pearson_residuals():
    fit = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("Dyestuff"))
    expected = fit.scaled_residuals() / np.sqrt(1 - fit.hatvalues())
    assert fit.rstudent().to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)


def test_fits_without_rows_in_memory_are_refused():
    fit = mm.lm("Reaction ~ Days", mm.datasets.load("sleepstudy"))
    with pytest.raises(mm.MixedModelsError, match="lmer or glmer fit"):
        mm.influence(fit)  # type: ignore[arg-type]
