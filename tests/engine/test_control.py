"""mm.Control: validated settings of a fit, used by the engine, stored, saved, printed and reused."""

from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.engine.control import DEFAULT_CONTROL, Control, resolve_control
from mixedmodels.engine.glmm import GeneralizedLinearMixedModel, PirlsStart
from mixedmodels.engine.optimizer import OPTIMIZERS, optimize

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return mm.datasets.load("cbpp")


# ----- construction ----------------------------------------------------------------------
def test_control_is_exported_immutable_and_prints_only_what_differs():
    assert mm.Control is Control
    assert repr(Control()) == "Control()"
    assert repr(Control(maxeval=50, restart=False)) == "Control(maxeval=50, restart=False)"
    assert Control(maxeval=50).changes() == {"maxeval": 50}
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_CONTROL.maxeval = 3  # type: ignore[misc]
    assert Control(ftol_rel=1e-8) == Control(ftol_rel=1e-8) and hash(Control()) == hash(DEFAULT_CONTROL)


def test_an_unknown_setting_names_the_valid_ones():
    with pytest.raises(mm.FitError, match=r"no setting 'maxevals'\. Did you mean 'maxeval'\?.*check_singular_tol"):
        Control(maxevals=10)


@pytest.mark.parametrize("settings, message", [
    ({"optimizer": "Nelder_Mead"}, "optimizer must be one of 'auto', 'lbfgsb', 'bobyqa', not 'Nelder_Mead'"),
    ({"maxeval": 0}, "maxeval must be a whole number of at least 1, not 0"),
    ({"maxeval": 10.5}, "maxeval must be a whole number"),
    ({"maxeval": True}, "maxeval must be a whole number"),
    ({"ftol_rel": -1e-8}, "ftol_rel must be a positive finite number, not -1e-08"),
    ({"check_singular_tol": float("nan")}, "check_singular_tol must be a positive finite number"),
    ({"pirls_tol": "small"}, "pirls_tol must be a positive finite number"),
    ({"restart": "yes"}, "restart must be True or False, not 'yes'"),
])
def test_bad_values_are_refused_with_the_setting_named(settings, message):
    with pytest.raises(mm.FitError, match=message):
        Control(**settings)


def test_every_optimizer_control_accepts_is_a_minimiser():
    for name in OPTIMIZERS:
        assert Control(optimizer=name).optimizer == name


def test_maxeval_is_a_shortcut_that_must_agree_with_control():
    assert resolve_control(None, None) is DEFAULT_CONTROL
    assert resolve_control(None, 7) == Control(maxeval=7)
    ctl = Control(maxeval=7, ftol_rel=1e-9)
    assert resolve_control(ctl, 7) is ctl
    with pytest.raises(mm.FitError, match="maxeval=8 contradicts control's maxeval=7"):
        resolve_control(ctl, 8)
    with pytest.raises(mm.FitError, match="control must be a mixedmodels.Control, not dict"):
        resolve_control({"maxeval": 7}, None)  # type: ignore[arg-type]


# ----- what the settings do --------------------------------------------------------------
def test_a_small_maxeval_stops_the_fit_with_a_convergence_warning(sleep):
    with pytest.warns(mm.ConvergenceWarning, match="maximum number of evaluations reached"):
        m = mm.lmer(SLEEP, sleep, control=Control(maxeval=5))
    assert m.optimum.nfev == 5 and not m.optimum.converged
    assert m.control == Control(maxeval=5)
    with pytest.warns(mm.ConvergenceWarning, match="maximum number of evaluations reached"):
        same = mm.lmer(SLEEP, sleep, maxeval=5)
    assert same.objective == m.objective and same.control == m.control


def test_looser_tolerances_stop_sooner_at_nearly_the_same_optimum(sleep):
    m = mm.lmer(SLEEP, sleep, control=Control(optimizer="bobyqa"))
    loose = mm.lmer(SLEEP, sleep, control=Control(optimizer="bobyqa", ftol_rel=1e-6, ftol_abs=1e-4, xtol_abs=1e-4))
    assert loose.optimum.nfev < m.optimum.nfev  # 26 against 44 evaluations
    assert loose.optimum.converged
    assert 0 <= loose.objective - m.objective < 1e-5


