"""broom.mixed-style tidy tables of a fitted mixed model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MixedModelsError, match_arg
from ..inference.parameters import lower_triangle_by_columns

#: broom.mixed's column order (its reorder_cols), of the columns a table has
COLUMNS = ("effect", "group", "level", "term", "estimate", "std.error", "statistic", "df", "p.value",
           "conf.low", "conf.high")


def tidy(fit, effects: str | Sequence[str] = ("ran_pars", "fixed"), conf_int: bool = False,
         conf_level: float = 0.95) -> pd.DataFrame:
    """One row per estimate, with broom.mixed's column names and term labels.

    ``effects`` as broom.mixed: the fixed effects and the random-effect parameters by default,
    in the order fixed, ran_pars, ran_vals, ran_coefs whatever the order asked; each may be
    abbreviated.  ``conf_int`` adds Wald limits (conf.low, conf.high) at ``conf_level``: t
    quantiles with the Satterthwaite df for lmer fixed effects, normal ones otherwise, none
    (NaN) for ran_pars, as broom.mixed's default ``conf.method = "Wald"``.
    """
    if not 0 < conf_level < 1:
        raise MixedModelsError(f"conf_level must be between 0 and 1, not {conf_level!r}")
    makers = {"fixed": _fixed, "ran_pars": _ran_pars, "ran_vals": _ran_vals, "ran_coefs": _ran_coefs}
    asked = [effects] if isinstance(effects, str) else list(effects)
    chosen = {match_arg(e, tuple(makers), "effects") for e in asked}
    tables = [makers[name](fit) for name in makers if name in chosen]
    if conf_int:
        tables = [_with_limits(t, conf_level) for t in tables]
    out = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    return out[[c for c in COLUMNS if c in out.columns]]


def _with_limits(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """Wald limits estimate ± q·SE: q of t with the row's df where there is one, else normal;
    NaN without a standard error (ran_pars, ran_coefs)."""
    se = table["std.error"].to_numpy(dtype=float) if "std.error" in table.columns else np.full(len(table), np.nan)
    df = table["df"].to_numpy(dtype=float) if "df" in table.columns else np.full(len(table), np.inf)
    q = stats.t.ppf((1 + level) / 2, df)
    estimate = table["estimate"].to_numpy(dtype=float)
    return table.assign(**{"conf.low": estimate - q * se, "conf.high": estimate + q * se})


def _fixed(fit) -> pd.DataFrame:
    """broom.mixed's fixed rows: for lmer fits with lmerTest's Satterthwaite df and p.value,
    for glmer fits with the Wald z test's p.value."""
    table = fit.summary().coefficients
    statistic = next(c for c in table.columns if c.endswith(" value"))
    out = pd.DataFrame({
        "effect": "fixed",
        "term": list(table.index),
        "estimate": table["Estimate"].to_numpy(),
        "std.error": table["Std. Error"].to_numpy(),
        "statistic": table[statistic].to_numpy(),
    })
    if "df" in table.columns:
        out["df"] = table["df"].to_numpy()
    pvalue = [c for c in table.columns if c.startswith("Pr(")]
    if pvalue:
        out["p.value"] = table[pvalue[0]].to_numpy()
    return out


def _ran_pars(fit) -> pd.DataFrame:
    """broom.mixed's rows: per group, each column's SD followed by its correlations with the later
    columns (sd__a, cor__a.b, cor__a.c, sd__b, cor__b.c, sd__c: lme4's confint order, broom.mixed's
    names, earlier column first), the residual last."""
    rows: list[tuple[str, str, float]] = []
    table = pd.DataFrame(fit.varcorr)
    for group, block in table.groupby("grp", sort=False):
        if group == "Residual":
            for r in block.itertuples(index=False):
                structure_parameter = not pd.isna(r.var1) and r.var1 != "nan"
                rows.append(("Residual", r.var1 if structure_parameter else "sd__Observation", r.sdcor))
            continue
        for r in lower_triangle_by_columns(block).itertuples(index=False):
            correlation = not pd.isna(r.var2) and r.var2 != "nan"
            rows.append((group, f"cor__{r.var1}.{r.var2}" if correlation else f"sd__{r.var1}", r.sdcor))
    frame = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    frame.insert(0, "effect", "ran_pars")
    return frame


def _ran_vals(fit) -> pd.DataFrame:
    frames = []
    for group, modes in fit.ranef.items():
        sds = fit.ranef_sd[group]
        for term in modes.columns:
            frames.append(pd.DataFrame({
                "effect": "ran_vals", "group": group, "level": modes.index.astype(str),
                "term": term, "estimate": modes[term].to_numpy(), "std.error": sds[term].to_numpy(),
            }))
    return pd.concat(frames, ignore_index=True)


def _ran_coefs(fit) -> pd.DataFrame:
    frames = []
    for group, coefs in fit.coef.items():
        for term in coefs.columns:
            frames.append(pd.DataFrame({
                "effect": "ran_coefs", "group": group, "level": coefs.index.astype(str),
                "term": term, "estimate": coefs[term].to_numpy(),
            }))
    return pd.concat(frames, ignore_index=True)
