"""Generalized linear models without random effects, R's ``glm``.

``glm`` exists so that a GLMM can be compared with the same model without its
random effects (``mm.anova(glmer_fit, glm_fit)``, as lme4's ``anova(gm, g)``):
its log-likelihood is on the scale of glmer's.  β comes from the same IRLS that
starts glmer (``engine.rows.fit_glm``).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from ..design.build import Design, build_design
from ..engine.families import Family, get_family
from ..engine.rows import InMemoryRows, fit_glm
from ..errors import FormulaError
from ..formula.parse import ParsedFormula, parse_formula
from ..report.summary import fixed_effects_block
from .criteria import DesignSizes, InformationCriteria
from .glmer import glmm_residuals


def glm(formula: str, data: pd.DataFrame, family: str | Family = "gaussian", link: str | None = None,
        weights: object = None, offset: object = None, contrasts: dict[str, str] | None = None) -> GlmResult:
    """Fit ``formula`` (no random effects) by iteratively reweighted least squares, as R's ``glm``.

    ``family`` is a name ("binomial", "poisson", "Gamma", ...) or a family object;
    responses, ``weights``, ``offset`` and ``contrasts`` are given as for ``glmer``.
    """
    parsed = parse_formula(formula)
    if parsed.random:
        bar = parsed.random[0]
        raise FormulaError(
            f"glm fits no random effects; for the term ({bar.expr} | {bar.group_name}) use glmer", formula
        )
    fam = get_family(family, link)
    design = build_design(parsed, data, weights=weights, offset=offset, binomial=fam.name == "binomial",
                          contrasts=contrasts)
    return GlmResult(parsed, design, fam, data_name=data.attrs.get("name"))


class GlmResult(DesignSizes, InformationCriteria):
    """A generalized linear model fitted by IRLS (R's ``glm``)."""

    #: what kind of fit this is, as model files and reports name it
    kind = "glm"

    REML = False

    def __init__(self, parsed: ParsedFormula, design: Design, family: Family, data_name: str | None = None):
        self.formula = parsed.text
        self.parsed = parsed
        self.design = design
        self.family = family
        self.data_name = data_name
        n = design.n
        self.prior_weights = np.ones(n) if design.weights is None else design.weights
        self._offset = np.zeros(n) if design.offset is None else design.offset
        family.check_response(design.y, self.prior_weights)
        self._beta = fit_glm(InMemoryRows((), design.X, design.y, self.prior_weights, self._offset, family))

    # ----- sizes -------------------------------------------------------------------------
    @property
    def df(self) -> int:
        """Number of parameters: β, and the dispersion for families that have one (R's logLik df)."""
        return self.p + int(self.family.has_dispersion)

    # ----- estimates ---------------------------------------------------------------------
    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self._beta, index=list(self.design.xnames), name="Estimate")

    @cached_property
    def linear_predictor(self) -> pd.Series:
        """η = Xβ̂ (+ offset)."""
        return pd.Series(self.design.X @ self._beta + self._offset, index=self.design.rows, name="linear predictor")

    @cached_property
    def fitted(self) -> pd.Series:
        """μ = g⁻¹(η)."""
        return pd.Series(self.family.link.inverse(self.linear_predictor.to_numpy()), index=self.design.rows,
                         name="fitted")

    def residuals_of(self, type: str = "deviance") -> pd.Series:
        """Residuals of a type: 'deviance' (R's default), 'pearson', 'response' or 'working'."""
        r = glmm_residuals(type, self.family, self.design.y, self.linear_predictor.to_numpy(), self.prior_weights)
        return pd.Series(r, index=self.design.rows, name=f"{type} residuals")

    @cached_property
    def residuals(self) -> pd.Series:
        """Deviance residuals, as R's ``residuals(glm)``."""
        return self.residuals_of("deviance")

    @cached_property
    def deviance(self) -> float:
        """The residual deviance Σ dᵢ, as R's ``deviance(glm)``."""
        mu = self.fitted.to_numpy()
        return float(self.family.deviance_residuals(self.design.y, mu, self.prior_weights).sum())

    @cached_property
    def dispersion(self) -> float:
        """φ̂ of summary.glm: 1 for binomial and Poisson, else Pearson χ² / (n − p)."""
        if not self.family.has_dispersion:
            return 1.0
        mu = self.fitted.to_numpy()
        chisq = np.sum(self.prior_weights * (self.design.y - mu) ** 2 / self.family.variance(mu))
        return float(chisq / self.df_resid)

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """φ̂ (XᵀWX)⁻¹ at the IRLS weights of the estimate."""
        eta, mu = self.linear_predictor.to_numpy(), self.fitted.to_numpy()
        w = self.prior_weights * self.family.mu_eta(eta, mu) ** 2 / self.family.variance(mu)
        X = self.design.X
        names = list(self.design.xnames)
        return pd.DataFrame(self.dispersion * np.linalg.inv((X * w[:, None]).T @ X), index=names, columns=names)

    # ----- likelihood --------------------------------------------------------------------
    @cached_property
    def loglik(self) -> float:
        """R's ``logLik(glm)``: Σ log f(yᵢ | μ̂ᵢ), the dispersion at its ML value deviance / n."""
        mu = self.fitted.to_numpy()
        return float(-0.5 * self.family.minus_two_loglik(self.design.y, mu, self.prior_weights,
                                                         self.deviance / self.nobs).sum())

    @property
    def objective(self) -> float:
        """−2 log-likelihood."""
        return -2.0 * self.loglik

    # ----- tables --------------------------------------------------------------------------
    def coefficients(self) -> pd.DataFrame:
        """Estimate, Std. Error, and z tests (t tests with n − p df when the dispersion is estimated)."""
        stat = self.fixef / self.se
        if self.family.has_dispersion:
            return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se, "t value": stat,
                                 "Pr(>|t|)": 2 * stats.t.sf(np.abs(stat), self.df_resid)})
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se, "z value": stat,
                             "Pr(>|z|)": 2 * stats.norm.sf(np.abs(stat))})

    def summary(self) -> GlmSummary:
        return GlmSummary(self)

    def __repr__(self) -> str:
        return (f"<Generalized linear model ({self.family.name}, {self.family.link.name}): {self.formula}; "
                f"nobs={self.nobs}, logLik={self.loglik:.4f}>")


class GlmSummary:
    """The coefficient table, dispersion, residual deviance and AIC of R's ``summary(glm)``."""

    def __init__(self, fit: GlmResult):
        self.fit = fit
        self.coefficients = fit.coefficients()

    def __str__(self) -> str:
        f = self.fit
        head = [f"Formula: {f.formula}", f"Family: {f.family.name} ({f.family.link.name} link)"]
        head += [f"   Data: {f.data_name}"] if f.data_name else []
        table = fixed_effects_block(self.coefficients).replace("Fixed effects:", "Coefficients:", 1)
        tail = [
            f"(Dispersion parameter for {f.family.name} family taken to be {f.dispersion:.7g})",
            f"Residual deviance: {f.deviance:.2f}  on {f.df_resid} degrees of freedom",
            f"AIC: {f.aic:.5g}",
        ]
        return "\n".join(head) + "\n\n" + table + "\n\n" + "\n".join(tail) + "\n"

    __repr__ = __str__
