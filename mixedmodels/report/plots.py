"""Diagnostic and teaching plots of fitted mixed models (matplotlib).

Every function takes a fitted ``lmer``/``glmer`` result and returns the
:class:`matplotlib.figure.Figure` it drew on.  Pass ``ax=`` (an Axes, or a
sequence of Axes for multi-panel plots) to draw into an existing figure, or
``fig=`` to add the panels to an existing, empty figure; otherwise a new figure
is created with :mod:`matplotlib.pyplot` (so ``plt.show()`` and notebooks'
inline display work).  Nothing here calls ``plt.show()``.  In a notebook, end
the line with ``;`` to avoid the returned figure being displayed twice.

``caterpillar``
    Conditional modes with ±z·(conditional SD) intervals (lme4's
    ``dotplot(ranef(fit, condVar = TRUE))``).
``shrinkage``
    Per-cluster least-squares estimates (no pooling) against the model's
    per-cluster coefficients (partial pooling), with the population estimate.
``residual_diagnostics``
    Residuals against fitted values and normal Q-Q plots of the scaled
    residuals and of each random-effect term's conditional modes.
``spaghetti``
    Per-group fitted curves against a predictor, the observations faint and the
    population curve bold.
``acf_plot``
    Within-group autocorrelation of the residuals by lag with nlme's ±z/√n
    bounds (``plot(ACF(m), alpha = 0.05)``).
``profile_plot``
    ζ, the signed square root of the profiled deviance's excess, against each
    parameter (lme4's ``xyplot(profile(fit))``).

The main artists carry a ``gid`` (``artist.get_gid()``) naming what they show,
e.g. ``"modes"``, ``"no_pool"``, ``"partial_pool"``, ``"population"``, ``"zeta"``.
"""

from __future__ import annotations

import math
import re
from typing import Collection, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..inference.acf import acf
from ..inference.parameters import parameters
from ..inference.profile import DevianceProfile, parameter_labels

try:
    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.collections import LineCollection
except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in the tests
    raise ImportError(
        "mixedmodels.plots needs matplotlib, which is not installed; "
        'install it with: pip install "mixedmodels[plot]"'
    ) from exc

__all__ = ["caterpillar", "shrinkage", "residual_diagnostics", "spaghetti", "population_grid", "profile_plot",
           "profile_zeta"]

_MAX_LABELLED_LEVELS = 60  # more levels than this: no per-level tick labels


# ----- shared helpers ------------------------------------------------------------------
def _legend_below(ax, ncol: int = 2):
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=ncol, frameon=False)


def _new_figure(figsize: tuple[float, float]):
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def _panels(n: int, ax, fig, ncols: int, panel_size: tuple[float, float], **subplot_kw) -> tuple[object, list]:
    """The figure and ``n`` axes to draw on: the caller's, or new ones in a grid."""
    if ax is not None:
        axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != n:
            raise ValueError(f"this plot has {n} panel(s) but ax= gave {len(axes)} Axes")
        return axes[0].figure, axes
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    if fig is None:
        fig = _new_figure((panel_size[0] * ncols, panel_size[1] * nrows))
    grid = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    axes = list(grid.ravel())
    for extra in axes[n:]:
        extra.remove()
    return fig, axes[:n]


def _group(fit, group: str | None) -> str:
    """The grouping factor to plot: the one asked for, or lme4's first (most levels)."""
    names = list(fit.ranef)
    if group is None:
        return names[0]
    if group not in fit.ranef:
        raise ValueError(f"no grouping factor {group!r} in this model; it has {', '.join(map(repr, names))}")
    return group


def _terms(fit, group: str, terms) -> list[str]:
    available = list(fit.ranef[group].columns)
    if terms is None:
        return available
    terms = [terms] if isinstance(terms, str) else list(terms)
    for t in terms:
        if t not in available:
            raise ValueError(f"{group!r} has no random-effect term {t!r}; it has {', '.join(map(repr, available))}")
    return terms


