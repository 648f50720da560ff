"""What glmer on a Dask frame costs: passes over the persisted partitions and their round trips.

    python benchmarks/dask_glmm.py                         # tests' cases, then 1,000,000 simulated rows
    python benchmarks/dask_glmm.py --rows 200000 --no-small

Each case is fitted in memory (pandas) and through Dask on
``LocalCluster(n_workers=2, threads_per_worker=1)`` (worker processes, or threads with
``--threads``).  Reported: both wall times; the Dask fit's objective evaluations (all
stages, the convergence checks included) and passes over the persisted partitions
(one scheduler round trip each: working passes of PIRLS, IRLS steps of the start,
log-likelihood passes); the mean time of a pass; the round trip of an empty pass (one
task per partition returning 0, the same tree), i.e. the scheduler's overhead per pass;
and the relative differences of objective, θ, β and SE from the in-memory fit.

``--malloc BYTES`` sets glibc's ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_`` of
the worker processes (distributed's nanny sets the first to 64 KiB, which turns every
temporary array above 128 KiB into a fresh ``mmap`` with its page faults: a pass over a
125,000-row partition then takes 3–4 times as long as in the client's process).

The simulated case: ``y ~ x1 + x2 + (1 | g)``, binomial (0/1), ``--rows`` rows in
``--groups`` groups (row i in group i mod G), x1 ~ N(0, 1), x2 ~ Bernoulli(0.5),
η = −0.5 + 0.4 x1 + 0.3 x2 + b_g with b_g ~ N(0, 0.8²); seed 20261122; ``--partitions``
partitions.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _nothing(rows, point) -> float:
    return 0.0


def _add(*values: float) -> float:
    return float(sum(values))


def small_cases() -> list[tuple]:
    import mixedmodels as mm
    from reference import load_fixture_data

    cbpp = mm.datasets.load("cbpp")
    cbpp["prop"] = cbpp["incidence"] / cbpp["size"]
    verbagg = mm.datasets.load("VerbAgg")
    verbagg = verbagg[verbagg["id"].isin(verbagg["id"].cat.categories[:200])].copy()
    verbagg["id"] = verbagg["id"].cat.remove_unused_categories()
    return [
        ("cbpp, binomial with trials", cbpp, "prop ~ period + (1 | herd)", dict(weights="size"), 3),
        ("Mmmec, Poisson with offset", load_fixture_data("Mmmec"), "deaths ~ uvb + (1 | region)",
         dict(family="poisson", offset="logexp"), 3),
        ("VerbAgg (200 ids), crossed", verbagg, "r2 ~ Anger + Gender + btype + (1 | id) + (1 | item)", {}, 4),
        ("VerbAgg (200 ids), crossed, nAGQ=0", verbagg, "r2 ~ Anger + Gender + btype + (1 | id) + (1 | item)",
         dict(nAGQ=0), 4),
    ]


def simulated(rows: int, groups: int) -> pd.DataFrame:
    rng = np.random.default_rng(20261122)
    g = np.arange(rows) % groups
    x1 = rng.normal(size=rows)
    x2 = rng.integers(0, 2, size=rows).astype(float)
    eta = -0.5 + 0.4 * x1 + 0.3 * x2 + rng.normal(scale=0.8, size=groups)[g]
    y = (rng.random(rows) < 1 / (1 + np.exp(-eta))).astype(float)
    labels = pd.Categorical.from_codes(g, categories=[f"g{k:06d}" for k in range(groups)])
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": labels})


def measure(name: str, df: pd.DataFrame, formula: str, args: dict, partitions: int) -> dict:
    import dask.dataframe as dd

    import mixedmodels as mm
    from mixedmodels.dask.glmm import DaskGLMM, DaskRows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        start = time.perf_counter()
        m = mm.glmer(formula, df, **args)
        memory_s = time.perf_counter() - start
        with counting(DaskRows, "_sum") as passes, counting(DaskGLMM, "laplace") as evaluations:
            start = time.perf_counter()
            d = mm.glmer(formula, dd.from_pandas(df, npartitions=partitions), **args)
            dask_s = time.perf_counter() - start
    rows = d.model.rows
    start = time.perf_counter()
    for _ in range(20):
        rows._sum(_nothing, _add, ())
    empty_ms = 1000 * (time.perf_counter() - start) / 20

    def rel(a, b) -> float:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))

    return {
        "case": name, "rows": len(df), "partitions": partitions, "in-memory s": round(memory_s, 2),
        "dask s": round(dask_s, 2), "evaluations": evaluations[0], "passes": passes[0],
        "ms/pass": round(1000 * dask_s / passes[0], 1), "empty pass ms": round(empty_ms, 1),
        "objective": rel(d.objective, m.objective), "theta": rel(d.theta, m.theta),
        "beta": rel(d.fixef, m.fixef), "SE": rel(d.se, m.se),
    }


@contextmanager
def counting(cls, method: str):
    """Count the calls of ``cls.method`` inside the block (a one-element list)."""
    plain, calls = getattr(cls, method), [0]

    def counted(self, *args):
        calls[0] += 1
        return plain(self, *args)

    setattr(cls, method, counted)
    try:
        yield calls
    finally:
        setattr(cls, method, plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--threads", action="store_true", help="workers as threads of this process")
    parser.add_argument("--no-small", action="store_true", help="only the simulated case")
    parser.add_argument("--malloc", type=int, default=0, help="workers' glibc trim and mmap thresholds (bytes)")
    opts = parser.parse_args()

    import dask
    from distributed import Client, LocalCluster

    if opts.malloc:
        dask.config.set({f"distributed.nanny.pre-spawn-environ.MALLOC_{name}_THRESHOLD_": opts.malloc
                         for name in ("TRIM", "MMAP")})

    cases = [] if opts.no_small else small_cases()
    if opts.rows:
        cases.append((f"simulated binomial, {opts.groups} groups", simulated(opts.rows, opts.groups),
                      "y ~ x1 + x2 + (1 | g)", {}, opts.partitions))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=not opts.threads, dashboard_address=":0") as cluster, \
            Client(cluster):
        results = [measure(*case) for case in cases]
    table = pd.DataFrame(results).set_index("case")
    agreement = {c: "{:.1e}".format for c in ("objective", "theta", "beta", "SE")}
    print(table.to_string(formatters=agreement))


if __name__ == "__main__":
    main()
