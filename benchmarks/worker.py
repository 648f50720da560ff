"""Fit one case with one Python tool in a fresh process; run by run.py, not by hand.

    python benchmarks/worker.py TOOL CASE DATA.pkl OUT.json [--reps N] [--baseline]

The process imports the tool, reads the pickled data (built once by run.py),
then fits: the first fit is a warm-up when it takes less than the warm-up
threshold (default 10 s), otherwise it counts as the first timed fit.  Each
timed fit is wall time (time.perf_counter) around the model call alone.  With
``--baseline`` it stops after the imports and the data, so that run.py can
subtract that process's peak RSS from the fitting process's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout's package

from cases import CASES  # noqa: E402


def _mixedmodels(case):
    import mixedmodels as mm

    from mixedmodels.engine import lmm

    factorisations = [0]
    factorize = lmm.factorize

    def counted_factorize(*args):  # every evaluation of an LMM's objective (and gradient) factorises once
        factorisations[0] += 1
        return factorize(*args)

    lmm.factorize = counted_factorize

    if case.family == "gaussian":

        def fit(data):
            factorisations[0] = 0
            return mm.lmer(case.formula, data, REML=case.REML, start=case.start)

    else:
        if not hasattr(mm, "glmer"):
            raise NotImplementedError("mixedmodels.glmer not available yet")

        from mixedmodels.engine.families import get_family

        family = get_family(case.family, case.link)

        def fit(data):
            return mm.glmer(case.formula, data, family=family)

    def info(m):
        out = {"objective": float(m.objective)}
        for path in ("optimum.nfev", "nfev", "report.nfev"):
            obj = m
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
                out["nfev"] = int(obj)
                break
            except (AttributeError, TypeError, ValueError):
                continue
        if case.family == "gaussian":
            out["evaluations"] = factorisations[0]  # optimizer, convergence check, polish and result
        try:
            out["converged"] = bool(m.optimum.converged)
        except AttributeError:
            pass
        return out

    return fit, info


def _statsmodels(case):
    spec = case.statsmodels
    if spec is None or case.family != "gaussian":
        raise NotImplementedError("statsmodels MixedLM cannot fit this case")
    import statsmodels.formula.api as smf

    def fit(data):
        model = smf.mixedlm(spec.formula, data, groups=data[spec.groups], re_formula=spec.re_formula)
        return model.fit(reml=True)

    def info(r):
        # statsmodels' REML log-likelihood: -2 llf is on lme4's REML-criterion scale
        # (they agree to 1e-6 on sleepstudy).
        return {"objective": -2.0 * float(r.llf), "converged": bool(r.converged)}

    return fit, info


TOOLS = {"mixedmodels": _mixedmodels, "statsmodels": _statsmodels}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tool", choices=sorted(TOOLS))
    ap.add_argument("case")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup-threshold", type=float, default=10.0)
    ap.add_argument("--baseline", action="store_true")
    args = ap.parse_args(argv)

    case = CASES[args.case]
    result: dict = {"tool": args.tool, "case": args.case}
    try:
        fit, info = TOOLS[args.tool](case)
    except NotImplementedError as e:
        result["skipped"] = str(e)
        _write(args.out, result)
        return 0
    with open(args.data, "rb") as fh:
        data = pickle.load(fh)
    if args.baseline:
        _write(args.out, result)
        return 0

    times = []
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    m = fit(data)
    first = time.perf_counter() - t0
    if first >= args.warmup_threshold:
        times.append(first)
        result["warmup"] = False
    else:
        result["warmup"] = True
        result["warmup_time"] = first
    while len(times) < args.reps:
        del m
        t0 = time.perf_counter()
        m = fit(data)
        times.append(time.perf_counter() - t0)
    result["times"] = times
    result.update(info(m))
    if not math.isfinite(result.get("objective", math.nan)):
        result["objective"] = None
    _write(args.out, result)
    return 0


def _write(path: str, result: dict) -> None:
    with open(path, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    sys.exit(main())
