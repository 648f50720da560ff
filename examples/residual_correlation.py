"""Growth curves with serially correlated residuals: random slopes, AR(1) residuals, or both?

Run with ``python examples/residual_correlation.py`` (add a folder name to save the ACF plots).

Sixty subjects are measured weekly for eight weeks (some visits missed).  Each has a straight
line of their own, and measurements close in time share more than the line explains: the
residuals follow an AR(1) process within subjects.  We fit three models, as one would with
nlme's lme,

    random slopes:   y ~ week * arm + (week | id)
    AR(1) residuals: y ~ week * arm + (1 | id),    residual = mm.AR1(time="week", group="id")
    both:            y ~ week * arm + (week | id), residual = mm.AR1(time="week", group="id")

compare them by AIC and likelihood-ratio tests, and look at the within-subject autocorrelation
of the residuals (nlme's ACF()): Pearson residuals of the random-slopes model stay correlated;
the normalized residuals of the AR(1) model are decorrelated.
"""

import sys
import warnings

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section

rng = np.random.default_rng(2026)
n_id, weeks, phi = 60, np.arange(8), 0.6
rows = []
for i in range(n_id):
    arm = "treated" if i % 2 else "control"
    b0, b1 = rng.normal(0, 2.0), rng.normal(0, 0.6)
    e = np.empty(len(weeks))
    e[0] = rng.normal()
    for k in range(1, len(weeks)):
        e[k] = phi * e[k - 1] + np.sqrt(1 - phi**2) * rng.normal()
    for w, ek in zip(weeks, e):
        if rng.uniform() > 0.1:  # about one visit in ten missed: AR(1) lags count the gaps
            y = 10 + b0 + (1 + 0.3 * (arm == "treated") + b1) * w + 1.5 * ek
            rows.append((f"s{i:02d}", arm, int(w), y))
growth = pd.DataFrame(rows, columns=["id", "arm", "week", "y"])
print(f"{len(growth)} measurements of {growth['id'].nunique()} subjects over weeks 0-7.")

section("1. Three models of the same growth curves")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", mm.SingularFitWarning)
    slopes = mm.lmer("y ~ week * arm + (week | id)", growth)
    ar1 = mm.lmer("y ~ week * arm + (1 | id)", growth, residual=mm.AR1(time="week", group="id"))
    both = mm.lmer("y ~ week * arm + (week | id)", growth, residual=mm.AR1(time="week", group="id"))
print(both.summary())

section("2. Compared by AIC (REML fits with the same fixed effects)")
for name, m in [("random slopes", slopes), ("AR(1) residuals", ar1), ("both", both)]:
    extra = f", Phi = {m.correlation_parameters['Phi']:.3f}" if isinstance(m, mm.ResidualLmerResult) else ""
    print(f"{name:16s} df = {m.df}, AIC = {m.aic:.1f}{extra}")

section("3. Likelihood-ratio tests (refitted by ML)",
        "Random slopes against both: does AR(1) add to random slopes?",
        "AR(1) with a random intercept against both: do random slopes add to AR(1)?")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", (mm.RefitWarning, mm.SingularFitWarning))
    print(mm.anova(slopes, both, names=["slopes", "both"]))
    print(mm.anova(ar1, both, names=["ar1", "both"]))

section("4. Within-subject autocorrelation of the residuals (nlme's ACF)")
table = pd.DataFrame({
    "slopes (pearson)": mm.acf(slopes, max_lag=4)["ACF"],
    "both (pearson)": mm.acf(both, max_lag=4)["ACF"],
    "both (normalized)": mm.acf(both, max_lag=4, type="normalized")["ACF"],
})
print(table.round(3).to_string())
print(f"Lag-1 autocorrelation of the normalized residuals: {table['both (normalized)'][1]:.3f}")

if len(sys.argv) > 1:  # save the plots (needs the plot extra: matplotlib)
    fig = mm.plots.acf_plot(slopes)
    fig.savefig(f"{sys.argv[1]}/acf_slopes.png")
    fig = mm.plots.acf_plot(both, type="normalized")
    fig.savefig(f"{sys.argv[1]}/acf_both_normalized.png")
    print(f"ACF plots written to {sys.argv[1]}")
