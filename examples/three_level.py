"""Three levels: pupils in classes in schools, with ``(1 | school/classroom)``.

Run with ``python examples/three_level.py``.

Pupils share a classroom (teacher, classmates) and classrooms share a school.
A three-level model splits the variance of test scores into a school part, a
class-within-school part and a pupil part, and the intraclass correlations
(ICCs) say how alike two pupils are when they share a school, or a class.

``(1 | school/classroom)`` is shorthand for ``(1 | school) + (1 | school:classroom)``:
classroom is nested in school, so "class 1" of school A and "class 1" of school
B are different classes.

The data are simulated with known values, so you can compare the estimates
with the truth.
"""

import numpy as np
import pandas as pd

import mixedmodels as mm
from _teaching import section


# ----- simulated data ----------------------------------------------------------------
# True model: score = 60 + u_school + v_class + e
#   u_school ~ Normal(0, SD 4)   variance 16
#   v_class  ~ Normal(0, SD 3)   variance  9  (classes within a school)
#   e        ~ Normal(0, SD 8)   variance 64  (pupils within a class)
# Total variance 89: true share of schools 16/89 = 0.18, classes 9/89 = 0.10,
# pupils 64/89 = 0.72.
rng = np.random.default_rng(5)
n_schools, n_classes, n_pupils = 25, 4, 15
school = np.repeat(np.arange(n_schools), n_classes * n_pupils)
classroom = np.tile(np.repeat(np.arange(n_classes), n_pupils), n_schools)   # 0..3 in every school
class_id = school * n_classes + classroom                                   # unique class id
u_school = rng.normal(0, 4, n_schools)
v_class = rng.normal(0, 3, n_schools * n_classes)
score = 60 + u_school[school] + v_class[class_id] + rng.normal(0, 8, school.size)
data = pd.DataFrame({
    "school": pd.Categorical([f"S{k + 1:02d}" for k in school]),
    "classroom": pd.Categorical([f"C{k + 1}" for k in classroom]),   # labels repeat across schools
    "score": score,
})
print(f"{len(data)} pupils in {n_schools * n_classes} classes of {n_pupils}, "
      f"{n_classes} classes in each of {n_schools} schools.")

section(
    "1. The three-level null model: score ~ 1 + (1 | school/classroom)",
    "Two random intercepts: one per school, and one per class within a school",
    "(shown as the grouping factor 'classroom:school').",
)
model = mm.lmer("score ~ 1 + (1 | school/classroom)", data)
print(model.summary())

section(
    "2. Variance at each level",
    "The variance components, and each level's share of the total.",
)
vc = model.varcorr.set_index("grp")["vcov"]
class_group = [g for g in vc.index if g not in ("school", "Residual")][0]
parts = {"school": vc["school"], "class (in school)": vc[class_group], "pupil (residual)": vc["Residual"]}
truth = {"school": 16, "class (in school)": 9, "pupil (residual)": 64}
total = sum(parts.values())
print(f"{'level':20s}{'variance':>10s}{'share':>8s}{'true share':>12s}")
for level, v in parts.items():
    print(f"{level:20s}{v:10.2f}{v / total:8.3f}{truth[level] / 89:12.3f}")

section(
    "3. Intraclass correlations per level (icc(by_group=True))",
    "icc()['by_group'][g] is the share of the variance due to grouping factor g.",
    "From it:",
    "  ICC(school) = school share: the correlation of two pupils of the same",
    "                school but different classes;",
    "  ICC(class)  = school share + class share: the correlation of two pupils",
    "                of the same class (they share both school and class).",
)
icc = model.icc(by_group=True)
share_school = icc["by_group"]["school"]["adjusted"]
share_class = icc["by_group"][class_group]["adjusted"]
print(f"share of variance, school:               {share_school:.3f}")
print(f"share of variance, class within school:  {share_class:.3f}")
print(f"ICC (same school, different class):      {share_school:.3f}   (truth {16 / 89:.3f})")
print(f"ICC (same class):                        {share_school + share_class:.3f}   (truth {25 / 89:.3f})")
print(f"ICC (adjusted, all random effects):      {icc['adjusted']:.3f}")

section(
    "4. Does the class level matter?",
    "Compare with a two-level model that ignores classes (1 | school); the",
    "likelihood-ratio test asks whether the class variance is zero.  The",
    "p-value is conservative (a variance cannot be negative).",
)
two_level = mm.lmer("score ~ 1 + (1 | school)", data)
print(mm.anova(two_level, model, names=["schools only", "schools + classes"], refit=False))
print("Both models have the same fixed effects, so their REML fits can be")
print("compared directly (refit=False).  Leaving out the class level would put")
print("the class variance partly into the school variance and partly into the residual:")
vc2 = two_level.varcorr.set_index("grp")["vcov"]
print(f"  school variance {vc2['school']:.2f} (vs {vc['school']:.2f}), "
      f"residual {vc2['Residual']:.2f} (vs {vc['Residual']:.2f}).")
