"""docs/phrasebooks: the five models fitted by mixedmodels reproduce lme4 1.1-31 (fixture made by R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "phrasebooks" / "five_models.json").read_text(encoding="utf-8"))
MODELS = {
    "random_intercept": ("lmer", "mAch ~ 1 + (1 | school)", "Hsb82"),
    "random_slope": ("lmer", "mAch ~ cses + (cses | school)", "Hsb82"),
    "cross_level": ("lmer", "mAch ~ meanses * cses + sector * cses + (cses | school)", "Hsb82"),
    "three_level": ("lmer", "math ~ year + (year | schoolid/childid)", "egsingle"),
    "binary": ("glmer", "use ~ age + urban + livch + (1 | district)", "Contraception"),
}


def same_term(name: str) -> str:
    """lme4 and mixedmodels may order an interaction's parts differently."""
    return ":".join(sorted(name.split(":")))


@pytest.mark.parametrize("key", sorted(MODELS))
def test_phrasebook_model_matches_lme4(key):
    kind, formula, data = MODELS[key]
    ref = REFERENCE[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = (mm.lmer(formula, mm.datasets.load(data)) if kind == "lmer"
               else mm.glmer(formula, mm.datasets.load(data), family="binomial"))
    ours = {same_term(k): v for k, v in fit.fixef.items()}
    se = {same_term(k): v for k, v in fit.se.items()}
    for name, value in ref["fixef"].items():
        assert ours[same_term(name)] == pytest.approx(value, abs=2e-4), name
        assert se[same_term(name)] == pytest.approx(ref["se"][name], rel=2e-3), name
    np.testing.assert_allclose(fit.varcorr["vcov"], [r["vcov"] for r in ref["varcorr"]], rtol=2e-3, atol=1e-4)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-3)
    assert fit.nobs == ref["nobs"]


def test_hsb_null_model_matches_raudenbush_bryk_table_4_2():
    """The published HLM output: γ00 = 12.64 (SE 0.24), τ00 = 8.61, σ² = 39.15."""
    fit = mm.lmer("mAch ~ 1 + (1 | school)", mm.datasets.load("Hsb82"))
    assert round(fit.fixef["(Intercept)"], 2) == 12.64 and round(fit.se["(Intercept)"], 2) == 0.24
    assert [round(v, 2) for v in fit.varcorr["vcov"]] == [8.61, 39.15]


def test_phrasebook_pages_are_in_the_site_and_readme():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("index", "stata", "sas", "hlm", "mplus", "nlme", "glmmtmb"):
        assert (ROOT / "docs" / "phrasebooks" / f"{page}.md").is_file()
        assert f"phrasebooks/{page}.md" in nav and f"docs/phrasebooks/{page}.md" in readme


def test_glmmtmb_page_numbers():
    """docs/phrasebooks/glmmtmb.md: REML=False gives glmmTMB's maximum-likelihood fit; on the HSB
    random slope glmmTMB 1.1.5 fails its Hessian (NA log-likelihood) where we reach lme4's ML fit
    (tests/fixtures/phrasebooks/glmmtmb.R)."""
    ref = json.loads((ROOT / "tests" / "fixtures" / "phrasebooks" / "glmmtmb.json").read_text(encoding="utf-8"))
    sleep = mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"), REML=False)
    assert sleep.loglik == pytest.approx(ref["sleep_intercept"]["loglik"], abs=1e-6)
    np.testing.assert_allclose(sleep.fixef, ref["sleep_intercept"]["fixef"], rtol=1e-6)
    slope = mm.lmer("mAch ~ cses + (cses | school)", mm.datasets.load("Hsb82"), REML=False)
    assert ref["hsb_slope"]["loglik"] is None and ref["hsb_slope"]["pdHess"] is False
    assert slope.optimum.converged and slope.loglik == pytest.approx(-23355.4894, abs=1e-4)
    assert [round(v, 5) for v in slope.fixef] == [12.63628, 2.19315]
    np.testing.assert_allclose(slope.fixef, ref["hsb_slope"]["fixef"], atol=1e-3)  # glmmTMB stopped near it
