"""Fits with a residual correlation or variance structure: ``lmer(..., residual=, variance=)``
(nlme's lme with ``correlation=``/``weights=``) and ``gls`` (nlme's gls).

The random-effects part is an ``LmerResult`` of the whitened model at φ̂
(``engine/residual.py``), so θ, the modes, β̂ and their covariance are read from its
factor as for any LMM; what depends on φ — the parameters, their count, the
normalized residuals, refits — is added here.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import NoReturn

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import solve_triangular

from .criteria import DesignSizes, InformationCriteria
from .lmer import LmerResult
from ..design.build import Design
from ..design.residual import ResidualStructure, VarIdent
from ..engine.optimizer import OptimumReport
from ..engine.residual import GlsModel, ResidualLMM, WhitenedLMM
from ..errors import ConvergenceWarning, MixedModelsError, match_arg, warn
from ..formula.parse import ParsedFormula
from ..inference.confint import confint_method
from ..inference.prediction import Predictor
from ..inference.simulate import with_response
from ..report.summary import fixed_effects_block, residual_structure_block
from ..report.tables import VarCorr

RESIDUAL_TYPES = ("response", "pearson", "normalized")


class StructureParameters:
    """The estimated φ of a residual structure as nlme reports them (shared by lme and gls fits)."""

    residual_structure: ResidualStructure
    phi: np.ndarray
    REML: bool
    nobs: int
    p: int

    @property
    def bic_nobs(self) -> int:
        """nlme's n in BIC: n − p for a REML fit (its likelihood is that of n − p error contrasts), n for ML."""
        return self.nobs - self.p if self.REML else self.nobs

    @property
    def correlation_parameters(self) -> pd.Series:
        """The correlation's parameters as nlme prints them: Phi (AR(1), CAR(1)), Rho (compound
        symmetry) or each pair's correlation (general); empty without a correlation."""
        s = self.residual_structure
        a = s.split(self.phi)[0]
        return s.correlation.estimates(a) if s.correlation is not None else pd.Series(dtype=float)

    @property
    def variance_parameters(self) -> pd.Series:
        """varIdent's standard-deviation ratios per level (the first 1) or varPower's power."""
        s = self.residual_structure
        a = s.split(self.phi)[1]
        return s.variance.estimates(a) if s.variance is not None else pd.Series(dtype=float)

    def structure_rows(self) -> list[tuple[str, str, None, float, float]]:
        """VarCorr rows of the structure's parameters: grp 'Residual', var1 the parameter's name."""
        rows = [("Residual", str(k), None, np.nan, float(v)) for k, v in self.correlation_parameters.items()]
        variance = self.variance_parameters
        if isinstance(self.residual_structure.variance.spec if self.residual_structure.variance else None, VarIdent):
            variance = variance.iloc[1:].rename(lambda k: f"varIdent.{k}")
        rows += [("Residual", str(k), None, np.nan, float(v)) for k, v in variance.items()]
        return rows

    def _normalized(self, r: np.ndarray, sigma: float, type: str) -> np.ndarray:
        """nlme's residual types from raw residuals r (model row order)."""
        type = match_arg(type, RESIDUAL_TYPES, "type")
        if type == "response":
            return r
        if type == "pearson":
            return r / (sigma * self.residual_structure.sd_ratios(self.phi))
        return self.residual_structure.normalized(self.phi, r) / sigma


def _theta_report(report: OptimumReport, k: int) -> OptimumReport:
    """The θ part of a joint (θ, φ) optimum, as ``LmerResult`` reads it."""
    H = report.hessian
    return replace(report, x=report.x[:k], gradient=report.gradient[:k], hessian=None if H is None else H[:k, :k])


