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
5. Is one subject driving the result?  Each subject deleted and the model
   refitted (group-deletion influence), and the studentized residuals.
6. Which model would backward elimination keep?  lmerTest's step().
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

section("5. Is one subject driving the slope?",
        "Each subject deleted in turn and the random-slope model refitted: Cook's distance",
        "summarises how far the fixed effects move (in units of their covariance); dfbetas",
        "gives the move of each coefficient in standard errors.  Studentized residuals flag",
        "single readings instead: the residual over its own standard error.")
slope = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
inf = mm.influence(slope, groups="Subject")
cooks = inf.cooks_distance().sort_values(ascending=False)
top = cooks.index[0]
print(cooks.head(3).round(3).to_string())
change = inf.dfbeta().loc[top, "Days"]
print(f"without subject {top} the slope is {inf.fixed_effects_deleted.loc[top, 'Days']:.2f} ms/day "
      f"({change:+.2f}; {inf.dfbetas().loc[top, 'Days']:+.2f} standard errors)")
rs = slope.rstudent()
worst = rs.abs().idxmax()
print(f"largest studentized residual: {rs[worst]:.2f} (subject {sleep.loc[worst, 'Subject']}, "
      f"day {sleep.loc[worst, 'Days']:.0f})")

section("6. Which model would backward elimination keep?",
        "lmerTest's step(): random terms by likelihood-ratio tests (alpha 0.1), then fixed",
        "terms by F tests (alpha 0.05), the interaction before its main effects.  The phases add",
        "nothing to a linear trend in days.  The p-values of the model found ignore the search",
        "that chose it: treat step() as a description, not as a test.")
chosen = mm.step(mm.lmer("Reaction ~ Days * phase + (Days | Subject)", data))
print(chosen)
