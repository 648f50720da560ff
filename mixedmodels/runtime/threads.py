"""How many BLAS threads the optimisation loops use.

Each objective evaluation is a sequence of many small and medium BLAS/LAPACK
calls.  With OpenBLAS's default of one thread per core, these calls pay a
thread hand-off each time, and when other processes compete for the cores the
spinning threads slow an InstEval fit six-fold (measured: 65.6 s against
10.7 s with one thread, load average 4 on 2 cores).  Fits therefore run with
one BLAS thread unless ``set_blas_threads`` says otherwise; ``None`` leaves the
libraries' own setting.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from threadpoolctl import ThreadpoolController

from .allocator import tune_allocator

_blas_threads: int | None = 1
_controller: ThreadpoolController | None = None  # found once: scanning the loaded libraries costs ms


def set_blas_threads(n: int | None) -> None:
    """BLAS threads used while fitting: a positive number, or None for the library default."""
    global _blas_threads
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"the number of BLAS threads must be a positive integer or None, not {n!r}")
    _blas_threads = n


def fitting_threads() -> AbstractContextManager:
    """A context in which BLAS uses the configured number of threads (and the allocator is tuned, once)."""
    global _controller
    tune_allocator()
    if _blas_threads is None:
        return nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=_blas_threads, user_api="blas")


def with_fitting_threads(func: Callable) -> Callable:
    """Run ``func`` (a fit, or a computation made of many factorisations) under fitting_threads."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with fitting_threads():
            return func(*args, **kwargs)
    return wrapper
