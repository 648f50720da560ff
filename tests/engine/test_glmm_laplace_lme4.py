"""Control(laplace="lme4"): lme4's Laplace deviance, hence lme4's estimates and standard errors
(cbpp against lme4 1.1-31: tests/fixtures/r_shaped/make.R); the default deviance unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

REF = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "r_shaped" / "r_shaped.json").read_text())
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return mm.datasets.load("cbpp")


def test_lme4_laplace_gives_lme4s_standard_errors(cbpp: pd.DataFrame) -> None:
    fit = mm.glmer(CBPP, cbpp, family="binomial", control=mm.Control(laplace="lme4"))
    lme4 = pd.DataFrame(REF["tidy_glmer"]).set_index("term")
    table = fit.coefficients()
    assert table.loc["period2", "Std. Error"] == pytest.approx(0.3032, abs=5e-5)  # as lme4 prints it
    assert table.loc["period2", "Pr(>|z|)"] == pytest.approx(0.00107, abs=5e-6)
    np.testing.assert_allclose(table["Std. Error"], lme4["std.error"], rtol=3e-4)
    np.testing.assert_allclose(table["Estimate"], lme4["estimate"], rtol=2e-4)
    np.testing.assert_allclose(table["Pr(>|z|)"], lme4["p.value"], rtol=3e-3)
    assert fit.sigma == 1.0 and fit.varcorr["sdcor"].iloc[0] == pytest.approx(0.64207, abs=5e-5)
    assert "Control: Control(laplace='lme4')" in str(fit.summary())


def test_default_laplace_is_unchanged(cbpp: pd.DataFrame) -> None:
    """The exact deviance (converged modes, the factor at them) stays the default."""
    fit = mm.glmer(CBPP, cbpp, family="binomial")
    assert fit.control.laplace == "exact"
    assert fit.se["period2"] == pytest.approx(0.3066, abs=5e-5)
    assert fit.coefficients().loc["period2", "Pr(>|z|)"] == pytest.approx(0.00121, abs=5e-6)


def test_laplace_setting_is_checked() -> None:
    with pytest.raises(mm.FitError, match="laplace must be one of 'exact', 'lme4'"):
        mm.Control(laplace="R")


GAMMA = Path(__file__).resolve().parents[1] / "fixtures" / "gamma_slopes"


def test_gamma_two_slopes_optimum_is_lower_on_its_own_deviance() -> None:
    """lme4's Gamma(log) two-slope test model (tests/fixtures/gamma_slopes/make.R, a singular fit).

    lme4 reports −2 log L = 1872.920481, 1.9e-6 relative below our 1872.924036: its Laplace
    deviance evaluates the log-determinant at the previous PIRLS iterate's weights, which here
    lowers it by 0.0036 at the same (θ, β).  On each tool's own deviance its optimum is the lower
    one: ours at lme4's (θ, β) is above ours, and lme4's deviance function at our optimum
    (make.R) is above lme4's.  The estimates agree.
    """
    ref = json.loads((GAMMA / "lme4.json").read_text())
    data = pd.read_csv(GAMMA / "gamma_slopes.csv")
    fit = mm.glmer("y ~ 1 + (1 + x1 | g1) + (1 + x2 | g2)", data, family=mm.families.Gamma(link="log"))
    assert [t.group for t in fit.model.terms] == ["g1", "g2"]  # engine order = lme4's here
    ours = -2 * fit.loglik
    assert ours == pytest.approx(1872.924036, abs=5e-6)
    theta, beta = np.asarray(ref["theta"]), np.atleast_1d(ref["beta"])
    assert fit.model.deviance(theta, beta) > ours
    assert ref["devfun_at_mixedmodels_optimum"] > ref["devfun_at_optimum"] == ref["minus_two_loglik"]
    np.testing.assert_allclose(fit.theta, [3.75599268e-06, 1.29138428e-06, 0, 1.02995877, 0.725558716, 0], atol=1e-5)
    assert ours - ref["minus_two_loglik"] == pytest.approx(0.0036, abs=2e-4)
    np.testing.assert_allclose(fit.theta, theta, atol=2e-4)
    assert fit.fixef.iloc[0] == pytest.approx(beta[0], rel=5e-4)  # 0.5 % of its standard error
    assert fit.sigma == pytest.approx(ref["sigma"], rel=5e-4)
    # lme4's Hessian-based SE (0.0029) breaks down at this boundary; its SE given θ is 0.1567,
    # ours (θ's uncertainty included) a little larger
    se = fit.coefficients().loc["(Intercept)", "Std. Error"]
    assert ref["se_without_hessian"] < se < 1.05 * ref["se_without_hessian"]
