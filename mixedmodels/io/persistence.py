"""Save a fitted model to a file and load it back, without pickle.

Format, version 1: one ``.npz`` archive written by ``np.savez_compressed`` and read
with ``np.load(..., allow_pickle=False)``, so reading a file never unpickles.  Its
``meta`` entry is a UTF-8 JSON document stored as a uint8 array::

    {"format": "mixedmodels-model", "version": 1, "kind": "lmer" | "glmer",
     "formula": ..., "data_name": ..., "REML": ..., "family": {"name", "link", "theta"},
     "nAGQ": ..., "extra_parameters": ..., "n_dropped": ...,
     "frame": {"columns": [...], "index": {...}}, "design": {...}, "optimum": {...},
     "control": {...}}

``control`` holds the settings of ``mixedmodels.Control`` that differ from the
defaults; files written before it existed load with the default Control.

The other entries are plain numeric arrays: ``column<i>`` (values, or codes of
categorical and string columns, whose labels are in the JSON), ``index``, the
response ``y``, ``weights`` and ``offset`` exactly as the fit used them (binomial
trials and formula offsets included), the optimum's ``x``, ``gradient`` and
``hessian``, and for GLMMs the PIRLS modes ``u<j>`` and ``beta`` at the optimum.

Loading rebuilds the design from the stored complete-case frame with
``build_design`` (after ``check_formula`` accepts the stored formula, unless
``safe=False``) and the result from the stored optimum: nothing is re-optimised,
and a loaded model prints, predicts, simulates and compares exactly as the saved one.
Warnings that the fit gave (singular fit, convergence, rank deficiency) are not
repeated on loading; ``is_singular()``, ``optimum`` and the summary still show them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import threading
import warnings
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pandas as pd

from ..design.build import Design, build_design
from ..engine.control import Control
from ..engine.families import FAMILIES, Family, NegativeBinomial, get_family
from ..errors import MixedModelsError, MixedModelsWarning, ModelFileError
from ..formula.parse import ParsedFormula, parse_formula
from ..protocols import FittedGlmm, FittedModel
from .validate import read_archive
from ..version import __version__

FORMAT = "mixedmodels-model"
VERSION = 1




def save(fit: FittedModel, path: str | os.PathLike) -> None:
    """Write a fitted ``lmer``/``glmer``/``glmer_nb`` model to ``path`` (an ``.npz`` archive).

    The file is written atomically under a temporary name unique to the call (a failed
    save leaves no partial file; concurrent saves leave one whole model), and only after
    checking that the design rebuilds exactly from what is stored.
    """
    if getattr(fit, "kind", None) not in ("lmer", "glmer"):
        raise TypeError(f"save() writes lmer and glmer fits, not {type(fit).__name__}")
    try:
        meta, arrays = _encode(fit)
        _check_rebuilds(fit.design, meta, arrays)
    except ModelFileError as exc:
        raise ModelFileError(f"cannot save the model to {os.fspath(path)!r}: {exc}") from None
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    # next to the target, so the rename is atomic; unique per call, so threads and processes never share it
    tmp = f"{os.fspath(path)}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "xb") as f:
            np.savez_compressed(f, **cast(dict[str, Any], arrays))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ----- reading ---------------------------------------------------------------------------
def read_model_file(name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the arrays of a model file, each field and array header checked
    before anything is read (``io.validate``)."""
    try:
        return read_archive(name, (FORMAT, VERSION))
    except ModelFileError as exc:
        raise ModelFileError(f"cannot load {name!r}: {exc}") from None


