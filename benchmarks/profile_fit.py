"""Fit one benchmark case once, for profiling; prints a phase breakdown.

    python -m cProfile -s cumulative benchmarks/profile_fit.py insteval | head -60
    python benchmarks/profile_fit.py sim_lmm_1m          # phase timings only

Phases (timed with perf_counter, outside cProfile's own overhead when run
without it): the whole ``mm.lmer`` call, and separately the set-up (formula,
design, crossproducts), the optimisation (objective evaluations and the
convergence check), the result object, and the conditional variances
(``ranef_sd``, computed lazily after the fit; lme4 computes them only for
``ranef(condVar = TRUE)`` too).  The phases call the engine directly, outside
mixedmodels' own BLAS-thread limit: run with OPENBLAS_NUM_THREADS=1 to match
what ``mm.lmer`` does.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from cases import CASES  # noqa: E402


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "insteval"
    case = CASES[name]
    if case.family != "gaussian":
        sys.exit("profile_fit.py profiles LMM cases only")
    import mixedmodels as mm
    from mixedmodels import api

    data = case.build()
    warnings.simplefilter("ignore")

    # the whole user call, as the benchmark times it
    t0 = time.perf_counter()
    m = mm.lmer(case.formula, data)
    total = time.perf_counter() - t0

    # the same fit in phases (mirrors mixedmodels.api.lmer)
    from mixedmodels.design.build import build_design
    from mixedmodels.formula.parse import parse_formula
    from mixedmodels.engine.lmm import LinearMixedModel
    from mixedmodels.results.lmer import LmerResult

    counter = {"n": 0, "t": 0.0}
    t0 = time.perf_counter()
    parsed = parse_formula(case.formula)
    design = build_design(parsed, data)
    t_design = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = LinearMixedModel(design, REML=True)
    t_cross = time.perf_counter() - t0
    raw = model.objective

    def counted(theta, REML=None):
        s = time.perf_counter()
        v = raw(theta, REML)
        counter["t"] += time.perf_counter() - s
        counter["n"] += 1
        return v

    model.objective = counted
    t0 = time.perf_counter()
    report = model.fit(theta0=api._engine_start(model, None))
    t_opt = time.perf_counter() - t0
    n_opt, t_eval = counter["n"], counter["t"]
    t0 = time.perf_counter()
    res = LmerResult(parsed, model, report)
    t_result = time.perf_counter() - t0
    t0 = time.perf_counter()
    _ = res.ranef_sd
    t_condvar = time.perf_counter() - t0

    print(f"case {name}: n = {design.n:,}, terms {[(t.group, t.q) for t in design.reterms]}")
    print(f"mm.lmer total                  {total:8.3f} s  (objective {m.objective:.6f})")
    print(f"  formula + design             {t_design:8.3f} s")
    print(f"  crossproducts (set-up)       {t_cross:8.3f} s")
    print(f"  optimisation                 {t_opt:8.3f} s  ({n_opt} evaluations = {report.nfev} BOBYQA + "
          f"{n_opt - report.nfev} convergence check; {t_eval / max(n_opt, 1) * 1e3:.1f} ms each, "
          f"{t_eval:.3f} s in all)")
    print(f"  result object (refactorise)  {t_result:8.3f} s")
    print(f"ranef_sd (conditional var.)    {t_condvar:8.3f} s  (after the fit, lazily)")


if __name__ == "__main__":
    main()