def test_restart_optimises_again_when_the_check_fails():
    def rosenbrock(z: np.ndarray) -> float:
        return float(100 * (z[1] - z[0] ** 2) ** 2 + (1 - z[0]) ** 2)

    x0, lower = np.array([-1.2, 1.0]), np.full(2, -np.inf)
    loose = dict(ftol_rel=1e-3, ftol_abs=1e-3, xtol_abs=1e-3)
    once = optimize(rosenbrock, x0, lower, Control(restart=False, **loose))
    again = optimize(rosenbrock, x0, lower, Control(**loose))
    assert not once.converged
    assert again.nfev > once.nfev and again.fun < once.fun


def test_check_singular_tol_decides_singularity_and_its_warning(sleep):
    m = mm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    theta = float(m.theta[0])  # 0.85: far from singular by lme4's 1e-4
    assert not m.is_singular()
    with pytest.warns(mm.SingularFitWarning):
        strict = mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, control=Control(check_singular_tol=2 * theta))
    assert strict.is_singular() and not strict.is_singular(tol=1e-4)
    assert "boundary (singular) fit" in str(strict.summary())


def test_glmm_settings_reach_pirls_and_both_stages(cbpp):
    m = mm.glmer(CBPP, cbpp, family="binomial")
    with pytest.warns(mm.ConvergenceWarning, match="maximum number of evaluations reached"):
        short = mm.glmer(CBPP, cbpp, family="binomial", maxeval=3)
    assert short.optimum.nfev <= 3 + 1 + 2 * 5 and short.control.maxeval == 3
    far = PirlsStart((np.full(15, 10.0),), None)  # every herd's mode far off: full Newton steps overshoot
    beta = np.array([-1.4, -1.0, -1.1, -1.6])
    GeneralizedLinearMixedModel(m.design, m.family).pirls(np.array([1.0]), beta, far)  # halvings reach the modes
    no_halving = GeneralizedLinearMixedModel(m.design, m.family, control=Control(pirls_max_halvings=1))
    with pytest.raises(mm.FitError, match="PIRLS could not reduce the penalised deviance"):
        no_halving.pirls(np.array([1.0]), beta, far)
    coarse = mm.glmer(CBPP, cbpp, family="binomial", control=Control(pirls_tol=1e-4))
    assert 0 < abs(coarse.objective - m.objective) < 1e-3  # modes to 1e-4 move the deviance by 5e-4


# ----- stored, printed, saved and reused -------------------------------------------------
def test_profile_intervals_use_the_fits_profile_tolerance():
    dyestuff = mm.datasets.load("Dyestuff")
    exact = mm.lmer("Yield ~ 1 + (1 | Batch)", dyestuff).confint(method="profile")
    rough = mm.lmer("Yield ~ 1 + (1 | Batch)", dyestuff, control=Control(profile_ftol_rel=1e-2)).confint(
        method="profile")
    assert not np.array_equal(rough.to_numpy(), exact.to_numpy())  # 12.46 against 12.20 for sd's lower end
    np.testing.assert_allclose(rough.to_numpy(), exact.to_numpy(), rtol=0.05)


def test_the_summary_shows_a_control_line_only_when_not_the_default(sleep):
    m = mm.lmer(SLEEP, sleep)
    assert "Control:" not in str(m.summary())
    m2 = mm.lmer(SLEEP, sleep, control=Control(ftol_rel=1e-10, check_singular_tol=1e-5))
    lines = str(m2.summary()).splitlines()
    after_data = lines[lines.index("   Data: sleepstudy") + 1]  # as lme4 (the title takes two lines, as R's)
    assert after_data == "Control: Control(ftol_rel=1e-10, check_singular_tol=1e-05)"


