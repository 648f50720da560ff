"""The project's promise of agreement with lme4, as assertions shared by the reference tests.

Objective within 1e-6 relative or lower, fixed effects within 2% of their SE,
SEs within 2%, σ within 0.2%, every VarCorr row within 2% (absolute 2e-5 of the
largest SD's scale for near-zero entries), conditional modes within 2% of their
conditional SD, conditional SDs within 2%.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def check_objective(fit, ref: dict, rel: float = 1e-6) -> None:
    """At least as good as lme4's objective (1e-6 relative slack) and close to it."""
    assert fit.objective <= ref["objective"] + 1e-6 * abs(ref["objective"])
    assert fit.objective == pytest.approx(ref["objective"], rel=rel)
    assert fit.aic == pytest.approx(ref["AIC"], rel=rel)
    assert fit.bic == pytest.approx(ref["BIC"], rel=rel)
    assert fit.df == ref["df"]


def check_fixed_effects(fit, ref: dict, names: dict[str, str] | None = None) -> None:
    se = np.array(ref["se"])
    assert list(fit.fixef.index) == [(names or {}).get(n, n) for n in ref["beta_names"]]
    assert np.all(np.abs(fit.fixef.to_numpy() - ref["beta"]) <= 0.02 * se)
    np.testing.assert_allclose(fit.se.to_numpy(), se, rtol=0.02)


def check_sigma_and_theta(fit, ref: dict) -> None:
    assert fit.sigma == pytest.approx(ref["sigma"], rel=0.002)
    assert fit.theta_names == ref["theta_names"]
    np.testing.assert_allclose(fit.theta, ref["theta"], rtol=0.02, atol=2e-3)
    assert fit.is_singular() == ref["singular"]


def check_varcorr(fit, ref: dict) -> None:
    vc = fit.varcorr
    assert len(vc) == len(ref["varcorr"])
    scale = max(r["sdcor"] for r in ref["varcorr"] if "var2" not in r)
    for ours, theirs in zip(vc.itertuples(index=False), ref["varcorr"]):
        assert ours.grp == theirs["grp"]
        assert _text(ours.var1) == theirs.get("var1")
        assert _text(ours.var2) == theirs.get("var2")
        assert ours.vcov == pytest.approx(theirs["vcov"], rel=0.02, abs=0.02 * scale**2 * 1e-3)
        assert ours.sdcor == pytest.approx(theirs["sdcor"], rel=0.02, abs=0.02 * scale * 1e-2)


def check_conditional_modes(fit, ref: dict) -> None:
    for row in ref["ranef_head"]:
        mode = fit.ranef[row["grpvar"]].loc[row["grp"], row["term"]]
        sd = fit.ranef_sd[row["grpvar"]].loc[row["grp"], row["term"]]
        assert sd == pytest.approx(row["condsd"], rel=0.02, abs=1e-8)
        assert abs(mode - row["condval"]) <= 0.02 * max(row["condsd"], 1e-8) + 1e-8


def check_icc_r2(fit, ref: dict) -> None:
    """performance::icc and r2_nakagawa, where the reference has them (within 0.002)."""
    if ref.get("icc"):
        icc = fit.icc()
        assert icc["adjusted"] == pytest.approx(ref["icc"]["adjusted"], abs=0.002)
        assert icc["unadjusted"] == pytest.approx(ref["icc"]["unadjusted"], abs=0.002)
    r2 = ref.get("r2") or {}
    for key in ("marginal", "conditional"):
        if r2.get(key) is not None:
            assert fit.r2()[key] == pytest.approx(r2[key], abs=0.002)


def _text(value):
    return None if pd.isna(value) else value
