"""What every fitted model derives the same way: standard errors, AIC and BIC."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd


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
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.df
