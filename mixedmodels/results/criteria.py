"""What every fitted model derives the same way: standard errors, AIC and BIC."""

from __future__ import annotations

import numpy as np
import pandas as pd


class InformationCriteria:
    """``se`` from ``vcov``; ``aic`` and ``bic`` from ``loglik``, ``df`` and ``nobs``."""

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
