"""What every fitted model derives the same way: its sizes, standard errors, AIC and BIC."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..design.build import Design


class DesignSizes:
    """The sizes of a fit made on a ``Design`` (lm, glm, gls and mixed models alike)."""

    design: Design

    @property
    def nobs(self) -> int:
        """Number of observations used (after dropping rows with missing values)."""
        return self.design.n

    @property
    def n_dropped(self) -> int:
        """Rows of the data dropped because a model variable was missing."""
        return self.design.n_dropped

    @property
    def rows_used(self) -> pd.Index:
        """Labels of the data rows the fit used."""
        return self.design.rows

    @property
    def p(self) -> int:
        """Number of fixed-effects columns."""
        return self.design.X.shape[1]

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom n − p (R's ``df.residual`` of lm, glm and gls)."""
        return self.nobs - self.p


class InformationCriteria:
    """``se`` from ``vcov``; ``aic`` and ``bic`` from ``loglik``, ``df`` and ``nobs``."""

    if TYPE_CHECKING:  # supplied by each kind of fit (as properties or dataclass fields)

        @property
        @abstractmethod
        def vcov(self) -> pd.DataFrame:
            """Covariance matrix of the fixed effects."""

        @property
        @abstractmethod
        def loglik(self) -> float:
            """The maximised log-likelihood (REML's for REML fits)."""

        @property
        @abstractmethod
        def df(self) -> int:
            """Number of estimated parameters."""

        @property
        @abstractmethod
        def nobs(self) -> int:
            """Number of observations used."""

    @property
    def se(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        return pd.Series(np.sqrt(np.diag(self.vcov)), index=self.vcov.index, name="Std. Error")

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2 * self.df

    @property
    def bic_nobs(self) -> int:
        """The n of BIC's log n: the observations used (lme4's and R's ``BIC``)."""
        return self.nobs

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.bic_nobs) * self.df
