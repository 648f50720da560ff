"""lme4-style linear and generalized linear mixed models."""

from .io import datasets
from .engine import families
from .inference.acf import acf
from .inference.anova import AnovaTable, anova, drop1, ranova
from .inference.deletion import Influence, influence
from .inference.step import StepResult, step
from .inference.fixed_tests import contest
from .inference.emmeans import EmmContrasts, EmmGrid, difflsmeans, emmeans, emtrends, joint_tests, ls_means
from .inference.simulate import simulate_formula as simulate
from .api import glmer, glmer_nb, gls, lmer, update
from .design.residual import AR1, CAR1, CompSymm, Symm, VarIdent, VarPower
from .design.nlme import corAR1, corCAR1, corCompSymm, corSymm, varIdent, varPower
from .results.residual import GlsResult, ResidualLmerResult
from .engine.control import Control
from .dask.lmm import DaskLmerResult, lmer_dask
from .dask.glmm import DaskGlmerResult, glmer_dask
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
from .results.glmer import GlmerResult
from .results.glm import GlmResult, glm
from .results.lm import LmResult, lm
from .io.persistence import save
from .io.restore import load
from .version import __version__
from .teaching.power import AssumedModel, PowerResult, make_glmer, make_lmer, power
from .results.lmer import LmerResult
from .formula.safety import check_formula
from .runtime.threads import set_blas_threads
from .teaching.centering import center
from .teaching.pooling import IccReport, PoolingComparison, compare_pooling, icc_null


__all__ = [
    "lmer",
    "glmer",
    "glmer_nb",
    "gls",
    "update",
    "acf",
    "GlsResult",
    "ResidualLmerResult",
    "AR1",
    "CAR1",
    "CompSymm",
    "Symm",
    "VarIdent",
    "VarPower",
    "corAR1",
    "corCAR1",
    "corCompSymm",
    "corSymm",
    "varIdent",
    "varPower",
    "Control",
    "lmer_dask",
    "DaskLmerResult",
    "glmer_dask",
    "DaskGlmerResult",
    "LmerResult",
    "GlmerResult",
    "families",
    "lm",
    "LmResult",
    "glm",
    "GlmResult",
    "anova",
    "ranova",
    "contest",
    "drop1",
    "step",
    "influence",
    "Influence",
    "StepResult",
    "emmeans",
    "emtrends",
    "joint_tests",
    "ls_means",
    "difflsmeans",
    "EmmGrid",
    "EmmContrasts",
    "simulate",
    "AnovaTable",
    "save",
    "load",
    "check_formula",
    "ModelFileError",
    "set_blas_threads",
    "power",
    "PowerResult",
    "make_lmer",
    "make_glmer",
    "AssumedModel",
    "icc_null",
    "center",
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

        return importlib.import_module(".report.plots", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
