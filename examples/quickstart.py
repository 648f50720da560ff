"""Quickstart: a linear mixed model of the sleep-deprivation study.

Run with ``python examples/quickstart.py`` after ``pip install .``.

Eighteen subjects had their reaction time measured on each of ten days of
sleep deprivation.  We fit lme4's classic model: an average straight line over
days (the fixed effects) plus a line of each subject's own (the random
effects), then ask how much of the variation lies between subjects.
"""

import mixedmodels as mm
from _teaching import section


sleep = mm.datasets.load("sleepstudy")

section(
    "1. Random intercepts and slopes: Reaction ~ Days + (Days | Subject)",
    "Each subject gets a starting reaction time (intercept) and a rate of",
    "slowing per day (slope) of their own, drawn from a common distribution.",
    "The printed summary has the layout of lmerTest's summary(lmer(...)): lme4's,",
    "plus degrees of freedom and p-values for the fixed effects by",
    "Satterthwaite's method (m.summary(ddf='lme4') gives lme4's plain t values).",
)
model = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
print(model.summary())
days = model.satterthwaite().loc["Days"]
print(
    f"On average reaction time starts at {model.fixef['(Intercept)']:.1f} ms and grows by\n"
    f"{model.fixef['Days']:.2f} ms per day of sleep deprivation "
    f"(standard error {model.se['Days']:.2f} ms;\n"
    f"t = {days['t value']:.2f} on {days['df']:.0f} df, p = {days['Pr(>|t|)']:.1g})."
)

section(
    "2. Variance components (lme4's as.data.frame(VarCorr(m)))",
    "One row per variance, covariance and the residual: vcov holds variances",
    "and the covariance, sdcor the standard deviations and the correlation.",
)
vc = model.varcorr
print(vc.to_string())
sd = vc[vc["var2"].isna()].set_index(["grp", "var1"])["sdcor"]
print()
print(
    f"Subjects' starting reaction times differ by about {sd['Subject', '(Intercept)']:.0f} ms (SD) and their\n"
    f"slowing by about {sd['Subject', 'Days']:.1f} ms/day; the day-to-day noise within a subject\n"
    f"has an SD of about {model.sigma:.0f} ms."
)

section(
    "3. Intraclass correlation of the null model Reaction ~ 1 + (1 | Subject)",
    "The ICC is the share of the variance that lies between subjects: the",
    "expected correlation of two measurements of the same subject.",
    "'adjusted' counts only the random-effect and residual variances;",
    "'unadjusted' also counts the variance explained by the fixed effects",
    "(none here, so both are equal).  Same definitions as performance::icc().",
)
null_model = mm.lmer("Reaction ~ 1 + (1 | Subject)", sleep)
icc = null_model.icc()
print(f"ICC (adjusted):   {icc['adjusted']:.3f}")
print(f"ICC (unadjusted): {icc['unadjusted']:.3f}")
print()
print(
    f"About {100 * icc['adjusted']:.0f}% of the variation in reaction times is between subjects,\n"
    "so repeated measurements of one subject are far from independent: a\n"
    "mixed model (or another method that respects the grouping) is needed."
)
