"""What inference and report functions need of a fitted model, as a typing Protocol.

Functions below the result classes (tests, intervals, prediction, printing, saving) accept
any object with these members, so they never import the result classes themselves and
the result classes can call them without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .design.build import Design
    from .engine.families import Family
    from .engine.glmm import PirlsState
    from .design.reterm import ReTerm
    from .engine.control import Control
    from .engine.optimizer import OptimumReport
    from .formula.parse import ParsedFormula


class FittedModel(Protocol):
    """A fitted mixed model: ``LmerResult``, ``GlmerResult`` and their Dask counterparts."""

    kind: str
    parsed: ParsedFormula
    design: Design
    data_name: str | None
    optimum: OptimumReport

    @property
    def reterms(self) -> list[ReTerm]: ...
    @property
    def fixef(self) -> pd.Series: ...
    @property
    def vcov(self) -> pd.DataFrame: ...
    @property
    def se(self) -> pd.Series: ...
    @property
    def sigma(self) -> float: ...
    @property
    def theta(self) -> np.ndarray: ...
    @property
    def nobs(self) -> int: ...
    @property
    def objective(self) -> float: ...
    @property
    def loglik(self) -> float: ...
    @property
    def varcorr(self) -> pd.DataFrame: ...
    @property
    def rows_used(self) -> pd.Index: ...
    @property
    def control(self) -> Control: ...


class FittedGlmm(FittedModel, Protocol):
    """A fitted GLMM: the family, the quadrature and PIRLS's state at the optimum."""

    family: Family
    nAGQ: int
    extra_parameters: int

    @property
    def pirls_state(self) -> PirlsState: ...
