"""The parameters users read — random-effect SDs and correlations, σ, β — in one Series.

Confidence intervals (Wald, profile, bootstrap) and the bootstrap's default statistic
are all indexed by these names, in this order.
"""

from __future__ import annotations

import pandas as pd


def parameters(fit) -> pd.Series:
    """Every parameter, one row each: 'sd_(Intercept)|Subject', 'cor_(Intercept).Days|Subject', 'sigma', β."""
    values, names = [], []
    for r in fit.varcorr.itertuples(index=False):
        if r.grp == "Residual":  # σ, or a residual structure's parameter (Phi, varIdent.B, …) by its name
            names.append("sigma" if pd.isna(r.var1) else str(r.var1))
        elif pd.isna(r.var2):
            names.append(f"sd_{r.var1}|{r.grp}")
        else:
            names.append(f"cor_{r.var1}.{r.var2}|{r.grp}")
        values.append(r.sdcor)
    return pd.concat([pd.Series(values, index=names, dtype=float), fit.fixef.rename(None)])



def percent_label(p: float) -> str:
    """R's column label of a probability in confidence-interval tables: 0.025 -> '2.5 %'."""
    return f"{100 * p:.3g} %"
