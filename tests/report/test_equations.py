"""m.equations(): level-1/level-2(/level-3) and combined equations in Raudenbush & Bryk's notation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import FormulaError
from mixedmodels.report.equations import latex_name


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def schools() -> pd.DataFrame:
    """Pupils (ses) in classes (size) in schools (support); and a binary outcome."""
    rng = np.random.default_rng(4)
    school = np.repeat(np.arange(20), 30)
    klass = np.repeat(np.arange(60), 10)
    support, size = rng.normal(0, 1, 20), rng.normal(25, 3, 60).round()
    ses = rng.normal(0, 1, 600)
    eta = (0.5 * support[school] + 0.05 * (size[klass] - 25) + (0.8 + 0.3 * support[school] + rng.normal(0, 0.4, 20)[school]) * ses
           + rng.normal(0, 0.5, 20)[school] + rng.normal(0, 0.5, 60)[klass])
    return pd.DataFrame({
        "school": school, "class": klass, "support": support[school], "size": size[klass], "ses": ses,
        "score": 50 + 4 * eta + rng.normal(0, 3, 600), "passed": (eta + rng.logistic(size=600) > 0).astype(int),
    })


def lines(eq) -> list[str]:
    return str(eq).splitlines()


def test_random_intercept(sleep):
    m = mm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    assert lines(m.equations()) == [
        "Level 1:",
        "  Reaction_ij = β_0j + β_1j Days_ij + r_ij",
        "  r_ij ~ N(0, σ²)",
        "Level 2:",
        "  β_0j = γ_00 + u_0j",
        "  β_1j = γ_10",
        "  u_0j ~ N(0, τ_00)",
        "Combined:",
        "  Reaction_ij = γ_00 + γ_10 Days_ij + u_0j + r_ij",
    ]
    b, tau = m.fixef, m.covariances[0][0, 0]
    est = lines(m.equations(estimates=True))
    assert est[2] == f"  r_ij ~ N(0, {m.sigma ** 2:.2f})"
    assert est[4] == f"  β_0j = {b['(Intercept)']:.2f} + u_0j" and est[5] == f"  β_1j = {b['Days']:.2f}"
    assert est[6] == f"  u_0j ~ N(0, {tau:.2f})" and tau == pytest.approx(37.12383 ** 2, rel=1e-4)  # lme4
    assert est[8] == f"  Reaction_ij = {b['(Intercept)']:.2f} + {b['Days']:.2f} Days_ij + u_0j + r_ij"
    assert est[4] == "  β_0j = 251.41 + u_0j"  # lme4: 251.4051, 10.4673
    assert lines(m.equations(estimates=True, digits=3))[5] == "  β_1j = 10.467"


def test_random_slope_latex(sleep):
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    assert lines(m.equations())[4:8] == [
        "  β_0j = γ_00 + u_0j",
        "  β_1j = γ_10 + u_1j",
        "  (u_0j, u_1j)ᵀ ~ N(0, [τ_00, τ_01; τ_10, τ_11])",
        "Combined:",
    ]
    S = m.covariances[0]
    assert lines(m.equations(estimates=True))[6] == (
        f"  (u_0j, u_1j)ᵀ ~ N(0, [{S[0, 0]:.2f}, {S[0, 1]:.2f}; {S[1, 0]:.2f}, {S[1, 1]:.2f}])")
    tex = m.equations().latex
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    assert "\\text{Level 1:}\\quad & \\mathrm{Reaction}_{ij} = \\beta_{0j} + \\beta_{1j}\\,\\mathrm{Days}_{ij} + r_{ij}" in tex
    assert ("\\begin{pmatrix}u_{0j} \\\\ u_{1j}\\end{pmatrix} \\sim N\\left(\\mathbf{0}, \\begin{pmatrix}"
            "\\tau_{00} & \\tau_{01} \\\\ \\tau_{10} & \\tau_{11}\\end{pmatrix}\\right)") in tex
    assert m.equations()._repr_latex_() == "$$\n" + tex + "\n$$"
    assert tex.count("\\begin{") == tex.count("\\end{")
    unescaped = tex.replace("\\{", "").replace("\\}", "")
    assert unescaped.count("{") == unescaped.count("}")
    uncorrelated = mm.lmer("Reaction ~ Days + (Days || Subject)", sleep).equations()
    assert "  u_0j ~ N(0, τ_00)" in lines(uncorrelated) and "  u_1j ~ N(0, τ_11)" in lines(uncorrelated)


def test_cross_level_interaction(schools):
    m = mm.lmer("score ~ ses * support + (ses | school)", schools)
    assert lines(m.equations())[:7] == [
        "Level 1:",
        "  score_ij = β_0j + β_1j ses_ij + r_ij",
        "  r_ij ~ N(0, σ²)",
        "Level 2:",
        "  β_0j = γ_00 + γ_01 support_j + u_0j",
        "  β_1j = γ_10 + γ_11 support_j + u_1j",
        "  (u_0j, u_1j)ᵀ ~ N(0, [τ_00, τ_01; τ_10, τ_11])",
    ]
    assert lines(m.equations())[-1] == (
        "  score_ij = γ_00 + γ_10 ses_ij + γ_01 support_j + γ_11 ses_ij × support_j + u_0j + u_1j ses_ij + r_ij")
    b = m.fixef
    assert lines(m.equations(estimates=True))[5] == (
        f"  β_1j = {b['ses']:.2f} {'+' if b['ses:support'] > 0 else '-'} {abs(b['ses:support']):.2f} support_j + u_1j")


def test_three_levels(schools):
    m = mm.lmer("score ~ ses + size + support + (1 | school/class)", schools)
    assert lines(m.equations()) == [
        "Level 1:",
        "  score_ijk = π_0jk + π_1jk ses_ijk + e_ijk",
        "  e_ijk ~ N(0, σ²)",
        "Level 2:",
        "  π_0jk = β_00k + β_01k size_jk + r_0jk",
        "  π_1jk = β_10k",
        "  r_0jk ~ N(0, τ_π00)",
        "Level 3:",
        "  β_00k = γ_000 + γ_001 support_k + u_00k",
        "  β_01k = γ_010",
        "  β_10k = γ_100",
        "  u_00k ~ N(0, τ_β00,00)",
        "Combined:",
        "  score_ijk = γ_000 + γ_100 ses_ijk + γ_010 size_jk + γ_001 support_k + r_0jk + u_00k + e_ijk",
    ]
    assert "\\tau_{\\pi 00}" in m.equations().latex and "\\tau_{\\beta 00,00}" in m.equations().latex


def test_glmer_logit(schools):
    m = mm.glmer("passed ~ ses + support + (1 | school)", schools, family="binomial")
    assert lines(m.equations()) == [
        "Level 1:",
        "  passed_ij ~ Binomial(1, φ_ij)",
        "  logit(φ_ij) = β_0j + β_1j ses_ij",
        "Level 2:",
        "  β_0j = γ_00 + γ_01 support_j + u_0j",
        "  β_1j = γ_10",
        "  u_0j ~ N(0, τ_00)",
        "Combined:",
        "  logit(φ_ij) = γ_00 + γ_10 ses_ij + γ_01 support_j + u_0j",
    ]
    assert "\\mathrm{logit}(\\phi_{ij})" in m.equations().latex and "r_ij" not in str(m.equations())
    cbpp = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                    family="binomial")
    assert lines(cbpp.equations())[1] == "  incidence_ij ~ Binomial(n_ij, φ_ij)"
    assert lines(cbpp.equations(estimates=True))[4] == "  β_0j = -1.40 + u_0j"  # lme4: -1.3983


def test_crossed_factors_have_no_levels():
    m = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.datasets.load("Penicillin"))
    with pytest.raises(FormulaError, match="'plate' is not nested in 'sample'"):
        m.equations()


def test_latex_name_escapes():
    assert latex_name("ses_within") == "\\mathrm{ses\\_within}"
    assert latex_name("I(x^2)") == "\\mathrm{I(x\\hat{}2)}"
    assert latex_name("a b&c") == "\\mathrm{a\\ b\\&c}"
