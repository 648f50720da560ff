"""Reading a model file that may have been crafted: every field and array checked first.

A model file is a zip archive of ``.npy`` members.  Before any array is read, each
member's ``.npy`` header (dtype, shape) is read from the archive and checked: a known
member name, a plain numeric dtype, the shape the JSON document implies (rows of the
stored frame, θ and β sizes), a size that matches the member's declared uncompressed
size, no member that expands more than a zip bomb would, and a total that fits in
memory.  The JSON document is checked field by field (types, ranges, lengths) before
anything else reads it.  Every failure is a ModelFileError naming the field or member.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..design.size import available_memory
from ..errors import ModelFileError
from ..formula.limits import MAX_LENGTH

MAX_META_BYTES = 256 * 2**20  # the JSON document
MAX_MEMBERS = 10_000
MAX_PARAMETERS = 100_000  # entries of x, gradient, beta
MAX_EXPANSION = 1_000  # deflate's limit is about 1,032: only runs of one byte expand this much
BOMB_BYTES = 64 * 2**20  # members larger than this may not expand MAX_EXPANSION-fold
_MEMBER = re.compile(r"(meta|index|y|weights|offset|x|gradient|hessian|beta|column\d{1,6}|u\d{1,4})\.npy")
_KINDS = "biuf"  # booleans, integers, floats: never objects
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_archive(name: str, expected: tuple[str, int]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checked JSON document and arrays of the model file ``name`` of format and version ``expected``.

    OSErrors of opening the file (no such file, ...) pass through.
    """
    with open(name, "rb") as file:
        if file.read(6) == b"\x93NUMPY":
            raise ModelFileError("not a mixedmodels model file (a single .npy array, not an .npz archive)")
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                return _read(archive, expected)
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError, ValueError,
                struct.error) as exc:  # a damaged header can claim encryption, or point anywhere
            raise ModelFileError(f"not a mixedmodels model file, or a truncated or corrupted one "
                                 f"({type(exc).__name__}: {exc})") from None


def _read(archive: zipfile.ZipFile, expected: tuple[str, int]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"the archive has {len(infos):,} members; a model file has far fewer")
    members = {info.filename.removesuffix(".npy"): info for info in infos}
    if "meta" not in members:
        raise ModelFileError("not a mixedmodels model file (the archive has no 'meta' entry)")
    meta = _read_meta(archive, members["meta"], _header(archive, members["meta"]), expected)
    for info in infos:
        if not _MEMBER.fullmatch(info.filename):
            raise ModelFileError(f"not a mixedmodels model file (unexpected member {info.filename!r})")
    headers = {key: _header(archive, info) for key, info in members.items()}
    _check_members(meta, members, headers)
    return meta, {key: _read_array(archive, info) for key, info in members.items() if key != "meta"}


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a member's ``.npy`` header, reading nothing else; checked against its size."""
    what = f"the member {info.filename!r}"
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in _HEADER_READERS:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = _HEADER_READERS[version](f, max_header_size=10_000)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise ModelFileError(f"{what} is not a numpy array ({exc})") from None
    if dtype.hasobject or dtype.kind not in _KINDS or dtype.fields is not None:
        raise ModelFileError(f"{what} has dtype {dtype}; a model file stores only numbers and booleans")
    if fortran and len(shape) > 1 or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ModelFileError(f"{what} has an invalid shape {shape}")
    declared = math.prod(shape) * dtype.itemsize
    if info.file_size != offset + declared:
        raise ModelFileError(f"{what} declares shape {shape} of {dtype} ({declared:,} bytes), but holds "
                             f"{info.file_size - offset:,} bytes")
    if declared > BOMB_BYTES and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise ModelFileError(f"{what} expands {info.file_size / max(info.compress_size, 1):,.0f}-fold "
                             f"(to {declared / 2**20:,.0f} MiB); a model's arrays do not, a zip bomb does")
    return shape, dtype


def _read_meta(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: tuple[tuple[int, ...], np.dtype],
               expected: tuple[str, int]) -> dict:
    shape, dtype = header
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_META_BYTES:
        raise ModelFileError(f"the 'meta' entry is not a JSON document (a {dtype} array of shape {shape})")
    raw = _read_array(archive, info)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"the 'meta' entry is not a JSON document ({type(exc).__name__})") from None
    check_meta(meta, expected)
    return meta


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as f:
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ModelFileError(f"the member {info.filename!r} is damaged ({exc})") from None


def _check_members(meta: dict, members: dict[str, zipfile.ZipInfo],
                   headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Each array's shape as the document implies, before any is read; their total against memory."""
    n = meta["design"]["n"]
    ncolumns = len(meta["frame"]["columns"])
    expected: dict[str, Callable[[tuple[int, ...]], bool]] = {
        "y": lambda s: s == (n,), "weights": lambda s: s == (n,), "offset": lambda s: s == (n,),
        "index": lambda s: s == (n,), "meta": lambda s: True,
        "x": lambda s: len(s) == 1 and s[0] <= MAX_PARAMETERS, "gradient": lambda s: len(s) == 1 and s[0] <= MAX_PARAMETERS,
        "beta": lambda s: len(s) == 1 and s[0] <= MAX_PARAMETERS,
        "hessian": lambda s: len(s) == 2 and s[0] == s[1] and s[0] <= 10_000,
    }
    for key in ("y", "x", "gradient"):
        if key not in members:
            raise ModelFileError(f"the archive has no {key!r} entry")
    for key, (shape, _) in headers.items():
        if key.startswith("column"):
            ok = int(key[6:]) < ncolumns and shape == (n,)
        elif key.startswith("u"):
            ok = len(shape) <= 2 and math.prod(shape) <= 10**8
        else:
            ok = expected[key](shape)
        if not ok:
            raise ModelFileError(f"the member {key!r} has shape {shape}, which does not fit the model "
                                 f"the document describes ({n:,} rows)")
    total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values())
    if total > available_memory() // 2:
        raise ModelFileError(f"the file's arrays need {total / 2**30:,.1f} GiB, more than half the memory available")


