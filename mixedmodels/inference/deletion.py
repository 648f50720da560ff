"""Group-deletion influence: lme4's ``influence(m, groups = "g")`` (lme4 ≥ 1.1-27).

Each group (or, without ``groups``, each observation) is deleted in turn and the
model refitted to the rest, started from the full fit's estimates (θ for an
LMM, (θ, β) for a GLMM, as lme4).  The refits reuse the fit's design: its rows
are subset, nothing is parsed again.  Reported per deletion: the fixed effects,
the variance-covariance components (σ² and each term's lower triangle of its
covariance, lme4's ``var.cov.comps``) and the covariance of β̂.  On top of them,
lme4's ``dfbeta``, ``dfbetas`` and ``cooks.distance`` for ``influence.merMod``:

* dfbetaᵢ = β̂₍₋ᵢ₎ − β̂, dfbetasᵢ = dfbetaᵢ / √diag(V̂₍₋ᵢ₎) (the deleted fit's covariance);
* Dᵢ = dfbetaᵢᵀ V̂⁻¹ dfbetaᵢ (n − p)/(n p), V̂ the full fit's covariance of β̂, n the
  number of deletions and p the number of coefficients — lme4's formula as it stands.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import DataError, MixedModelsError, match_arg
from ..design.covstruct import lower_indices
from ..report.rformat import format_column, render_table

if TYPE_CHECKING:
    from ..results.glmer import GlmerResult
    from ..results.lmer import LmerResult


@dataclass(frozen=True)
class Influence:
    """lme4's ``influence.merMod``: the estimates of the full fit and of each deletion's refit.

    R's list elements map to: ``fixed.effects`` → ``fixed_effects``, ``fixed.effects[-g]`` →
    ``fixed_effects_deleted`` (one row per deleted group), ``var.cov.comps`` →
    ``var_cov_comps``, ``var.cov.comps[-g]`` → ``var_cov_comps_deleted``, ``vcov`` → ``vcov``,
    ``vcov[-g]`` → ``vcov_deleted``, ``converged`` and ``function.evals`` → ``function_evals``.
    """

    groups: str  # the deleted unit: a grouping column's name, or "case"
    fixed_effects: pd.Series
    fixed_effects_deleted: pd.DataFrame
    var_cov_comps: pd.Series
    var_cov_comps_deleted: pd.DataFrame
    vcov: pd.DataFrame
    vcov_deleted: dict[str, pd.DataFrame]
    converged: pd.Series
    function_evals: pd.Series

    @property
    def deleted(self) -> pd.Index:
        """The deleted groups, in the order they first occur in the data."""
        return self.fixed_effects_deleted.index

    def dfbeta(self, which: str = "fixed") -> pd.DataFrame:
        """Change of each estimate when the group is deleted: β̂₍₋ᵢ₎ − β̂ ('fixed'), or of the
        variance-covariance components ('var.cov'), as lme4's ``dfbeta(infl, which)``."""
        which = match_arg(which, ("fixed", "var.cov"), "which")
        if which == "fixed":
            return self.fixed_effects_deleted - self.fixed_effects
        return self.var_cov_comps_deleted - self.var_cov_comps

    def dfbetas(self) -> pd.DataFrame:
        """dfbeta of the fixed effects in units of the deleted fit's standard errors (lme4's dfbetas)."""
        se = pd.DataFrame({g: np.sqrt(np.diag(V)) for g, V in self.vcov_deleted.items()},
                          index=self.fixed_effects.index).T
        se.index = self.deleted
        return self.dfbeta() / se

    def cooks_distance(self) -> pd.Series:
        """lme4's cooks.distance for influence.merMod: dᵢᵀ V̂⁻¹ dᵢ (n − p)/(n p), dᵢ the dfbeta row."""
        d = self.dfbeta().to_numpy()
        n, p = d.shape
        M = (n - p) / (n * p) * np.linalg.inv(self.vcov.to_numpy())
        return pd.Series(np.einsum("ij,jk,ik->i", d, M, d), index=self.deleted, name="cooks distance")

    def __str__(self) -> str:
        refits = f"{len(self.deleted)} refits" + ("" if self.converged.all() else
                                                  f", {int((~self.converged).sum())} not converged")
        lines = [f"Influence of deleting each {self.groups} ({refits})", "", "Fixed effects with the group deleted:",
                 _matrix_text(self.fixed_effects_deleted), "", "Variance-covariance components with it deleted:",
                 _matrix_text(self.var_cov_comps_deleted)]
        return "\n".join(lines) + "\n"

    __repr__ = __str__


