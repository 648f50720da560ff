"""Exceptions and warnings raised by mixedmodels.

Every error derives from ``MixedModelsError`` (itself a ``ValueError``) and
every warning from ``MixedModelsWarning``, so callers can catch or filter the
whole family at once.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from types import FrameType


class MixedModelsError(ValueError):
    """Base class for errors raised by mixedmodels."""


class FormulaError(MixedModelsError):
    """A model formula could not be understood.

    When ``formula`` and ``position`` are known, the message points a caret at
    the offending character so the user sees where the problem is.
    """

    def __init__(
        self, message: str, formula: str | None = None, position: int | None = None
    ) -> None:
        # All three go into ``args`` so the error pickles with its context.
        super().__init__(message, formula, position)
        self.message = message
        self.formula = formula
        self.position = position

    def __str__(self) -> str:
        lines = [self.message]
        if self.formula is not None:
            # Newlines and tabs become spaces so the caret lines up.
            shown = "".join(" " if ch.isspace() else ch for ch in self.formula)
            lines.append("  " + shown)
            if self.position is not None:
                lines.append("  " + " " * self.position + "^")
        return "\n".join(lines)


class FitError(MixedModelsError):
    """The model could not be fitted (e.g. PIRLS failed); the message says why and what to try."""


class MemoryBudgetError(FitError):
    """A computation would allocate more dense memory than its budget allows (``linalg.blockchol.DENSE_BUDGET``
    for a factorisation, ``inference.kenward_roger.MEMORY_BUDGET`` for Kenward–Roger)."""


class DataError(MixedModelsError):
    """The data do not fit the model (missing columns, bad values, ...)."""


class FamilyError(MixedModelsError):
    """An unknown or unsupported response family or link function."""


class MixedModelsWarning(UserWarning):
    """Base class for warnings issued by mixedmodels."""


class ConvergenceWarning(MixedModelsWarning):
    """The optimizer stopped without clearly reaching an optimum."""


class SingularFitWarning(MixedModelsWarning):
    """The fit lies on the boundary (e.g. a variance estimated as zero)."""


class RankDeficiencyWarning(MixedModelsWarning):
    """The fixed-effects model matrix is rank deficient; columns were dropped."""


class ModelFileError(MixedModelsError):
    """A model file cannot be written, or is not a readable mixedmodels model file."""


class RefitWarning(MixedModelsWarning):
    """REML fits were refitted by maximum likelihood before a likelihood-ratio test."""


class DroppedRowsWarning(MixedModelsWarning):
    """Rows with missing values were removed before fitting."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a `` Did you mean '...'?`` hint for a misspelt name, or ``""``.

    Meant to be appended to an error message, hence the leading space.
    """
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""


def match_arg(value: object, choices: Sequence[str], argument: str) -> str:
    """R's ``match.arg``: ``value`` itself if it is a choice, else the one choice it abbreviates
    (``"Sat"`` → ``"Satterthwaite"``); an error naming the choices otherwise."""
    text = str(value)
    if text in choices:
        return text
    matches = [c for c in choices if text and c.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(repr(c) for c in choices)
    if matches:
        raise MixedModelsError(f"{argument}={value!r} abbreviates several choices ({', '.join(map(repr, matches))}); "
                               f"write more of the name: one of {listed}")
    raise MixedModelsError(f"{argument} must be one of {listed} (or an abbreviation), not {value!r}."
                           + did_you_mean(text, choices))


def warn(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the user's line: the first caller outside this package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame: FrameType | None = sys._getframe(1)
    level = 2  # stacklevel 2 is our caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def type_name(obj: object) -> str:
    """The type of obj as a user would look it up: 'list', 'dask.dataframe.core.DataFrame'."""
    kind = type(obj)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
