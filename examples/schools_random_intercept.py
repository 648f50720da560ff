"""Students in schools: a random-intercept model, the ICC and the design effect.

Run with ``python examples/schools_random_intercept.py``.

1,000 students in 40 schools took the same test.  Students of one school share
teachers, neighbourhoods and resources, so their scores are more alike than
scores of students from different schools.  We measure how much (the ICC),
what that does to the effective sample size (the design effect), then add a
student-level predictor (socio-economic status) and test it with a
likelihood-ratio test.

The data are simulated with known values, so you can compare the estimates
with the truth.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section


# ----- simulated data ----------------------------------------------------------------
# True model: score = 50 + 3 * ses + u_school + e
#   u_school ~ Normal(0, SD 5)   (between-school variance 25)
#   e        ~ Normal(0, SD 10)  (within-school variance 100)
# so the true ICC of the null model is about 25 / (25 + 100 + 9) ≈ 0.19
# (ses has variance 1, so 3 * ses adds 9 to the within-school variance).
rng = np.random.default_rng(2024)
n_schools, n_students = 40, 25
school = np.repeat(np.arange(n_schools), n_students)
ses = rng.normal(0, 1, school.size)                      # student-level, standardised
u_school = rng.normal(0, 5, n_schools)                   # each school's own shift
score = 50 + 3 * ses + u_school[school] + rng.normal(0, 10, school.size)
data = pd.DataFrame({
    "school": pd.Categorical([f"S{k + 1:02d}" for k in school]),
    "ses": ses,
    "score": score,
})

print(f"{len(data)} students in {data['school'].nunique()} schools; first rows:")
print(data.head().round(2).to_string())

section(
    "1. How much do schools matter?  The null model score ~ 1 + (1 | school)",
    "The intraclass correlation (ICC) is the share of the score variance that",
    "lies between schools: the expected correlation of two students' scores",
    "from the same school.  The design effect 1 + (m - 1) * ICC (m = students",
    "per school) says how many times larger the variance of a mean is than a",
    "simple random sample of the same size would give; n / design effect is",
    "the number of independent students the data are 'worth'.",
)
report = mm.icc_null("score", "school", data)
print(report)
print(
    f"Two students of the same school have scores correlated at about {report.icc:.2f}.\n"
    f"With {report.mean_cluster_size:.0f} students per school that inflates variances by a factor of\n"
    f"{report.design_effect:.2f}: our {report.n} students carry about as much information as\n"
    f"{report.effective_n:.0f} independent ones.  Ignoring the schools would make standard\n"
    "errors far too small."
)

section(
    "2. Adding a student-level predictor: score ~ ses + (1 | school)",
    "Both models are fitted by maximum likelihood (REML=False): likelihood-ratio",
    "tests of fixed effects compare ML fits (REML likelihoods of models with",
    "different fixed effects are not comparable).",
)
m0 = mm.lmer("score ~ 1 + (1 | school)", data, REML=False)
m1 = mm.lmer("score ~ ses + (1 | school)", data, REML=False)
print(m1.summary())
print(
    f"Each standard deviation of socio-economic status goes with "
    f"{m1.fixef['ses']:.2f} points more\n"
    f"(true value 3; 95% Wald interval "
    f"{m1.fixef['ses'] - 1.96 * m1.se['ses']:.2f} to {m1.fixef['ses'] + 1.96 * m1.se['ses']:.2f})."
)

section(
    "3. Likelihood-ratio test of the two models (lme4's anova(m0, m1))",
    "Chisq is twice the gain in log-likelihood from adding ses, on Df = 1",
    "extra parameter.  A small Pr(>Chisq) means ses improves the model.",
)
lrt = mm.anova(m0, m1, names=["null", "ses"])
print(lrt)
row = lrt.table.loc["ses"]
print(f"LRT: Chisq = {row['Chisq']:.2f} on {row['Df']:.0f} df, p = {row['Pr(>Chisq)']:.2g}")

section(
    "4. Where did the variance go?",
    "ses varies within schools, so it mainly explains within-school",
    "(residual) variance.  Marginal R2 is the share explained by the fixed",
    "effects; conditional R2 adds the schools (Nakagawa's R2).",
)
vc0 = m0.varcorr.set_index("grp")["vcov"]
vc1 = m1.varcorr.set_index("grp")["vcov"]
print(f"{'':22s}{'null':>10s}{'+ ses':>10s}{'truth':>10s}")
print(f"{'school variance':22s}{vc0['school']:10.1f}{vc1['school']:10.1f}{25:10.1f}")
print(f"{'residual variance':22s}{vc0['Residual']:10.1f}{vc1['Residual']:10.1f}{100:10.1f}")
r2 = m1.r2()
print()
print(f"R2 marginal:    {r2['marginal']:.3f}")
print(f"R2 conditional: {r2['conditional']:.3f}")
