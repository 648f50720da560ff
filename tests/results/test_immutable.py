"""Results are immutable: no public method changes the engine, the fit, or another fit of the same engine,
and every method gives the same answer whatever was called before it."""

from __future__ import annotations

import inspect
from functools import cached_property
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | {})"


def _cbpp_with_noise_groups() -> pd.DataFrame:
    """cbpp with a grouping factor unrelated to the response: a singular fit (θ = 0 on its bound)."""
    data = mm.datasets.load("cbpp").copy()
    data["noise"] = np.random.default_rng(0).integers(0, 6, len(data)).astype(str)
    return data


FITS: dict[str, Callable[[], Any]] = {
    "lmer": lambda: mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy")),
    "glmer": lambda: mm.glmer(CBPP.format("herd"), mm.datasets.load("cbpp"), family="binomial"),
    # β's covariance given θ (nAGQ = 0), and the Hessian of β alone (θ on its bound): both run PIRLS again
    "glmer_nAGQ0": lambda: mm.glmer(CBPP.format("herd"), mm.datasets.load("cbpp"), family="binomial", nAGQ=0),
    "glmer_singular": lambda: mm.glmer(CBPP.format("noise"), _cbpp_with_noise_groups(), family="binomial"),
}


def _arguments(fit: Any, tmp: Path) -> dict[str, dict[str, Any]]:
    """Arguments for the public methods that need some (or would be slow with their defaults)."""
    rng_mu = fit.fitted.to_numpy()
    return {
        "draw_response": {"mu": rng_mu, "rng": np.random.default_rng(1)},
        "inverse_link": {"eta": np.linspace(-1, 1, 5)},
        "link_derivative": {"eta": np.linspace(-1, 1, 5)},
        "refit": {"y": fit.design.y},
        "refit_rows": {"keep": np.arange(fit.nobs) % 7 != 0},
        "save": {"path": tmp / "fit.npz"},
        "bootstrap": {"nsim": 2, "seed": 1},
        "simulate": {"seed": 1},
        "confint": {"method": "wald"},
        "get_me": {"name": "Lambdat"},
    }


def _public_calls(fit: Any, tmp: Path) -> dict[str, Callable[[], Any]]:
    """Every public method and property of the fit, as a call without arguments."""
    args = _arguments(fit, tmp)
    calls: dict[str, Callable[[], Any]] = {}
    for name in dir(type(fit)):
        if name.startswith("_"):
            continue
        member = getattr(type(fit), name)
        if isinstance(member, (property, cached_property)) or not callable(member):
            calls[name] = lambda name=name: getattr(fit, name)
            continue
        sig = inspect.signature(member)
        required = [p for p in list(sig.parameters)[1:] if sig.parameters[p].default is inspect.Parameter.empty]
        missing = set(required) - set(args.get(name, {}))
        assert not missing, f"{type(fit).__name__}.{name} needs {missing}: add them to _arguments"
        calls[name] = lambda name=name: getattr(fit, name)(**args.get(name, {}))
    return calls


def _state(fit: Any) -> list[np.ndarray]:
    """θ, β, the spherical modes, the objective and what the engine starts from, bit for bit."""
    model = fit.model
    out = [fit.theta.copy(), fit.fixef.to_numpy().copy(), *[u.copy() for u in fit._u],
           np.array([fit.objective]), fit.optimum.x.copy()]
    if hasattr(model, "warm_start"):
        out += [u.copy() for u in model.warm_start.u]
        out.append(np.array([]) if model.warm_start.beta is None else model.warm_start.beta.copy())
        out.append(np.array([model.deviance(fit._theta_engine, fit.fixef.to_numpy())]))
    else:
        out.append(np.array([model.objective(fit._theta_engine)]))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (pd.DataFrame, pd.Series, pd.Index)):
        return a.equals(b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    if hasattr(a, "replicates"):  # a bootstrap
        return a.replicates.equals(b.replicates)
    if hasattr(a, "optimum"):  # a refitted model
        return np.array_equal(a.optimum.x, b.optimum.x)
    return str(a) == str(b)


@pytest.mark.parametrize("kind", sorted(FITS))
def test_public_methods_change_neither_the_fit_nor_the_engine_nor_another_fit(kind, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = FITS[kind]()
        other = type(fit)(fit.parsed, fit.model, fit.optimum)  # another fit of the same engine
        before, before_other = _state(fit), _state(other)
        for name, call in _public_calls(fit, tmp_path).items():
            call()
            assert all(np.array_equal(a, b) for a, b in zip(_state(fit), before)), f"{name} changed the fit"
        assert all(np.array_equal(a, b) for a, b in zip(_state(other), before_other))
        again = type(fit)(fit.parsed, fit.model, fit.optimum)
        assert all(np.array_equal(a, b) for a, b in zip(_state(again), before_other))


@pytest.mark.parametrize("kind", sorted(FITS))
def test_results_are_the_same_in_any_call_order(kind, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, second = FITS[kind](), FITS[kind]()
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        calls_a = _public_calls(first, tmp_path / "a")
        calls_b = _public_calls(second, tmp_path / "b")
        forward = {name: call() for name, call in calls_a.items()}
        backward = {name: call() for name, call in reversed(list(calls_b.items()))}
    different = [name for name in forward if not _same(forward[name], backward[name])]
    assert not different
