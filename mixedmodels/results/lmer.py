"""Fitted mixed models and what users ask of them.

``MixedModelResult`` holds what linear and generalized fits share: everything is
derived once from the optimum θ̂, the spherical conditional modes u and the
blocked Cholesky factor at θ̂.  Random-effects terms are reported in lme4's
order (decreasing number of levels, ties in formula order), whatever order the
engine used.  ``LmerResult`` adds the LMM's profiled quantities.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..linalg.blockchol import BlockedCholesky
from ..linalg.covariance import sd_and_correlation
from ..linalg.crossprod import zt_matrix
from .criteria import DesignSizes, InformationCriteria
from ..design.build import Design, with_rows
from ..errors import ConvergenceWarning, DataError, SingularFitWarning, match_arg, warn
from ..formula.parse import ParsedFormula
from ..engine.control import Control
from ..engine.glmm import PirlsModel
from ..engine.lmm import LinearMixedModel, ProfiledLMM
from ..engine.optimizer import OptimumReport
from ..design.covstruct import lower_indices
from ..design.reterm import ReTerm, z_times_b
from ..design.spec import ModelSpec
from ..runtime.threads import with_fitting_threads
from ..inference.bootstrap import bootstrap
from ..inference.confint import confint
from ..inference.fixed_tests import anova_table
from ..inference.influence import cooks_distance, hatvalues, rstudent
from ..inference.kenward_roger import check_applicable, kenward_roger
from ..inference.parameters import parameters
from ..inference.satterthwaite import satterthwaite
from ..inference.simulate import simulate, with_response
from ..io.persistence import save
from ..inference.prediction import Predictor, is_population, population_prediction
from ..report.equations import Equations, equations
from ..report.summary import Summary, print_form
from ..report.tables import AnovaTable, VarCorr
from ..report.tidy import tidy


class RandomEffectsFit(InformationCriteria):
    """What θ̂, the blocked Cholesky factor at θ̂ and the spherical modes u give, without rows:
    θ in lme4's order, the variance components and the conditional modes.

    In-memory and Dask fits share it.  Subclasses set ``spec`` (the model's ``ModelSpec``),
    ``model`` (the engine: its terms in the spec's canonical order and θ's layout),
    ``optimum``, ``_theta_engine`` and ``_factor``, and provide ``_u``, ``sigma`` and ``fixef``.
    """

    #: whether VarCorr has a Residual row (Gaussian LMMs, families with a scale)
    has_residual_row = True
    spec: ModelSpec
    model: ProfiledLMM | PirlsModel
    optimum: OptimumReport
    _theta_engine: np.ndarray
    _factor: BlockedCholesky
    #: what kind of fit this is, as model files and reports name it
    kind: str

    if TYPE_CHECKING:  # supplied by each kind of fit

        @property
        @abstractmethod
        def _u(self) -> list[np.ndarray]:
            """Spherical conditional modes u per term (engine order)."""

        @property
        @abstractmethod
        def fixef(self) -> pd.Series:
            """Fixed-effect estimates."""

        @property
        @abstractmethod
        def sigma(self) -> float:
            """Residual standard deviation (1 for families without a scale)."""

        @property
        @abstractmethod
        def deviance(self) -> float:
            """lme4's deviance of the fit."""

        @property
        @abstractmethod
        def method(self) -> str:
            """How the fit was made, in the words of lme4's methTitle."""

    # ----- the terms in lme4's order -------------------------------------------------
    @property
    def control(self) -> Control:
        """The settings the model was fitted with (``mixedmodels.Control``)."""
        return self.model.control

    @property
    def reterms(self) -> list[ReTerm]:
        """The random-effects terms in lme4's order (the spec's report order)."""
        return [self.model.terms[k] for k in self.spec.report_order]

    @cached_property
    def term_groups(self) -> list[str]:
        """Each term's group label in VarCorr: repeats of a factor become 'g.1', 'g.2' (lme4)."""
        seen: dict[str, int] = {}
        labels = []
        for t in self.reterms:
            k = seen.get(t.group, 0)
            labels.append(t.group if k == 0 else f"{t.group}.{k}")
            seen[t.group] = k + 1
        return labels

    def _engine(self, public_index: int) -> int:
        """The canonical (engine) position of the term reported at ``public_index``."""
        return self.spec.report_order[public_index]

    # ----- parameters ------------------------------------------------------------------
    @cached_property
    def theta(self) -> np.ndarray:
        """Relative covariance factors, each term's lower triangle by columns (lme4's order); for a
        structured term (``cs()``, ``ar1()``, ``diag()``) its relative SDs τ and, for cs and ar1, the
        unbounded parameter a of ρ (``mixedmodels.design.covstruct``; ``varcorr`` shows ρ itself)."""
        slices = self.model.theta_slices()
        return np.concatenate([self._theta_engine[slices[k]] for k in self.spec.report_order])

    @property
    def theta_names(self) -> list[str]:
        names = []
        for t in self.reterms:
            if t.structure.structured:
                names += [f"{t.group}.{t.columns[a]}" for a in t.structure.sd_columns(t.p)]
                names += [f"{t.group}.a_rho"] * t.structure.has_rho(t.p)
                continue
            for a, b in zip(*lower_indices(t.p)):
                names.append(f"{t.group}.{t.columns[a]}" if a == b else f"{t.group}.{t.columns[a]}.{t.columns[b]}")
        return names

    @cached_property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor."""
        out: dict[str, int] = {}
        for t in self.reterms:
            out.setdefault(t.group, t.nlevels)
        return out

    @property
    def objective(self) -> float:
        """lme4's objective: the REML criterion of REML fits, else −2 log-likelihood
        (for nAGQ > 1 without the saturated constant, as lme4)."""
        return float(self.optimum.fun)

    @property
    def loglik(self) -> float:
        """Log-likelihood (the REML log-likelihood for REML fits, as lme4's logLik)."""
        return -0.5 * self.objective

    # ----- random effects ----------------------------------------------------------------
    @cached_property
    def _b(self) -> list[np.ndarray]:
        """Conditional modes b = Λu per term (engine order), as (levels, p) arrays."""
        out = []
        for uj, T, t in zip(self._u, self._factor.lambdas, self.model.terms):
            out.append(uj.reshape(t.nlevels, t.p) @ T.T)
        return out

    @cached_property
    def _condvar(self) -> list[np.ndarray]:
        """Conditional covariance of b per level and term (engine order): σ² Λ (LLᵀ)⁻¹ Λᵀ."""
        out = []
        for j, T in enumerate(self._factor.lambdas):
            P = self._factor.conditional_precision_blocks(j)
            out.append(self.sigma**2 * (T @ P @ T.T))
        return out

    @cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects: grouping factor → levels × terms."""
        out: dict[str, pd.DataFrame] = {}
        for i, t in enumerate(self.reterms):
            frame = pd.DataFrame(self._b[self._engine(i)], index=t.levels, columns=list(t.columns))
            out[t.group] = frame if t.group not in out else pd.concat([out[t.group], frame], axis=1)
        return out

    @cached_property
    def ranef_sd(self) -> dict[str, pd.DataFrame]:
        """Conditional standard deviations of the random effects (lme4's condVar)."""
        out: dict[str, pd.DataFrame] = {}
        for i, t in enumerate(self.reterms):
            V = self._condvar[self._engine(i)]
            sd = np.sqrt(np.diagonal(V, axis1=1, axis2=2))
            frame = pd.DataFrame(sd, index=t.levels, columns=list(t.columns))
            out[t.group] = frame if t.group not in out else pd.concat([out[t.group], frame], axis=1)
        return out

    def condvar(self) -> dict[str, np.ndarray]:
        """Conditional covariance of each term's random effects given the data, one p×p block per
        level: (levels × p × p) arrays, levels and columns as in ``ranef``, keyed as VarCorr's
        groups ('Subject', or 'Subject', 'Subject.1' for the two terms of ``(Days || Subject)``).

        lme4's ``attr(ranef(m, condVar = TRUE)$g, "postVar")`` (stored p × p × levels there).
        """
        return {label: self._condvar[self._engine(i)].copy() for i, label in enumerate(self.term_groups)}

    @cached_property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Per-level coefficients: fixed effects plus that level's random effects."""
        out = {}
        for group, re in self.ranef.items():
            frame = pd.DataFrame(np.tile(self.fixef.to_numpy(), (len(re), 1)), index=re.index, columns=self.fixef.index)
            for col in re.columns:
                if col in frame.columns:
                    frame[col] = frame[col] + re[col]
                else:
                    frame[col] = re[col]
            first = [c for c in frame.columns if c == "(Intercept)"]  # lme4 puts the intercept first
            out[group] = frame[first + [c for c in frame.columns if c not in first]]
        return out

    @cached_property
    def covariances(self) -> list[np.ndarray]:
        """Covariance matrix σ² TTᵀ of each term's random effects (lme4's order)."""
        return [self.sigma**2 * (T @ T.T) for T in (self._factor.lambdas[k] for k in self.spec.report_order)]

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components: the rows of lme4's ``as.data.frame(VarCorr(m))`` (grp, var1, var2,
        vcov, sdcor) as a DataFrame that prints as ``print(VarCorr(m))``."""
        rows: list[tuple[str, str | None, str | None, float, float]] = []
        structures = {}
        for t, group, S in zip(self.reterms, self.term_groups, self.covariances):
            sd, R = sd_and_correlation(S)
            for a in t.structure.sd_columns(t.p):
                rows.append((group, t.columns[a], None, S[a, a], sd[a]))
            for a, b in t.structure.correlation_pairs(t.p):
                rows.append((group, t.columns[b], t.columns[a], S[a, b], R[a, b]))
            if t.structure.structured:
                structures[group] = t.structure.tag
        if self.has_residual_row:
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        frame = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        # one missing-value marker in every column, as R's NA: the names as strings with NaN
        for column in ("var1", "var2"):
            frame[column] = frame[column].astype("str")
        return VarCorr(frame, structures=structures)

    def is_singular(self, tol: float | None = None) -> bool:
        """True when some θ on a diagonal (a standard deviation, relative to σ) is below ``tol``
        (default: the fit's ``control.check_singular_tol``, lme4's 1e-4), or a structured term's
        correlation ρ is within ``tol`` of its interval's ends."""
        tol = self.model.control.check_singular_tol if tol is None else tol
        return self.model.singular(self._theta_engine, tol)


class MixedModelResult(DesignSizes, RandomEffectsFit):
    """What every fitted in-memory mixed model offers; subclasses supply the fit-specific parts."""

    if TYPE_CHECKING:  # supplied by each kind of fit

        @abstractmethod
        def summary(self) -> Summary:
            """lme4's printed summary."""

        @property
        def _rows_eta(self) -> np.ndarray:
            """The linear predictor η̂ (with the offset) of the rows used."""

        @property
        def residuals(self) -> pd.Series:
            """lme4's default residuals."""

    def __init__(self, parsed: ParsedFormula, model, report: OptimumReport, theta_engine: np.ndarray,
                 factor: BlockedCholesky, data_name: str | None = None):
        self.formula = parsed.text
        self.parsed = parsed
        self.model = model
        self.design: Design = model.design
        self.spec = self.design.spec
        self.optimum = report
        self.data_name = data_name
        self._theta_engine = theta_engine
        self._factor = factor
        spread = different_scales(self.design.X, self.design.xnames)
        hint = f"; predictors are on very different scales ({spread}): rescaling them often helps" if spread else ""
        fit_warnings(report, self.is_singular(), hint)

    # ----- sizes -------------------------------------------------------------------------
    @property
    def df_resid(self) -> int:
        """n minus every estimated parameter (lme4's ``df.residual``)."""
        return self.nobs - self.df

    # ----- variance explained --------------------------------------------------------------
    def random_variances(self) -> dict[str, float]:
        """Variance of each grouping factor's random effects, the mean of zᵢᵀΣzᵢ (Johnson 2014)."""
        per_group: dict[str, float] = {}
        for t, S in zip(self.reterms, self.covariances):
            v = float(np.mean(np.einsum("ia,ab,ib->i", t.matrix, S, t.matrix)))
            per_group[t.group] = per_group.get(t.group, 0.0) + v
        return per_group

    def _variance_parts(self) -> tuple[dict[str, float], float, float]:
        """Per-factor random-effect variance, fixed-effect variance, residual variance.

        As performance, a grouping factor with one level per observation (an observation-level
        random effect) counts as overdispersion: its variance joins the distribution variance
        in the residual instead of the random effects.
        """
        fixed = float(np.var(self.design.X @ self.fixef.to_numpy(), ddof=1)) if self.nobs > 1 else 0.0
        per_group = self.random_variances()
        observation_level = {g for g in per_group if self.ngroups[g] == self.nobs}
        random = {g: v for g, v in per_group.items() if g not in observation_level}
        dispersion = sum(per_group[g] for g in observation_level)
        return random, fixed, self.distribution_variance() + dispersion

    def distribution_variance(self) -> float:
        """The residual (observation-level) variance on the latent scale; σ² for LMMs."""
        return self.sigma**2

    def icc(self, by_group: bool | None = None) -> dict:
        """Intraclass correlation as performance 0.10.2's icc(): adjusted and unadjusted.

        Adjusted = σ²_RE / (σ²_RE + σ²_ε); unadjusted also counts the variance of the
        fixed-effects predictions.  Random slopes enter through the mean of zᵢᵀΣzᵢ
        (Johnson 2014), also for uncorrelated (||) terms.  ``by_group`` adds one
        entry per grouping factor; by default it does when there are several.
        """
        per_group, fixed, resid = self._variance_parts()
        re = sum(per_group.values())
        out: dict = {"adjusted": re / (re + resid), "unadjusted": re / (re + resid + fixed)}
        if len(per_group) > 1 if by_group is None else by_group:
            out["by_group"] = {
                g: {"adjusted": v / (re + resid), "unadjusted": v / (re + resid + fixed)}
                for g, v in per_group.items()
            }
        return out

    def r2(self) -> dict[str, float]:
        """Nakagawa's marginal and conditional R² as performance 0.10.2's r2_nakagawa(); the
        residual variance as in ``icc`` (GLMMs: ``distribution_variance`` plus observation-level
        random effects)."""
        per_group, fixed, resid = self._variance_parts()
        re = sum(per_group.values())
        total = fixed + re + resid
        return {"marginal": fixed / total, "conditional": (fixed + re) / total}

    def save(self, path) -> None:
        """Write the fit to ``path`` without pickle; read it back with ``mixedmodels.load``."""
        save(self, path)

    def __str__(self) -> str:
        """lme4's print(m): print.merMod's short form."""
        return print_form(self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """Jupyter shows the model's summary."""
        return self.summary()._repr_html_()

    # ----- inference -----------------------------------------------------------------------
    def parameters(self) -> pd.Series:
        """Every parameter, one row each: random-effect SDs and correlations, σ, fixed effects."""
        return parameters(self)

    @with_fitting_threads
    def bootstrap(self, nsim: int = 1000, seed: int | None = None, statistic=None, progress: bool | None = None,
                  executor=None):
        """Parametric bootstrap (lme4's bootMer), reproducible by seed; see BootstrapResult.

        ``executor``: a concurrent.futures executor or a dask.distributed Client to spread
        the refits over; the replicates are the same as serially.
        """
        return bootstrap(self, nsim, seed, statistic, progress, executor=executor)

    @with_fitting_threads
    def confint(self, method: str = "wald", level: float = 0.95, nsim: int = 500, seed: int | None = None,
                progress: bool | None = None, executor=None, scale: str = "sd") -> pd.DataFrame:
        """Confidence intervals, one row per parameter: 'wald' (fixed effects), 'profile'
        (lmer and glmer, as lme4; ``scale="variance"`` for variances and covariances, lme4's
        ``prof.scale = "varcov"``) or 'boot' (parametric bootstrap; ``executor`` as in bootstrap)."""
        return confint(self, method, level, nsim, seed, progress, executor=executor, scale=scale)

    # ----- prediction ----------------------------------------------------------------------
    def predict(self, newdata: pd.DataFrame | None = None, re_form: str | None = None,
                allow_new_levels: bool = False, type: str = "response", offset: object = None,
                se_fit: bool = False, interval: str | None = None,
                level: float = 0.95) -> pd.Series | pd.DataFrame:
        """Predictions, as lme4's predict(): all random effects by default, none with
        ``re_form="~0"``, or those of the factors a formula such as ``"~(1|g)"`` names.

        New levels get zero random effects if ``allow_new_levels``, else a DataError.
        ``type`` is "response" (default) or "link" (GLMMs; the same for LMMs).

        ``se_fit=True`` or ``interval="confidence"`` (or ``"prediction"`` for LMMs) give a
        DataFrame (fit, se_fit, lower, upper) for the population part (``re_form="~0"``):
        the uncertainty of β̂ only, as emmeans/ggeffects report it; see population_prediction.
        """
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', not {type!r}")
        if se_fit or interval is not None:
            if not is_population(re_form):
                raise ValueError("standard errors and intervals cover the population part (fixed effects) "
                                 f"only; pass re_form='~0' (got re_form={re_form!r})")
            return population_prediction(self, newdata, type, interval, level, offset)
        if newdata is None:
            eta = self.predictor.fitted_rows(self.design.X, self.model.terms, self.design.offset, re_form)
            return self.design.per_data_row(self.inverse_link(eta) if type == "response" else eta, "prediction")
        eta = self.predictor.new_rows(newdata, re_form, allow_new_levels, offset)
        values = self.inverse_link(eta) if type == "response" else eta
        return pd.Series(values, index=newdata.index, name="prediction")

    @cached_property
    def predictor(self) -> Predictor:
        """What predictions read of the fit: the spec, β̂ and the modes."""
        offset_argument = self.design.offset is not None and not self.parsed.offsets
        return Predictor(self.spec, self.fixef.to_numpy(), tuple(self._b), offset_argument)

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean from the linear predictor: the identity for LMMs."""
        return eta

    def link_derivative(self, eta: np.ndarray) -> np.ndarray:
        """dμ/dη at η: 1 for LMMs."""
        return np.ones_like(eta)

    def simulate(self, nsim: int = 1, seed: int | np.random.Generator | None = None,
                 re_form: str | None = "~0", newdata: pd.DataFrame | None = None,
                 allow_new_levels: bool = False, weights: object = None) -> pd.DataFrame:
        """Simulated responses (lme4's simulate): one column per replicate, reproducible by seed.

        ``re_form="~0"`` draws new random effects; ``None`` keeps the fitted modes.
        ``newdata`` simulates its rows instead of the fitted ones: new random effects for
        each of its levels, or with ``re_form=None`` the fitted modes (new levels at zero
        with ``allow_new_levels``); ``weights`` are its prior weights (binomial trials).
        """
        return simulate(self, nsim, seed, re_form, newdata, allow_new_levels, weights)

    # ----- weights and broom.mixed's augment ------------------------------------------------
    def _prior_weights(self) -> np.ndarray:
        """The prior weights of the rows used (1 without weights)."""
        return np.ones(self.nobs) if self.design.weights is None else self.design.weights

    def _variance(self, mu: np.ndarray) -> np.ndarray:
        """The family's variance function V(μ): 1 for LMMs."""
        return np.ones_like(mu)

    def weights(self, type: str = "prior") -> pd.Series:
        """lme4's ``weights(m, type=)``: 'prior' (the weights given, 1 without; the trials of a
        binomial ``cbind`` response) or 'working' (w (dμ/dη)² / V(μ), the IRLS weights at the fit;
        the prior weights for LMMs)."""
        type = match_arg(type, ("prior", "working"), "type")
        w = self._prior_weights()
        if type == "working":
            eta = self._rows_eta
            w = w * self.link_derivative(eta) ** 2 / self._variance(self.inverse_link(eta))
        return self.design.per_data_row(w, f"{type} weights")

    def augment(self) -> pd.DataFrame:
        """broom.mixed's ``augment(m)``: the model's variables on the rows used, then .fitted
        (link scale), .resid (lme4's default residuals), .hat and .cooksd (lmer fits), .fixed
        (``re.form = NA``), .mu, .offset, .sqrtXwt, .sqrtrwt, .weights, .wtres (Pearson
        residuals) and, for GLMMs, .eta.  The variables are the data's columns the formula
        uses (R shows model-frame terms such as ``cbind(s, f)`` or ``log(y)`` instead)."""
        if self.design.frame is None:
            raise DataError("augment() needs the model's data; this fit holds none (refit it with the data)")
        rows = self.design.rows
        eta = self._rows_eta
        mu, w = self.inverse_link(eta), self._prior_weights()
        v = self._variance(mu)
        out = self.design.frame[model_variables(self.design.frame.columns, self.formula)].copy()
        if self.design.weights is not None and not self.parsed.response.replace(" ", "").startswith("cbind("):
            out["(weights)"] = self.design.weights  # a cbind response's trials are not a weights argument
        if self.predictor.offset_argument:
            out["(offset)"] = self.design.offset
        out[".fitted"] = eta
        out[".resid"] = self.residuals.loc[rows].to_numpy()
        for name, values in self._influence_columns().items():
            out[name] = values.loc[rows].to_numpy()
        out[".fixed"] = self.predict(re_form="~0", type="link").loc[rows].to_numpy()
        out[".mu"] = mu
        out[".offset"] = np.zeros(self.nobs) if self.design.offset is None else self.design.offset
        out[".sqrtXwt"] = np.sqrt(w) * self.link_derivative(eta) / np.sqrt(v)
        out[".sqrtrwt"] = np.sqrt(w / v)
        out[".weights"] = w
        out[".wtres"] = np.sqrt(w / v) * (self.design.y - mu)
        if hasattr(self, "family"):
            out[".eta"] = eta
        return out

    def _influence_columns(self) -> dict[str, pd.Series]:
        """augment's .hat and .cooksd: none for GLMMs (lme4's hat matrix "may not make sense" there)."""
        return {}

    def model_performance(self) -> pd.DataFrame:
        """performance's ``model_performance(m)``: AIC, AICc (AIC + 2k(k + 1)/(n − k − 1)), BIC,
        R2_conditional, R2_marginal (``r2()``), ICC (the adjusted ``icc()``), RMSE (of the response
        residuals y − μ̂) and Sigma; without performance's scoring rules (Log_loss, Score_log, ...)."""
        k, n = self.df, self.nobs
        r2 = self.r2()
        rmse = float(np.sqrt(np.mean((self.design.y - self.inverse_link(self._rows_eta)) ** 2)))
        return pd.DataFrame([{
            "AIC": self.aic, "AICc": self.aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else np.nan,
            "BIC": self.bic, "R2_conditional": r2["conditional"], "R2_marginal": r2["marginal"],
            "ICC": self.icc(by_group=False)["adjusted"], "RMSE": rmse, "Sigma": self.sigma,
        }])

    # ----- lme4's getME ----------------------------------------------------------------------
    def get_me(self, name: str) -> object:
        """lme4's ``getME(m, name)`` for its common names, in lme4's term order and layout: 'X'
        (DataFrame), 'Z', 'Zt', 'Lambda', 'Lambdat' (scipy sparse; Z's columns level by level,
        each level's columns together, as lme4), 'y', 'mu', 'u', 'b', 'offset', 'beta' (arrays),
        'theta' and 'fixef' (named Series), 'flist' (each grouping factor), 'cnms' (each term's
        columns, keyed as VarCorr's groups), 'Gp', 'lower', 'sigma', 'REML' (p for REML fits, 0
        otherwise, as lme4), 'is_REML', and the sizes 'n', 'N', 'p', 'q', 'k', 'm', 'n_rtrms',
        'n_rfacs', 'p_i', 'l_i', 'q_i', 'm_i'.  Names abbreviate as R's match.arg allows."""
        name = match_arg(name, GETME_NAMES, "name")
        terms = self.reterms
        lambdas = [self._factor.lambdas[self._engine(i)] for i in range(len(terms))]
        per_term = {"p_i": [t.p for t in terms], "l_i": list(self.ngroups.values()), "q_i": [t.q for t in terms],
                    "m_i": [t.ntheta for t in terms]}
        if name in per_term:
            return np.array(per_term[name])
        sizes = {"n": self.nobs, "N": self.nobs, "p": len(self.fixef), "q": sum(per_term["q_i"]),
                 "k": len(terms), "n_rtrms": len(terms), "n_rfacs": len(self.ngroups), "m": len(self.theta)}
        if name in sizes:
            return sizes[name]
        if name in ("Z", "Zt"):
            Z = sp.hstack([zt_matrix(t).T for t in terms], format="csc")
            return Z if name == "Z" else Z.T.tocsc()
        if name in ("Lambda", "Lambdat"):
            L = sp.block_diag([sp.kron(sp.identity(t.nlevels), T) for t, T in zip(terms, lambdas)], format="csc")
            return L if name == "Lambda" else L.T.tocsc()
        eta = self._rows_eta
        values: dict[str, Callable[[], object]] = {
            "X": lambda: pd.DataFrame(self.design.X, index=self.design.rows, columns=list(self.fixef.index)),
            "y": lambda: self.design.y.copy(),
            "mu": lambda: self.inverse_link(eta),
            "u": lambda: np.concatenate([self._u[self._engine(i)] for i in range(len(terms))]),
            "b": lambda: np.concatenate([self._b[self._engine(i)].ravel() for i in range(len(terms))]),
            "offset": lambda: np.zeros(self.nobs) if self.design.offset is None else self.design.offset.copy(),
            "beta": lambda: self.fixef.to_numpy().copy(),
            "fixef": lambda: self.fixef.copy(),
            "theta": lambda: pd.Series(self.theta, index=self.theta_names),
            "flist": lambda: {group: pd.Categorical.from_codes(t.codes, t.levels)
                              for group, t in reversed({t.group: t for t in reversed(terms)}.items())},
            "cnms": lambda: {label: list(t.columns) for label, t in zip(self.term_groups, terms)},
            "Gp": lambda: np.cumsum([0, *per_term["q_i"]]),
            "lower": lambda: np.concatenate([t.theta_lower() for t in terms]),
            "sigma": lambda: self.sigma,
            "REML": lambda: len(self.fixef) if getattr(self, "REML", False) else 0,
            "is_REML": lambda: bool(getattr(self, "REML", False)),
        }
        return values[name]()

    # ----- tables --------------------------------------------------------------------------
    def equations(self, estimates: bool = False, digits: int = 2) -> Equations:
        """The model as level-1 and level-2 (and level-3) equations and as one combined equation, in
        Raudenbush & Bryk's notation; plain text by ``str()``, LaTeX by ``.latex`` and in Jupyter.
        ``estimates=True`` writes the estimates (``digits`` decimals) instead of the γ and τ symbols."""
        return equations(self, estimates=estimates, digits=digits)

    def tidy(self, effects: str | Sequence[str] = ("ran_pars", "fixed"), conf_int: bool = False,
             conf_level: float = 0.95) -> pd.DataFrame:
        """broom.mixed's tidy(): effects 'fixed', 'ran_pars' (both by default, as broom.mixed),
        'ran_vals', 'ran_coefs'; ``conf_int=True`` adds Wald limits (broom.mixed's conf.int)."""
        return tidy(self, effects, conf_int, conf_level)

    def glance(self) -> pd.DataFrame:
        """One-row model summary as broom.mixed's glance(): nobs, sigma, logLik, AIC, BIC, then
        REMLcrit (REML fits) or lme4's deviance(), then df.residual."""
        return pd.DataFrame([{
            "nobs": self.nobs, "sigma": self.sigma, "logLik": self.loglik, "AIC": self.aic, "BIC": self.bic,
            **self._glance_criterion(), "df.residual": self.df_resid,
        }])

    def _glance_criterion(self) -> dict[str, float]:
        """glance's column between BIC and df.residual: lme4's deviance() of the fit."""
        return {"deviance": self.deviance}


class ProfiledEstimates(RandomEffectsFit):
    """The estimates of a linear mixed model from its profiled deviance's factor at θ̂ (no rows):
    β̂, σ̂, their covariance and the deviance.  ``model`` is a ``ProfiledLMM``."""

    model: ProfiledLMM

    @cached_property
    def _u(self) -> list[np.ndarray]:
        return self._factor.spherical_modes(self._factor.beta())

    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates β̂."""
        return pd.Series(self._factor.beta(), index=list(self.spec.kept_names), name="Estimate")

    @cached_property
    def sigma(self) -> float:
        """Residual standard deviation σ̂."""
        n, p = self.model.n, self.model.p
        dof = n - p if self.model.REML else n
        return float(self._factor.r / np.sqrt(dof))

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of β̂: σ² (L_X L_Xᵀ)⁻¹."""
        V = self.sigma**2 * self._factor.beta_precision_inverse()
        names = list(self.spec.kept_names)
        return pd.DataFrame(V, index=names, columns=names)

    @property
    def method(self) -> str:
        """How the fit was made, in the words of lme4's methTitle: 'REML' or 'maximum likelihood'."""
        return "REML" if self.model.REML else "maximum likelihood"

    @property
    def df(self) -> int:
        """Number of estimated parameters: β, θ and σ."""
        return self.model.p + len(self.theta) + 1

    # ----- likelihood --------------------------------------------------------------------
    @cached_property
    def deviance(self) -> float:
        """−2 log-likelihood at the estimates (for REML fits: the ML deviance at θ̂)."""
        return float(self.model.objective(self._theta_engine, REML=False))

    def coefficients(self) -> pd.DataFrame:
        """Estimate, Std. Error, t value (lme4's summary table)."""
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.se, "t value": self.fixef / self.se})


class LmerResult(ProfiledEstimates, MixedModelResult):
    """A linear mixed model fitted by REML or ML (lme4's ``lmerMod``)."""

    #: what kind of fit this is, as model files and reports name it
    kind = "lmer"
    model: LinearMixedModel  # the rows in memory

    def __init__(self, parsed: ParsedFormula, model: LinearMixedModel, report: OptimumReport, data_name: str | None = None):
        self.REML = model.REML
        super().__init__(parsed, model, report, report.x, model.factor(report.x), data_name)

    def draw_response(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        w = np.ones_like(mu) if self.design.weights is None else self.design.weights
        return mu + self.sigma * rng.standard_normal(mu.shape) / np.sqrt(w)

    def refit(self, y: object) -> LmerResult:
        """The same model fitted to a new response vector (one value per observation used)."""
        model = LinearMixedModel(with_response(self.design, y), REML=self.REML, control=self.control)
        return LmerResult(self.parsed, model, model.fit(theta0=self._theta_engine), self.data_name)

    def refit_ml(self) -> LmerResult:
        """The same model fitted by maximum likelihood (for likelihood-ratio tests); self if ML."""
        if not self.REML:
            return self
        model = self.model.with_REML(False)
        return LmerResult(self.parsed, model, model.fit(theta0=self._theta_engine), self.data_name)

    def refit_rows(self, keep: np.ndarray) -> LmerResult:
        """The same model fitted to a subset of its rows (a boolean mask over the rows used),
        started from this fit's θ: the refits of group-deletion influence."""
        model = LinearMixedModel(with_rows(self.design, keep), REML=self.REML, control=self.control)
        return LmerResult(self.parsed, model, model.fit(theta0=self._theta_engine), self.data_name)

    # ----- fitted values -----------------------------------------------------------------
    @cached_property
    def _fitted_values(self) -> np.ndarray:
        """Xβ̂ + Zb̂ (+ offset) on the rows used."""
        eta = self.design.X @ self.fixef.to_numpy() + z_times_b(self.model.terms, self._b, self.nobs)
        if self.design.offset is not None:
            eta = eta + self.design.offset
        return eta

    @cached_property
    def fitted(self) -> pd.Series:
        """Xβ̂ + Zb̂ (+ offset) for the rows used (all the data's rows, NaN where left out, for
        na_action="exclude")."""
        return self.design.per_data_row(self._fitted_values, "fitted")

    @cached_property
    def residuals(self) -> pd.Series:
        """Response residuals y − fitted."""
        return self.design.per_data_row(self.design.y - self._fitted_values, "residuals")

    def residuals_of(self, type: str = "response") -> pd.Series:
        """lme4's ``residuals(m, type=)`` of an lmer fit: 'response' (default) and 'working' are
        y − ŷ, 'pearson' and 'deviance' √w (y − ŷ); the same without weights."""
        type = match_arg(type, ("response", "pearson", "working", "deviance"), "type")
        r = self.design.y - self._fitted_values
        if self.design.weights is not None and type in ("pearson", "deviance"):
            r = r * np.sqrt(self.design.weights)
        return self.design.per_data_row(r, f"{type} residuals")

    def scaled_residuals(self, type: str = "pearson") -> pd.Series:
        """Residuals divided by σ̂: 'pearson' (default; √w (y − ŷ), what lme4's summary
        tabulates) or 'response' (y − ŷ; lme4's ``residuals(m, scaled = TRUE)``); the same
        without weights."""
        type = match_arg(type, ("pearson", "response"), "type")
        return (self.residuals_of(type) / self.sigma).rename("scaled residuals")

    @property
    def _rows_eta(self) -> np.ndarray:
        return self._fitted_values

    def _influence_columns(self) -> dict[str, pd.Series]:
        return {".hat": self.hatvalues(), ".cooksd": self.cooks_distance()}

    def hatvalues(self) -> pd.Series:
        """Leverages: the diagonal of the hat matrix of ŷ = Xβ̂ + Zb̂ (lme4's hatvalues)."""
        return hatvalues(self)

    def cooks_distance(self) -> pd.Series:
        """Cook's distances as lme4's cooks.distance: (rᵢ/(1 − hᵢ))² hᵢ / (σ̂² p)."""
        return cooks_distance(self)

    def rstudent(self) -> pd.Series:
        """Studentized residuals as lme4's rstudent: rᵢ / (σ̂ √(1 − hᵢ)), rᵢ the Pearson residuals."""
        return rstudent(self)

    @with_fitting_threads
    def satterthwaite(self, L: np.ndarray | None = None) -> pd.DataFrame:
        """lmerTest's t tests with Satterthwaite df: one per coefficient, or per row of L."""
        return satterthwaite(self, L)

    @with_fitting_threads
    def kenward_roger(self, L: np.ndarray | None = None) -> pd.DataFrame:
        """lmerTest's t tests with Kenward-Roger SEs and df: one per coefficient, or per row of L."""
        return kenward_roger(self, L)

    @with_fitting_threads
    def anova(self, type: int | str = 3, ddf: str = "Satterthwaite") -> AnovaTable:
        """F tests of each fixed-effect term, as lmerTest's ``anova(m, type=, ddf=)``.

        ``type`` 1 (sequential), 2 (each term adjusted for all terms not containing it)
        or 3 (default; lmerTest's type III, also on designs with empty cells, noted as
        "Missing cells"), also as "I", "II", "III" or "1", "2", "3"; Satterthwaite (default)
        or Kenward-Roger denominator df, abbreviated as R's match.arg allows ("Sat",
        "Kenward").  For the likelihood-ratio comparison of models use
        ``mixedmodels.anova(m0, m1)``.
        """
        types = {"1": 1, "2": 2, "3": 3, "I": 1, "II": 2, "III": 3}
        type = types[match_arg(type, ("III", "II", "I", "3", "2", "1"), "type")]
        ddf = match_arg(ddf, ("Satterthwaite", "Kenward-Roger"), "ddf")
        if ddf == "Kenward-Roger":
            check_applicable(self)
        return anova_table(self, ddf, type)

    def summary(self, ddf: str = "Satterthwaite"):
        """lmerTest's summary: t tests with Satterthwaite (default) or Kenward-Roger df, or
        lme4's without p-values (``ddf="lme4"``); ``ddf`` may be abbreviated as in R."""
        ddf = match_arg(ddf, ("Satterthwaite", "Kenward-Roger", "lme4"), "ddf")
        if ddf == "Kenward-Roger":
            check_applicable(self)  # ML fits and very large data fail here, not when printing
        return Summary(self, ddf=ddf)

    def _glance_criterion(self) -> dict[str, float]:
        """REMLcrit for REML fits (lme4's deviance() of a REML fit is deprecated), the deviance for ML."""
        return {"REMLcrit": self.objective} if self.REML else {"deviance": self.deviance}



#: the names ``get_me`` knows, lme4's spelling
GETME_NAMES = ("X", "Z", "Zt", "y", "mu", "u", "b", "Gp", "Lambda", "Lambdat", "sigma", "flist", "fixef", "beta",
               "theta", "REML", "is_REML", "n_rtrms", "n_rfacs", "N", "n", "p", "q", "p_i", "l_i", "q_i", "k",
               "m_i", "m", "cnms", "offset", "lower")

def model_variables(columns: Sequence[str], formula: str) -> list[str]:
    """The columns in the order the formula first names them (R's model frame: response, fixed,
    random); columns it does not name (``y ~ .``) follow in their order."""
    def first_use(column: str) -> int:
        found = re.search(r"(?<![\w.`])`?" + re.escape(column) + r"`?(?![\w.`])", formula)
        return found.start() if found else len(formula)
    return sorted(columns, key=first_use)


def fit_warnings(report: OptimumReport, singular: bool, hint: str = "") -> None:
    """A ConvergenceWarning when the optimizer did not converge, a SingularFitWarning for a singular fit."""
    if not report.converged:
        warn(f"model failed to converge: {report.message}{hint}", ConvergenceWarning)
    if singular:
        warn("boundary (singular) fit: a random-effect variance is (near) zero or a "
             "correlation is ±1; see is_singular() and the guide on singular fits", SingularFitWarning)


SCALE_RATIO = 1e3  # lme4's checkScaleX tolerance


def different_scales(X: np.ndarray, names: Sequence[str]) -> str:
    """lme4's checkScaleX: "" unless a predictor column (other than 0/1 columns) has an SD
    beyond [1/1000, 1000] or two such SDs differ by more than a factor 1000; then the
    smallest and largest SD, named, to show which columns to rescale."""
    continuous = np.flatnonzero(~((X == 0.0) | (X == 1.0)).all(axis=0))
    if not continuous.size:
        return ""
    sd = X[:, continuous].std(axis=0, ddof=1) if len(X) > 1 else np.zeros(len(continuous))
    with np.errstate(divide="ignore"):
        log_sd = np.log(sd)
    if np.ptp(log_sd) <= np.log(SCALE_RATIO) and np.abs(log_sd).max() <= np.log(SCALE_RATIO):
        return ""
    low, high = int(np.argmin(sd)), int(np.argmax(sd))
    shown = [(names[continuous[j]], sd[j]) for j in dict.fromkeys((low, high))]
    return "SD " + ", ".join(f"{name!r} {value:.3g}" for name, value in shown)
