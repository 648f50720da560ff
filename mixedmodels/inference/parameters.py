"""The parameters users read — random-effect SDs and correlations, σ, β — in one Series.

Confidence intervals (Wald, profile, bootstrap) and the bootstrap's default statistic
are all indexed by these names, in this order: lme4's ``confint(m, oldNames = FALSE)``.
"""

from __future__ import annotations

import pandas as pd


def parameters(fit) -> pd.Series:
    """Every parameter, one row each, as lme4's confint(oldNames = FALSE) lists them: per term the
    lower triangle of its covariance column by column ('sd_(Intercept)|Subject',
    'cor_Days.(Intercept)|Subject', 'sd_Days|Subject'), then 'sigma', then β."""
    values, names = [], []
    groups = group_names(fit)
    table = pd.DataFrame(fit.varcorr)
    for label, block in table.groupby("grp", sort=False):
        if label == "Residual":  # σ, or a residual structure's parameter (Phi, varIdent.B, …) by its name
            for r in block.itertuples(index=False):
                names.append("sigma" if pd.isna(r.var1) or r.var1 == "nan" else str(r.var1))
                values.append(r.sdcor)
            continue
        for r in lower_triangle_by_columns(block).itertuples(index=False):
            correlation = not pd.isna(r.var2) and r.var2 != "nan"
            names.append(variance_name("cor" if correlation else "sd", groups[label], r.var1, r.var2 if correlation else None))
            values.append(r.sdcor)
    return pd.concat([pd.Series(values, index=names, dtype=float), fit.fixef.rename(None)])


def lower_triangle_by_columns(block: pd.DataFrame) -> pd.DataFrame:
    """One term's VarCorr rows in θ's order: each column's SD, then its correlations with the later
    columns (rows with var1 = that column, var2 the later one) — lme4's confint and broom.mixed's order."""
    correlated = block["var2"].notna() & (block["var2"] != "nan")
    order = []
    for i, sd in block[~correlated].iterrows():
        order.append(i)
        order.extend(block.index[correlated & (block["var1"] == sd["var1"])])
    return block.loc[order]


def variance_name(kind: str, group: str, column: str, later: str | None = None) -> str:
    """lme4's name of a variance parameter: 'sd_Days|Subject', or of the association ('cor', 'cov')
    of a later column with an earlier one, row before column: 'cor_Days.(Intercept)|Subject'."""
    return f"{kind}_{column}|{group}" if later is None else f"{kind}_{later}.{column}|{group}"


def group_names(fit) -> dict[str, str]:
    """Each term's VarCorr label ('Subject', 'Subject.1') → the group its parameter names carry:
    the factor, as lme4 ('sd_Days|Subject' for ``(Days || Subject)``); where two terms of one
    factor share a column (lme4 would repeat a name) the VarCorr label keeps the names unique."""
    terms = list(zip(fit.term_groups, fit.reterms))
    out = {}
    for label, t in terms:
        clash = any(u is not t and u.group == t.group and set(u.columns) & set(t.columns) for _, u in terms)
        out[label] = label if clash else t.group
    return out


def percent_label(p: float) -> str:
    """R's column label of a probability in confidence-interval tables: 0.025 -> '2.5 %'."""
    return f"{100 * p:.3g} %"
