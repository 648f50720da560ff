"""Centring: within-school, between-school and contextual effects of SES.

Run with ``python examples/centering_contextual.py``.

A student's socio-economic status (SES) can matter twice: through the student's
own SES (the within-school effect) and through the SES of the school's students
as a whole (the between-school effect: peers, resources).  When schools differ in
their mean SES, the coefficient of raw ``ses`` in ``score ~ ses + (1 | school)``
mixes the two.  ``mm.center(data, "ses", by="school")`` splits SES into

* ``ses_between``: the school's mean SES, and
* ``ses_within``: the student's deviation from it (group-mean centring).

The **contextual effect** is between − within: how much more two students of
equal SES differ when one attends a school whose mean SES is one unit higher.
``score ~ ses + ses_between + (1 | school)`` estimates it directly, with its test
(Raudenbush & Bryk 2002, chapter 5).

The data are simulated with known values: within effect 2, between effect 5,
so the contextual effect is 3.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section

# ----- simulated data ----------------------------------------------------------------
# School j's mean SES m_j ~ Normal(0, 1); student SES = m_j + Normal(0, 1).
# score = 50 + 2 * (ses - school mean) + 5 * school mean + a_j + e,
#   a_j ~ Normal(0, SD 2), e ~ Normal(0, SD 4).
rng = np.random.default_rng(7)
n_schools, n_students = 60, 25
school = np.repeat(np.arange(n_schools), n_students)
ses = rng.normal(0, 1, n_schools)[school] + rng.normal(0, 1, school.size)
own_mean = pd.Series(ses).groupby(school).transform("mean").to_numpy()
score = (50 + 2 * (ses - own_mean) + 5 * own_mean + rng.normal(0, 2, n_schools)[school]
         + rng.normal(0, 4, school.size))
data = pd.DataFrame({"school": [f"S{k + 1:02d}" for k in school], "ses": ses.round(3), "score": score.round(2)})

section(
    "1. Raw SES: one slope that mixes two effects",
    "score ~ ses + (1 | school) estimates a weighted blend of the within-school",
    "effect (2) and the between-school effect (5), which describes neither.",
)
raw = mm.lmer("score ~ ses + (1 | school)", data)
print(f"slope of raw ses: {raw.fixef['ses']:.3f}")

section(
    "2. mm.center: school means and deviations from them",
    "A new data frame; the original is left as it was.",
)
centred = mm.center(data, "ses", by="school")
print(centred.head().round(3))

section(
    "3. Within and between effects: score ~ ses_within + ses_between + (1 | school)",
)
split = mm.lmer("score ~ ses_within + ses_between + (1 | school)", centred)
print(split.satterthwaite())
print(f"\nwithin-school effect: {split.fixef['ses_within']:.3f} (truth 2)")
print(f"between-school effect: {split.fixef['ses_between']:.3f} (truth 5)")

section(
    "4. The contextual effect and its test: score ~ ses + ses_between + (1 | school)",
    "The same model written differently: ses_between's slope is now between - within.",
)
contextual = mm.lmer("score ~ ses + ses_between + (1 | school)", centred)
row = contextual.satterthwaite().loc["ses_between"]
print(f"contextual effect: {row['Estimate']:.3f} (SE {row['Std. Error']:.3f}, "
      f"df {row['df']:.1f}, p = {row['Pr(>|t|)']:.2g}; truth 3)")
print(f"between - within from model 3: {split.fixef['ses_between'] - split.fixef['ses_within']:.3f}")

section(
    "5. Grand-mean centring",
    "center(data, 'ses') subtracts the overall mean: the slopes stay, the intercept",
    "becomes the expected score of a student of average SES.  grand=True also centres",
    "the school means, so the intercept is the score at average SES in an average school.",
)
grand = mm.center(data, "ses", by="school", grand=True)
print(f"school-mean column centred at the grand mean: mean {grand['ses_between'].mean():.2e}")
both = mm.lmer("score ~ ses_within + ses_between + (1 | school)", grand)
print(f"intercept with raw school means: {split.fixef['(Intercept)']:.3f}; "
      f"grand-mean centred: {both.fixef['(Intercept)']:.3f}")