def _group_reterms(fit, group: str) -> list:
    return [t for t in fit.reterms if t.group == group]


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    return float(stats.norm.ppf(1 - (1 - level) / 2))


def _is_glmm(fit) -> bool:
    return getattr(fit, "family", None) is not None


# ----- caterpillar -----------------------------------------------------------------------
def caterpillar(fit, group: str | None = None, term: str | Sequence[str] | None = None, level: float = 0.95,
                ax=None, fig=None):
    """Conditional modes of one grouping factor's random effects with their intervals.

    One panel per term (column) of ``group`` (default: the factor with the most
    levels), each level's mode ± z·(conditional SD), z the normal quantile of
    ``level``.  As lme4's dotplot, levels are sorted by the first term's modes
    and share the vertical axis across panels.  Returns the Figure.
    """
    group = _group(fit, group)
    terms = _terms(fit, group, term)
    z = _z(level)
    modes, sds = fit.ranef[group][terms], fit.ranef_sd[group][terms]
    order = np.argsort(modes[terms[0]].to_numpy(), kind="stable")
    n = len(order)
    y = np.arange(n)
    labels = [str(v) for v in modes.index[order]]
    height = min(max(3.0, 0.2 * n + 1.2), 12.0)
    width = max(3.2, 5.0 / len(terms))
    fig, axes = _panels(len(terms), ax, fig, ncols=len(terms), panel_size=(width, height), sharey=True)
    for k, (name, a) in enumerate(zip(terms, axes)):
        m = modes[name].to_numpy()[order]
        s = sds[name].to_numpy()[order]
        a.axvline(0.0, color="0.6", linestyle=":", linewidth=1, gid="zero")
        a.hlines(y, m - z * s, m + z * s, color="C0", linewidth=1.2, gid="intervals")
        a.plot(m, y, linestyle="none", marker="o", markersize=4, color="C0", gid="modes")
        a.set_title(name)
        a.set_xlabel("conditional mode")
        a.set_ylim(-0.7, n - 0.3)
        if k == 0:
            if n <= _MAX_LABELLED_LEVELS:
                a.set_yticks(y, labels, fontsize=8 if n > 25 else None)
            else:
                a.set_yticks([])
            a.set_ylabel(group)
    if ax is None:
        fig.suptitle(f"{group}: conditional modes ± {100 * level:g}% intervals")
    return fig


# ----- shrinkage -------------------------------------------------------------------------
def _no_pooling(fit, group: str, columns: list[str]) -> pd.DataFrame:
    """Per-cluster least squares of the response on the group's random-effect columns.

    The fixed effects that the random terms lack are held at their estimates (the
    response minus their contribution and any offset is regressed), so the
    estimates are on the scale of ``fit.coef[group]``.  Clusters whose columns are
    rank deficient get NaN.
    """
    terms = _group_reterms(fit, group)
    Z = np.hstack([t.matrix for t in terms])
    names = [c for t in terms for c in t.columns]
    keep = [names.index(c) for c in columns]
    Z = Z[:, keep]
    d = fit.design
    fixed_names = list(fit.fixef.index)
    other = [j for j, nm in enumerate(fixed_names) if nm not in columns]
    y = d.y - d.X[:, other] @ fit.fixef.to_numpy()[other]
    if d.offset is not None:
        y = y - d.offset
    w = np.ones_like(y) if d.weights is None else np.sqrt(d.weights)
    codes, levels = terms[0].codes, terms[0].levels
    out = np.full((len(levels), len(columns)), np.nan)
    for i in range(len(levels)):
        rows = codes == i
        A, b = Z[rows] * w[rows, None], y[rows] * w[rows]
        if rows.sum() < len(columns):
            continue
        coef, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
        if rank == len(columns):
            out[i] = coef
    return pd.DataFrame(out, index=levels, columns=columns)


