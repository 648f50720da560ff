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


def test_gamma_two_slopes_lme4s_lower_objective_is_its_pirls_stopping_error() -> None:
    """lme4's Gamma(log) two-slope test model (tests/fixtures/gamma_slopes/make.R, a singular fit).

    lme4 reports −2 log L = 1872.920481, 1.9e-6 relative below our 1872.924036.  The gap is
    lme4's PIRLS stopping early (tolPwrss = 1e-7, on the penalised deviance's change): its own
    deviance function at its optimum rises to 1872.92371 with tolPwrss = 1e-8 and 1872.92393 with
    1e-9, where our optimum is lower than its on lme4's function too; refitted with tolPwrss = 1e-9
    lme4 reaches 1872.923877, 9e-8 relative below ours, and our deviance at that optimum is above
    ours.  The Gamma(log) working weights are constant, so the gap is not the factor's weights.
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
    at_optimum = [ref["devfun_at_optimum"]] + [ref["tight"][tol]["devfun_at_optimum"] for tol in ("1e-08", "1e-09")]
    assert at_optimum == sorted(at_optimum) and ours - at_optimum[-1] < 2e-4  # rising towards ours
    assert ref["tight"]["1e-09"]["devfun_at_mixedmodels_optimum"] < ref["tight"]["1e-09"]["devfun_at_optimum"]
    tight = ref["refit_tolPwrss_1e9"]
    assert ours <= tight["minus_two_loglik"] * (1 + 1e-7)
    assert fit.model.deviance(np.asarray(tight["theta"]), np.atleast_1d(tight["beta"])) > ours
    np.testing.assert_allclose(fit.theta, [3.75599268e-06, 1.29138428e-06, 0, 1.02995877, 0.725558716, 0], atol=1e-5)
    assert ours - ref["minus_two_loglik"] == pytest.approx(0.0036, abs=2e-4)
    np.testing.assert_allclose(fit.theta, theta, atol=2e-4)
    assert fit.fixef.iloc[0] == pytest.approx(beta[0], rel=5e-4)  # 0.5 % of its standard error
    assert fit.sigma == pytest.approx(ref["sigma"], rel=5e-4)
    # lme4's Hessian-based SE (0.0029) breaks down at this boundary; its SE given θ is 0.1567,
    # ours (θ's uncertainty included) a little larger
    se = fit.coefficients().loc["(Intercept)", "Std. Error"]
    assert ref["se_without_hessian"] < se < 1.05 * ref["se_without_hessian"]
