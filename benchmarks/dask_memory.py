"""Client memory of an LMM fitted to 20,000,000 rows of Parquet through Dask.

    python benchmarks/dask_memory.py                       # 20M rows, then 2M both ways; ~10 min here
    python benchmarks/dask_memory.py --rows 2000000 --groups 20000 --small-rows 0   # a quick run
    python benchmarks/dask_memory.py --json out.json --dir /tmp/somewhere --keep

The data: ``y ~ x + (1 + x | g)`` as benchmarks/cases.py's sim_lmm_1m, y = 1 + 0.5 x
+ b0[g] + b1[g] x + 1.5 e with x, e ~ N(0, 1) and (b0, b1) ~ N(0, [[1, .3], [.3, .5]]);
by default 20,000,000 rows in 200,000 groups of 100 (many groups: the client's
crossproducts and factor grow with the number of groups, not of rows).  Row i
belongs to group i mod G, so every file holds rows of every group and every
partition's crossproducts are full size (the worst case for the tree sum).  g is a
pandas categorical with labels g000001, ... (sorted = category order, so an
in-memory fit orders the levels as the Dask one).  The rows are written as
``--files`` Parquet files, one at a time: no process ever holds all rows.  The
seeds come from one ``SeedSequence(--seed)``: child 0 draws the group effects,
child k + 1 the x and e of file k.

Every fit runs in a fresh process started by this script, which imports only the
standard library, so that the child's ``ru_maxrss`` starts from a small floor.
The Dask fits use ``LocalCluster(n_workers=2, threads_per_worker=1)`` with worker
**processes**: the client's RSS (which also holds the scheduler) is separate from the
workers'.  Reported: the client's peak RSS (``getrusage``) and its excess over a
baseline taken after the imports and the cluster start; each worker's peak
(``VmHWM``: ``ru_maxrss`` of a spawned worker would include the client's RSS at
spawn time); wall times of the fit (two passes over the data and the optimisation,
whose share is estimated as the number of evaluations times the time of one),
of one pass computing the residuals' mean and SD, and of one pass computing the mean
of ``predict(newdata=...)`` on the same Dask frame; the bytes of the summed
crossproducts; the estimates.  A smaller data set from the same generator
(``--small-rows``, default 2,000,000 rows in 20,000 groups of 100) is fitted through
Dask and in memory (pandas), and the differences of the estimates are printed.
The Parquet files are removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FORMULA = "y ~ x + (1 + x | g)"
COVARIANCE = [[1.0, 0.3], [0.3, 0.5]]


# ----- the phases, each run in its own process ------------------------------------------

def write(directory: str, rows: int, groups: int, files: int, seed: int) -> dict:
    """Simulate ``rows`` rows in ``files`` Parquet files, one file in memory at a time."""
    import numpy as np
    import pandas as pd

    if rows % groups or rows % files:
        raise SystemExit("--rows must be a multiple of --groups and of --files")
    t0 = time.perf_counter()
    os.makedirs(directory, exist_ok=True)
    children = np.random.SeedSequence(seed).spawn(files + 1)
    b = np.random.default_rng(children[0]).multivariate_normal([0.0, 0.0], COVARIANCE, size=groups)
    width = len(str(groups))
    labels = pd.Index([f"g{i:0{width}d}" for i in range(1, groups + 1)])
    per_file = rows // files
    for k in range(files):
        rng = np.random.default_rng(children[k + 1])
        x = rng.standard_normal(per_file)
        e = rng.standard_normal(per_file)
        codes = (np.arange(k * per_file, (k + 1) * per_file) % groups).astype(np.int32)
        y = 1.0 + 0.5 * x + b[codes, 0] + b[codes, 1] * x + 1.5 * e
        g = pd.Categorical.from_codes(codes, categories=labels)
        pd.DataFrame({"y": y, "x": x, "g": g}).to_parquet(os.path.join(directory, f"part-{k:04d}.parquet"),
                                                           index=False)
    size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
    return {"rows": rows, "groups": groups, "files": files, "bytes_on_disk": size,
            "seconds": time.perf_counter() - t0}


def _peak_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _hwm_kb() -> int:
    """Peak RSS of this process's address space since its exec (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def _crossproduct_bytes(A) -> int:
    import scipy.sparse as sp

    def size(M) -> int:
        if sp.issparse(M):
            return M.data.nbytes + M.indices.nbytes + M.indptr.nbytes
        return M.nbytes

    blocks = [*A.diag, *(B for row in A.off for B in row), *A.xz, A.xx]
    return int(sum(size(B) for B in blocks))


