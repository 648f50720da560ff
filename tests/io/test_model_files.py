"""Crafted model files (issue 15 items 2, 3 and 5): every field and array is checked before it
is read, nothing runs, nothing hangs or exhausts memory; saves are atomic and unique per call."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.errors import ModelFileError

SLEEP = mm.datasets.load("sleepstudy")
FIT = mm.lmer("Reaction ~ Days + (Days | Subject)", SLEEP)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _write(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    mm.save(FIT, path)
    return path


def _meta(members: dict[str, bytes]) -> dict:
    return json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes())


def _with_meta(members: dict[str, bytes], meta: object) -> dict[str, bytes]:
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return {**members, "meta.npy": _npy(np.frombuffer(raw, dtype=np.uint8))}


def _load_quickly(path: Path) -> object:
    start = time.perf_counter()
    try:
        return mm.load(path)
    except ModelFileError as exc:
        return exc
    finally:
        assert time.perf_counter() - start < 3.0


def test_the_saved_file_loads(saved):
    assert mm.load(saved).loglik == FIT.loglik


def test_nested_json_is_a_model_file_error(saved, tmp_path):
    members = _members(saved)
    deep = b"[" * 100_000 + b"]" * 100_000
    error = _load_quickly(_write(tmp_path / "deep.npz", _with_meta(members, deep)))
    assert isinstance(error, ModelFileError) and "not a JSON document" in str(error)


@pytest.mark.parametrize("edit, field", [
    (lambda m: m.pop("optimum"), "optimum"),
    (lambda m: m.update(REML="yes"), "REML"),
    (lambda m: m["design"].update(n=-1), "design.n"),
    (lambda m: m["frame"]["columns"][0].update(kind="pickle"), "frame.columns[0].kind"),
    (lambda m: next(c for c in m["frame"]["columns"] if c["kind"] != "numeric").update(labels=[{"a": 1}]), "labels"),
    (lambda m: m.update(nAGQ=10**9), "nAGQ"),
    (lambda m: m["optimum"].update(converged=None), "optimum.converged"),
    (lambda m: m.update(formula=["y ~ x"]), "formula"),
    (lambda m: m.update(family={"name": 1}), "family.name"),
])
def test_every_field_is_checked(saved, tmp_path, edit, field):
    members = _members(saved)
    meta = _meta(members)
    edit(meta)
    error = _load_quickly(_write(tmp_path / "edited.npz", _with_meta(members, meta)))
    assert isinstance(error, ModelFileError) and field in str(error), str(error)


def test_a_declared_shape_of_2_to_the_40_is_refused_before_reading(saved, tmp_path):
    members = _members(saved)
    header = _npy(np.zeros(3))
    huge = header.replace(b"(3,)", b"(1099511627776,)")
    error = _load_quickly(_write(tmp_path / "huge.npz", {**members, "y.npy": huge}))
    assert isinstance(error, ModelFileError) and "'y.npy'" in str(error)


def _bomb(saved: Path, path: Path, size: int) -> Path:
    """The saved model with a zero-filled ``y`` of ``size`` bytes, deflated."""
    members = _with_meta(_members(saved), _meta(_members(saved)))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if name != "y.npy":
                z.writestr(name, data)
        with z.open("y.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (size // 8,)})
            block = bytes(2**24)
            for _ in range(size // len(block)):
                f.write(block)
    return path


def _refused_cheaply(path: Path) -> ModelFileError:
    tracemalloc.start()
    try:
        error = _load_quickly(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, ModelFileError) and "zip bomb" in str(error), str(error)
    assert peak < 64 * 2**20, f"loading allocated {peak / 2**20:.0f} MiB"
    return error


def test_a_zip_bomb_member_is_refused_from_its_header(saved, tmp_path):
    """A 96 MiB zero-filled member compresses to 96 kB; only its header is read before it is refused."""
    path = _bomb(saved, tmp_path / "bomb.npz", 96 * 2**20)
    assert path.stat().st_size < 2**20
    _refused_cheaply(path)


@pytest.mark.slow
def test_a_3_gb_zip_bomb_in_a_3_mb_file_costs_nothing(saved, tmp_path):
    path = _bomb(saved, tmp_path / "bomb.npz", 3 * 2**30)
    assert path.stat().st_size < 4 * 2**20
    _refused_cheaply(path)


def test_unknown_members_and_object_arrays_are_refused(saved, tmp_path):
    members = _members(saved)
    error = _load_quickly(_write(tmp_path / "extra.npz", {**members, "evil.npy": _npy(np.zeros(1))}))
    assert isinstance(error, ModelFileError) and "evil.npy" in str(error)
    header = _npy(np.zeros(180)).replace(b"'<f8'", b"'|O' ")
    error = _load_quickly(_write(tmp_path / "object.npz", {**members, "y.npy": header}))
    assert isinstance(error, ModelFileError)


def test_a_member_whose_size_contradicts_its_header_is_refused(saved, tmp_path):
    members = _members(saved)
    error = _load_quickly(_write(tmp_path / "short.npz", {**members, "y.npy": members["y.npy"][:-80]}))
    assert isinstance(error, ModelFileError) and "declares shape" in str(error)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


def _mutations(draw_path: list[str], value: object, meta: dict) -> dict:
    target = meta
    for key in draw_path[:-1]:
        if isinstance(target, dict) and key in target:
            target = target[key]
    if isinstance(target, dict):
        target[draw_path[-1]] = value
    return meta


FIELDS = st.lists(st.sampled_from(["formula", "frame", "columns", "design", "n", "kind", "optimum", "index",
                                   "labels", "family", "name", "xnames", "terms", "nAGQ", "start", "stop"]),
                  min_size=1, max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(FIELDS, JSON | st.sampled_from(["y ~ I(__import__('os').system('touch CANARY')) + (1|g)", 10**30, -1]))
def test_fuzzed_model_files_load_or_raise_model_file_error(saved, tmp_path, canary_dir, path, value):
    members = _members(saved)
    meta = _mutations(path, value, _meta(members))
    result = _load_quickly(_write(tmp_path / "fuzzed.npz", _with_meta(members, meta)))
    assert isinstance(result, (ModelFileError, mm.LmerResult if hasattr(mm, "LmerResult") else object))
    assert not (canary_dir / "CANARY").exists()


@pytest.fixture
def canary_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_concurrent_saves_from_threads_leave_one_whole_model(tmp_path):
    path = tmp_path / "shared.npz"
    fits = [FIT, mm.lmer("Reaction ~ Days + (1 | Subject)", SLEEP)]
    errors: list[BaseException] = []

    def save(i: int) -> None:
        try:
            mm.save(fits[i % 2], path)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded = mm.load(path)
    assert loaded.loglik in (fits[0].loglik, fits[1].loglik)
    assert sorted(os.listdir(tmp_path)) == ["shared.npz"]  # no temporary file left behind
