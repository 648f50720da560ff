"""Kenward–Roger on a large LMM: time of ``kenward_roger()`` and the KR ``anova`` (not a test).

    python benchmarks/kenward_roger.py [--groups 250] [--size 200]

Simulated: groups × size rows, y = 1 + 0.5 x + 0.3 z + b0[g] + b1[g] x + e with x
within groups, z a group-level covariate, (b0, b1) ~ N(0, [[1, .3], [.3, .5]]), e ~ N(0, 1.5²);
numpy.random.default_rng(20261122).  Prints the rows, random effects, fit and KR times
and the load average; the figures are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import mixedmodels as mm
from mixedmodels.inference.kenward_roger import kr_pieces

SEED = 20261122


def simulate(groups: int, size: int) -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    n = groups * size
    g = np.repeat(np.arange(groups), size)
    x = rng.standard_normal(n)
    z = rng.standard_normal(groups)[g]
    b = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.3], [0.3, 0.5]], size=groups)
    y = 1.0 + 0.5 * x + 0.3 * z + b[g, 0] + b[g, 1] * x + 1.5 * rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": pd.Categorical(g)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", type=int, default=250)
    ap.add_argument("--size", type=int, default=200)
    args = ap.parse_args()
    data = simulate(args.groups, args.size)
    start = time.perf_counter()
    fit = mm.lmer("y ~ x + z + (1 + x | g)", data)
    fitted = time.perf_counter()
    kr_pieces(fit)  # Φ_A, the Pₖ and 𝒲 (cached for what follows)
    pieces = time.perf_counter()
    table = fit.kenward_roger()
    fit.anova(ddf="Kenward-Roger")
    done = time.perf_counter()
    print(table.to_string())
    print(f"rows {len(data):,}, random effects {2 * args.groups}: fit {fitted - start:.2f} s, "
          f"KR pieces {pieces - fitted:.2f} s, t and F tests {done - pieces:.3f} s; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