def _group_covariance(fit, group: str, columns: list[str]) -> np.ndarray:
    """Covariance of the group's random effects over ``columns`` (block diagonal across terms)."""
    blocks, names = [], []
    for t, S in zip(fit.reterms, fit.covariances):
        if t.group == group:
            blocks.append(S)
            names += list(t.columns)
    full = np.zeros((len(names), len(names)))
    start = 0
    for S in blocks:
        full[start:start + len(S), start:start + len(S)] = S
        start += len(S)
    idx = [names.index(c) for c in columns]
    return full[np.ix_(idx, idx)]


def shrinkage(fit, group: str | None = None, terms: str | Sequence[str] | None = None,
              ellipses: Sequence[float] = (0.5, 0.95), ax=None):
    """No-pooling against partial-pooling estimates: how the model shrinks clusters.

    No pooling: a least-squares fit within each level of ``group`` of the response
    on the group's random-effect columns (other fixed effects held at their
    estimates).  Partial pooling: ``fit.coef[group]``.  With two terms (default:
    the first two of the group) arrows run from each no-pooling to its
    partial-pooling estimate, the population estimate (fixed effects) is marked
    and the fitted random-effects distribution drawn as contours enclosing
    ``ellipses`` of its mass.  With one term (e.g. a random-intercept model) the
    two estimates are two columns of points joined by lines.  Linear mixed
    models only.  Returns the Figure.
    """
    if _is_glmm(fit):
        raise ValueError("shrinkage plots compare per-cluster least-squares fits and are available for lmer fits")
    group = _group(fit, group)
    columns = _terms(fit, group, terms)
    if terms is None:
        columns = columns[:2]
    if len(columns) > 2:
        raise ValueError(f"shrinkage plots show one or two terms, not {len(columns)}")
    nopool = _no_pooling(fit, group, columns)
    partial = fit.coef[group][columns]
    population = np.array([fit.fixef.get(c, 0.0) for c in columns])
    if ax is None:
        fig = _new_figure((5.5, 4.8) if len(columns) == 2 else (4.2, 4.8))
        ax = fig.subplots()
    else:
        fig = ax.figure
    if len(columns) == 1:
        _shrinkage_1d(ax, group, columns[0], nopool[columns[0]], partial[columns[0]], population[0])
    else:
        _shrinkage_2d(ax, fit, group, columns, nopool, partial, population, ellipses)
    return fig


