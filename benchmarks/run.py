"""Benchmark mixedmodels against lme4 (and statsmodels' MixedLM where it can fit the case).

    python benchmarks/run.py [--cases a,b] [--reps N] [--quick] [--out docs/benchmark-results.md]

For every case the data are built once, then each tool fits them in a fresh
process (benchmarks/worker.py for the Python tools, benchmarks/fit_lme4.R for
lme4):

* time: median wall time of the timed fits, measured inside the process around
  the fitting call only (time.perf_counter for Python, system.time()'s elapsed
  for R: R start-up, package loading and reading the data are excluded).  The
  first fit is an untimed warm-up when it takes under 10 s; for slower fits it
  is the first timed fit.
* peak memory: the peak resident set size (ru_maxrss from os.wait4, taken by
  the lean middleman benchmarks/measure.py) of the fitting process, and in brackets its excess over a baseline process that only
  imports the tool and loads the same data.  This counts everything the
  process touches, numpy/BLAS/CHOLMOD allocations included.
* objective: lme4's objective (REML criterion for lmer, -2 log-likelihood for
  glmer) from each tool; "reaches" means mixedmodels' objective is at most
  lme4's * (1 + 1e-6).

R and statsmodels are optional: lme4 is used only when ``Rscript`` is found and
lme4 loads, statsmodels only when it is installed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

from cases import CASES, QUICK  # noqa: E402

TOL = 1e-6


# --------------------------------------------------------------------------- processes


THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
_THREADS: int | None = None  # --threads: BLAS threads of every tool process


def run_measured(cmd: list[str], workdir: str, tag: str, timeout: float | None) -> dict:
    """Run cmd to completion; return its exit status, wall time and peak RSS (MiB).

    The command is started by benchmarks/measure.py, a lean middleman, because
    on Linux a child's ru_maxrss would include this (large) process's peak RSS.
    """
    out_path = os.path.join(workdir, f"{tag}.stdout")
    err_path = os.path.join(workdir, f"{tag}.stderr")
    rss_path = os.path.join(workdir, f"{tag}.rss.json")
    env = dict(os.environ)
    if _THREADS is not None:
        env.update({v: str(_THREADS) for v in THREAD_VARIABLES})
    middleman = [sys.executable, "-S", os.path.join(HERE, "measure.py"), rss_path, str(timeout or 0), "--"]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        subprocess.run(middleman + cmd, stdout=out, stderr=err, env=env, check=False)
    with open(err_path, "rb") as fh:
        stderr = fh.read().decode(errors="replace")
    try:
        with open(rss_path) as fh:
            got = json.load(fh)
    except (OSError, ValueError):
        return {"returncode": -1, "timed_out": False, "wall": None, "maxrss_mb": None, "stderr": stderr}
    return {
        "returncode": got["returncode"],
        "timed_out": got["timed_out"],
        "wall": got["wall"],
        "maxrss_mb": got["maxrss_kb"] / 1024.0,  # Linux: KiB
        "stderr": stderr,
    }


def _fail_message(run: dict) -> str:
    if run["timed_out"]:
        return "timed out"
    lines = [ln for ln in run["stderr"].strip().splitlines() if ln.strip()]
    return "failed: " + (lines[-1][:200] if lines else f"exit code {run['returncode']}")


# --------------------------------------------------------------------------- tools


def python_tool(tool: str, case, data_path: str, workdir: str, reps: int, args) -> dict:
    worker = os.path.join(HERE, "worker.py")
    res: dict = {}
    for baseline in (True, False):
        out = os.path.join(workdir, f"{tool}{'-baseline' if baseline else ''}.json")
        cmd = [sys.executable, worker, tool, case.name, data_path, out, "--reps", str(reps),
               "--warmup-threshold", str(args.warmup_threshold)]
        if baseline:
            cmd.append("--baseline")
        run = run_measured(cmd, workdir, os.path.basename(out), args.timeout if not baseline else None)
        if run["returncode"] != 0 or not os.path.exists(out):
            return {"status": _fail_message(run)}
        with open(out) as fh:
            got = json.load(fh)
        if "skipped" in got:
            return {"status": got["skipped"]}
        if baseline:
            res["baseline_mb"] = run["maxrss_mb"]
        else:
            res.update(got)
            res["peak_mb"] = run["maxrss_mb"]
            res["status"] = "ok"
    return res


def r_tool(case, data_dir: str, workdir: str, reps: int, args) -> dict:
    script = os.path.join(HERE, "fit_lme4.R")
    res: dict = {}
    for baseline in (True, False):
        out = os.path.join(workdir, f"lme4{'-baseline' if baseline else ''}.tsv")
        cmd = ["Rscript", "--vanilla", script, data_dir, case.r_formula, case.family, str(reps),
               str(args.warmup_threshold), "1" if baseline else "0", out, str(case.REML).upper(),
               ",".join(repr(t) for t in case.start or ()), case.link or ""]
        run = run_measured(cmd, workdir, os.path.basename(out), args.timeout if not baseline else None)
        if run["returncode"] != 0 or not os.path.exists(out):
            return {"status": _fail_message(run)}
        got = {}
        with open(out) as fh:
            for line in fh:
                key, _, value = line.rstrip("\n").partition("\t")
                got[key] = value
        if baseline:
            res["baseline_mb"] = run["maxrss_mb"]
        else:
            res["times"] = [float(t) for t in got["times"].split(",")]
            res["objective"] = float(got["objective"])
            res["nfev"] = int(got["nfev"]) if got.get("nfev", "").isdigit() else None
            res["warmup"] = got.get("warmup") == "TRUE"
            res["gc_max_used_mb"] = float(got["gc_max_used_mb"])
            res["messages"] = got.get("messages", "")
            res["peak_mb"] = run["maxrss_mb"]
            res["status"] = "ok"
    return res


def write_r_data(data, data_dir: str) -> None:
    """data.csv + schema.tsv + levels_<col>.txt, so R builds factors with pandas' level order."""
    import pandas as pd

    os.makedirs(data_dir, exist_ok=True)
    schema = []
    for col in data.columns:
        s = data[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            schema.append((col, "factor"))
            with open(os.path.join(data_dir, f"levels_{col}.txt"), "w", encoding="utf-8") as fh:
                fh.write("\n".join(str(c) for c in s.cat.categories) + "\n")
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_integer_dtype(s):
            schema.append((col, "integer"))
        elif pd.api.types.is_numeric_dtype(s):
            schema.append((col, "numeric"))
        else:
            schema.append((col, "character"))
    with open(os.path.join(data_dir, "schema.tsv"), "w") as fh:
        fh.writelines(f"{c}\t{t}\n" for c, t in schema)
    out = data.copy()
    for col in out.columns:
        if pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].astype(int)
    out.to_csv(os.path.join(data_dir, "data.csv"), index=False, float_format="%.17g")


