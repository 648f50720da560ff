"""Study hours and test scores: school-varying slopes, ranova and shrinkage.

Run with ``python examples/school_varying_slopes.py``.

Does an extra hour of study pay off equally in every school?  We let both the
starting level (intercept) and the payoff per hour (slope) vary by school with
``score ~ hours + (1 + hours | school)``, test whether the slope really varies
(lmerTest's ranova), list the schools with the steepest and flattest slopes
(the numbers behind a caterpillar plot), and compare complete, no and partial
pooling to see the mixed model's shrinkage at work.

The data are simulated with known values, so you can compare the estimates
with the truth.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section


# ----- simulated data ----------------------------------------------------------------
# True model: score = (40 + a_school) + (2 + b_school) * hours + e
#   a_school ~ Normal(0, SD 6)     school differences in the starting level
#   b_school ~ Normal(0, SD 0.8)   school differences in the payoff per hour
#   corr(a, b) = 0 ;  e ~ Normal(0, SD 8)
# Schools have between 5 and 40 students, so some are estimated much less
# precisely than others (and get shrunk more).
rng = np.random.default_rng(7)
n_schools = 30
sizes = rng.integers(5, 41, n_schools)
school = np.repeat(np.arange(n_schools), sizes)
a_school = rng.normal(0, 6, n_schools)
b_school = rng.normal(0, 0.8, n_schools)
hours = rng.uniform(0, 10, school.size)                  # weekly study hours
score = (40 + a_school[school]) + (2 + b_school[school]) * hours + rng.normal(0, 8, school.size)
data = pd.DataFrame({
    "school": pd.Categorical([f"S{k + 1:02d}" for k in school]),
    "hours": hours,
    "score": score,
})
print(f"{len(data)} students in {n_schools} schools of {sizes.min()} to {sizes.max()} students.")

section(
    "1. Random intercepts and slopes: score ~ hours + (1 + hours | school)",
    "The fixed effect of hours is the average payoff per hour across schools;",
    "the random-effects table gives how much schools' payoffs spread around",
    "it (Std.Dev. of hours) and the correlation of intercepts and slopes.",
)
model = mm.lmer("score ~ hours + (1 + hours | school)", data)
print(model.summary())
sd = model.varcorr[model.varcorr["var2"].isna()].set_index(["grp", "var1"])["sdcor"]
print(f"Average payoff: {model.fixef['hours']:.2f} points per hour (true 2).")
print(f"Slope SD between schools: {sd['school', 'hours']:.2f} points per hour (true 0.8).")
low = model.fixef["hours"] - 1.96 * sd["school", "hours"]
high = model.fixef["hours"] + 1.96 * sd["school", "hours"]
print(f"So about 95% of schools should have payoffs between {low:.2f} and {high:.2f} points per hour.")

section(
    "2. Does the slope really vary?  ranova (lmerTest's ranova(m))",
    "ranova drops one random term at a time and compares by likelihood ratio:",
    "the row 'hours in (1 + hours | school)' is the model with random",
    "intercepts only.  It removes two parameters (the slope variance and its",
    "correlation with the intercept).  A variance cannot be negative, so this",
    "test is conservative (the true p-value is smaller than shown).",
)
table = mm.ranova(model)
print(table)
p_slope = table.table["Pr(>Chisq)"].iloc[1]
print(f"Slope-variance test: LRT = {table.table['LRT'].iloc[1]:.2f}, p = {p_slope:.2g}")
print("A small p-value: schools do differ in how much study hours pay off." if p_slope < 0.05 else
      "No clear evidence that the payoff differs between schools.")

section(
    "3. Which schools have the steepest and flattest slopes?",
    "Each school's slope is the fixed effect plus its random effect (coef);",
    "the conditional SD gives its uncertainty.  These are the numbers a",
    "caterpillar plot draws (mm.plots.caterpillar(model, term='hours')).",
)
slopes = pd.DataFrame({
    "n": data["school"].value_counts().reindex(model.coef["school"].index),
    "slope": model.coef["school"]["hours"],
    "ranef": model.ranef["school"]["hours"],
    "cond_sd": model.ranef_sd["school"]["hours"],
})
slopes["lower95"] = slopes["slope"] - 1.96 * slopes["cond_sd"]
slopes["upper95"] = slopes["slope"] + 1.96 * slopes["cond_sd"]
slopes = slopes.sort_values("slope")
print("Flattest three:")
print(slopes.head(3).round(3).to_string())
print("\nSteepest three:")
print(slopes.tail(3).round(3).to_string())
print("\nSmall schools have wide intervals: we know little about their own slope.")

section(
    "4. Complete, no and partial pooling (mm.compare_pooling)",
    "Complete pooling ignores schools (one regression); no pooling fits each",
    "school on its own; the mixed model's partial pooling pulls each school's",
    "own estimate towards the average, more so for small or noisy schools.",
)
pooling = mm.compare_pooling("score ~ hours + (1 + hours | school)", data)
print(pooling)
per = pooling.per_cluster["hours"].copy()
per["n"] = data["school"].value_counts().reindex(per.index)
per = per.sort_values("n")
print("Slopes of the three smallest and three largest schools:")
extremes = pd.concat([per.head(3), per.tail(3)])
print(extremes[["n", "no_pooling", "partial_pooling", "shrinkage"]].round(3).to_string())
small = per.head(len(per) // 3)["shrinkage"].median()
large = per.tail(len(per) // 3)["shrinkage"].median()
print(f"\nMedian shrinkage of the slope: smallest third {small:.2f}, largest third {large:.2f}.")
print("Small schools' own slopes are noisy, so the model trusts them less and pulls them")
print("further towards the average; large schools keep more of their own estimate.")
print("(Single schools scatter around this pattern: each school's intercept and slope")
print("are shrunk together, and how many hours its students happened to study matters too.)")
