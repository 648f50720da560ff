"""More residual structures against nlme's lme (tests/fixtures/resid_struct/lme_more.R): CAR(1) on
Orthodont, BodyWeight with random slopes (CAR(1), varPower), compound symmetry with a random slope,
AR(1) with varIdent, and random slopes with AR(1) on a growth curve with missed visits and missing
responses; −2 log-likelihood (REML and ML), β, SEs, σ, random-effect SDs, φ/ρ/δ, normalized and
Pearson residuals and nlme's ACF."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DroppedRowsWarning, SingularFitWarning

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resid_struct"
FITS = json.loads((FIXTURES / "lme_more_fits.json").read_text())
LEVELS = {**json.loads((FIXTURES / "nlme_fits.json").read_text())["levels"], **FITS["levels"]}


def load(name: str) -> pd.DataFrame:
    """A fixture's CSV with its factors' levels in R's order."""
    data = pd.read_csv(FIXTURES / f"{name}.csv")
    for column, levels in LEVELS[name].items():
        data[column] = pd.Categorical(data[column].astype(str), categories=[str(v) for v in levels])
    return data


CASES = {
    "orth_car1": ("orthodont", "distance ~ age + Sex + (1 | Subject)", dict(residual=mm.CAR1(time="age", group="Subject"))),
    "bw_car1": ("bodyweight", "weight ~ Time * Diet + (Time | Rat)", dict(residual=mm.CAR1(time="Time", group="Rat"))),
    "bw_varpower": ("bodyweight", "weight ~ Time * Diet + (Time | Rat)", dict(variance=mm.VarPower("Time"))),
    "growth_ar1_varident": ("growth_gaps", "y ~ week * arm + (1 | id)",
                            dict(residual=mm.AR1(time="week"), variance=mm.VarIdent("arm"))),
    "growth_cs": ("growth_gaps", "y ~ week * arm + (0 + week | id)", dict(residual=mm.CompSymm(group="id"))),
    "growth_both": ("growth_gaps", "y ~ week * arm + (week | id)", dict(residual=mm.AR1(time="week", group="id"))),
}


def fit(case: str, REML: bool):
    data, formula, structure = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DroppedRowsWarning, SingularFitWarning))
        return mm.lmer(formula, load(data), REML=REML, **structure)


@pytest.mark.parametrize("REML", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_nlme(case, REML):
    ref = FITS[f"{case}_{'reml' if REML else 'ml'}"]
    m = fit(case, REML)
    # −2 log L within 2e-9 relative of nlme's (BodyWeight's varPower REML fit: 1.5e-6 above, 1.3e-9 relative)
    assert -2 * m.loglik == pytest.approx(ref["m2loglik"], rel=2e-9)
    assert m.df == ref["df"] and m.nobs == ref["nobs"]
    assert m.aic == pytest.approx(ref["AIC"], rel=2e-9)
    assert m.bic == pytest.approx(ref["BIC"], rel=2e-9)
    se = np.array(list(ref["se"].values()))
    assert list(m.fixef.index) == list(ref["beta"])
    assert np.all(np.abs(m.fixef.to_numpy() - list(ref["beta"].values())) <= 5e-4 * se)
    np.testing.assert_allclose(m.se.to_numpy(), se, rtol=5e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=5e-4)
    np.testing.assert_allclose([m.covariances[0][k, k] ** 0.5 for k in range(len(ref["re_sd"]))],
                               list(ref["re_sd"].values()), rtol=5e-4, atol=1e-3 * ref["sigma"])
    expected = {("Phi" if k == "Phi1" else k): v for k, v in (ref["cor_par"] or {}).items()}  # corARMA's name
    assert m.correlation_parameters.to_dict() == pytest.approx(expected, abs=5e-4)
    variance = m.variance_parameters
    if case == "growth_ar1_varident":  # nlme's coef() leaves out the first level's ratio 1
        assert variance["control"] == 1.0
        variance = variance.drop("control")
    assert variance.to_dict() == pytest.approx(ref["var_par"] or {}, abs=5e-4)
    for kind in ("normalized", "pearson"):
        np.testing.assert_allclose(m.residuals_of(kind).to_numpy()[:12], ref[f"resid_{kind}_head"], atol=1e-4)


@pytest.mark.parametrize("case", ["growth_both", "growth_cs", "bw_car1"])
def test_acf_agrees_with_nlme(case):
    """nlme's ACF(m, maxLag = 4) of the Pearson and normalized residuals, lags counted in rows."""
    ref = FITS[f"{case}_reml"]
    m = fit(case, True)
    for kind in ("pearson", "normalized"):
        np.testing.assert_allclose(mm.acf(m, max_lag=4, type=kind)["ACF"], ref[f"acf_{kind}"], atol=2e-4)


def test_missing_responses_are_dropped_and_counted():
    """Five missing responses: nlme's na.omit, and the row counts nlme used."""
    data = load("growth_gaps")
    with pytest.warns(DroppedRowsWarning, match="5 of 439 rows"):
        m = mm.lmer("y ~ week * arm + (week | id)", data, residual=mm.AR1(time="week", group="id"))
    assert m.n_dropped == 5 and m.nobs == FITS["growth_both_reml"]["nobs"]
