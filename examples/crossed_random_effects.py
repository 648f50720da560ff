"""Crossed random effects: when observations belong to two groupings at once.

Run with ``python examples/crossed_random_effects.py``.

In nested designs each class lies in one school.  In crossed designs each
observation belongs to a level of two factors that cut across each other:
every penicillin sample is tested on every plate; students rate several
lecturers and lecturers are rated by many students.  Each factor gets its own
random intercept, ``(1 | plate) + (1 | sample)``, and the variance splits into
a part for each factor and a residual.

Part 1 uses lme4's Penicillin data (fully crossed, 144 observations); part 2 a
subset of the InstEval lecture ratings (partially crossed, thousands of
students and lecturers).
"""

import mixedmodels as mm
from _teaching import section


def shares(fit) -> None:
    """Each variance component and its share of the total."""
    vc = fit.varcorr
    total = vc["vcov"].sum()
    print(f"{'component':12s}{'variance':>10s}{'SD':>8s}{'share':>8s}")
    for _, row in vc.iterrows():
        print(f"{row['grp']:12s}{row['vcov']:10.4f}{row['sdcor']:8.4f}{row['vcov'] / total:8.3f}")


penicillin = mm.datasets.load("Penicillin")
print("Penicillin: diameter of the zone where bacteria stop growing, for 6 samples")
print(f"on each of 24 plates ({len(penicillin)} measurements, every sample on every plate).")
print(penicillin.head().to_string())

section(
    "1. Penicillin: diameter ~ 1 + (1 | plate) + (1 | sample)",
    "plate and sample are crossed: no level of one lies inside a level of the",
    "other.  Plates differ (e.g. in agar depth), and samples differ in potency.",
)
model = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", penicillin)
print(model.summary())

section(
    "2. Variance components",
    "Which source of variation is largest?  (lme4 reports plate 0.717,",
    "sample 3.731, residual 0.302.)",
)
shares(model)
icc = model.icc(by_group=True)
print()
for group, value in icc["by_group"].items():
    print(f"ICC {group}: {value['adjusted']:.3f}")
print(
    "\nSamples differ most: two measurements of the same sample (on different\n"
    f"plates) correlate at {icc['by_group']['sample']['adjusted']:.2f}; two on the same plate "
    f"(different samples) at {icc['by_group']['plate']['adjusted']:.2f}."
)

section(
    "3. Do we need both factors?  Drop one and compare",
    "Each reduced model keeps one random intercept; the likelihood-ratio test",
    "asks whether the dropped variance is zero.  The fixed effects are the",
    "same, so the REML fits compare directly (refit=False); the p-values are",
    "conservative because a variance cannot be negative.",
)
no_sample = mm.lmer("diameter ~ 1 + (1 | plate)", penicillin)
no_plate = mm.lmer("diameter ~ 1 + (1 | sample)", penicillin)
print(mm.anova(no_sample, model, refit=False, names=["plate only", "plate + sample"]))
print(mm.anova(no_plate, model, refit=False, names=["sample only", "plate + sample"]))
print("The same tests, one term at a time, with ranova:")
print(mm.ranova(model))
print("Without plate the plate-to-plate differences land in the residual:")
print(f"  residual variance {no_plate.sigma ** 2:.3f} without plate vs {model.sigma ** 2:.3f} with it.")
print("Both factors are clearly needed.")

section(
    "4. A larger, partially crossed design: InstEval lecture ratings",
    "Students (s) rate lecturers (d) on a 1-5 scale; service = 1 when the",
    "course is a service course for another department.  We keep the first",
    "200 lecturers (all their ratings) so the example runs fast; the full data",
    "set (73,421 ratings) fits in a few seconds too.",
)
insteval = mm.datasets.load("InstEval")
keep = insteval["d"].cat.categories[:200]
ratings = insteval[insteval["d"].isin(keep)].copy()
for factor in ("s", "d"):
    ratings[factor] = ratings[factor].cat.remove_unused_categories()
print(f"{len(ratings)} ratings by {ratings['s'].nunique()} students of {ratings['d'].nunique()} lecturers.")
print(f"Each student rated {len(ratings) / ratings['s'].nunique():.1f} of these lecturers on average: "
      "partially crossed.\n")
ie_model = mm.lmer("y ~ service + (1 | s) + (1 | d)", ratings)
print(ie_model.summary())
shares(ie_model)
print(
    "\nLecturers differ more than students' rating habits, but most of the\n"
    "variation is in individual ratings (the residual).  Service courses are\n"
    f"rated {abs(ie_model.fixef['service1']):.2f} points "
    f"{'lower' if ie_model.fixef['service1'] < 0 else 'higher'} on average."
)
