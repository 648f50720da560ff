"""lme4-style linear and generalized linear mixed models."""

from . import datasets, families
from .api import glmer, glmer_nb, lmer
from .errors import (
    ConvergenceWarning,
    DataError,
    FamilyError,
    FitError,
    FormulaError,
    MixedModelsError,
    MixedModelsWarning,
    SingularFitWarning,
)
from .glmm_results import GlmerResult
from .results import LmerResult

__version__ = "0.1.0"

__all__ = [
    "lmer",
    "glmer",
    "glmer_nb",
    "LmerResult",
    "GlmerResult",
    "families",
    "datasets",
    "MixedModelsError",
    "FormulaError",
    "DataError",
    "FamilyError",
    "FitError",
    "MixedModelsWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
]
