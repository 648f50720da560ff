"""lme4-style linear and generalized linear mixed models."""

from . import datasets, families
from .anova import AnovaTable, anova, ranova
from .api import glmer, glmer_nb, lmer
from .dask import DaskLmerResult, lmer_dask
from .dask_glmm import DaskGlmerResult, glmer_dask
from .errors import (
    ConvergenceWarning,
    DataError,
    DroppedRowsWarning,
    FamilyError,
    FitError,
    FormulaError,
    RankDeficiencyWarning,
    RefitWarning,
    MixedModelsError,
    MixedModelsWarning,
    ModelFileError,
    SingularFitWarning,
)
from .glmm_results import GlmerResult
from .lm import LmResult, lm
from .persistence import load, save
from .power import PowerResult, power
from .results import LmerResult
from .safety import check_formula
from .threads import set_blas_threads
from .teaching import IccReport, PoolingComparison, compare_pooling, icc_null

__version__ = "0.1.0"

__all__ = [
    "lmer",
    "glmer",
    "glmer_nb",
    "lmer_dask",
    "DaskLmerResult",
    "glmer_dask",
    "DaskGlmerResult",
    "LmerResult",
    "GlmerResult",
    "families",
    "lm",
    "LmResult",
    "anova",
    "ranova",
    "AnovaTable",
    "save",
    "load",
    "check_formula",
    "ModelFileError",
    "set_blas_threads",
    "power",
    "PowerResult",
    "icc_null",
    "IccReport",
    "compare_pooling",
    "PoolingComparison",
    "RankDeficiencyWarning",
    "DroppedRowsWarning",
    "RefitWarning",
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


def __getattr__(name: str):
    """``mm.plots`` is imported on first use, so matplotlib stays an optional extra."""
    if name == "plots":
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