# ----- the JSON document ------------------------------------------------------------------
def check_meta(meta: object, expected: tuple[str, int]) -> None:
    """Raise ModelFileError naming the first field of the document that is missing or malformed;
    ``expected`` is the format name and version this package reads."""
    fmt, version = expected
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != fmt:
        shown = found[:80] if isinstance(found, str) else found if isinstance(found, (int, float, type(None))) else "?"
        raise ModelFileError(f"not a mixedmodels model file (format {shown!r}, expected {fmt!r})")
    assert isinstance(meta, dict)
    if meta.get("version") != version:
        raise ModelFileError(
            f"the file has format version {str(meta.get('version'))[:20]}; this version of mixedmodels "
            f"reads version {version} (written by mixedmodels {str(meta.get('mixedmodels', '?'))[:20]})"
        )
    doc = _Fields(meta, "the document")
    if doc.get("kind", str) not in ("lmer", "glmer"):
        raise ModelFileError(f"unknown model kind {meta['kind'][:20]!r}")
    formula = doc.get("formula", str)
    if len(formula) > MAX_LENGTH:
        raise ModelFileError(f"the stored formula has {len(formula):,} characters; the limit is {MAX_LENGTH:,}")
    doc.get("data_name", (str, type(None)))
    doc.get("REML", bool)
    doc.get("nAGQ", (int, type(None)), check=lambda v: v is None or 0 <= v <= 100)
    doc.get("extra_parameters", int, check=lambda v: 0 <= v <= 10)
    doc.get("n_dropped", int, check=lambda v: v >= 0)
    family = doc.get("family", (dict, type(None)))
    if family is not None:
        fam = _Fields(family, "family")
        fam.get("name", str)
        fam.get("link", str)
        if "theta" in family:
            fam.get("theta", (int, float), check=lambda v: 0 < v < math.inf)
    contrasts = doc.get("contrasts", dict, optional=True)
    if contrasts is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in contrasts.items()):
        raise ModelFileError("the field 'contrasts' must map column names to contrast names")
    # 'control' is checked by persistence.decode_control, which names what is wrong with it
    design = _Fields(doc.get("design", dict), "design")
    n = design.get("n", int, check=lambda v: 1 <= v <= 10**10)
    _strings(design.get("xnames", list), "design.xnames")
    for term in design.get("terms", list):
        if not (isinstance(term, list) and len(term) == 3 and isinstance(term[0], str)
                and isinstance(term[2], int) and isinstance(term[1], list)):
            raise ModelFileError(f"the field 'design.terms' has a malformed term {str(term)[:80]}")
        _strings(term[1], "design.terms")
    opt = _Fields(doc.get("optimum", dict), "optimum")
    opt.get("fun", (int, float))
    opt.get("nfev", int, check=lambda v: v >= 0)
    opt.get("converged", bool)
    opt.get("message", str)
    frame = _Fields(doc.get("frame", dict), "frame")
    for i, column in enumerate(frame.get("columns", list)):
        _check_vector(_Fields(column, f"frame.columns[{i}]"), named=True)
    index = _Fields(frame.get("index", dict), "frame.index")
    index.get("name", (str, int, float, bool, type(None)))
    if index.get("kind", str) == "range":
        start, stop, step = (index.get(k, int) for k in ("start", "stop", "step"))
        if step == 0 or len(range(start, stop, step)) != n:
            raise ModelFileError(f"the field 'frame.index' describes {len(range(start, stop, step or 1)):,} rows, "
                                 f"not the model's {n:,}")
    else:
        _check_vector(index, named=False)


def _check_vector(spec: _Fields, named: bool) -> None:
    if named:
        spec.get("name", str)
    kind = spec.get("kind", str, allowed=("category", "numeric", "string"))
    if kind == "numeric":
        spec.get("dtype", str, check=lambda v: len(v) < 20)
        return
    labels = spec.get("labels", list)
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in labels):
        raise ModelFileError(f"the field '{spec.path}.labels' must hold strings or numbers")
    if kind == "category":
        spec.get("labels_dtype", str, check=lambda v: len(v) < 20)
        spec.get("ordered", bool)
    else:
        spec.get("dtype", str, check=lambda v: len(v) < 20)


def _strings(values: list, path: str) -> None:
    if not all(isinstance(v, str) for v in values):
        raise ModelFileError(f"the field '{path}' must hold strings")


class _Fields:
    """Typed access to one JSON object: each missing or malformed field is a ModelFileError naming it."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise ModelFileError(f"{path} must be a JSON object, not {type(value).__name__}")
        self.value, self.path = value, path

    def get(self, key: str, types: type | tuple[type, ...], allowed: tuple = (), optional: bool = False,
            check: Callable[[Any], bool] | None = None) -> Any:
        where = key if self.path == "the document" else f"{self.path}.{key}"
        if key not in self.value:
            if optional:
                return None
            raise ModelFileError(f"the field '{where}' is missing")
        value = self.value[key]
        kinds = types if isinstance(types, tuple) else (types,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(t.__name__ for t in kinds)
            raise ModelFileError(f"the field '{where}' must be {names}, not {type(value).__name__}")
        if allowed and value not in allowed or check is not None and not check(value):
            raise ModelFileError(f"the field '{where}' has an invalid value {str(value)[:80]!r}")
        return value
