"""results/lmer.py's get_me() against lme4 1.1-31's getME() (tests/fixtures/parity/getme.R) on
sleepstudy's (Days | Subject) and Penicillin's crossed fit, and the identities that tie its pieces
together (b = Λu, η = Xβ + Zb)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mixedmodels as mm
from parity import PARITY_DIR, close

R = json.loads((PARITY_DIR / "getme.json").read_text())
SIZES = ("n", "N", "p", "q", "k", "m", "n_rtrms", "n_rfacs", "p_i", "l_i", "q_i", "m_i", "Gp", "REML", "is_REML")


@pytest.fixture(scope="module")
def fits() -> dict:
    return {"sleep": mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy")),
            "penicillin": mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.datasets.load("Penicillin"))}


def _dense(stored: dict) -> np.ndarray:
    M = np.zeros(stored["dim"])
    M[stored["i"], stored["j"]] = stored["x"]
    return M


@pytest.mark.parametrize("key", ["sleep", "penicillin"])
def test_sizes_names_and_layout(fits, key):
    fit, ref = fits[key], R[key]
    for name in SIZES:
        assert np.array_equal(np.atleast_1d(fit.get_me(name)), np.atleast_1d(ref[name])), name
    assert list(fit.get_me("theta").index) == list(ref["theta"])
    assert fit.get_me("cnms") == {g: list(np.atleast_1d(c)) for g, c in ref["cnms"].items()}
    assert list(fit.get_me("flist")) == list(ref["flist"])
    for group, levels in ref["flist"].items():
        assert [str(v) for v in fit.get_me("flist")[group]] == levels
    assert list(fit.get_me("X").columns) == list(np.atleast_1d(ref["X_names"]))
    lower = np.array([-np.inf if v == "-Inf" else v for v in np.atleast_1d(ref["lower"])], dtype=float)
    np.testing.assert_array_equal(fit.get_me("lower"), lower)


@pytest.mark.parametrize("key", ["sleep", "penicillin"])
def test_matrices_and_vectors_match_lme4(fits, key):
    fit, ref = fits[key], R[key]
    for name in ("Z", "Zt"):
        np.testing.assert_array_equal(fit.get_me(name).toarray(), _dense(ref[name]))
    for name in ("Lambda", "Lambdat"):
        np.testing.assert_allclose(fit.get_me(name).toarray(), _dense(ref[name]), atol=2e-4)
    np.testing.assert_array_equal(fit.get_me("X").to_numpy(), np.array(ref["X"]).reshape(fit.nobs, -1))
    np.testing.assert_array_equal(fit.get_me("y"), ref["y"])
    np.testing.assert_array_equal(fit.get_me("offset"), ref["offset"])
    close(fit.get_me("mu"), ref["mu"], 1e-6)
    close(fit.get_me("theta"), list(ref["theta"].values()), 1e-4)  # the optima agree to 1e-4
    close(fit.get_me("beta"), np.atleast_1d(ref["beta"]), 1e-8)
    np.testing.assert_allclose(fit.get_me("b"), ref["b"], rtol=1e-3, atol=1e-4)
    assert fit.get_me("sigma") == pytest.approx(ref["sigma"], rel=1e-6)


def test_the_pieces_fit_together(fits):
    """b = Λu and the fitted values are Xβ + Zb."""
    for fit in fits.values():
        np.testing.assert_allclose(fit.get_me("Lambda") @ fit.get_me("u"), fit.get_me("b"), atol=1e-10)
        eta = fit.get_me("X").to_numpy() @ fit.get_me("beta") + fit.get_me("Z") @ fit.get_me("b")
        np.testing.assert_allclose(eta, fit.fitted.to_numpy(), rtol=1e-12)


def test_glmer_and_ml_fits_and_errors(fits):
    g = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                 family="binomial")
    assert g.get_me("REML") == 0 and g.get_me("is_REML") is False
    np.testing.assert_allclose(g.get_me("mu"), g.fitted.to_numpy())
    ml = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"), REML=False)
    assert ml.get_me("REML") == R["sleep_ml"]["REML"]
    assert fits["sleep"].get_me("Lambdat").shape == (36, 36)
    with pytest.raises(mm.MixedModelsError, match="abbreviates several choices"):
        fits["sleep"].get_me("Lamb")
    with pytest.raises(mm.MixedModelsError, match="name must be one of"):
        fits["sleep"].get_me("devcomp")