def _estimates(fit) -> dict:
    return {"fixef": fit.fixef.to_dict(), "theta": [float(t) for t in fit.theta], "sigma": float(fit.sigma),
            "sdcor": [float(v) for v in fit.varcorr["sdcor"]], "objective": float(fit.objective),
            "nobs": int(fit.nobs)}


def fit_dask(directory: str) -> dict:
    """Fit the Parquet files through a local cluster of two worker processes."""
    import warnings

    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    sys.path.insert(0, ROOT)
    import mixedmodels as mm

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        baseline = _peak_kb()
        ddf = dd.read_parquet(directory)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("error", mm.ConvergenceWarning)
            fit = mm.lmer(FORMULA, ddf)
        fit_seconds = time.perf_counter() - t0
        client_fit = _peak_kb()
        workers_fit = client.run(_hwm_kb)
        t0 = time.perf_counter()
        for _ in range(5):
            fit.model.objective(fit.optimum.x)
        evaluation_seconds = (time.perf_counter() - t0) / 5
        t0 = time.perf_counter()
        mean, sd = dask.compute(fit.residuals.mean(), fit.residuals.std())
        residual_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        prediction_mean = fit.predict(ddf).mean().compute()
        prediction_seconds = time.perf_counter() - t0
        return {
            "npartitions": ddf.npartitions, "fit_seconds": fit_seconds, "residual_pass_seconds": residual_seconds,
            "nfev": int(fit.optimum.nfev), "objective_seconds": evaluation_seconds,
            "residual_mean": float(mean), "residual_sd": float(sd),
            "predict_newdata_pass_seconds": prediction_seconds, "prediction_mean": float(prediction_mean),
            "client_baseline_kb": baseline, "client_peak_after_fit_kb": client_fit,
            "client_peak_at_end_kb": _peak_kb(),
            "worker_peak_after_fit_kb": sorted(workers_fit.values()),
            "worker_peak_at_end_kb": sorted(client.run(_hwm_kb).values()),
            "crossproduct_bytes": _crossproduct_bytes(fit.model.crossprod), **_estimates(fit),
        }


def fit_memory(directory: str) -> dict:
    """Read the Parquet files into pandas and fit them in this process."""
    import pandas as pd

    sys.path.insert(0, ROOT)
    import mixedmodels as mm

    baseline = _peak_kb()
    data = pd.read_parquet(directory)
    t0 = time.perf_counter()
    fit = mm.lmer(FORMULA, data)
    return {"fit_seconds": time.perf_counter() - t0, "baseline_kb": baseline, "peak_kb": _peak_kb(),
            "crossproduct_bytes": _crossproduct_bytes(fit.model.crossprod), **_estimates(fit)}


PHASES = {"write": write, "fit_dask": fit_dask, "fit_memory": fit_memory}


# ----- the driver: standard library only --------------------------------------------------

