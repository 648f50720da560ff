"""lme4-style linear and generalized linear mixed models."""

from . import datasets
from .api import lmer
from .errors import (
    ConvergenceWarning,
    DataError,
    FamilyError,
    FormulaError,
    MixedModelsError,
    MixedModelsWarning,
    SingularFitWarning,
)
from .results import LmerResult

__version__ = "0.1.0"

__all__ = [
    "lmer",
    "LmerResult",
    "datasets",
    "MixedModelsError",
    "FormulaError",
    "DataError",
    "FamilyError",
    "MixedModelsWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
]