class ResidualLmerResult(StructureParameters, LmerResult):
    """A linear mixed model with a residual structure (nlme's lme with correlation=/weights=)."""

    kind = "lmer"
    #: the R class its summary names: nlme's, since lme4 has no residual structures
    r_class = "lme"

    def __init__(self, parsed: ParsedFormula, engine: ResidualLMM, model: WhitenedLMM, report: OptimumReport,
                 data_name: str | None = None):
        self.engine = engine
        self.joint_optimum = report
        self.residual_structure = model.structure
        self.phi = model.phi
        super().__init__(parsed, model, _theta_report(report, engine.ntheta), data_name)

    @property
    def df(self) -> int:
        """β, θ, σ and the structure's parameters."""
        return super().df + self.residual_structure.nparams

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """lme4's rows, then the residual structure's parameters as rows of group 'Residual'."""
        base = super().varcorr
        extra = pd.DataFrame(self.structure_rows(), columns=list(base.columns))
        frame = pd.concat([pd.DataFrame(base), extra], ignore_index=True)
        for column in ("var1", "var2"):  # as lme4's rows: names as strings, NaN where missing
            frame[column] = frame[column].astype("str")
        return VarCorr(frame, structures=base.structures)

    def residuals_of(self, type: str = "response") -> pd.Series:
        """nlme's ``resid(m, type=)``: 'response' (y − fitted), 'pearson' (divided by σ̂ gᵢ) or
        'normalized' (whitened by the estimated correlation, so independent N(0, 1) under the model)."""
        r = self.design.y - self._fitted_values
        return self.design.per_data_row(self._normalized(r, self.sigma, type), f"{type} residuals")

    def distribution_variance(self) -> float:
        """The residual variance for icc() and r2(): σ̂² times the mean of gᵢ² over the rows (σ̂²
        without a variance function), as random slopes enter through the mean of zᵢᵀΣzᵢ."""
        return self.sigma**2 * float(np.mean(self.residual_structure.sd_ratios(self.phi) ** 2))

    def scaled_residuals(self, type: str = "pearson") -> pd.Series:
        """'pearson': (y − fitted)/(σ̂ gᵢ), nlme's standardized within-group residuals (the summary's);
        'response': (y − fitted)/σ̂."""
        type = match_arg(type, ("pearson", "response"), "type")
        r = (self.design.y - self._fitted_values) / (self.residual_structure.sd_ratios(self.phi) if type == "pearson" else 1.0)
        return self.design.per_data_row(r / self.sigma, "scaled residuals")

    def refit_ml(self) -> ResidualLmerResult:
        if not self.REML:
            return self
        engine = self.engine.with_REML(False)
        model, report = engine.fit(x0=self.joint_optimum.x)
        return ResidualLmerResult(self.parsed, engine, model, report, self.data_name)

    def refit(self, y: object) -> ResidualLmerResult:
        engine = ResidualLMM(with_response(self.design, y), self.residual_structure, self.REML, self.control)
        model, report = engine.fit(x0=self.joint_optimum.x)
        return ResidualLmerResult(self.parsed, engine, model, report, self.data_name)

    def summary(self, ddf: str = "lme4"):
        """lme4's summary with nlme's correlation and variance sections; t values without df
        (Satterthwaite's and Kenward–Roger's df do not cover a residual structure)."""
        if match_arg(ddf, ("Satterthwaite", "Kenward-Roger", "lme4"), "ddf") != "lme4":
            _not_offered(f"ddf={ddf!r}")
        return super().summary(ddf="lme4")

    def satterthwaite(self, L: np.ndarray | None = None) -> NoReturn:
        _not_offered("Satterthwaite's df")

    def kenward_roger(self, L: np.ndarray | None = None) -> NoReturn:
        _not_offered("Kenward-Roger's df")

    def anova(self, type: int | str = 3, ddf: str = "Satterthwaite") -> NoReturn:
        _not_offered("F tests with Satterthwaite or Kenward-Roger df (compare models with mm.anova(m0, m1))")

    def simulate(self, *args, **kwargs) -> NoReturn:
        _not_offered("simulate() (it would draw independent residuals)")

    def bootstrap(self, *args, **kwargs) -> NoReturn:
        _not_offered("the parametric bootstrap")

    def confint(self, method: str = "wald", *args, **kwargs) -> pd.DataFrame:
        if confint_method(method) != "wald":
            _not_offered(f"confint(method={method!r}); Wald intervals of the fixed effects are")
        return super().confint(method, *args, **kwargs)

    def hatvalues(self) -> NoReturn:
        _not_offered("hatvalues()")

    def cooks_distance(self) -> NoReturn:
        _not_offered("cooks_distance()")

    def rstudent(self) -> NoReturn:
        _not_offered("rstudent()")

    def refit_rows(self, keep: np.ndarray) -> NoReturn:
        _not_offered("influence() (its refits would drop the structure)")

    def save(self, path) -> NoReturn:
        _not_offered("save()")


def _not_offered(what: str) -> NoReturn:
    raise MixedModelsError(f"{what} not offered for fits with a residual structure (residual=/variance=)")


