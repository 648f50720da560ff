"""After the fit: the follow-up questions an analyst asks of a mixed model.

Run with ``python examples/after_the_fit.py``.

A fitted model answers more than its coefficient table shows.  Here, on the
sleep-deprivation study (18 subjects, 10 days each) and on the cbpp herds:

1. Which terms matter?  F tests of each term (type I, II, III) and the
   likelihood-ratio test of dropping each term (drop1).
2. How big are the differences?  Estimated marginal means of each phase of the
   study and their pairwise comparisons, with a multiplicity adjustment.
3. What do we predict, and how sure are we?  Population predictions with
   confidence and prediction intervals.
4. Does the grouping matter at all?  A GLMM against the same GLM without herds.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section

sleep = mm.datasets.load("sleepstudy")
phase = pd.cut(sleep["Days"], [-1, 1, 5, 9], labels=["baseline", "early", "late"])
data = sleep.assign(phase=phase)  # days 0-1 adaptation, 2-5 and 6-9 of restricted sleep
fit = mm.lmer("Reaction ~ phase + (1 | Subject)", data)

section("1. Which terms matter?",
        "One term, so type I, II and III agree; with several unbalanced terms they would not:",
        "type I adjusts each term for the terms before it, type II for all terms not containing it.")
print(fit.anova(type=1))
print(mm.drop1(fit, test="Chisq"))

section("2. How big are the differences between phases?",
        "Marginal means with Satterthwaite df, then every pair with Tukey's adjustment.")
means = mm.emmeans(fit, "phase")
print(means)
print(means.pairs())

section("3. Predictions and how sure we are",
        "The confidence interval covers the average subject's mean; the prediction interval",
        "one new reading of a new subject (adding the between-subject and residual variance).",
        "predict's intervals use the normal quantile; emmeans' above the t with Satterthwaite df,",
        "so its intervals for the same means are a little wider.")
new = pd.DataFrame({"phase": ["baseline", "late"]})
ci = fit.predict(new, re_form="~0", interval="confidence")
pi = fit.predict(new, re_form="~0", interval="prediction")
for i, label in enumerate(new["phase"]):
    print(f"{label:9s} mean {ci['fit'][i]:6.1f} ms  95% CI [{ci['lower'][i]:6.1f}, {ci['upper'][i]:6.1f}]  "
          f"95% PI [{pi['lower'][i]:6.1f}, {pi['upper'][i]:6.1f}]")

section("4. Does the grouping matter?  glmer against glm",
        "The same binomial model with and without herd effects, compared by likelihood ratio.")
cbpp = mm.datasets.load("cbpp")
herds = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
plain = mm.glm("cbind(incidence, size - incidence) ~ period", cbpp, family="binomial")
print(mm.anova(herds, plain, names=["herds", "plain"]))
risk = mm.emmeans(herds, "period", type="response").table
print("infection risk by period:", np.round(risk["prob"].to_numpy(), 3).tolist())
