"""Independent replicates (bootstrap refits, power simulations) spread over an executor.

``run(task, payload, jobs, executor)`` returns ``[task(payload, job) for job in jobs]``
in job order, computed:

* serially when ``executor`` is None;
* on a ``concurrent.futures.ThreadPoolExecutor``: the payload (the fitted model) is
  shared by the threads, which only read it;
* on any other ``concurrent.futures.Executor`` (``ProcessPoolExecutor``, loky,
  mpi4py, ...): the payload travels with every chunk, pickled by the executor itself
  (this module serialises nothing), and ``task`` must be a module-level function.
  LMM fits pickle; a statistic must be a module-level function, not a lambda or a
  local function; GLMM fits do not pickle while their family's links hold lambdas.
  What cannot be pickled raises a ``TypeError`` saying so: use threads or Dask then;
* on a ``dask.distributed.Client`` (recognised by having ``submit`` and ``gather``;
  dask is imported only then): the payload is scattered to the cluster once and the
  chunks are submitted as tasks.

Reproducibility does not depend on the executor: a job carries its own seed (replicate
i uses the i-th spawned ``SeedSequence``), so the same seed gives identical
replicates serially and with any number of workers.  Jobs go out in chunks of about
``len(jobs) / (4 · workers)`` to keep the per-task overhead low; the progress bar
advances as chunks finish.  An exception raised by a task (other than the failures
the task itself counts) cancels the chunks not yet started and is re-raised.

Replicate tasks run under :func:`quiet_refits`: refits of simulated responses warn
about singular fits routinely, and those warnings are not the user's concern.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, cast

from .. import errors
from ..errors import MixedModelsWarning
from .progress import Progress
from .threads import fitting_threads

__all__ = ["run", "quiet_refits", "is_dask_client", "n_workers"]


def run(task: Callable[[Any, Any], Any], payload: Any, jobs: Sequence[Any], executor: Any = None,
        progress: bool | None = None, desc: str = "bootstrap", chunk_size: int | None = None) -> list:
    """``[task(payload, job) for job in jobs]``, on ``executor`` (see the module docstring)."""
    jobs = list(jobs)
    kind = _kind(executor)
    bar = Progress(len(jobs), enabled=progress, desc=desc)
    # held for the whole run: refits in threads that set the (process-wide) BLAS limit again
    # then save and restore this same value, so their overlapping contexts cannot leave it changed
    with fitting_threads():
        try:
            return _dispatch(task, payload, jobs, executor, kind, bar, chunk_size)
        finally:
            bar.close()


def _dispatch(task, payload, jobs: list, executor, kind: str, bar, chunk_size: int | None) -> list:
    if kind == "serial":
        out = []
        with quiet_refits():
            for job in jobs:
                out.append(task(payload, job))
                bar.step()
        return out
    size = chunk_size or max(1, math.ceil(len(jobs) / (4 * n_workers(executor))))
    chunks = [(start, jobs[start:start + size]) for start in range(0, len(jobs), size)]
    if kind == "dask":
        return _run_dask(executor, task, payload, chunks, len(jobs), bar)
    fn = _run_chunk if kind == "threads" else _run_chunk_in_process
    futures = {executor.submit(fn, task, payload, chunk): (start, len(chunk)) for start, chunk in chunks}
    try:
        return _collect(futures, cf.as_completed, len(jobs), bar)
    except Exception as exc:
        if kind == "processes" and _is_pickling_error(exc):
            raise TypeError(
                f"cannot send the model or the statistic to worker processes ({exc}); use a module-level "
                "function as statistic, or a ThreadPoolExecutor or a Dask client") from exc
        raise


def is_dask_client(executor: Any) -> bool:
    """Duck typing for ``dask.distributed.Client``: it has ``submit`` and ``gather``."""
    return hasattr(executor, "submit") and hasattr(executor, "gather")


def n_workers(executor: Any) -> int:
    """How many tasks ``executor`` runs at once (threads of a Dask cluster); the CPU count if unknown."""
    if is_dask_client(executor):
        try:
            return max(1, int(sum(executor.nthreads().values())))
        except Exception:  # an unusual client: fall back to the local CPU count
            return os.cpu_count() or 1
    n = getattr(executor, "_max_workers", None)
    return n if isinstance(n, int) and n > 0 else (os.cpu_count() or 1)


def _kind(executor: Any) -> str:
    if executor is None:
        return "serial"
    if is_dask_client(executor):
        return "dask"
    if isinstance(executor, cf.ThreadPoolExecutor):
        return "threads"
    if hasattr(executor, "submit"):
        return "processes"
    raise TypeError("executor must be None, a concurrent.futures.Executor (ThreadPoolExecutor, "
                    f"ProcessPoolExecutor) or a dask.distributed.Client, not {type(executor).__name__}")


def _collect(futures: dict, as_completed: Callable, n: int, bar) -> list:
    """Results of chunk futures {future: (start, length)} in job order, stepping the bar per chunk."""
    out: list = [None] * n
    try:
        for future in as_completed(list(futures)):
            start, length = futures[future]
            out[start:start + length] = future.result()
            bar.step(length)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return out


def _run_dask(client, task, payload, chunks, n: int, bar) -> list:
    from distributed import as_completed

    # one future for the whole payload (scatter would split a tuple into one future per item)
    shared = client.scatter([payload], broadcast=False, hash=False)[0] if hasattr(client, "scatter") else payload
    futures = {client.submit(_run_chunk, task, shared, chunk, pure=False): (start, len(chunk))
               for start, chunk in chunks}
    return _collect(futures, as_completed, n, bar)


def _run_chunk(task: Callable, payload: Any, jobs: list) -> list:
    with quiet_refits():
        return [task(payload, job) for job in jobs]


def _run_chunk_in_process(task: Callable, payload: Any, jobs: list) -> list:
    """A chunk in a worker process: one chunk at a time there, so it may set the process's
    BLAS threads as fits in the main process do (``mixedmodels.runtime.threads``)."""
    with fitting_threads():
        return _run_chunk(task, payload, jobs)


def _is_pickling_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "PicklingError" or (
        isinstance(exc, (TypeError, AttributeError)) and "pickle" in str(exc).lower())


# ----- silencing the package's warnings during replicate refits ----------------------------

_lock = threading.Lock()
_depth = 0
_FILTER = ("ignore", None, MixedModelsWarning, None, 0)


@contextmanager
def quiet_refits() -> Iterator[None]:
    """Silence ``MixedModelsWarning`` while refitting, safely when threads overlap.

    ``warnings.catch_warnings`` is not thread-safe: overlapping uses in threads can
    leave its filter installed for good.  This uses ``errors.quiet`` (per thread or
    task) when the package has it; otherwise one process-wide filter, installed by the
    first caller and removed by the last, so MixedModelsWarnings of other threads are
    silenced too while replicates run.
    """
    quiet = getattr(errors, "quiet", None)
    if quiet is not None:
        with quiet():
            yield
        return
    global _depth
    with _lock:
        if _depth == 0:
            warnings.filterwarnings("ignore", category=MixedModelsWarning)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                try:
                    cast(list, warnings.filters).remove(_FILTER)
                except ValueError:  # someone replaced the filter list meanwhile
                    pass
                mutated = getattr(warnings, "_filters_mutated", None)
                if mutated is not None:
                    mutated()  # forget registries that recorded ignored warnings
