"""A fitted generalized linear mixed model (lme4's ``glmerMod``)."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, FamilyError, warn
from ..engine.families import Family, NegativeBinomial
from ..formula.parse import ParsedFormula
from ..design.build import with_rows
from ..engine.glmm import GeneralizedLinearMixedModel, PirlsModel, PirlsStart, PirlsState, final_report
from ..engine.optimizer import OptimumReport
from ..linalg.derivatives import central_difference_jacobian, finite_difference_hessian
from ..runtime.threads import with_fitting_threads
from .lmer import MixedModelResult, RandomEffectsFit
from ..inference.simulate import with_response
from ..report.summary import Summary


class GlmmEstimates(RandomEffectsFit):
    """The estimates of a GLMM from its optimum and the PIRLS modes there (no rows): β̂, the
    covariance of β̂ from the Hessian of the deviance, the z table.  ``model`` is the GLMM engine;
    subclasses set ``family``, ``nAGQ`` and ``_state``."""

    #: parameters estimated outside (θ, β), such as glmer_nb's dispersion θ
    extra_parameters = 0
    model: PirlsModel
    family: Family
    nAGQ: int
    _state: PirlsState  # PIRLS at the optimum

    @property
    def _u(self) -> list[np.ndarray]:
        return self._state.u

    @property
    def _beta(self) -> np.ndarray:
        return self._state.beta

    @property
    def pirls_state(self) -> PirlsState:
        """PIRLS at the optimum: the modes u, β and the factor (what a model file stores)."""
        return self._state

    @cached_property
    def sigma(self) -> float:
        """Residual scale as lme4's sigma(): 1 for binomial and Poisson; for families with a
        dispersion √((Pearson χ² + ‖u‖²)/n), so that 1/σ̂² is lme4's Gamma shape."""
        return float(np.sqrt(self.model.scale(self._state)))

    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self._beta, index=list(self.spec.kept_names), name="Estimate")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of β̂ from the Hessian of the deviance over (θ, β), as lme4 (use.hessian).

        Falls back to the PIRLS system's φ (L_X L_Xᵀ)⁻¹ (β given θ) when the Hessian is
        not positive definite, with a warning.
        """
        names = list(self.spec.kept_names)
        V = self._hessian_vcov() if self.nAGQ > 0 else None
        if V is None:
            V = self._conditional_vcov()
        return pd.DataFrame(V, index=names, columns=names)

    def _hessian_vcov(self) -> np.ndarray | None:
        """2 H⁻¹'s β block, H the Hessian of the deviance: by central differences of its analytic
        gradient where the model has one (``_gradient_hessian``), else the one the convergence check
        computed."""
        m, k = self.model, self.model.ntheta
        H = self._gradient_hessian() if m.has_gradient else self.optimum.hessian
        if H is None or not np.all(np.isfinite(H)):  # a θ at its bound: the β block alone
            x = self.optimum.x
            idx = np.arange(k, len(x))
            start = self._state.start
            Hb = H[k:, k:] if m.has_gradient and H is not None else finite_difference_hessian(
                lambda z: m.deviance(z[:k], z[k:], start), x, self.optimum.fun, idx=idx)
            H = np.zeros((len(x), len(x)))
            H[:k, :k] = np.eye(k)
            H[k:, k:] = Hb
        try:
            V = (2.0 * np.linalg.inv(H))[k:, k:]
            np.linalg.cholesky(V)
            return V
        except np.linalg.LinAlgError:
            warn("the Hessian of the deviance is not positive definite; standard errors "
                 "use the conditional (β given θ) estimate", ConvergenceWarning)
            return None

    @with_fitting_threads
    def _gradient_hessian(self) -> np.ndarray:
        """The Hessian of the deviance over (θ, β) at the optimum by central differences of its
        analytic gradient (2k evaluations, steps 1e-4 of each parameter's size); with a θ at its
        bound, NaN in every θ row and column, and the β block (2p evaluations)."""
        m, k = self.model, self.model.ntheta
        x = self.optimum.x
        start = self._state.start
        h = 1e-4 * np.maximum(np.abs(x), 1.0)
        free = np.arange(len(x)) if np.all(x[:k] - m.theta_lower > h[:k]) else np.arange(k, len(x))
        columns = central_difference_jacobian(lambda z: m.deviance_and_gradient(z[:k], z[k:], start)[1][free],
                                              x, h, free)
        H = np.full((len(x), len(x)), np.nan)
        H[np.ix_(free, free)] = (columns + columns.T) / 2
        return H

    def _conditional_vcov(self) -> np.ndarray:
        m = self.model
        state = m.pirls(self._theta_engine, self._beta, self._state.start)
        return self.sigma**2 * m.beta_factor(self._theta_engine, state).beta_precision_inverse()

    @property
    def df(self) -> int:
        """Number of parameters: β, θ and a dispersion where the family has one."""
        return len(self.fixef) + len(self.theta) + int(self.family.has_dispersion) + self.extra_parameters

    @property
    def deviance(self) -> float:
        return self.objective

    # ----- tables --------------------------------------------------------------------------
    @property
    def method(self) -> str:
        if self.nAGQ == 0:
            return "maximum likelihood (Laplace Approximation, nAGQ = 0)"
        if self.nAGQ == 1:
            return "maximum likelihood (Laplace Approximation)"
        return f"maximum likelihood (Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ})"

    def coefficients(self) -> pd.DataFrame:
        """Estimate, Std. Error, z value, Pr(>|z|)."""
        z = self.fixef / self.se
        return pd.DataFrame({
            "Estimate": self.fixef, "Std. Error": self.se, "z value": z,
            "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z)),
        })


class GlmerResult(GlmmEstimates, MixedModelResult):
    """A GLMM fitted by the Laplace approximation, adaptive quadrature, or nAGQ = 0."""

    #: what kind of fit this is, as model files and reports name it
    kind = "glmer"
    model: GeneralizedLinearMixedModel  # the rows in memory

    def __init__(self, parsed: ParsedFormula, model: GeneralizedLinearMixedModel, report: OptimumReport,
                 data_name: str | None = None, start: PirlsStart | None = None):
        """``start``: where PIRLS starts for the modes at the optimum (default: where the model's fit ended)."""
        k = model.ntheta
        theta = report.x[:k]
        beta = report.x[k:] if model.nAGQ > 0 else None
        state: PirlsState = model.pirls(theta, beta, start)
        self.family = model.family
        self.nAGQ = model.nAGQ
        self._state = state
        self.has_residual_row = model.family.has_dispersion
        super().__init__(parsed, model, report, theta, state.L, data_name)
        self._warn_separation()

    # ----- fitted values and residuals ---------------------------------------------------
    @property
    def linear_predictor(self) -> pd.Series:
        return self.design.per_data_row(self._state.rows_eta, "eta")

    @cached_property
    def fitted(self) -> pd.Series:
        """Fitted means μ̂ on the response scale."""
        return self.design.per_data_row(self._state.rows_mu, "fitted")

    @property
    def _rows_eta(self) -> np.ndarray:
        return self._state.rows_eta

    def _prior_weights(self) -> np.ndarray:
        return self.model.prior_weights

    def _variance(self, mu: np.ndarray) -> np.ndarray:
        return self.family.variance(mu)

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        return self.family.link.inverse(eta)

    def link_derivative(self, eta: np.ndarray) -> np.ndarray:
        """dμ/dη at η (the family's link)."""
        return self.family.link.mu_eta(eta)

    def draw_response(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.family.sample(mu, self.model.prior_weights, self.sigma**2, rng)

    def refit(self, y: object) -> GlmerResult:
        """The same model fitted to a new response (proportions for binomial with trials)."""
        model = GeneralizedLinearMixedModel(with_response(self.design, y), self.family, nAGQ=self.nAGQ,
                                            control=self.control)
        stages = model.fit(start=self.optimum.x) if self.nAGQ > 0 else model.fit()
        refitted = GlmerResult(self.parsed, model, final_report(*stages), self.data_name)
        refitted.extra_parameters = self.extra_parameters
        return refitted

    def refit_rows(self, keep: np.ndarray) -> GlmerResult:
        """The same model fitted to a subset of its rows (a boolean mask over the rows used), started
        from this fit's (θ, β): the refits of group-deletion influence.  With
        ``Control(laplace="lme4")`` both stages run, as in lme4, whose Laplace deviance depends on
        where stage 1 ends."""
        model = GeneralizedLinearMixedModel(with_rows(self.design, keep), self.family, nAGQ=self.nAGQ,
                                            control=self.control)
        warm = self.nAGQ > 0 and self.control.laplace == "exact"
        stages = model.fit(start=self.optimum.x) if warm else model.fit()
        return GlmerResult(self.parsed, model, final_report(*stages), self.data_name)

    def residuals_of(self, type: str = "deviance") -> pd.Series:
        """Residuals of type 'deviance' (default, as R), 'pearson', 'response' or 'working'."""
        r = glmm_residuals(type, self.family, self.design.y, self._state.rows_eta, self.model.prior_weights)
        return self.design.per_data_row(r, f"{type} residuals")

    @property
    def residuals(self) -> pd.Series:
        """Deviance residuals (R's default for GLMMs)."""
        return self.residuals_of("deviance")

    def _glance_criterion(self) -> dict[str, float]:
        """glance's deviance: lme4's deviance() of a glmer fit, the sum of squared deviance residuals."""
        r = glmm_residuals("deviance", self.family, self.design.y, self._state.rows_eta, self.model.prior_weights)
        return {"deviance": float(np.sum(r**2))}

    def scaled_residuals(self, type: str = "deviance") -> pd.Series:
        """Residuals of ``type`` divided by σ̂: lme4's ``residuals(m, type, scaled = TRUE)``, whose
        default is deviance residuals; the summary tabulates ``type="pearson"``."""
        return self.residuals_of(type) / self.sigma

    # ----- variance explained --------------------------------------------------------------
    def distribution_variance(self) -> float:
        """The latent-scale distribution variance as performance 0.10.2 (insight 0.19) computes it
        (Nakagawa, Johnson & Schielzeth 2017): binomial π²/3 (logit), 1 (probit), π²/6 (cloglog);
        Poisson and negative binomial with the log link ln(1 + 1/μ₀ [+ 1/θ]), μ₀ = exp(intercept)
        of the null model (``null_model``), with the sqrt link 0.25; Gamma σ̂²; other families σ̂
        (as performance)."""
        fam, link = self.family.name, self.family.link.name
        if fam == "binomial":
            return {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}[_supported_link(fam, link, (
                "logit", "probit", "cloglog"))]
        if fam in ("poisson", "negative.binomial"):
            if _supported_link(fam, link, ("log", "sqrt")) == "sqrt":
                return 0.25
            mu0 = float(np.exp(self.null_model.fixef.iloc[0]))
            overdispersion = 1 / self.family.theta if isinstance(self.family, NegativeBinomial) else 0.0
            return float(np.log1p(1 / mu0 + overdispersion))
        if fam == "Gamma":
            return self.sigma**2
        return self.sigma

    @cached_property
    def null_model(self) -> GlmerResult:
        """The model with only an intercept as fixed part, and the same random effects, family
        (a negative binomial's θ held), weights and offset: insight's ``null_model``."""
        design = replace(self.design, X=np.ones((self.nobs, 1)),
                         spec=replace(self.design.spec, xnames=("(Intercept)",), kept=(0,)))
        parsed = replace(self.parsed, fixed="1", text=" + ".join(
            [f"{self.parsed.response} ~ 1", *(f"offset({o})" for o in self.parsed.offsets),
             *(f"({b.expr} | {b.group_name})" for b in self.parsed.random)]))
        model = GeneralizedLinearMixedModel(design, self.family, nAGQ=self.nAGQ, control=self.control)
        stage1, stage2 = model.fit()
        report = stage2 or stage1
        assert report is not None  # stage 1 runs when no start is given
        return GlmerResult(parsed, model, report, self.data_name)

    def _warn_separation(self) -> None:
        """Fitted probabilities of 0 or 1 with huge coefficients usually mean separation."""
        if self.family.name != "binomial":
            return
        mu = self._state.rows_mu
        extreme = np.asarray((mu < 1e-8) | (mu > 1 - 1e-8))
        big = [n for n, b in self.fixef.items() if abs(b) > 10]
        if extreme.any() and big:
            warn(
                f"fitted probabilities numerically 0 or 1 occurred for {int(extreme.sum())} observations and "
                f"the coefficient(s) {', '.join(map(repr, big))} are very large: the response is probably "
                "(quasi-)perfectly separated by these predictors; consider removing them or a penalised fit",
                ConvergenceWarning,
            )

    def summary(self):
        return Summary(self)


RESIDUAL_TYPES = ("deviance", "pearson", "response", "working")


def check_residual_type(type: str) -> None:
    if type not in RESIDUAL_TYPES:
        raise ValueError(f"type must be 'deviance', 'pearson', 'response' or 'working', not {type!r}")


def glmm_residuals(type: str, family: Family, y: np.ndarray, eta: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """Residuals of one of ``RESIDUAL_TYPES`` from the response, η̂ and the prior weights, as R's."""
    check_residual_type(type)
    mu = family.link.inverse(eta)
    if type == "response":
        return y - mu
    if type == "pearson":
        return (y - mu) * np.sqrt(wt) / np.sqrt(family.variance(mu))
    if type == "deviance":
        return np.sign(y - mu) * np.sqrt(np.maximum(family.deviance_residuals(y, mu, wt), 0))
    return (y - mu) / family.link.mu_eta(eta)


def _supported_link(family: str, link: str, links: tuple[str, ...]) -> str:
    """``link`` when performance has a distribution variance for it, else a FamilyError."""
    if link not in links:
        raise FamilyError(f"performance has no distribution-specific variance for the {family} family with the "
                          f"{link!r} link (only {', '.join(map(repr, links))}); refit with one of those links for "
                          "ICC and R²")
    return link