# --------------------------------------------------------------------------- environment


def r_info() -> dict | None:
    """R and lme4 versions if Rscript exists and lme4 loads, else None."""
    if shutil.which("Rscript") is None:
        return None
    code = (
        'suppressPackageStartupMessages(library(lme4));'
        'cat(R.version.string, as.character(packageVersion("lme4")), as.character(packageVersion("Matrix")),'
        ' extSoftVersion()[["BLAS"]], La_library(), sep="\\n")'
    )
    try:
        p = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    lines = p.stdout.strip().splitlines()
    keys = ["R", "lme4", "Matrix", "BLAS", "LAPACK"]
    return dict(zip(keys, lines))


def statsmodels_version() -> str | None:
    try:
        import statsmodels
    except ImportError:
        return None
    return statsmodels.__version__


def machine_info() -> dict:
    import numpy
    import pandas
    import scipy

    info: dict = {}
    try:
        with open("/proc/cpuinfo") as fh:
            models = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        info["cpu"] = models[0] if models else platform.processor()
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    info["cores"] = os.cpu_count()
    try:
        info["cores_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("MemTotal"))
        info["ram_gb"] = round(kb / 1024**2, 1)
    except (OSError, StopIteration):
        pass
    info["os"] = platform.platform()
    info["python"] = platform.python_version()
    info["numpy"] = numpy.__version__
    info["scipy"] = scipy.__version__
    info["pandas"] = pandas.__version__
    try:
        cfg = numpy.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    try:
        import mixedmodels

        info["mixedmodels"] = mixedmodels.__version__
        try:  # mixedmodels limits BLAS threads inside its fits (mixedmodels.runtime.threads)
            from mixedmodels.runtime import threads as _mm_threads

            limit = getattr(_mm_threads, "_blas_threads", "unknown")
            info["mixedmodels_fit_threads"] = "library default" if limit is None else str(limit)
        except ImportError:
            pass
    except ImportError:
        info["mixedmodels"] = "not importable"
    for mod in ("nlopt", "formulaic"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    info["statsmodels"] = statsmodels_version() or "not installed"
    return info


# --------------------------------------------------------------------------- report


def _t(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def _mem(r: dict) -> str:
    if r.get("status") != "ok":
        return "—"
    base = r.get("baseline_mb")
    extra = f" (+{r['peak_mb'] - base:.0f})" if base is not None else ""
    return f"{r['peak_mb']:.0f}{extra}"


def _time(r: dict) -> str:
    if r.get("status") != "ok":
        return r.get("status", "not run")
    return _t(statistics.median(r["times"]))


def _obj(r: dict) -> str:
    if r.get("status") != "ok" or r.get("objective") is None:
        return "—"
    return f"{r['objective']:.6f}"


def summarise(row: dict) -> None:
    mm, r = row["mixedmodels"], row["lme4"]
    row["ratio"] = None
    row["reaches"] = None
    if mm.get("status") == "ok" and r.get("status") == "ok":
        row["ratio"] = statistics.median(mm["times"]) / statistics.median(r["times"])
        if mm.get("objective") is not None:
            row["reaches"] = mm["objective"] <= r["objective"] + TOL * abs(r["objective"])


def table(rows: list[dict]) -> str:
    head = ("| case | n | mixedmodels s | lme4 s | ratio mm/lme4 | statsmodels s "
            "| mm peak MB | lme4 peak MB | statsmodels peak MB "
            "| mm objective | lme4 objective | mm reaches lme4 |")
    lines = [head, "|" + "|".join(["---"] * 12) + "|"]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['case']} | {row.get('n', '—')} | {row['skipped']} |" + " |" * 9)
            continue
        mm, r, sm = row["mixedmodels"], row["lme4"], row["statsmodels"]
        reaches = {True: "yes", False: "**no**", None: "—"}[row["reaches"]]
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.3f}"
        lines.append(
            f"| {row['case']} | {row['n']:,} | {_time(mm)} | {_time(r)} | {ratio} | {_time(sm)} "
            f"| {_mem(mm)} | {_mem(r)} | {_mem(sm)} | {_obj(mm)} | {_obj(r)} | {reaches} |"
        )
    return "\n".join(lines)


def details(rows: list[dict]) -> str:
    lines = ["| case | tool | timed fits (s) | warm-up | evaluations | baseline MB | notes |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        if "skipped" in row:
            continue
        lines.append(f"| {row['case']} | (load average) | {row['load_start']:.2f} at start, "
                     f"{row['load_end']:.2f} at end | | | | |")
        for tool in ("mixedmodels", "lme4", "statsmodels"):
            r = row[tool]
            if r.get("status") != "ok":
                continue
            times = ", ".join(f"{t:.3f}" for t in r["times"])
            warm = "yes" if r.get("warmup") else "no"
            notes = []
            if tool == "lme4":
                notes.append(f"R gc() max used {r['gc_max_used_mb']:.0f} MB")
                if r.get("messages"):
                    notes.append(f"lme4: {r['messages']}")
            if tool == "statsmodels":
                notes.append("objective = -2 × REML log-likelihood")
            if r.get("converged") is False:
                notes.append("not converged")
            evaluations = str(r.get("nfev") or "—")
            if r.get("evaluations"):
                evaluations += f" ({r['evaluations']} in all)"
            lines.append(
                f"| {row['case']} | {tool} | {times} | {warm} | {evaluations} "
                f"| {r.get('baseline_mb', float('nan')):.0f} | {'; '.join(notes)} |"
            )
    return "\n".join(lines)


def machine_text(info: dict, rinfo: dict | None) -> str:
    lines = [
        f"- CPU: {info.get('cpu')}, {info.get('cores')} cores"
        + (f" ({info['cores_usable']} usable)" if "cores_usable" in info else "")
        + f", RAM {info.get('ram_gb')} GB",
        f"- OS: {info.get('os')}",
        f"- Python {info['python']}, numpy {info['numpy']} ({info.get('numpy_blas', 'BLAS unknown')}), "
        f"scipy {info['scipy']}, pandas {info['pandas']}, nlopt {info.get('nlopt', '?')}, "
        f"formulaic {info.get('formulaic', '?')}, mixedmodels {info['mixedmodels']}",
        f"- statsmodels: {info['statsmodels']}",
    ]
    if "mixedmodels_fit_threads" in info:
        lines.append(f"- BLAS threads inside mixedmodels' fits (mixedmodels.runtime.threads): {info['mixedmodels_fit_threads']}")
    lines.append("- BLAS threads of the tool processes (environment): " + (f"{_THREADS} (--threads)" if _THREADS is not None else ", ".join(
        f"{v}={os.environ[v]}" for v in THREAD_VARIABLES if v in os.environ) or "library default"))
    if rinfo:
        lines.append(
            f"- {rinfo.get('R')}, lme4 {rinfo.get('lme4')}, Matrix {rinfo.get('Matrix')}; "
            f"R's BLAS {rinfo.get('BLAS')}, LAPACK {rinfo.get('LAPACK')}"
        )
    else:
        lines.append("- R/lme4: not available (Rscript not found or lme4 does not load)")
    return "\n".join(lines)


METHOD = """\
Times are the median wall time of the timed fits, in seconds, measured inside
each tool's process around the fitting call only (Python: `time.perf_counter()`
around `mm.lmer(...)`/`mm.glmer(...)`, which includes formula parsing and the
model matrices; R: `system.time()` elapsed around `lmer()`/`glmer()`, excluding
R start-up, package loading and reading the CSV).  The first fit is an untimed
warm-up when it takes under 10 s, otherwise it is the first timed fit.  Peak
memory is the peak resident set size (`ru_maxrss` from `os.wait4`) of the fresh
process that fits the case, started by a lean middleman (`benchmarks/measure.py`:
on Linux a child's `ru_maxrss` also counts the peak of the process it was spawned
from); in brackets, its excess over a baseline process that
only imports the tool and loads the same data.  R's own heap peak from `gc()`
("max used") is in the details table; it misses CHOLMOD's and BLAS's
allocations.  The mixedmodels objective reaches lme4's when it is at most
lme4's × (1 + 1e-6).  Evaluations: the optimizer's objective evaluations
(mixedmodels: BOBYQA's, or L-BFGS-B's, each with its gradient; in brackets every
factorisation of an LMM fit: optimizer, convergence check, Newton step and result;
lme4: `optinfo$feval`)."""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help=f"comma-separated, from: {', '.join(CASES)} (default: all)")
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--reps", type=int, help="timed fits per case and tool (default: per case, 3; 1 for sim_lmm_1m)")
    ap.add_argument("--out", help="also write the results as Markdown to this file")
    ap.add_argument("--json", help="also write the raw results as JSON to this file")
    ap.add_argument("--no-r", action="store_true", help="skip lme4")
    ap.add_argument("--no-statsmodels", action="store_true", help="skip statsmodels")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed per fitting process")
    ap.add_argument("--statsmodels-timeout", type=float, default=1800.0,
                    help="seconds allowed per statsmodels fitting process (default 1800)")
    ap.add_argument("--warmup-threshold", type=float, default=10.0)
    ap.add_argument("--threads", type=int, help="BLAS/OpenMP threads for every tool process "
                    "(sets OPENBLAS_NUM_THREADS etc.; default: the environment's)")
    args = ap.parse_args(argv)
    global _THREADS
    _THREADS = args.threads

    if args.cases:
        names = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = [c for c in names if c not in CASES]
        if unknown:
            ap.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    elif args.quick:
        names = list(QUICK)
    else:
        names = list(CASES)

    import mixedmodels as mm

    started = _dt.datetime.now().astimezone()
    info = machine_info()
    rinfo = None if args.no_r else r_info()
    sm_ok = not args.no_statsmodels and statsmodels_version() is not None
    load_start = os.getloadavg()
    print("Machine:\n" + machine_text(info, rinfo) + "\n", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        for name in names:
            case = CASES[name]
            reps = args.reps or case.reps
            row: dict = {"case": name, "family": case.family, "formula": case.formula, "reps": reps}
            if case.family != "gaussian" and not hasattr(mm, "glmer"):
                row["skipped"] = "mixedmodels.glmer not available yet"
                print(f"[{name}] skipped: {row['skipped']}", flush=True)
                rows.append(row)
                continue
            workdir = os.path.join(tmp, name)
            os.makedirs(workdir)
            t0 = time.perf_counter()
            data = case.build()
            row["n"] = len(data)
            data_path = os.path.join(workdir, "data.pkl")
            with open(data_path, "wb") as fh:
                pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
            if rinfo:
                write_r_data(data, os.path.join(workdir, "r"))
            del data
            row["load_start"] = os.getloadavg()[0]
            print(f"[{name}] n={row['n']:,}, data ready in {time.perf_counter() - t0:.1f} s; "
                  f"load average {row['load_start']:.2f}", flush=True)

            row["mixedmodels"] = python_tool("mixedmodels", case, data_path, workdir, reps, args)
            print(f"[{name}] mixedmodels: {_time(row['mixedmodels'])} s", flush=True)
            if rinfo:
                row["lme4"] = r_tool(case, os.path.join(workdir, "r"), workdir, reps, args)
            else:
                row["lme4"] = {"status": "not available"}
            print(f"[{name}] lme4: {_time(row['lme4'])} s", flush=True)
            if not sm_ok:
                row["statsmodels"] = {"status": "not available"}
            elif case.statsmodels is None or case.family != "gaussian":
                row["statsmodels"] = {"status": "not available"}
            else:
                sm_args = argparse.Namespace(**vars(args))
                limits = [t for t in (args.timeout, args.statsmodels_timeout) if t]
                sm_args.timeout = min(limits) if limits else None
                row["statsmodels"] = python_tool("statsmodels", case, data_path, workdir, reps, sm_args)
            print(f"[{name}] statsmodels: {_time(row['statsmodels'])}", flush=True)
            row["load_end"] = os.getloadavg()[0]
            summarise(row)
            rows.append(row)

    load_end = os.getloadavg()
    finished = _dt.datetime.now().astimezone()
    result_table = table(rows)
    detail_table = details(rows)
    noise = (f"Load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
             f"at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}")
    print()
    print(result_table)
    print()
    print(detail_table)
    print()
    print(noise)

    if args.out:
        cmdline = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
        text = "\n".join([
            "# Benchmark results",
            "",
            f"Run {started:%Y-%m-%d %H:%M %Z} to {finished:%H:%M %Z} with `{cmdline.strip()}`.",
            "",
            "## Machine",
            "",
            machine_text(info, rinfo),
            f"- {noise}",
            "",
            "## Results",
            "",
            result_table,
            "",
            "Memory: peak RSS in MB (in brackets: above the tool's baseline process with the data loaded).",
            "",
            "## Details",
            "",
            detail_table,
            "",
            "## Method",
            "",
            METHOD,
            "",
        ])
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"\nwrote {args.out}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "r": rinfo, "rows": rows, "load_start": load_start,
                       "load_end": load_end}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
