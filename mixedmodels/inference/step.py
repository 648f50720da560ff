"""Backward elimination of an lmer model, as lmerTest's ``step(m)``.

First the random part: ``ranova`` tests each random-effects term by a likelihood-ratio
test (a term's slopes are dropped before the term itself: ``(1 + x | g)`` becomes
``(1 | g)``, ``(1 | g)`` is removed); the term with the largest p-value above
``alpha_random`` is eliminated and ``ranova`` run again on the reduced model, until
none is above.  Then the fixed part: each marginal term (contained in no other term,
lmerTest's ``drop.scope``) is tested by lmerTest's ``drop1``, an F test of its
coefficients being zero with Satterthwaite's (or Kenward–Roger's) denominator df; the
term with the largest p-value above ``alpha_fixed`` is removed, and so on.  Terms named
in ``keep`` are never removed.  When every random term is eliminated the model is an lm,
and its fixed part is reduced by R's ``drop1(lm, test = "F")`` as lmerTest does.  The
reduced models reuse the fit's design (no data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import MixedModelsError, match_arg
from ..report.tables import AnovaTable
from ..results.lm import LmResult
from ..results.lmer import LmerResult
from .anova import drop1, droppable_terms, ranova, without_fixed_term
from .fixed_tests import FixedTerm, fixed_terms_of

_INTERCEPT = "(Intercept)"


@dataclass(frozen=True)
class StepResult:
    """lmerTest's ``step_list``: the elimination tables of the random and the fixed part, and
    the model found (``get_model()``).  Prints as lmerTest's ``print(step(m))``."""

    random: AnovaTable
    fixed: AnovaTable
    model: LmerResult | LmResult
    drop1: AnovaTable  # the F tests of the model found

    def get_model(self) -> LmerResult | LmResult:
        """The final model (lmerTest's ``get_model(step(m))``): an lm fit when every random term
        was eliminated."""
        return self.model

    def __str__(self) -> str:
        return f"{self.random}\n{self.fixed}\nModel found:\n{self.model.formula}\n"

    __repr__ = __str__


def step(fit: LmerResult, ddf: str = "Satterthwaite", alpha_random: float = 0.1, alpha_fixed: float = 0.05,
         reduce_random: bool = True, reduce_fixed: bool = True, keep: Sequence[str] = ()) -> StepResult:
    """Backward elimination of the random part by likelihood-ratio tests, then of the fixed part by
    F tests, with lmerTest's defaults (``alpha.random = 0.1``, ``alpha.fixed = 0.05``).

    ``reduce_random=False`` (``reduce_fixed=False``) tests that part without removing anything.
    ``keep`` names fixed terms never to remove (R's labels, e.g. 'Days:grp').
    """
    if not isinstance(fit, LmerResult):
        raise MixedModelsError(f"step needs an lmer fit (a linear mixed model), not {type(fit).__name__}")
    ddf = match_arg(ddf, ("Satterthwaite", "Kenward-Roger"), "ddf")
    for name, alpha in (("alpha_random", alpha_random), ("alpha_fixed", alpha_fixed)):
        if not 0 <= alpha <= 1:
            raise ValueError(f"{name} must be a probability between 0 and 1, not {alpha!r}")
    random, model = reduce_random_part(fit, alpha_random if reduce_random else 1.0)
    fixed, model, last = reduce_fixed_part(model, ddf, alpha_fixed if reduce_fixed else 1.0, keep)
    return StepResult(random, fixed, model, last)


def reduce_random_part(fit: LmerResult, alpha: float) -> tuple[AnovaTable, LmerResult | LmResult]:
    """lmerTest's ``reduce_random``: the elimination table and the reduced model."""
    table = ranova(fit)
    eliminated = [table.iloc[[0]]]
    model: LmerResult | LmResult = fit
    while True:
        p = table["Pr(>Chisq)"].iloc[1:]
        above = p[p.notna() & (p > alpha)]
        if above.empty:
            break
        label = str(above.idxmax())
        eliminated.append(table.loc[[label]])
        model = table.models[label]
        if not isinstance(model, LmerResult):  # no random term left: only the '<none>' row remains
            table = table.iloc[[0]]
            break
        table = ranova(model)
    rows = pd.concat([*eliminated, table.iloc[1:]])
    rows.insert(0, "Eliminated", [np.nan, *range(1, len(eliminated)), *[0] * (len(table) - 1)])
    return AnovaTable(rows, ["Backward reduced random-effect table:", ""], {}), model


def reduce_fixed_part(fit: LmerResult | LmResult, ddf: str, alpha: float,
                      keep: Sequence[str]) -> tuple[AnovaTable, LmerResult | LmResult, AnovaTable]:
    """lmerTest's ``reduce_fixed``: the elimination table, the reduced model and its drop1 table.
    An lm (every random term eliminated) is reduced by R's ``drop1(lm, test = "F")``, as lmerTest."""
    if fit.design.dropped_columns:
        raise MixedModelsError(
            f"step's F tests need a fixed-effects design of full rank; this one drops "
            f"{', '.join(fit.design.dropped_columns)} as aliased. Remove the aliased terms from the formula first")
    names = [t.name for t in fixed_terms_of(fit)]
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise MixedModelsError(f"keep names {', '.join(map(repr, unknown))}, not a fixed term of the model; "
                               f"its terms are {', '.join(map(repr, names))}")
    eliminated = []
    table = _term_tests(fit, ddf)
    while True:
        p = table["Pr(>F)"].drop(index=[k for k in keep if k in table.index])
        above = p[p.notna() & (p > alpha)]
        if above.empty:
            break
        term = str(above.idxmax())
        eliminated.append(table.loc[[term]])
        fit = _without(fit, term)
        table = _term_tests(fit, ddf)
    rows = pd.concat([*eliminated, table]).astype(float)  # an empty table of tests is of object dtype
    rows.insert(0, "Eliminated", [*range(1, len(eliminated) + 1), *[0] * len(table)])
    heading = ["Backward reduced fixed-effect table:"]
    if isinstance(fit, LmerResult):
        heading += [f"Degrees of freedom method: {ddf}", ""]
    return AnovaTable(rows, heading, {}), fit, table


def _term_tests(fit: LmerResult | LmResult, ddf: str) -> AnovaTable:
    """The F test of each marginal term: lmerTest's drop1 for an lmer fit, R's drop1.lm for an lm."""
    if isinstance(fit, LmResult):
        return drop1(fit, test="F").iloc[1:]
    return drop1(fit, test="F", ddf=ddf)


def _without(fit: LmerResult | LmResult, term: str) -> LmerResult | LmResult:
    """The fit without the fixed term, its fixed part written as the remaining terms."""
    terms: list[FixedTerm] = [t for t in fixed_terms_of(fit) if t.columns]
    dropped = next(t for t in terms if t.name == term)
    rest = [t.name for t in terms if t.name != term]
    lead = [] if _INTERCEPT in fit.design.xnames else ["0"]
    fixed = " + ".join(lead + rest) or "1"
    reduced = without_fixed_term(fit, term, dropped.columns, fixed)
    assert isinstance(reduced, (LmerResult, LmResult))
    return reduced
