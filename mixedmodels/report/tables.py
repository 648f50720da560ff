"""Tables that are pandas DataFrames printed as R prints them: anova objects (``print.anova``
through ``printCoefmat``) and lme4's ``VarCorr``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import display
from .rformat import SIGNIF_LEGEND, format_pval_vector, format_vector, render_table, signif_stars, zapsmall

_DIGITS = 5  # print.anova: max(getOption("digits") - 2, 3)


VARCORR_DIGITS = 5  # print.VarCorr.merMod: max(3, getOption("digits") - 2)


class VarCorr(pd.DataFrame):
    """lme4's variance components: the rows of ``as.data.frame(VarCorr(m))`` (grp, var1, var2,
    vcov, sdcor), printed as ``print(VarCorr(m))``: standard deviations and correlations.

    A slice or a computed frame is a plain DataFrame (it no longer holds whole terms).
    ``structures`` tags the groups of structured terms (lme4 2.0's 'cs', 'homcs', 'ar1', 'hetar1',
    'diag', 'homdiag'): their rows are the structure's parameters, its SDs and the common ρ.
    """

    _metadata = ["structures"]

    def __init__(self, data: object = None, structures: Mapping[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(data, **kwargs)
        self.structures = dict(structures or getattr(data, "structures", {}))

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    @property
    def table(self) -> pd.DataFrame:
        """The rows as a plain DataFrame."""
        return pd.DataFrame(self)

    def __str__(self) -> str:
        return format_varcorr(self, ("Std.Dev.",), VARCORR_DIGITS, self.structures) + "\n"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return display.pre(str(self).rstrip("\n"))


def format_varcorr(table: pd.DataFrame, comp: tuple[str, ...], digits: int,
                   structures: Mapping[str, str] | None = None) -> str:
    """lme4's formatVC of as.data.frame(VarCorr) rows: Groups, Name, the columns ``comp``
    ("Variance", "Std.Dev.") formatted together to ``digits``, and each term's correlations
    (lower triangle, max(2, digits − 2) decimals, one width per term), printed left-aligned.
    A structured term (``structures``: group → tag) shows its common ρ once, as '0.880 (ar1)'
    or '0.081 (cs)', and a diag term no correlations (reformulas' format_corr)."""
    structures = structures or {}
    terms: dict[str, list[str]] = {}
    sd: list[float] = []
    correlations: dict[tuple[str, str, str], float] = {}
    for grp, var1, var2, sdcor in zip(table["grp"], table["var1"], table["var2"], table["sdcor"]):
        if grp == "Residual" and not pd.isna(var1):
            continue  # a residual structure's parameter (Phi, Rho, …): the summary prints it as nlme
        if pd.isna(var2):
            terms.setdefault(str(grp), []).append("" if pd.isna(var1) else str(var1))
            sd.append(float(sdcor))
        else:
            correlations[(str(grp), str(var1), str(var2))] = float(sdcor)
    values = np.array(sd)
    shown = {"Variance": _common_width(format_vector(values**2, digits)),
             "Std.Dev.": _common_width(format_vector(values, digits))}
    dig = max(2, digits - 2)
    cells_of: dict[str, list[list[str]]] = {}
    for grp, names in terms.items():
        tag = structures.get(grp)
        if tag is None:
            p = len(names)
            C = np.eye(p)
            for a in range(p):
                for b in range(a):
                    C[a, b] = correlations.get((grp, names[b], names[a]), np.nan)
            cells = _common_width(["NaN" if np.isnan(v) else f"{round(v, dig):.{dig}f}" for v in C.ravel()])
            cells_of[grp] = [[cells[a * p + b] for b in range(a)] for a in range(p)]
        else:
            rho = [v for (g, _, _), v in correlations.items() if g == grp]
            kind = "cs" if tag.endswith("cs") else "ar1"
            first = [f"{'NaN' if np.isnan(rho[0]) else f'{round(rho[0], dig):.{dig}f}'} ({kind})"] if rho else []
            cells_of[grp] = [first] + [[] for _ in names[1:]]
    longest = 1 + max(len(row) for rows in cells_of.values() for row in rows)
    rows: list[list[str]] = []
    for grp, names in terms.items():
        for a, name in enumerate(names):
            k = len(rows)
            corr = cells_of[grp][a]
            rows.append([grp if a == 0 else "", name] + [shown[c][k] for c in comp]
                        + (corr + [""] * (longest - 1 - len(corr)))[: longest - 1])
    header = ["Groups", "Name", *comp] + (["Corr"] + [""] * (longest - 2) if longest > 1 else [])
    return render_table(header, rows, ["l"] * len(header), indent=" ")


def _common_width(cells: list[str]) -> list[str]:
    """Right-justified to the widest, as R's format pads a vector."""
    width = max(map(len, cells), default=0)
    return [c.rjust(width) for c in cells]


class AnovaTable(pd.DataFrame):
    """A table of tests: a pandas DataFrame (``t["Pr(>Chisq)"]``, ``t.loc["m1", "Chisq"]``,
    as R's ``anova(m0, m1)$Chisq``) that prints as R's ``print.anova`` with its heading and
    shows the heading above pandas' HTML table in Jupyter.

    ``heading`` holds the lines R prints above the table; ``models`` the (refitted) models
    of the rows by row name (empty for F tables).  Frames derived from it (slices, copies)
    keep both.
    """

    _metadata = ["heading", "models"]

    def __init__(self, data: object = None, heading: list[str] | None = None,
                 models: Mapping[str, object] | None = None, **kwargs: object) -> None:
        super().__init__(data, **kwargs)
        self.heading = list(heading or getattr(data, "heading", []))
        self.models = dict(models or getattr(data, "models", {}))

    @property
    def _constructor(self) -> type[AnovaTable]:
        return AnovaTable

    @property
    def table(self) -> pd.DataFrame:
        """The numbers as a plain DataFrame, without the heading."""
        return pd.DataFrame(self)

    def __str__(self) -> str:
        header, rows, align, stars = _cells(self.table)
        legend = "\n---\n" + SIGNIF_LEGEND if stars else ""
        return "\n".join([*self.heading, render_table(header, rows, align) + legend]) + "\n"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """The heading, the table with R's formatted cells and stars, and the legend, inline-styled."""
        header, rows, align, stars = _cells(self.table)
        return (display.pre("\n".join(self.heading)) + display.table(header, rows, align)
                + (display.pre("---\n" + SIGNIF_LEGEND) if stars else ""))


# ----- printing as R's print.anova -------------------------------------------------------------
def _cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]], list[str], bool]:
    """Header, rows of cells, alignment and whether there are stars, as ``printCoefmat`` prints an
    anova object (digits 5, p-values with 4)."""
    pcol = table.columns[-1] if str(table.columns[-1]).startswith("Pr(") else None
    columns = []
    for name in table.columns:
        x = table[name].to_numpy(dtype=float)
        if name == pcol:
            columns.append(format_pval_vector(x, _DIGITS - 1))
        elif name in ("Chisq", "F", "Cp") or str(name)[1:7] == " value":
            columns.append(format_vector(np.round(x, _DIGITS - 1), _DIGITS))
        elif str(name).endswith("Df"):
            columns.append(format_vector(x, _DIGITS))
        else:
            columns.append(format_vector(zapsmall(x, _DIGITS), _DIGITS))
    header = [""] + [str(c) for c in table.columns]
    align = ["l"] + ["r"] * len(table.columns)
    p = table[pcol].to_numpy(dtype=float) if pcol is not None else np.array([])
    stars = bool(np.any(p[np.isfinite(p)] < 0.1))
    if stars:
        marks = [signif_stars(v) for v in p]
        width = max(map(len, marks))
        columns.append([m.ljust(width) for m in marks])
        header.append("")
        align.append("l")
    rows = [[str(name)] + [col[i] for col in columns] for i, name in enumerate(table.index)]
    return header, rows, align, stars