@contextlib.contextmanager
def without_fit_warnings() -> Iterator[None]:
    """The fit's warnings were given when it was fitted; rebuilding it repeats none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)
        yield


def rebuild_design(parsed: ParsedFormula, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Design:
    """The design from the stored frame, with the stored y, weights and offset put back verbatim."""
    frame = _decode_frame(meta["frame"], arrays)
    binomial = meta["kind"] == "glmer" and meta["family"]["name"] == "binomial"
    contrasts = meta.get("contrasts") or None  # files written before contrasts= have none
    if contrasts is not None and (not isinstance(contrasts, dict)
                                  or not all(isinstance(k, str) and isinstance(v, str) for k, v in contrasts.items())):
        raise ModelFileError(f"the stored contrasts must map column names to R's codings, not {contrasts!r}")
    design = build_design(parsed, frame, binomial=binomial, contrasts=contrasts)
    found = _describe(design)
    saved = {**meta["design"], "terms": sorted(meta["design"]["terms"])}  # files before 0.2 list them in formula order
    if found != saved:
        parts = [k for k in found if found[k] != saved.get(k)]
        raise ModelFileError(
            f"the model rebuilt from the stored formula and data differs from the saved one in "
            f"{', '.join(parts)} (saved {[saved.get(k) for k in parts]}, rebuilt "
            f"{[found[k] for k in parts]})"
        )
    return dataclasses.replace(
        design, y=arrays["y"], weights=arrays.get("weights"), offset=arrays.get("offset"),
        n_dropped=int(meta["n_dropped"]),
    )


def _describe(design: Design) -> dict[str, Any]:
    """What must agree between a saved design and its rebuild (JSON-ready)."""
    return {
        "n": design.n,
        "xnames": list(design.xnames),
        "terms": sorted([t.group, list(t.columns), t.nlevels] for t in design.reterms),
    }


def _check_rebuilds(design: Design, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Refuse to save what would not load as the same model (e.g. a design edited by hand)."""
    try:
        with without_fit_warnings():
            rebuilt = rebuild_design(parse_formula(meta["formula"]), meta, arrays)
    except MixedModelsError as exc:
        raise ModelFileError(f"the model cannot be rebuilt from its formula and data ({exc})") from exc
    same = np.array_equal(rebuilt.X, design.X) and all(
        np.array_equal(a.matrix, b.matrix) and np.array_equal(a.codes, b.codes)
        for a, b in zip(rebuilt.reterms, design.reterms)
    )
    if not same:
        raise ModelFileError(
            "the model's matrices differ from those its formula gives on its data "
            "(was the design modified after fitting?)"
        )


# ----- writing ---------------------------------------------------------------------------
def _encode(fit: FittedModel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    design = fit.design
    if design.frame is None:
        raise ModelFileError("the fit keeps no data frame to rebuild it from")
    if design.na_action == "exclude":
        raise ModelFileError("a fit with na_action='exclude' cannot be stored yet (the file keeps only the "
                             "rows used); refit with na_action='omit' to save it")
    frame_meta, arrays = _encode_frame(design.frame)
    arrays["y"] = np.asarray(design.y, dtype=float)
    for key in ("weights", "offset"):
        if getattr(design, key) is not None:
            arrays[key] = np.asarray(getattr(design, key), dtype=float)
    opt = fit.optimum
    arrays["x"] = np.asarray(opt.x, dtype=float)
    arrays["gradient"] = np.asarray(opt.gradient, dtype=float)
    if opt.hessian is not None:
        arrays["hessian"] = np.asarray(opt.hessian, dtype=float)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "mixedmodels": __version__,
        "kind": fit.kind,
        "formula": fit.parsed.text,
        "data_name": None if fit.data_name is None else str(fit.data_name),
        "REML": bool(getattr(fit, "REML", False)),
        "family": None,
        "nAGQ": None,
        "extra_parameters": 0,
        "n_dropped": int(design.n_dropped),
        "contrasts": dict(design.contrasts),
        "frame": frame_meta,
        "design": _describe(design),
        "optimum": {"fun": float(opt.fun), "nfev": int(opt.nfev), "converged": bool(opt.converged),
                    "message": str(opt.message)},
        "control": fit.control.changes(),
    }
    if fit.kind == "glmer":
        glmm = cast(FittedGlmm, fit)
        meta.update(family=_encode_family(glmm.family), nAGQ=int(glmm.nAGQ), extra_parameters=int(glmm.extra_parameters))
        for j, u in enumerate(glmm.pirls_state.u):
            arrays[f"u{j}"] = np.asarray(u, dtype=float)
        arrays["beta"] = np.asarray(glmm.pirls_state.beta, dtype=float)
    return meta, arrays


def _encode_family(family: Family) -> dict[str, Any]:
    out = {"name": family.name, "link": family.link.name}
    if isinstance(family, NegativeBinomial):
        return {**out, "theta": family.theta}
    if type(family) not in FAMILIES.values():
        raise ModelFileError(f"the family {family!r} is not one of mixedmodels' own, so it cannot be stored")
    return out


