"""emmeans 1.8.4-1's defaults and helpers on an lmer fit with a factor × covariate interaction
(nlme's Orthodont, distance ~ age * Sex + (1 | Subject); tests/fixtures/parity/sweep.R): Kenward–Roger
df by default, as emmeans' lmer.df, and asymptotic z for glmer."""

from __future__ import annotations

import pytest

import mixedmodels as mm
from parity import SWEEP, close, orthodont

REF = SWEEP["orth"]


@pytest.fixture(scope="module")
def orth() -> mm.LmerResult:
    return mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont())


def _same(table, theirs, columns, rel=1e-5):
    for column in columns:
        close(table[column], theirs[column], rel)


def test_kenward_roger_is_the_default_for_lmer(orth):
    """At age 10 KR's adjusted SEs and df (26.28) differ from Satterthwaite's."""
    out = mm.emmeans(orth, "Sex", at={"age": 10})
    assert out.ddf == "Kenward-Roger" and "Degrees-of-freedom method: kenward-roger" in str(out)
    assert list(out.table["Sex"]) == REF["emmeans_at"]["Sex"]
    _same(out.table, REF["emmeans_at"], ("emmean", "SE", "df", "lower.CL", "upper.CL"))
    default = mm.emmeans(orth, "Sex")
    _same(default.table, REF["emmeans"], ("emmean", "SE", "df", "lower.CL", "upper.CL"))
    _same(default.pairs().table, REF["pairs"], ("estimate", "SE", "df", "t.ratio", "p.value"))


def test_satterthwaite_on_request_and_for_ml_fits(orth):
    out = mm.emmeans(orth, "Sex", ddf="Satterthwaite")
    _same(out.table, REF["emmeans_sat"], ("emmean", "SE", "df", "lower.CL", "upper.CL"))
    ml = mm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont(), REML=False)
    assert mm.emmeans(ml, "Sex").ddf == "Satterthwaite"  # KR needs REML here (emmeans uses pbkrtest's on ML)


def test_lmertest_ls_means_keep_satterthwaite(orth):
    ls = mm.ls_means(orth, "Sex")
    assert list(ls.index) == REF["ls_means"]["rows"]
    close(ls["df"], REF["ls_means"]["df"], 1e-5)
    diff = mm.difflsmeans(orth, "Sex")
    close(diff["df"], [REF["difflsmeans"]["df"]], 1e-5)
