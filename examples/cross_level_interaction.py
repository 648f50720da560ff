"""A cross-level interaction: a school-level predictor explains slope variation.

Run with ``python examples/cross_level_interaction.py``.

Study hours pay off more in some schools than in others.  Is that because some
schools support their students better (tutoring, study halls)?  The school-level
variable ``school_support`` can change the *slope* of hours: that is the
cross-level interaction ``hours:school_support`` in

    score ~ hours * school_support + (hours | school)

If support explains why slopes differ, the remaining (unexplained) slope
variance between schools should drop compared with a model without the
interaction.

The data are simulated with known values, so you can compare the estimates
with the truth.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section


# ----- simulated data ----------------------------------------------------------------
# school_support: standardised school-level score (mean 0, SD 1), one value per school.
# True model:
#   intercept of school j = 40 + 3 * support_j + a_j,   a_j ~ Normal(0, SD 5)
#   slope of school j     =  2 + 0.6 * support_j + b_j, b_j ~ Normal(0, SD 0.4)
#   score = intercept_j + slope_j * hours + e,          e   ~ Normal(0, SD 8)
# So support explains 0.6^2 = 0.36 of the total slope variance 0.36 + 0.16 = 0.52
# (about 70%); the cross-level coefficient is 0.6.
rng = np.random.default_rng(17)
n_schools, n_students = 50, 20
school = np.repeat(np.arange(n_schools), n_students)
support = rng.normal(0, 1, n_schools)
a = rng.normal(0, 5, n_schools)
b = rng.normal(0, 0.4, n_schools)
hours = rng.uniform(0, 10, school.size)
intercept = 40 + 3 * support + a
slope = 2 + 0.6 * support + b
score = intercept[school] + slope[school] * hours + rng.normal(0, 8, school.size)
data = pd.DataFrame({
    "school": pd.Categorical([f"S{k + 1:02d}" for k in school]),
    "school_support": support[school],
    "hours": hours,
    "score": score,
})
print(f"{len(data)} students in {n_schools} schools; school_support is constant within a school.")

section(
    "1. Without the interaction: score ~ hours + school_support + (hours | school)",
    "Support may shift a school's level (its main effect), but every school's",
    "slope differs from the average only through its random slope.",
)
base = mm.lmer("score ~ hours + school_support + (hours | school)", data)
print(base.summary())

section(
    "2. With the cross-level interaction: score ~ hours * school_support + (hours | school)",
    "hours * school_support expands to hours + school_support + hours:school_support.",
    "The last term lets the slope of hours depend on the school's support.",
)
full = mm.lmer("score ~ hours * school_support + (hours | school)", data)
print(full.summary())

section(
    "3. Interpreting the cross-level term",
    "school_support is standardised (mean 0, SD 1), so:",
    "  hours                 = payoff per hour in a school of average support;",
    "  hours:school_support  = how much that payoff changes per SD of support.",
    "The t test uses Satterthwaite's degrees of freedom, which here are close to",
    "the number of schools, not students: support is a school-level variable.",
)
tests = full.satterthwaite()
row = tests.loc["hours:school_support"]
beta_h, beta_x = full.fixef["hours"], full.fixef["hours:school_support"]
print(tests.to_string(float_format=lambda v: f"{v:.4g}"))
print()
print(f"Cross-level interaction: {beta_x:.3f} (true 0.6), t = {row['t value']:.2f} "
      f"on {row['df']:.1f} df, p = {row['Pr(>|t|)']:.2g}")
print(f"In a school 1 SD below average support an hour is worth {beta_h - beta_x:.2f} points;")
print(f"at average support {beta_h:.2f}; 1 SD above average {beta_h + beta_x:.2f} points.")

section(
    "4. How much slope variance did support explain?",
    "The random-slope variance is what is left unexplained by the fixed part.",
    "Its relative drop is a 'pseudo-R2' for slopes (Raudenbush & Bryk).",
)


def slope_variance(fit) -> float:
    vc = fit.varcorr
    return float(vc.loc[(vc["grp"] == "school") & (vc["var1"] == "hours") & vc["var2"].isna(), "vcov"].iloc[0])


v_base, v_full = slope_variance(base), slope_variance(full)
explained = 1 - v_full / v_base
print(f"Slope variance without the interaction: {v_base:.3f}  (truth 0.52)")
print(f"Slope variance with the interaction:    {v_full:.3f}  (truth 0.16)")
print(f"Share of slope variance explained by school_support: {explained:.2f}  (truth about 0.70)")
print()
print("Caution: with few schools, variance estimates are imprecise, and a pseudo-R2")
print("can even be negative by chance.  The Satterthwaite test of the interaction is")
print("the formal evidence; the variance drop tells how much of the story it covers.")
