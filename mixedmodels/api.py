"""User-facing model functions with lme4's names and arguments."""

from __future__ import annotations

import pandas as pd

from .design import build_design
from .errors import DataError, FormulaError
from .formula import parse_formula
from .lmm import LinearMixedModel
from .results import LmerResult


def lmer(
    formula: str,
    data: pd.DataFrame,
    REML: bool = True,
    weights: object = None,
    offset: object = None,
    start: object = None,
    maxeval: int = 100_000,
) -> LmerResult:
    """Fit a linear mixed model from an lme4 formula, by REML (default) or ML.

    ``weights`` and ``offset`` are column names or vectors as long as ``data``.
    Rows with a missing value in any variable the model uses are dropped and
    counted (``m.n_dropped``); ``data`` itself is never modified.
    """
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(
            "lmer needs at least one random-effects term such as (1 | group); "
            "for a model without random effects use an ordinary linear model",
            formula,
        )
    design = build_design(parsed, data, weights=weights, offset=offset)
    _check_groups(design)
    model = LinearMixedModel(design, REML=REML)
    report = model.fit(theta0=_engine_start(model, start), maxeval=maxeval)
    return LmerResult(parsed, model, report, data_name=data.attrs.get("name"))


def _check_groups(design) -> None:
    """Each grouping factor needs more than one level and fewer levels than observations."""
    for t in design.reterms:
        if t.nlevels < 2:
            raise DataError(
                f"grouping factor {t.group!r} has {t.nlevels} level; a random effect needs at least 2 levels"
            )
        if t.q >= design.n:
            raise DataError(
                f"the term ({t.expr} | {t.group}) has {t.q} random effects for {design.n} observations; "
                "the random effects and the residual are not identifiable (is a grouping factor an "
                "observation id?)"
            )


def _engine_start(model: LinearMixedModel, start: object):
    """A user's starting θ is in lme4's order; the engine's order may differ."""
    if start is None:
        return None
    import numpy as np

    start = np.asarray(start, dtype=float)
    if start.shape != model.theta_start.shape:
        raise DataError(f"start must have {model.theta_start.size} values (θ in lme4's order), not {start.size}")
    reterms = model.design.reterms
    public = sorted(range(len(reterms)), key=lambda i: -reterms[i].nlevels)
    sizes = [reterms[i].ntheta for i in public]
    pieces = dict(zip(public, np.split(start, np.cumsum(sizes)[:-1])))
    return np.concatenate([pieces[i] for i in model.order])