def _shrinkage_1d(ax, group, name, nopool: pd.Series, partial: pd.Series, population: float):
    a, b = nopool.to_numpy(), partial.to_numpy()
    ok = np.isfinite(a)
    segments = [((0.0, ai), (1.0, bi)) for ai, bi in zip(a[ok], b[ok])]
    ax.add_collection(LineCollection(segments, colors="0.55", linewidths=1, gid="shrinkage_lines"))
    ax.axhline(population, color="k", linestyle="--", linewidth=1.5, gid="population", label="population (fixed effect)")
    ax.plot(np.zeros(ok.sum()), a[ok], linestyle="none", marker="o", markerfacecolor="white", color="C0",
            gid="no_pool", label=f"no pooling (within-{group} fit)")
    ax.plot(np.ones(len(b)), b, linestyle="none", marker="o", color="C1", gid="partial_pool",
            label="partial pooling (model)")
    if len(b) <= 30:
        for level, value in zip(partial.index, b):
            ax.annotate(str(level), (1.0, value), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xticks([0, 1], ["No pooling", "Partial pooling"])
    ax.set_xlim(-0.4, 1.5)
    ax.set_ylabel(name)
    ax.set_title(f"Shrinkage of {group} estimates")
    _legend_below(ax)


def _shrinkage_2d(ax, fit, group, columns, nopool, partial, population, ellipses):
    a, b = nopool.to_numpy(), partial.to_numpy()
    ok = np.all(np.isfinite(a), axis=1)
    S = _group_covariance(fit, group, columns)
    if ellipses and np.all(np.isfinite(S)):
        w, V = np.linalg.eigh(S)
        t = np.linspace(0, 2 * np.pi, 200)
        circle = np.vstack([np.cos(t), np.sin(t)])
        for mass in ellipses:
            r = np.sqrt(stats.chi2.ppf(mass, 2))
            pts = population[:, None] + V @ (np.sqrt(np.clip(w, 0, None))[:, None] * circle) * r
            ax.plot(pts[0], pts[1], color="0.75", linewidth=1, gid="ellipse")
    ax.quiver(a[ok, 0], a[ok, 1], b[ok, 0] - a[ok, 0], b[ok, 1] - a[ok, 1], angles="xy", scale_units="xy",
              scale=1, color="0.45", width=0.004, headwidth=4, headlength=5, gid="arrows")
    ax.plot(a[ok, 0], a[ok, 1], linestyle="none", marker="o", markerfacecolor="white", color="C0",
            gid="no_pool", label=f"no pooling (within-{group} fit)")
    ax.plot(b[:, 0], b[:, 1], linestyle="none", marker="o", color="C1", gid="partial_pool",
            label="partial pooling (model)")
    ax.plot([population[0]], [population[1]], linestyle="none", marker="X", markersize=11, color="k",
            gid="population", label="population (fixed effects)")
    ax.set_xlabel(columns[0])
    ax.set_ylabel(columns[1])
    ax.set_title(f"Shrinkage of {group} estimates")
    _legend_below(ax)


# ----- residual diagnostics -------------------------------------------------------------
def _qq(ax, values: np.ndarray, title: str, gid: str):
    (osm, osr), (slope, intercept, _) = stats.probplot(values, dist="norm")
    ax.plot(osm, osr, linestyle="none", marker="o", markersize=3, alpha=0.7, gid=gid)
    ends = np.array([osm.min(), osm.max()]) if len(osm) else np.array([0.0, 0.0])
    ax.plot(ends, intercept + slope * ends, color="C3", linewidth=1, gid=f"{gid}_line")
    ax.set_title(title)
    ax.set_xlabel("theoretical normal quantiles")
    ax.set_ylabel("sample quantiles")


def residual_diagnostics(fit, ax=None, fig=None):
    """Residuals against fitted values, and normal Q-Q plots at both levels.

    Panels: Pearson residuals against fitted values (lme4's ``plot(fit)``); a
    Q-Q plot of the scaled residuals; one Q-Q plot of the conditional modes of
    every random-effect term (level 2).  ``ax`` may be a sequence of as many
    Axes.  Returns the Figure.
    """
    re_panels = [(g, c) for g, frame in fit.ranef.items() for c in frame.columns]
    n = 2 + len(re_panels)
    fig, axes = _panels(n, ax, fig, ncols=2 if n <= 4 else 3, panel_size=(4.0, 3.4))
    scaled = fit.scaled_residuals("pearson").loc[fit.rows_used].to_numpy()
    pearson = scaled * fit.sigma
    a = axes[0]
    a.axhline(0.0, color="0.5", linestyle=":", linewidth=1)
    a.plot(fit.fitted.loc[fit.rows_used].to_numpy(), pearson, linestyle="none", marker="o", markersize=3, alpha=0.6, gid="residuals")
    a.set_xlabel("fitted values")
    a.set_ylabel("Pearson residuals")
    a.set_title("Residuals vs fitted")
    _qq(axes[1], scaled, "Normal Q-Q: scaled residuals", "qq_residuals")
    for a, (g, c) in zip(axes[2:], re_panels):
        _qq(a, fit.ranef[g][c].to_numpy(), f"Normal Q-Q: {g} {c}", f"qq_ranef:{g}:{c}")
    return fig


# ----- spaghetti -------------------------------------------------------------------------
def spaghetti(fit, x: str, group: str | None = None, n: int | None = None, levels: Sequence | None = None,
              ax=None):
    """Per-group fitted curves against predictor ``x`` (growth curves).

    Each shown level of ``group`` gets its fitted values joined in order of ``x``
    and its observations drawn faint in the same colour; the population curve
    (fixed effects only, ``fit.predict(grid, re_form="~0")``) is drawn bold on top,
    on a grid of ``x`` with the other covariates held at their means or reference
    levels (see :func:`population_grid`; the legend says which).  ``n`` shows the first n levels,
    ``levels`` chosen ones.  A non-numeric ``x`` is placed at its categories'
    positions.  Returns the Figure.
    """
    group = _group(fit, group)
    frame = fit.design.frame
    if frame is None or x not in frame.columns:
        cols = [] if frame is None else list(frame.columns)
        raise ValueError(f"x={x!r} is not a variable of the model; choose one of {', '.join(map(repr, cols))}")
    term = _group_reterms(fit, group)[0]
    codes, all_levels = term.codes, term.levels
    raw = frame[x]
    ticks = None
    if _is_numeric(raw):
        xv = raw.to_numpy(dtype=float)
    else:
        cat = pd.Categorical(raw)
        xv = cat.codes.astype(float)
        ticks = [str(c) for c in cat.categories]
    if levels is not None:
        wanted = list(levels)
        missing = [v for v in wanted if v not in all_levels]
        if missing:
            raise ValueError(f"{group!r} has no level(s) {missing!r}")
        shown = [all_levels.get_loc(v) for v in wanted]
    else:
        shown = list(range(len(all_levels) if n is None else min(int(n), len(all_levels))))
    y = fit.design.y
    fitted = fit.fitted.loc[fit.rows_used].to_numpy()
    if ax is None:
        fig = _new_figure((6.4, 4.6))
        ax = fig.subplots()
    else:
        fig = ax.figure
    cmap = matplotlib.colormaps["tab10" if len(shown) <= 10 else "viridis"]
    for k, i in enumerate(shown):
        rows = np.flatnonzero(codes == i)
        rows = rows[np.argsort(xv[rows], kind="stable")]
        color = cmap(k) if len(shown) <= 10 else cmap(0.9 * k / max(len(shown) - 1, 1))
        ax.plot(xv[rows], y[rows], linestyle="none", marker="o", markersize=3, alpha=0.3, color=color,
                gid=f"observed:{all_levels[i]}")
        ax.plot(xv[rows], fitted[rows], color=color, linewidth=1, alpha=0.85, gid=f"fitted:{all_levels[i]}")
    not_covariates = {*re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", fit.design.response_name),
                      *(part for t in fit.design.reterms for part in t.group.split(":"))}
    grid, held = population_grid(frame, x, exclude=not_covariates)
    ax.plot(np.arange(len(grid)) if ticks is not None else grid[x].to_numpy(dtype=float),
            fit.predict(grid, re_form="~0").to_numpy(), color="k", linewidth=3, gid="population",
            label="population (fixed effects, random effects 0)" + (f";\n{held}" if held else ""))
    if ticks is not None:
        ax.set_xticks(range(len(ticks)), ticks)
    ax.set_xlabel(x)
    ax.set_ylabel(fit.design.response_name)
    ax.set_title(f"Fitted curves by {group}" + ("" if len(shown) == len(all_levels) else f" ({len(shown)} of {len(all_levels)})"))
    _legend_below(ax)
    return fig


def population_grid(frame: pd.DataFrame, x: str, exclude: Collection[str] = (), npoints: int = 101
                    ) -> tuple[pd.DataFrame, str]:
    """A new-data frame over ``x`` with every other variable held at a typical value, and a
    description of those values for a legend.

    A numeric ``x`` gets ``npoints`` equally spaced values from its minimum to its maximum, a
    categorical one its categories.  Other numeric variables are held at their means,
    categorical, text and logical ones at their reference (first) level, as in effect displays;
    so the line shows the fixed effects' curve in ``x`` itself, not an average over rows whose
    other covariates differ.  Variables in ``exclude`` (the response, grouping factors) are left out.
    """
    raw = frame[x]
    if _is_numeric(raw):
        values = pd.Series(np.linspace(raw.min(), raw.max(), npoints), name=x)
    else:
        values = pd.Series(pd.Categorical(raw).categories, name=x)
    grid = pd.DataFrame({x: values})
    held = []
    for name in frame.columns:
        if name == x or name in exclude:
            continue
        column = frame[name]
        if _is_numeric(column):
            typical: object = float(column.mean())
            held.append(f"{name} = {typical:.3g} (mean)")
        else:
            typical = _reference_level(column)
            held.append(f"{name} = {typical} (reference)")
        grid[name] = pd.Series([typical] * len(grid), dtype=column.dtype)
    return grid, ", ".join(held)


def _is_numeric(column: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            and not isinstance(column.dtype, pd.CategoricalDtype))


def _reference_level(column: pd.Series) -> object:
    """The first level, as the model's treatment contrasts take it."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.categories[0]
    return sorted(column.dropna().unique())[0]


# ----- profile ---------------------------------------------------------------------------
def profile_zeta(fit, which: str | Sequence[str] | None = None, level: float = 0.95, npoints: int = 9,
                 ci: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """ζ on a grid for each parameter: name → DataFrame with columns ``value``, ``zeta``.

    The grid has ``npoints`` values spanning the profile interval at ``level``
    (both limits included, so ζ = ±z there), the estimate (ζ = 0) and one point
    a fifth of the interval beyond each limit (within the parameter's bounds).
    ``ci`` may pass a precomputed ``fit.confint(method="profile", level=level)``.
    """
    prof = DevianceProfile(fit)
    names = list(parameters(prof.fit).index)
    wanted = names if which is None else ([which] if isinstance(which, str) else list(which))
    for w in wanted:
        if w not in names:
            raise ValueError(f"no parameter {w!r}; the parameters are {', '.join(map(repr, names))}")
    if ci is None:
        ci = fit.confint(method="profile", level=level)
    labels = parameter_labels(prof)
    lower, upper = prof.lower_upper()
    out = {}
    for name in wanted:
        if name in labels:
            k = labels.index(name)
            est, lo_b, hi_b = prof.psi_hat[k], lower[k], upper[k]
            dev = lambda v, k=k: prof.profile(k=k, value=v)
        else:
            j = list(prof.fit.fixef.index).index(name)
            est, lo_b, hi_b = float(prof.fit.fixef.iloc[j]), -np.inf, np.inf
            dev = lambda v, j=j: prof.profile(j=j, b=v)
        lo, hi = (float(v) for v in ci.loc[name])
        lo, hi = _finite_limits(lo, hi, est, lo_b, hi_b)
        width = hi - lo
        inner = np.linspace(lo, hi, max(int(npoints), 2))
        near = int(np.argmin(np.abs(inner - est)))
        if 0 < near < len(inner) - 1 and abs(inner[near] - est) < 0.25 * (inner[1] - inner[0]):
            inner[near] = est  # no two points almost on top of each other
        grid = np.concatenate([[lo - 0.2 * width], inner, [est], [hi + 0.2 * width]])
        grid = np.unique(np.clip(grid, lo_b, hi_b))
        excess = np.array([dev(v) for v in grid]) - prof.d_min
        zeta = np.sign(grid - est) * np.sqrt(np.clip(excess, 0.0, None))
        out[name] = pd.DataFrame({"value": grid, "zeta": zeta})
    return out


def _finite_limits(lo: float, hi: float, est: float, lo_b: float, hi_b: float) -> tuple[float, float]:
    """Profile limits with a NaN (not found) replaced by a guess from the other side or the bounds."""
    scale = max(abs(est), 1e-3)
    if np.isnan(lo):
        lo = est - (hi - est if np.isfinite(hi) else scale)
    if np.isnan(hi):
        hi = est + (est - lo if np.isfinite(lo) else scale)
    lo, hi = max(lo, lo_b), min(hi, hi_b)
    if hi <= lo:
        lo, hi = est - scale, est + scale
    return lo, hi


def profile_plot(fit, which: str | Sequence[str] | None = None, level: float = 0.95, npoints: int = 9,
                 ax=None, fig=None):
    """ζ against each parameter's value (lme4's ``xyplot(profile(fit))``).

    ζ = sign(value − estimate)·√(profiled deviance − minimum), from
    :class:`mixedmodels.inference.profile.DevianceProfile`, on ``npoints`` values across the
    profile interval at ``level`` (see :func:`profile_zeta`), with horizontal
    lines at ±z and the interval's limits marked.  A straight line means the
    likelihood is quadratic there (Wald intervals would agree).  ``which``
    names parameters as ``fit.parameters()`` does (default: all).  lmer fits
    (REML fits are profiled on their ML refit, as lme4) and glmer fits (the
    Laplace deviance).  Returns the Figure.
    """
    z = _z(level)
    ci = fit.confint(method="profile", level=level)
    curves = profile_zeta(fit, which, level, npoints, ci=ci)
    n = len(curves)
    fig, axes = _panels(n, ax, fig, ncols=min(n, 3), panel_size=(3.4, 3.2), sharey=True)
    from scipy.interpolate import PchipInterpolator

    for k, (a, (name, df)) in enumerate(zip(axes, curves.items())):
        v, zeta = df["value"].to_numpy(), df["zeta"].to_numpy()
        for sign in (-1, 1):
            a.axhline(sign * z, color="0.55", linestyle="--", linewidth=1, gid="zcrit")
        a.axhline(0.0, color="0.8", linewidth=0.8)
        lo, hi = (float(x) for x in ci.loc[name])
        for limit in (lo, hi):
            if np.isfinite(limit):
                a.axvline(limit, color="C3", linestyle=":", linewidth=1, gid="limit")
        if len(v) >= 2 and np.all(np.diff(zeta) >= 0):
            fine = np.linspace(v[0], v[-1], 200)
            a.plot(fine, PchipInterpolator(v, zeta)(fine), color="C0", linewidth=1.3, gid="zeta_curve")
        else:
            a.plot(v, zeta, color="C0", linewidth=1.3, gid="zeta_curve")
        a.plot(v, zeta, linestyle="none", marker="o", markersize=3.5, color="C0", gid="zeta")
        a.set_title(name, fontsize=10)
        a.set_xlabel("value")
        if k % 3 == 0:
            a.set_ylabel("ζ")
    if ax is None:
        fig.suptitle(f"Profile ζ with {100 * level:g}% limits")
    return fig


def acf_plot(fit, max_lag: int | None = None, type: str = "pearson", group: str | None = None, alpha: float = 0.05,
             ax=None, fig=None):
    """Autocorrelation of the within-group residuals (``mixedmodels.acf``) as bars by lag, with the
    ±z₁₋α/₂/√n_used bounds of nlme's ``plot(ACF(m), alpha = alpha)``."""
    table = acf(fit, max_lag=max_lag, type=type, group=group)
    fig, axes = _panels(1, ax, fig, 1, (5.0, 3.5))
    ax = axes[0]
    ax.vlines(table["lag"], 0, table["ACF"], colors="black", gid="acf")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    bound = stats.norm.ppf(1 - alpha / 2) / np.sqrt(table["n_used"].to_numpy(dtype=float))
    ax.plot(table["lag"], bound, linestyle="--", color="tab:blue", gid="bounds")
    ax.plot(table["lag"], -bound, linestyle="--", color="tab:blue")
    ax.set_xlabel("Lag")
    ax.set_ylabel("Autocorrelation")
    ax.set_title(f"{type.capitalize()} residuals within groups")
    return fig
