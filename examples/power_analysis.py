"""How many schools do I need?  Power of a multilevel study by simulation.

Run with ``python examples/power_analysis.py``.

We plan a cluster-randomised trial: whole schools get a new teaching method
(treatment = 1) or keep the old one (treatment = 0), and pupils' test scores
are compared.  ``mm.power`` answers "what is the chance that the study finds
an effect of this size?" by simulation (as R's simr): it builds designs with
more or fewer schools (resampling whole schools from a fitted pilot model),
simulates scores from the model, refits, and counts how often the treatment's
Satterthwaite t test has p < 0.05.

The pilot data are simulated with known values.  NOTE: nsim=40 simulations per
design keeps this example fast, but power estimates from 40 simulations are
rough (see the wide confidence intervals); a real study should use 500-1000.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section

NSIM = 40          # far too few for a real study: use 500-1000 there
EFFECT = 4.0       # the smallest treatment effect worth detecting (score points)


def pilot(school_sd: float, seed: int) -> pd.DataFrame:
    """Pilot data: 30 schools of 15 pupils, half the schools treated.

    True model: score = 50 + 4 * treatment + u_school + e,
    u_school ~ Normal(0, school_sd), e ~ Normal(0, SD 10).
    """
    rng = np.random.default_rng(seed)
    n_schools, n_pupils = 30, 15
    school = np.repeat(np.arange(n_schools), n_pupils)
    treatment = (np.arange(n_schools) % 2)[school]          # school-level treatment
    u_school = rng.normal(0, school_sd, n_schools)
    score = 50 + EFFECT * treatment + u_school[school] + rng.normal(0, 10, school.size)
    return pd.DataFrame({
        "school": pd.Categorical([f"S{k + 1:02d}" for k in school]),
        "treatment": treatment,
        "score": score,
    })


# Two scenarios for the variance between schools (the residual SD is 10 in both):
#   low clustering:  school SD 2.5 -> true ICC 6.25 / 106.25 = 0.06
#   high clustering: school SD 5   -> true ICC 25 / 125      = 0.20
low = mm.lmer("score ~ treatment + (1 | school)", pilot(2.5, seed=8))
high = mm.lmer("score ~ treatment + (1 | school)", pilot(5.0, seed=8))

section(
    "1. The pilot models",
    "mm.power simulates from a fitted model: its fixed effects (with the",
    "treatment effect replaced by effect=), its school variance and its",
    "residual variance.  So the variance components you feed in matter.",
)
for name, fit in (("low clustering", low), ("high clustering", high)):
    vc = fit.varcorr.set_index("grp")["vcov"]
    print(f"{name:16s}: school variance {vc['school']:6.2f}, residual variance {vc['Residual']:6.2f}, "
          f"ICC {fit.icc()['adjusted']:.3f}")

section(
    "2. Power against the number of schools (15 pupils each)",
    f"effect={EFFECT:g}: the effect we want to detect, not the pilot's estimate",
    "(a pilot's estimate is too noisy to plan with).  power is the share of",
    "simulated studies with p < 0.05; ci_lower/ci_upper its 95% interval.",
)
grid = [10, 20, 40]
results = {}
for name, fit in (("low clustering", low), ("high clustering", high)):
    res = mm.power(fit, test="treatment", effect=EFFECT, nsim=NSIM,
                   n_groups=grid, n_per_group=15, seed=2024)
    results[name] = res
    print(f"--- {name} (ICC {fit.icc()['adjusted']:.2f}) ---")
    print(res)
for name, res in results.items():
    ok = res.table.loc[res.table["power"] >= 0.8, "n_groups"]
    if len(ok):
        verdict = f"about {ok.min()} schools reach 80% power"
    else:
        verdict = f"more than {max(grid)} schools are needed for 80% power"
    print(f"{name}: {verdict}.")
print("\nThe usual target is 80% power.  With more clustering you need more schools.")

section(
    "3. More pupils per school, or more schools?  (high clustering, 20 schools)",
    "Adding pupils helps only up to a point: with a school-level treatment the",
    "differences between schools limit precision, and only more schools",
    "reduce that part.",
)
per_school = mm.power(high, test="treatment", effect=EFFECT, nsim=NSIM,
                      n_groups=20, n_per_group=[5, 45], seed=2024)
print(per_school)
table = results["high clustering"].table.set_index("n_groups")["power"]
more_pupils = float(per_school.table.set_index("n_per_group").loc[45, "power"])
print(f"20 schools x 15 pupils (300 pupils): power {table[20]:.2f}  (section 2)")
print(f"20 schools x 45 pupils (900 pupils): power {more_pupils:.2f}")
print(f"40 schools x 15 pupils (600 pupils): power {table[40]:.2f}  (section 2)")
print("Tripling the pupils per school typically gains much less than doubling the")
print("schools, because the design effect 1 + (m - 1) * ICC grows with the cluster")
print("size m: extra pupils in the same schools add little new information.")

section(
    "4. A note on variance components",
    "The answer depends on the school variance (ICC) you assume, and a pilot",
    "of 30 schools estimates it poorly.  Plan with a plausible range: repeat",
    "the analysis with the low and high values (as above), or with values from",
    "published studies of similar schools, and choose a design that still has",
    "enough power in the less favourable case.",
)
print(f"Remember: nsim={NSIM} is for a quick demonstration only; use 500-1000 simulations,")
print("so that the power estimates' confidence intervals are narrow.")
