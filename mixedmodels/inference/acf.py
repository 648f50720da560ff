"""Autocorrelation of within-group residuals: nlme's ``ACF(m, maxLag, resType)``.

For lag k, the products of residuals k positions apart within a group, summed over the groups
and divided by the number of such pairs, relative to lag 0's mean square:

    ACF(k) = [Σ_g Σᵢ r_gi r_g,i+k / n_k] / [Σ r² / n₀],   n_k = Σ_g max(m_g − k, 0)

(nlme's ACF.lme; the residuals are not centred).  Positions follow the residual structure's
time where the fit has one, else the data's order within each group, as nlme.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, MixedModelsError, match_arg


def acf(fit, max_lag: int | None = None, type: str = "pearson", group: str | None = None) -> pd.DataFrame:
    """Within-group autocorrelation of a fit's residuals by lag (nlme's ``ACF``): a DataFrame with
    ``lag``, ``ACF`` and ``n_used`` (the number of residual pairs at each lag).

    ``type``: 'pearson' (default, as nlme), 'response' or 'normalized' (fits with a residual
    structure: residuals whitened by the estimated correlation, which should show none left).
    ``group`` names the grouping factor when the fit has several (default: the residual
    structure's groups, or the only grouping factor).  ``max_lag`` defaults to nlme's
    min(longest group − 1, ⌊10 log₁₀(longest group)⌋).
    """
    type = match_arg(type, ("pearson", "response", "normalized"), "type")
    r, codes, order = _residuals_in_groups(fit, type, group)
    r, codes = r[order], codes[order]
    first = np.ones(len(codes), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    position = np.arange(len(codes)) - np.maximum.accumulate(np.where(first, np.arange(len(codes)), 0))
    sizes = np.bincount(codes)
    longest = int(sizes.max())
    if max_lag is None:
        max_lag = min(longest - 1, int(10 * np.log10(longest)))
    if max_lag < 0 or max_lag >= longest:
        raise DataError(f"max_lag must be between 0 and {longest - 1} (the longest group has {longest} residuals)")
    sums, pairs = np.zeros(max_lag + 1), np.zeros(max_lag + 1, dtype=int)
    for k in range(max_lag + 1):
        same = position[k:] >= k  # the row k positions earlier is in the same group
        sums[k] = float(np.sum(r[k:][same] * r[: len(r) - k][same]))
        pairs[k] = int(same.sum())
    mean_products = sums / np.maximum(pairs, 1)
    return pd.DataFrame({"lag": np.arange(max_lag + 1), "ACF": mean_products / mean_products[0], "n_used": pairs})


def _residuals_in_groups(fit, type: str, group: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The residuals of the rows used, their group codes and the order that sorts them by group
    (then time, where the residual structure has one)."""
    structure = getattr(fit, "residual_structure", None)
    rows = fit.design.rows
    if type == "normalized" and structure is None:
        raise MixedModelsError("normalized residuals need a fit with a residual structure (residual= or variance=); "
                               "use type='pearson'")
    if hasattr(fit, "residuals_of"):
        r = fit.residuals_of(type).loc[rows].to_numpy()
    else:
        r = (fit.scaled_residuals("pearson") if type == "pearson" else fit.residuals).loc[rows].to_numpy()
    if structure is not None and structure.correlation is not None and group is None:
        groups = structure.groups
        codes = np.empty(len(r), dtype=np.int64)
        codes[groups.order] = groups.codes
        return r, codes, groups.order
    terms = {t.group: t for t in getattr(fit.design, "reterms", ())}
    if group is None:
        if len(terms) != 1:
            raise MixedModelsError("name the grouping factor: acf(m, group='...') (the fit has "
                                   f"{len(terms)} grouping factors)")
        group = next(iter(terms))
    if group not in terms:
        raise DataError(f"group={group!r} is not a grouping factor of the fit ({', '.join(map(repr, terms))})")
    codes = terms[group].codes
    return r, codes, np.lexsort((np.arange(len(codes)), codes))
