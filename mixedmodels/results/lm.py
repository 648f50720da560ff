"""Ordinary (weighted) least-squares linear models, the no-random-effects baseline of R's ``lm``.

``lm`` exists so that a mixed model can be compared with the same model without
its random effects (``mm.anova(lmer_fit, lm_fit)``: does the clustering matter?).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import blas

from .criteria import DesignSizes, InformationCriteria
from ..design.build import Design, build_design
from ..errors import FormulaError
from ..formula.parse import ParsedFormula, parse_formula
from ..report.summary import fixed_effects_block

_LOG_2PI = np.log(2 * np.pi)


def lm(formula: str, data: pd.DataFrame, weights: object = None, offset: object = None,
       contrasts: dict[str, str] | None = None) -> LmResult:
    """Fit ``formula`` (no random effects) by least squares, as R's ``lm``.

    ``weights`` and ``offset`` are column names or vectors as long as ``data``;
    rows with a missing value in a model variable are dropped; ``contrasts`` as in lmer.
    """
    parsed = parse_formula(formula)
    if parsed.random:
        bar = parsed.random[0]
        raise FormulaError(
            f"lm fits no random effects; for the term ({bar.expr} | {bar.group_name}) use lmer", formula
        )
    design = build_design(parsed, data, weights=weights, offset=offset, contrasts=contrasts)
    return LmResult(parsed, design, data_name=data.attrs.get("name"))


class LmResult(DesignSizes, InformationCriteria):
    """A linear model fitted by least squares (R's ``lm``); the likelihood is at σ̂² = RSS/n."""

    #: what kind of fit this is, as model files and reports name it
    kind = "lm"

    REML = False

    def __init__(self, parsed: ParsedFormula, design: Design, data_name: str | None = None):
        self.formula = parsed.text
        self.parsed = parsed
        self.design = design
        self.data_name = data_name
        y = design.y if design.offset is None else design.y - design.offset
        self._sqrt_w = np.ones(design.n) if design.weights is None else np.sqrt(design.weights)
        self._Q, self._R = np.linalg.qr(design.X * self._sqrt_w[:, None])
        self._beta = blas.dtrsm(1.0, self._R, (self._Q.T @ (y * self._sqrt_w))[:, None], lower=0).ravel() if self.p else np.zeros(0)

    # ----- sizes -------------------------------------------------------------------------
    @property
    def df(self) -> int:
        """Number of parameters: β and σ."""
        return self.p + 1

    # ----- estimates ---------------------------------------------------------------------
    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self._beta, index=list(self.design.xnames), name="Estimate")

    @cached_property
    def rss(self) -> float:
        """Weighted residual sum of squares Σ wᵢ rᵢ² (R's ``deviance(lm)``)."""
        return float(np.sum((self._sqrt_w * self.residuals.to_numpy()) ** 2))

    @cached_property
    def sigma(self) -> float:
        """Residual standard deviation with the n − p denominator, as R's ``sigma(lm)``."""
        return float(np.sqrt(self.rss / self.df_resid))

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """σ̂² (XᵀWX)⁻¹."""
        Rinv = blas.dtrsm(1.0, self._R, np.eye(self.p), lower=0)  # BLAS: no per-call threading overhead
        names = list(self.design.xnames)
        return pd.DataFrame(self.sigma**2 * (Rinv @ Rinv.T), index=names, columns=names)

    @cached_property
    def fitted(self) -> pd.Series:
        eta = self.design.X @ self._beta
        if self.design.offset is not None:
            eta = eta + self.design.offset
        return pd.Series(eta, index=self.design.rows, name="fitted")

    @cached_property
    def residuals(self) -> pd.Series:
        return pd.Series(self.design.y - self.fitted.to_numpy(), index=self.design.rows, name="residuals")

    # ----- likelihood --------------------------------------------------------------------
    def _loglik(self, REML: bool) -> float:
        """R's ``logLik.lm``: profiled over σ; REML uses n − p and subtracts log|det R|."""
        n = self.df_resid if REML else self.nobs
        val = 0.5 * (2 * np.sum(np.log(self._sqrt_w)) - n * (_LOG_2PI + 1 - np.log(n) + np.log(self.rss)))
        if REML:
            val -= float(np.sum(np.log(np.abs(np.diag(self._R)))))
        return float(val)

    @property
    def loglik(self) -> float:
        """Maximum-likelihood log-likelihood, as R's ``logLik(lm)``."""
        return self._loglik(REML=False)

    @property
    def reml_loglik(self) -> float:
        """Restricted log-likelihood, as R's ``logLik(lm, REML = TRUE)``."""
        return self._loglik(REML=True)

    @property
    def objective(self) -> float:
        """−2 log-likelihood."""
        return -2.0 * self.loglik

    @property
    def deviance(self) -> float:
        """−2 log-likelihood, the anova table's deviance (R's ``deviance(lm)`` is the RSS instead)."""
        return self.objective

    # ----- tables --------------------------------------------------------------------------
    def coefficients(self) -> pd.DataFrame:
        """Estimate, Std. Error, t value, Pr(>|t|) with n − p degrees of freedom."""
        t = self.fixef / self.se
        return pd.DataFrame({
            "Estimate": self.fixef, "Std. Error": self.se, "t value": t,
            "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), self.df_resid),
        })

    def summary(self) -> LmSummary:
        return LmSummary(self)

    def __repr__(self) -> str:
        return f"<Linear model fit by least squares: {self.formula}; nobs={self.nobs}, logLik={self.loglik:.4f}>"


class LmSummary:
    """The coefficient table and residual standard error of R's ``summary(lm)``."""

    def __init__(self, fit: LmResult):
        self.fit = fit
        self.coefficients = fit.coefficients()

    def __str__(self) -> str:
        f = self.fit
        head = [f"Formula: {f.formula}"] + ([f"   Data: {f.data_name}"] if f.data_name else [])
        table = fixed_effects_block(self.coefficients).replace("Fixed effects:", "Coefficients:", 1)
        sigma = np.format_float_positional(float(f"{f.sigma:.4g}"), trim="-")
        tail = f"Residual standard error: {sigma} on {f.df_resid} degrees of freedom"
        return "\n".join(head) + "\n\n" + table + "\n\n" + tail + "\n"

    __repr__ = __str__

