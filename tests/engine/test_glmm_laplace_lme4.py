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