def influence(fit: LmerResult | GlmerResult, groups: str | Sequence[str] | None = None,
              data: pd.DataFrame | None = None) -> Influence:
    """Refit the model with each group deleted in turn, as lme4's ``influence(m, groups = "g")``.

    ``groups`` names a column (or several, whose values are joined by '.') whose distinct
    values are deleted one at a time; without it each observation is deleted (lme4's
    case deletion; the rows are named by the data's index).  The column is taken from
    the fit's data, or from ``data`` (the data frame the model was fitted to) when the
    model does not use it.
    """
    if not hasattr(fit, "refit_rows"):
        raise MixedModelsError(f"influence refits an lmer or glmer fit with its rows in memory, not a "
                               f"{type(fit).__name__}")
    if getattr(fit, "extra_parameters", 0):
        raise MixedModelsError("influence does not refit glmer_nb's dispersion θ; delete the groups and refit "
                               "with mixedmodels.glmer_nb yourself")
    labels, name = _deletion_labels(fit, groups, data)
    deleted = pd.Index(pd.unique(labels), name=name)
    rows: dict[str, tuple[np.ndarray, np.ndarray, pd.DataFrame, bool, int]] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for g in deleted:
            start = len(caught)
            refit = fit.refit_rows(labels != g)
            clean = refit.optimum.converged and len(caught) == start
            rows[g] = (refit.fixef.to_numpy(), _var_cov_comps(refit).to_numpy(), refit.vcov, clean,
                       int(refit.optimum.nfev))
    full = _var_cov_comps(fit)
    return Influence(
        groups=name,
        fixed_effects=fit.fixef.rename(None),
        fixed_effects_deleted=pd.DataFrame([r[0] for r in rows.values()], index=deleted, columns=fit.fixef.index),
        var_cov_comps=full,
        var_cov_comps_deleted=pd.DataFrame([r[1] for r in rows.values()], index=deleted, columns=full.index),
        vcov=fit.vcov,
        vcov_deleted={g: r[2] for g, r in rows.items()},
        converged=pd.Series([r[3] for r in rows.values()], index=deleted, name="converged"),
        function_evals=pd.Series([r[4] for r in rows.values()], index=deleted, name="function.evals"),
    )


def _deletion_labels(fit: LmerResult | GlmerResult, groups: str | Sequence[str] | None,
                     data: pd.DataFrame | None) -> tuple[np.ndarray, str]:
    """The deletion unit of each row used, and its name ('case' for single observations)."""
    rows = fit.design.rows
    if groups is None:
        return np.asarray(rows.astype(str)), "case"
    columns = [groups] if isinstance(groups, str) else [str(g) for g in groups]
    if not columns:
        raise MixedModelsError("groups names no column; give a column name, or None to delete each observation")
    source = fit.design.frame
    if source is None or not set(columns) <= set(source.columns):
        if data is None:
            raise DataError(f"groups={columns if len(columns) > 1 else columns[0]!r} is not a column the model "
                            "uses; pass the data frame the model was fitted to as data=")
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise DataError(f"groups names {missing[0]!r}, which is not a column of data")
        if not rows.isin(data.index).all():
            raise DataError("data is not the data frame the model was fitted to: its index lacks rows the fit used")
        source = data.loc[rows]
    values = source[columns].astype(str)
    labels = values[columns[0]] if len(columns) == 1 else values.agg(".".join, axis=1)
    return labels.to_numpy(), ".".join(columns)


def _var_cov_comps(fit: LmerResult | GlmerResult) -> pd.Series:
    """σ² and each term's covariance, lower triangle by columns, named as lme4's influence.merMod."""
    values, names = [fit.sigma**2], ["sigma^2"]
    single = len(fit.term_groups) == 1
    for group, t, S in zip(fit.term_groups, fit.reterms, fit.covariances):
        for a, b in zip(*lower_indices(t.p)):
            name = f"v[{t.columns[a]}]" if a == b else f"C[{t.columns[a]},{t.columns[b]}]"
            values.append(S[a, b])
            names.append(name if single else f"{group}:{name}")
    return pd.Series(values, index=names, name="var.cov.comps")


def _matrix_text(frame: pd.DataFrame, digits: int = 7) -> str:
    """A numeric table as R prints a matrix: each column with its common number of decimals."""
    columns = [format_column(frame[c].to_numpy(), digits) for c in frame.columns]
    rows = [[str(label), *cells] for label, *cells in zip(frame.index, *columns)]
    return render_table(["", *map(str, frame.columns)], rows, ["l"] + ["r"] * len(columns))