def decode_control(settings: Any) -> Control:
    """The stored Control (its non-default settings); the default for files without one."""
    if not isinstance(settings, dict):
        raise ModelFileError(f"the stored 'control' is not a mapping of settings ({settings!r})")
    try:
        return Control.from_dict(settings)
    except MixedModelsError as exc:
        raise ModelFileError(f"the stored fit settings are not valid ({exc})") from None


def decode_family(spec: dict[str, Any]) -> Family:
    if spec["name"] == NegativeBinomial.name:
        return NegativeBinomial(float(spec["theta"]), spec["link"])
    return get_family(spec["name"], spec["link"])


# ----- the data frame --------------------------------------------------------------------
_JSON_SCALARS = (str, int, float, bool, type(None))


def _encode_frame(frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Column and index descriptions for the JSON, and their arrays."""
    columns, arrays = [], {}
    for i, name in enumerate(frame.columns):
        if not isinstance(name, str):
            raise ModelFileError(f"column names must be strings to be stored; got {name!r}")
        spec, arrays[f"column{i}"] = _encode_vector(frame[name], f"column {name!r}")
        columns.append({"name": name, **spec})
    index = frame.index
    if isinstance(index, pd.MultiIndex) or not isinstance(index.name, _JSON_SCALARS):
        raise ModelFileError("the data's row index must be a plain index with a simple name to be stored")
    if isinstance(index, pd.RangeIndex):
        index_meta = {"kind": "range", "start": index.start, "stop": index.stop, "step": index.step}
    else:
        index_meta, arrays["index"] = _encode_vector(pd.Series(index), "the row index")
    return {"columns": columns, "index": {**index_meta, "name": index.name}}, arrays


def _decode_frame(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    ix = spec["index"]
    if ix["kind"] == "range":
        index = pd.RangeIndex(ix["start"], ix["stop"], ix["step"], name=ix["name"])
    else:
        index = pd.Index(_decode_vector(ix, arrays["index"]), name=ix["name"])
    columns = {c["name"]: _decode_vector(c, arrays[f"column{i}"]) for i, c in enumerate(spec["columns"])}
    return pd.DataFrame(columns, index=index)


def _encode_vector(values: pd.Series, what: str) -> tuple[dict[str, Any], np.ndarray]:
    """Numbers and booleans as themselves; categoricals and strings as codes plus labels."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories
        spec = {"kind": "category", "labels": _labels(cats, what), "labels_dtype": str(cats.dtype),
                "ordered": bool(dtype.ordered)}
        return spec, values.cat.codes.to_numpy()
    numpy_dtype = getattr(dtype, "numpy_dtype", dtype)  # pandas' nullable Int64, Float64, boolean
    if isinstance(numpy_dtype, np.dtype) and numpy_dtype.kind in "biuf":
        return {"kind": "numeric", "dtype": str(dtype)}, values.to_numpy(dtype=numpy_dtype)
    if pd.api.types.is_string_dtype(dtype) and values.map(type).eq(str).all():
        codes, uniques = pd.factorize(values)
        return {"kind": "string", "labels": list(uniques), "dtype": str(dtype)}, codes
    raise ModelFileError(
        f"{what} has dtype {dtype}, which cannot be stored; numbers, booleans, strings and "
        "categoricals of numbers or strings can"
    )


def _labels(categories: pd.Index, what: str) -> list:
    if categories.dtype.kind in "biuf":
        return categories.tolist()
    if all(isinstance(c, str) for c in categories):
        return list(categories)
    raise ModelFileError(f"{what} has categories of dtype {categories.dtype}; only numbers and strings can be stored")


def _decode_vector(spec: dict[str, Any], array: np.ndarray):
    """An array or pandas array equal to the encoded one, dtype included."""
    kind = spec["kind"]
    if kind == "category":
        categories = pd.Index(spec["labels"], dtype=spec["labels_dtype"])
        return pd.Categorical.from_codes(array, dtype=pd.CategoricalDtype(categories, bool(spec["ordered"])))
    if kind == "numeric":
        return pd.array(array, dtype=spec["dtype"]) if spec["dtype"] != str(array.dtype) else array
    if kind == "string":
        labels = np.empty(len(spec["labels"]), dtype=object)
        labels[:] = spec["labels"]
        values = labels[array]
        return values if spec["dtype"] == "object" else pd.array(values, dtype=spec["dtype"])
    raise ModelFileError(f"unknown column kind {kind!r}")
