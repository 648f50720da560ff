"""A binary outcome: post-operative complications of patients in hospitals (glmer).

Run with ``python examples/hospital_binary_glmer.py``.

Each patient either has a complication (1) or not (0).  Patients treated in the
same hospital share its surgeons, protocols and case mix, so we fit a logistic
mixed model with a random intercept per hospital,

    complication ~ age10 + emergency + (1 | hospital),  family="binomial"

and report odds ratios with Wald intervals, how much of the (latent) variation
lies between hospitals, and predicted probabilities.

The data are simulated with known values, so you can compare the estimates
with the truth.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section


# ----- simulated data ----------------------------------------------------------------
# age10: (age - 60) / 10, i.e. decades from age 60; emergency: 1 for emergency surgery.
# True model on the log-odds (logit) scale:
#   logit P(complication) = -2 + 0.4 * age10 + 0.8 * emergency + u_hospital
#   u_hospital ~ Normal(0, SD 0.6)
# True odds ratios: exp(0.4) = 1.49 per decade, exp(0.8) = 2.23 for emergencies.
# True latent ICC: 0.36 / (0.36 + pi^2 / 3) = 0.099.
rng = np.random.default_rng(4)
n_hospitals = 30
sizes = rng.integers(40, 121, n_hospitals)               # 40 to 120 patients each
hospital = np.repeat(np.arange(n_hospitals), sizes)
u_hospital = rng.normal(0, 0.6, n_hospitals)
age10 = rng.normal(0, 1.2, hospital.size)
emergency = rng.binomial(1, 0.3, hospital.size)
logit = -2 + 0.4 * age10 + 0.8 * emergency + u_hospital[hospital]
complication = rng.binomial(1, 1 / (1 + np.exp(-logit)))
data = pd.DataFrame({
    "hospital": pd.Categorical([f"H{k + 1:02d}" for k in hospital]),
    "age10": age10,
    "emergency": emergency,
    "complication": complication,
})
print(f"{len(data)} patients in {n_hospitals} hospitals; "
      f"{data['complication'].mean():.1%} had a complication.")

section(
    "1. The logistic mixed model",
    "Estimates are on the log-odds scale.  There is no residual variance: a",
    "binary outcome's variance is fixed by its probability.",
)
model = mm.glmer("complication ~ age10 + emergency + (1 | hospital)", data, family="binomial")
print(model.summary())

section(
    "2. Odds ratios with 95% Wald intervals",
    "exp(coefficient) is an odds ratio: how many times the odds of a",
    "complication multiply per unit of the predictor, for patients of the same",
    "hospital (a 'conditional' or hospital-specific effect).  Exponentiating",
    "the ends of the Wald interval of the coefficient gives the interval of",
    "the odds ratio.",
)
ci = model.confint()                       # Wald: fixed effects only (variance rows are NaN)
table = pd.DataFrame({
    "odds_ratio": np.exp(model.fixef),
    "lower95": np.exp(ci.loc[model.fixef.index].iloc[:, 0]),
    "upper95": np.exp(ci.loc[model.fixef.index].iloc[:, 1]),
    "p_value": model.coefficients()["Pr(>|z|)"],
})
print(table.to_string(float_format=lambda v: f"{v:.4g}"))
print()
print(f"Odds ratio per decade of age: {table.loc['age10', 'odds_ratio']:.2f} (true 1.49)")
print(f"Odds ratio for emergency surgery: {table.loc['emergency', 'odds_ratio']:.2f} (true 2.23)")
print("The intercept row is the odds (not a ratio) for a 60-year-old elective patient")
print("in a typical hospital (random effect 0).")

section(
    "3. How much do hospitals differ?  The latent-scale ICC",
    "Imagine each patient has an unobserved propensity (the latent scale) and",
    "a complication happens when it crosses a threshold.  For the logit link",
    "the patient-level variance of that propensity is pi^2/3 = 3.29, so",
    "  ICC = var(hospital) / (var(hospital) + 3.29).",
)
var_h = float(model.varcorr["vcov"].iloc[0])
icc = model.icc()
print(f"hospital variance (log-odds scale): {var_h:.3f}  (true 0.36)")
print(f"ICC (adjusted, latent scale): {icc['adjusted']:.3f}  (true 0.099)")
print(f"check: {var_h:.3f} / ({var_h:.3f} + {np.pi ** 2 / 3:.3f}) = {var_h / (var_h + np.pi ** 2 / 3):.3f}")
mor = np.exp(np.sqrt(2 * var_h) * 0.6745)   # median odds ratio (Larsen & Merlo 2005)
print("\nAnother reading, the median odds ratio: moving the same patient from one")
print("randomly chosen hospital to another multiplies their odds by a median of")
print(f"{mor:.2f} (comparing the riskier hospital with the safer one; true {np.exp(np.sqrt(0.72) * 0.6745):.2f}).")

section(
    "4. Predicted probabilities",
    "predict() returns probabilities (type='response', the default) or",
    "log-odds (type='link').  re_form='~0' gives a typical hospital (random",
    "effect 0); with the random effects we get a specific hospital's patient.",
    "Note: the typical hospital's probability is not the average over",
    "hospitals: the logistic curve bends, so for probabilities below 0.5 the",
    "hospitals above average add more than those below take away.",
)
ranef = model.ranef["hospital"]["(Intercept)"].sort_values()
best, worst = str(ranef.index[0]), str(ranef.index[-1])
patients = pd.DataFrame({
    "hospital": [best, worst, best, worst],
    "age10": [0.0, 0.0, 2.0, 2.0],              # 60 and 80 years old
    "emergency": [0, 0, 1, 1],
})
patients["typical_hospital"] = model.predict(patients, re_form="~0")
patients["this_hospital"] = model.predict(patients)
patients["log_odds"] = model.predict(patients, type="link")
print(patients.round(3).to_string(index=False))
p60 = float(patients["typical_hospital"].iloc[0])
print(f"\nA 60-year-old elective patient in a typical hospital: probability {p60:.3f}.")
print(f"In {best} (lowest random effect) and {worst} (highest) the same patient has")
print(f"{patients['this_hospital'].iloc[0]:.3f} and {patients['this_hospital'].iloc[1]:.3f}.")
