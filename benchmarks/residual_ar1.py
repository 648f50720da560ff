"""AR(1) residuals on 100,000 rows in 5,000 groups: mixedmodels against nlme's lme in the same run.

nlme's ``lme`` cannot go through run.py's lme4 machinery, so this script builds the data
(deterministic, ``cases.SEED``), writes it once as a CSV to a temporary directory, fits it
with ``mm.lmer(..., residual=mm.AR1(...))`` in this process and with nlme in an ``Rscript``
process, and prints each tool's median wall time around the fitting call only (as run.py:
a warm-up fit first when it takes under 10 s), the REML criterion and φ of each, and the
ratio.  The figures are in docs/performance.md.

    python benchmarks/residual_ar1.py [--groups 5000] [--times 20] [--reps 3] [--r-reps 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import SEED  # noqa: E402

FORMULA = "y ~ time + (1 | id)"
PHI, SD_ID, SIGMA = 0.6, 1.0, 1.0

R_SCRIPT = r"""
suppressPackageStartupMessages(library(nlme))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$id <- factor(d$id, levels = unique(d$id))
reps <- as.integer(args[2]); times <- numeric(0)
for (i in seq_len(reps)) {
  times <- c(times, system.time(m <- lme(y ~ time, d, random = ~ 1 | id,
                                         correlation = corAR1(form = ~ time | id)))[["elapsed"]])
}
cat(sprintf('{"times": [%s], "objective": %.10f, "phi": %.10f, "nlme": "%s"}\n',
            paste(sprintf("%.4f", times), collapse = ", "), -2 * as.numeric(logLik(m)),
            coef(m$modelStruct$corStruct, unconstrained = FALSE), packageVersion("nlme")))
"""


def build(groups: int, times: int) -> pd.DataFrame:
    """y = 1 + 0.3 time + b_id + e, b ~ N(0, 1), e an AR(1) series per id with φ = 0.6, σ = 1."""
    rng = np.random.default_rng(SEED)
    z = rng.standard_normal((groups, times))
    e = np.empty_like(z)
    e[:, 0] = z[:, 0]
    for k in range(1, times):
        e[:, k] = PHI * e[:, k - 1] + np.sqrt(1 - PHI**2) * z[:, k]
    t = np.tile(np.arange(times), groups)
    b = np.repeat(rng.normal(0.0, SD_ID, groups), times)
    return pd.DataFrame({"id": np.repeat(np.arange(groups), times), "time": t,
                         "y": 1.0 + 0.3 * t + b + SIGMA * e.ravel()})


def time_mixedmodels(data: pd.DataFrame, reps: int) -> tuple[list[float], float, float]:
    import mixedmodels as mm

    def fit():
        t0 = time.perf_counter()
        m = mm.lmer(FORMULA, data, residual=mm.AR1(time="time", group="id"))
        return time.perf_counter() - t0, m

    first, m = fit()
    timings = [] if first < 10 else [first]
    while len(timings) < reps:
        elapsed, m = fit()
        timings.append(elapsed)
    return timings, m.objective, float(m.correlation_parameters["Phi"])


def time_nlme(data: pd.DataFrame, reps: int) -> dict | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = os.path.join(tmp, "data.csv"), os.path.join(tmp, "fit.R")
        data.to_csv(csv, index=False)
        Path(script).write_text(R_SCRIPT, encoding="utf-8")
        out = subprocess.run([rscript, script, csv, str(reps)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=5000)
    parser.add_argument("--times", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--r-reps", type=int, default=1)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    data = build(args.groups, args.times)
    load = os.getloadavg()
    ours, objective, phi = time_mixedmodels(data, args.reps)
    r = time_nlme(data, args.r_reps)
    result = {
        "rows": len(data), "groups": args.groups, "formula": FORMULA, "load_before": load, "load_after": os.getloadavg(),
        "mixedmodels": {"times": ours, "median": statistics.median(ours), "objective": objective, "phi": phi},
        "nlme": None if r is None else {**r, "median": statistics.median(r["times"])},
    }
    print(f"AR(1) residuals, {len(data):,} rows in {args.groups:,} groups: {FORMULA}, corAR1(form = ~ time | id)")
    print(f"  mixedmodels: median {result['mixedmodels']['median']:.2f} s of {['%.2f' % t for t in ours]}, "
          f"REML criterion {objective:.4f}, phi {phi:.5f}")
    if r is not None:
        ratio = result["mixedmodels"]["median"] / result["nlme"]["median"]
        result["ratio"] = ratio
        print(f"  nlme {r['nlme']}: median {result['nlme']['median']:.2f} s of {r['times']}, "
              f"REML criterion {r['objective']:.4f}, phi {r['phi']:.5f}")
        print(f"  ratio mixedmodels / nlme: {ratio:.3f}; objective difference {objective - r['objective']:+.2e}")
    print(f"  load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
