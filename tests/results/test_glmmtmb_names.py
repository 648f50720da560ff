"""glmmTMB's covariance names homdiag(), homcs() and hetar1() in formulas fit what glmmTMB fits
(tests/fixtures/rspell: make_glmmtmb.R, glmmtmb_names.json).  The installed glmmTMB (1.1.5) predates
them: homdiag and homcs are its diag() and cs() with the SDs tied by map=, hetar1 its likelihood
written out in R (the script checks that code against glmmTMB's ar1() fit).

Tolerances: the objective within 1e-6 relative, β within 1% of its SE, SEs within 1e-3, σ, the SDs
and ρ within 1e-3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rspell"
REFERENCE = json.loads((FIXTURES / "glmmtmb_names.json").read_text(encoding="utf-8"))
DATA = pd.read_csv(FIXTURES / "repeated.csv").astype({"id": "category", "timef": "category"})
FORMULAS = {"homdiag": "y_ar ~ timef + homdiag(0 + timef | id)", "homcs": "y_cs ~ timef + homcs(0 + timef | id)",
            "hetar1": "y_ar ~ timef + hetar1(0 + timef | id)"}


def parameters(fit) -> tuple[np.ndarray, np.ndarray]:
    """The SD rows and the correlation rows of the term's VarCorr."""
    vc = fit.varcorr[fit.varcorr["grp"] != "Residual"]
    single = vc["var2"].isna()
    return vc[single]["sdcor"].to_numpy(), vc[~single]["sdcor"].to_numpy()


@pytest.mark.parametrize("name", FORMULAS)
@pytest.mark.parametrize("method", ["ML", "REML"])
def test_glmmtmb_names_agree_with_glmmtmb(name, method):
    ref = REFERENCE[f"{name}_{method}"]
    fit = mm.lmer(FORMULAS[name], DATA, REML=method == "REML")
    assert fit.objective == pytest.approx(ref["objective"], rel=1e-6)
    assert fit.df == ref["df"]
    se = np.array(list(ref["se"].values()))
    assert np.all(np.abs(fit.fixef.to_numpy() - list(ref["beta"].values())) <= 0.01 * se)
    np.testing.assert_allclose(fit.se.to_numpy(), se, rtol=1e-3)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    sd, rho = parameters(fit)
    np.testing.assert_allclose(sd, ref["sd"][: len(sd)], rtol=1e-3)
    assert len(sd) == {"homdiag": 1, "homcs": 1, "hetar1": 5}[name]
    np.testing.assert_allclose(rho, [ref["rho"]] if name != "homdiag" else [], atol=1e-3)


def test_each_name_is_the_lme4_2_spelling_with_hom():
    spelled = {"homdiag": "y_ar ~ timef + diag(0 + timef | id, hom = TRUE)",
               "homcs": "y_cs ~ timef + cs(0 + timef | id, hom = TRUE)",
               "hetar1": "y_ar ~ timef + ar1(0 + timef | id, hom = FALSE)"}
    for name, formula in spelled.items():
        a, b = mm.lmer(FORMULAS[name], DATA, REML=False), mm.lmer(formula, DATA, REML=False)
        assert a.objective == b.objective and a.reterms[0].structure.tag == name


def test_poisson_homdiag_agrees_with_glmmtmb():
    ref = REFERENCE["count_homdiag"]
    fit = mm.glmer("count ~ time + homdiag(0 + timef | id)", DATA, family="poisson")
    assert fit.objective == pytest.approx(ref["objective"], rel=1e-6)
    np.testing.assert_allclose(fit.se.to_numpy(), list(ref["se"].values()), rtol=1e-3)
    assert parameters(fit)[0] == pytest.approx(ref["sd"][0], rel=1e-3)


def test_the_varcorr_print_names_the_structure():
    text = str(mm.lmer(FORMULAS["hetar1"], DATA).varcorr)
    assert "0.651 (ar1)" in text and "timeft5 1.49741" in text