def _run(phase: str, *args) -> dict:
    """One phase in a fresh Python process; its result comes back as JSON on a file."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    try:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--phase", phase, out, *map(str, args)],
                       check=True, stdin=subprocess.DEVNULL)
        with open(out) as fh:
            return json.load(fh)
    finally:
        os.unlink(out)


def _mb(kb: float) -> str:
    return f"{kb / 1024:,.0f} MB"


def _report_dask(name: str, w: dict, r: dict) -> None:
    print(f"\n## {name}: {w['rows']:,} rows, {w['groups']:,} groups, {w['files']} files "
          f"({w['bytes_on_disk'] / 2**20:,.0f} MiB of Parquet, written in {w['seconds']:.0f} s)")
    print(f"partitions: {r['npartitions']}")
    optimisation = r["nfev"] * r["objective_seconds"]
    print(f"fit (levels pass + crossproduct pass + optimisation): {r['fit_seconds']:.1f} s, of which the "
          f"optimisation on the client ≈ {optimisation:.1f} s ({r['nfev']} evaluations of "
          f"{1000 * r['objective_seconds']:.0f} ms)")
    print(f"one more pass (residuals' mean and SD): {r['residual_pass_seconds']:.1f} s; "
          f"mean {r['residual_mean']:.2e}, SD {r['residual_sd']:.4f}")
    print(f"predict(newdata=the same Dask frame), mean: {r['predict_newdata_pass_seconds']:.1f} s; "
          f"mean {r['prediction_mean']:.6f}")
    base = r["client_baseline_kb"]
    print(f"client peak RSS: baseline {_mb(base)} (imports + cluster); "
          f"after the fit {_mb(r['client_peak_after_fit_kb'])} "
          f"(+{_mb(r['client_peak_after_fit_kb'] - base)}); after the residual and prediction passes "
          f"{_mb(r['client_peak_at_end_kb'])} (+{_mb(r['client_peak_at_end_kb'] - base)})")
    print("worker peak RSS (VmHWM): after the fit " + ", ".join(map(_mb, r["worker_peak_after_fit_kb"]))
          + "; at the end " + ", ".join(map(_mb, r["worker_peak_at_end_kb"])))
    print(f"summed crossproducts: {r['crossproduct_bytes']:,} bytes ({r['crossproduct_bytes'] / 2**20:.1f} MiB)")
    _print_estimates(r)


def _print_estimates(r: dict) -> None:
    fixef = ", ".join(f"{k} {v:.6f}" for k, v in r["fixef"].items())
    print(f"nobs {r['nobs']:,}; fixef: {fixef}; sigma {r['sigma']:.6f}")
    print("theta: " + ", ".join(f"{t:.6f}" for t in r["theta"]) + "; VarCorr sdcor: "
          + ", ".join(f"{v:.6f}" for v in r["sdcor"]) + f"; REML criterion {r['objective']:.6f}")


def _differences(a: dict, b: dict) -> dict:
    rel = lambda x, y: abs(x - y) / max(abs(y), 1e-300)  # noqa: E731
    return {
        "fixef_max_rel": max(rel(a["fixef"][k], b["fixef"][k]) for k in b["fixef"]),
        "theta_max_abs": max(abs(x - y) for x, y in zip(a["theta"], b["theta"])),
        "sigma_rel": rel(a["sigma"], b["sigma"]),
        "objective_rel": rel(a["objective"], b["objective"]),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase, out, args = sys.argv[2], sys.argv[3], sys.argv[4:]
        kinds = {"write": (str, int, int, int, int), "fit_dask": (str,), "fit_memory": (str,)}[phase]
        result = PHASES[phase](*(kind(a) for kind, a in zip(kinds, args)))
        with open(out, "w") as fh:
            json.dump(result, fh)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--groups", type=int, default=200_000)
    parser.add_argument("--small-rows", type=int, default=2_000_000, help="0: no small comparison")
    parser.add_argument("--small-groups", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--dir", default=None, help="where to write the Parquet files (default: a new /tmp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the Parquet files")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    opts = parser.parse_args()
    root = opts.dir or tempfile.mkdtemp(prefix="mm-dask-memory-", dir="/tmp")
    results: dict = {"command": " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]])}
    try:
        big = os.path.join(root, "big")
        results["write"] = _run("write", big, opts.rows, opts.groups, opts.files, opts.seed)
        results["dask"] = _run("fit_dask", big)
        _report_dask("Dask, from Parquet", results["write"], results["dask"])
        if opts.small_rows:
            small = os.path.join(root, "small")
            results["small_write"] = _run("write", small, opts.small_rows, opts.small_groups, opts.files, opts.seed)
            results["small_dask"] = _run("fit_dask", small)
            results["small_memory"] = _run("fit_memory", small)
            _report_dask("Smaller, Dask", results["small_write"], results["small_dask"])
            mem = results["small_memory"]
            print(f"\n## Smaller, in memory (pandas.read_parquet, then mm.lmer): fit {mem['fit_seconds']:.1f} s; "
                  f"peak RSS {_mb(mem['peak_kb'])} (+{_mb(mem['peak_kb'] - mem['baseline_kb'])} over the imports, "
                  "the data included)")
            _print_estimates(mem)
            results["small_differences"] = _differences(results["small_dask"], mem)
            print("Dask − in memory: " + ", ".join(f"{k} {v:.2e}" for k, v in results["small_differences"].items()))
    finally:
        if not opts.keep:
            shutil.rmtree(root if opts.dir is None else os.path.join(root, "big"), ignore_errors=True)
            if opts.dir is not None:
                shutil.rmtree(os.path.join(root, "small"), ignore_errors=True)
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
