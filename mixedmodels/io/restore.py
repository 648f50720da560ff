"""A fitted model rebuilt from a model file (see ``persistence`` for the format): nothing is re-optimised."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..engine.glmm import GeneralizedLinearMixedModel, PirlsStart
from ..engine.lmm import LinearMixedModel
from ..engine.optimizer import OptimumReport
from ..errors import FormulaError, ModelFileError
from ..formula.parse import ParsedFormula, parse_formula
from ..formula.safety import check_formula
from ..results.glmer import GlmerResult
from ..results.lmer import LmerResult, MixedModelResult
from .persistence import decode_control, decode_family, read_model_file, rebuild_design, without_fit_warnings


def load(path: str | os.PathLike, safe: bool = True) -> MixedModelResult:
    """Read a model written by :func:`save`; raises ModelFileError for anything else.

    Rebuilding evaluates the stored formula, and formulaic runs the Python code in
    formulas; so by default the formula must pass :func:`~mixedmodels.formula.check_formula`.
    Pass ``safe=False`` only for files you trust (e.g. a formula with ``I(x > 2)``).
    """
    name = os.fspath(path)
    meta, arrays = read_model_file(name)
    try:
        formula = str(meta.get("formula"))
        parsed = check_formula(formula) if safe else parse_formula(formula)
    except FormulaError as exc:
        raise ModelFileError(
            f"cannot load {name!r}: its formula does not pass check_formula, which guards against "
            f"formulas that run code; load(..., safe=False) only if you trust the file.\n{exc}"
            if safe else f"cannot load {name!r}: its formula cannot be read.\n{exc}"
        ) from exc
    try:
        return _rebuild(parsed, meta, arrays)
    except ModelFileError as exc:
        raise ModelFileError(f"cannot load {name!r}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFileError(f"cannot load {name!r}: the file is corrupted or inconsistent ({exc!r})") from exc


def _rebuild(parsed: ParsedFormula, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> MixedModelResult:
    """The result from the stored optimum, its design rebuilt from ``parsed`` and the stored frame."""
    opt = meta["optimum"]
    report = OptimumReport(
        x=arrays["x"], fun=float(opt["fun"]), nfev=int(opt["nfev"]), converged=bool(opt["converged"]),
        gradient=arrays["gradient"], message=str(opt["message"]), hessian=arrays.get("hessian"),
    )
    control = decode_control(meta.get("control", {}))
    with without_fit_warnings():
        design = rebuild_design(parsed, meta, arrays)
        if meta["kind"] == "lmer":
            model = LinearMixedModel(design, REML=bool(meta["REML"]), control=control)
            _check_shape(report.x, model.theta_start.size, "x")
            return LmerResult(parsed, model, report, data_name=meta["data_name"])
        if meta["kind"] != "glmer":
            raise ModelFileError(f"unknown model kind {meta['kind']!r}")
        glmm = GeneralizedLinearMixedModel(design, decode_family(meta["family"]), nAGQ=int(meta["nAGQ"]),
                                           control=control)
        _check_shape(report.x, glmm.ntheta + (glmm.p if glmm.nAGQ > 0 else 0), "x")
        # PIRLS restarts from the stored modes, so the result's state is the saved one bit for bit
        start = PirlsStart(tuple(arrays[f"u{j}"] for j in range(len(glmm.terms))), arrays["beta"])
        for u, t in zip(start.u, glmm.terms):
            _check_shape(u, t.q, "u")
        fit = GlmerResult(parsed, glmm, report, data_name=meta["data_name"], start=start)
    if meta["extra_parameters"]:
        fit.extra_parameters = int(meta["extra_parameters"])
    return fit


def _check_shape(values: np.ndarray, size: int, what: str) -> None:
    if values.shape != (size,):
        raise ModelFileError(f"the stored {what!r} has shape {values.shape}; the model needs {size} values")