class GlsResult(StructureParameters, DesignSizes, InformationCriteria):
    """A linear model with correlated or heteroscedastic residuals (nlme's ``gls``), by REML or ML."""

    kind = "gls"

    def __init__(self, parsed: ParsedFormula, model: GlsModel, report: OptimumReport, data_name: str | None = None):
        self.formula = parsed.text
        self.parsed = parsed
        self.model = model
        self.design: Design = model.design
        self.optimum = report
        self.data_name = data_name
        self.REML = model.REML
        self.residual_structure = model.structure
        self.phi = np.asarray(report.x, dtype=float)
        L = model.factor(self.phi)
        p = model.p
        self._LX, self._r = L[:p, :p], float(L[p, p])
        self._beta = model.beta_shift + solve_triangular(self._LX, L[p, :p], lower=True, trans="T")
        if not report.converged:
            warn(f"model failed to converge: {report.message}", ConvergenceWarning)

    @property
    def df(self) -> int:
        """β, σ and the structure's parameters."""
        return self.p + 1 + self.residual_structure.nparams

    @property
    def method(self) -> str:
        return "REML" if self.REML else "maximum likelihood"

    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self._beta, index=list(self.design.xnames), name="Estimate")

    @cached_property
    def sigma(self) -> float:
        """σ̂ (r²/(n − p) by REML, r²/n by ML, as nlme)."""
        return self._r / np.sqrt(self.df_resid if self.REML else self.nobs)

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """r²/(n − p) (XᵀV⁻¹X)⁻¹: nlme's varBeta, which scales an ML fit's σ̂² by n/(n − p)."""
        Linv = solve_triangular(self._LX, np.eye(self.p), lower=True)
        names = list(self.design.xnames)
        return pd.DataFrame(self._r**2 / self.df_resid * (Linv.T @ Linv), index=names, columns=names)

    @property
    def objective(self) -> float:
        """The REML criterion (REML fits) or −2 log-likelihood."""
        return float(self.optimum.fun)

    @property
    def loglik(self) -> float:
        return -0.5 * self.objective

    @property
    def deviance(self) -> float:
        return -2.0 * self.loglik

    @cached_property
    def fitted(self) -> pd.Series:
        eta = self.design.X @ self._beta
        if self.design.offset is not None:
            eta = eta + self.design.offset
        return self.design.per_data_row(eta, "fitted")

    @cached_property
    def residuals(self) -> pd.Series:
        return self.residuals_of("response")

    def residuals_of(self, type: str = "response") -> pd.Series:
        """nlme's ``resid(m, type=)``: 'response', 'pearson' or 'normalized'."""
        r = self.design.y - self.fitted.loc[self.design.rows].to_numpy()
        return self.design.per_data_row(self._normalized(r, self.sigma, type), f"{type} residuals")

    def predict(self, newdata: pd.DataFrame | None = None) -> pd.Series:
        """Xβ̂ (+ offset) for the fitted rows or the rows of ``newdata``."""
        if newdata is None:
            return self.fitted.rename("prediction")
        predictor = Predictor(self.design.spec, self._beta, (), self.design.offset is not None and not self.parsed.offsets)
        return pd.Series(predictor.new_rows(newdata, "~0"), index=newdata.index, name="prediction")

    def coefficients(self) -> pd.DataFrame:
        """Value, Std.Error, t-value and p-value on n − p df (nlme's summary.gls)."""
        t = self.fixef / self.se
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se, "t value": t,
                             "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), self.df_resid)})

    def refit_ml(self) -> GlsResult:
        if not self.REML:
            return self
        model = self.model.with_REML(False)
        return GlsResult(self.parsed, model, model.fit(x0=self.phi), self.data_name)

    def summary(self) -> GlsSummary:
        return GlsSummary(self)

    def __repr__(self) -> str:
        return (f"<Generalized least squares fit by {self.method}: {self.formula}; nobs={self.nobs}, "
                f"logLik={self.loglik:.4f}>")


class GlsSummary:
    """nlme's ``summary(gls)``: criteria, the structures' parameters, coefficients, σ̂."""

    def __init__(self, fit: GlsResult):
        self.fit = fit
        self.coefficients = fit.coefficients()

    def __str__(self) -> str:
        f = self.fit
        head = [f"Generalized least squares fit by {f.method}", f"  Model: {f.formula}"]
        head += [f"  Data: {f.data_name}"] if f.data_name else []
        cells = [f"{v:.7g}" for v in (f.aic, f.bic, f.loglik)]
        w = max(map(len, cells + ["logLik"]))
        criteria = "  " + " ".join(h.rjust(w) for h in ("AIC", "BIC", "logLik")) + "\n  " + " ".join(
            c.rjust(w) for c in cells)
        sigma = f"{f.sigma:.7g}"
        tail = f"Residual standard error: {sigma} \nDegrees of freedom: {f.nobs} total; {f.df_resid} residual"
        table = fixed_effects_block(self.coefficients).replace("Fixed effects:", "Coefficients:", 1)
        return "\n\n".join([*["\n".join(head), criteria], residual_structure_block(f), table, tail]) + "\n"

    __repr__ = __str__
