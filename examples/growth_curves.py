"""Growth curves: repeated measures over time in the sleep-deprivation study.

Run with ``python examples/growth_curves.py``.

Eighteen subjects had their reaction time measured on days 0-9 of sleep
deprivation (lme4's sleepstudy).  Each subject has a growth curve: a straight
line over days with an intercept and slope of their own,

    Reaction ~ Days + (Days | Subject)

We predict curves for known subjects and for a new one, show the population
(average) curve, and give profile-likelihood confidence intervals for every
parameter.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section


sleep = mm.datasets.load("sleepstudy")
print(f"{len(sleep)} measurements of {sleep['Subject'].nunique()} subjects, days "
      f"{sleep['Days'].min()}-{sleep['Days'].max()}.")

section(
    "1. The growth-curve model: Reaction ~ Days + (Days | Subject)",
    "Fixed effects: the average curve (intercept on day 0, slope per day).",
    "Random effects: how subjects' own intercepts and slopes spread around it.",
)
model = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
print(model.summary())
print(f"Average reaction time on day 0: {model.fixef['(Intercept)']:.1f} ms; "
      f"average slowing: {model.fixef['Days']:.2f} ms/day.")

section(
    "2. Each subject's own curve (coef)",
    "Fixed effects plus each subject's random effects: the subject's intercept",
    "and slope.  The three subjects who slowed least, then the three who",
    "slowed most:",
)
curves = model.coef["Subject"].sort_values("Days")
print(pd.concat([curves.head(3), curves.tail(3)]).round(2).to_string())

section(
    "3. Predictions for known subjects, a new subject and the population",
    "predict() uses each subject's random effects.  A subject not in the data",
    "has no random effects of their own: with allow_new_levels=True they get",
    "the population curve (random effects 0).  re_form='~0' asks for the",
    "population curve directly, for any subject.",
)
days = [0, 3, 6, 9]
new = pd.DataFrame({
    "Subject": ["308"] * 4 + ["335"] * 4 + ["new"] * 4,
    "Days": days * 3,
})
new["with_RE"] = model.predict(new, allow_new_levels=True)
new["population"] = model.predict(new, re_form="~0")
print(new.round(1).to_string(index=False))
population = model.predict(pd.DataFrame({"Days": days}), re_form="~0")
print()
print("Population curve (re_form='~0'):")
for d, value in zip(days, population):
    print(f"  day {d}: {value:.1f} ms")
new_day9 = float(new.loc[(new["Subject"] == "new") & (new["Days"] == 9), "with_RE"].iloc[0])
print(f"\nNew subject on day 9: {new_day9:.1f} ms, the same as the population curve.")

section(
    "4. How uncertain is a new subject's curve?",
    "The population curve is where a new subject is expected to be, but an",
    "individual subject varies around it by the random-effect SDs plus the",
    "residual noise.  A rough 95% range for a single new measurement on day d",
    "(ignoring the uncertainty in the fixed effects):",
    "  population(d) +/- 1.96 * sqrt(var(intercept) + d^2 var(slope) + 2 d cov + sigma^2)",
)
S = model.covariances[0]          # 2 x 2 covariance of (intercept, slope) of Subject
for d, value in zip(days, population):
    z = np.array([1.0, d])
    sd = np.sqrt(z @ S @ z + model.sigma**2)
    print(f"  day {d}: {value:.0f} ms, 95% range {value - 1.96 * sd:.0f} to {value + 1.96 * sd:.0f} ms")

section(
    "5. Profile-likelihood confidence intervals (lme4's confint(m))",
    "For each parameter, the likelihood is maximised over all the others at",
    "trial values; the interval holds the values not rejected by a",
    "likelihood-ratio test at 5%.  Unlike Wald intervals (estimate +/- 1.96 SE)",
    "they need not be symmetric, which matters for SDs and correlations.",
    "sd_... are random-effect SDs, cor_... their correlation, sigma the residual SD.",
)
ci = model.confint(method="profile")
print(ci.round(3).to_string())
lo, hi = ci.loc["Days"]
print(f"\nDays: {model.fixef['Days']:.2f} ms/day, 95% profile CI {lo:.2f} to {hi:.2f}.")
clo, chi = ci.loc["cor_Days.(Intercept)|Subject"]
print(f"The intercept-slope correlation could be anything from {clo:.2f} to {chi:.2f}:")
print("18 subjects say little about it.")