def test_control_round_trips_through_save_and_load(sleep, cbpp, tmp_path):
    ctl = Control(ftol_rel=1e-10, check_singular_tol=1e-3, pirls_tol=1e-11)
    for name, m in {"lmm": mm.lmer(SLEEP, sleep, control=ctl),
                    "glmm": mm.glmer(CBPP, cbpp, family="binomial", control=ctl)}.items():
        path = tmp_path / f"{name}.npz"
        m.save(path)
        loaded = mm.load(path)
        assert loaded.control == ctl
        assert str(loaded.summary()) == str(m.summary())
        assert loaded.refit(m.design.y).control == ctl


def _rewrite_meta(path, change) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def test_files_without_a_control_load_with_the_default_and_bad_ones_are_refused(sleep, tmp_path):
    path = tmp_path / "m.npz"
    mm.lmer(SLEEP, sleep, control=Control(maxeval=500)).save(path)
    _rewrite_meta(path, lambda meta: meta.pop("control"))  # as written before Control existed
    assert mm.load(path).control == DEFAULT_CONTROL
    _rewrite_meta(path, lambda meta: meta.update(control={"ftol_rel": -1.0}))
    with pytest.raises(mm.ModelFileError, match="fit settings are not valid.*ftol_rel must be a positive"):
        mm.load(path)
    _rewrite_meta(path, lambda meta: meta.update(control=[1]))
    with pytest.raises(mm.ModelFileError, match="'control' is not a mapping"):
        mm.load(path)
    assert zipfile.is_zipfile(path)


def test_refits_refit_ml_and_the_bootstrap_reuse_the_control(sleep, cbpp):
    ctl = Control(ftol_rel=1e-10, xtol_abs=1e-8)
    m = mm.lmer(SLEEP, sleep, control=ctl)
    assert m.refit(m.design.y).control is ctl
    assert m.refit_ml().control is ctl
    g = mm.glmer(CBPP, cbpp, family="binomial", control=ctl)
    assert g.refit(g.design.y).control is ctl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        short = mm.lmer(SLEEP, sleep, maxeval=5)
        boot = short.bootstrap(nsim=2, seed=1, statistic=lambda fit: pd.Series({"nfev": fit.optimum.nfev}))
    assert (boot.replicates["nfev"] == 5).all()  # every replicate ran with maxeval=5


def test_dask_fits_keep_their_control(sleep):
    dd = pytest.importorskip("dask.dataframe")
    ctl = Control(ftol_rel=1e-10)
    d = mm.lmer(SLEEP, dd.from_pandas(sleep, npartitions=2), control=ctl)
    assert d.control is ctl
    assert d.theta == pytest.approx(mm.lmer(SLEEP, sleep, control=ctl).theta, rel=1e-7)
    with pytest.raises(mm.FitError, match="contradicts"):
        mm.lmer(SLEEP, dd.from_pandas(sleep, npartitions=2), maxeval=9, control=ctl)
    cbpp = mm.datasets.load("cbpp")
    g = mm.glmer(CBPP, dd.from_pandas(cbpp, npartitions=2), family="binomial", control=ctl)
    assert g.control is ctl


def test_glmer_nb_fits_every_trial_dispersion_with_the_control(cbpp):
    ctl = Control(ftol_rel=1e-10)
    nb = mm.glmer_nb("incidence ~ period + (1 | herd)", cbpp, control=ctl)
    assert nb.control is ctl
    rough = mm.glmer_nb("incidence ~ period + (1 | herd)", cbpp, control=Control(nb_dispersion_tol=0.5))
    assert rough.family.theta != nb.family.theta  # 1.53 against 1.63: the search stopped sooner
    assert rough.family.theta == pytest.approx(nb.family.theta, rel=0.2)
    with pytest.raises(mm.FitError, match="contradicts"):
        mm.glmer_nb("incidence ~ period + (1 | herd)", cbpp, maxeval=10, control=ctl)
