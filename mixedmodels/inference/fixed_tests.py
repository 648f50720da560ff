"""F tests of fixed-effect terms with Satterthwaite denominator df (lmerTest's anova(m)).

Type III hypotheses: each term's columns are zero in the model coded with
sum-to-zero contrasts, so that a main effect is averaged over the levels of the
factors it interacts with.  The sum-coded matrix spans the same space as the
fitted X (X_sum = X M), so its hypotheses map back to the fitted coefficients
as L = L_sum M⁻¹ and are tested on the fit as it is, without refitting.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd


from ..design.build import evaluate
from ..errors import MixedModelsError
from ..report.tables import AnovaTable
from .kenward_roger import kr_test
from .satterthwaite import satterthwaite_f


def type3_contrasts(fit) -> dict[str, np.ndarray]:
    """Term name → contrast matrix L (rows over the fitted coefficients)."""
    X = fit.design.X
    mat, _ = evaluate(fit.parsed.fixed, fit.design.frame, "the fixed part", sum_contrasts=True,
                      checked=fit.parsed.checked)
    X_sum = mat.to_numpy(dtype=float)
    if X_sum.shape[1] != X.shape[1]:
        raise MixedModelsError(
            "type III tests need a full-rank fixed-effects model; columns were dropped as aliased: "
            + ", ".join(fit.design.dropped_columns)
        )
    M, *_ = np.linalg.lstsq(X, X_sum, rcond=None)
    if not np.allclose(X @ M, X_sum, atol=1e-8 * max(1.0, float(np.abs(X_sum).max()))):
        raise MixedModelsError("the sum-coded fixed effects do not span the fitted model's columns")
    M_inv = np.linalg.inv(M)
    index = {name: j for j, name in enumerate(mat.columns)}
    out = {}
    for structure in mat.model_spec.structure:
        if str(structure.term) == "1":
            continue
        rows = [index[c] for c in structure.columns]
        out[_term_name(str(structure.term))] = M_inv[rows, :]
    return out


def _term_name(term: str) -> str:
    """R's label of a term: the factor names without formulaic's contrast wrappers."""
    return re.sub(r"C\(([^,()]+), contr\.\w+\)", r"\1", term)


def _satterthwaite_row(fit, L: np.ndarray) -> tuple[float, int, float, float, float]:
    test = satterthwaite_f(fit, L)
    return test.F, test.NumDF, test.DenDF, test.F, test.p


def _kenward_roger_row(fit, L: np.ndarray) -> tuple[float, int, float, float, float]:
    r = kr_test(fit, L)
    return r.F_unscaled, r.NumDF, r.DenDF, r.F, r.p  # Sum Sq from the unscaled F, as lmerTest


_ROWS = {"Satterthwaite": _satterthwaite_row, "Kenward-Roger": _kenward_roger_row}


def anova_table(fit, ddf: str = "Satterthwaite") -> AnovaTable:
    """lmerTest's type III table: Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F).

    Mean Sq = F σ² (for Kenward-Roger the F before its scaling), Sum Sq = Mean Sq · NumDF.
    """
    rows = {}
    for name, L in type3_contrasts(fit).items():
        f_for_ss, num_df, den_df, F, p = _ROWS[ddf](fit, L)
        mean_sq = f_for_ss * fit.sigma**2
        rows[name] = (mean_sq * num_df, mean_sq, num_df, den_df, F, p)
    table = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"])
    return AnovaTable(table, [f"Type III Analysis of Variance Table with {ddf}'s method"], {})
