"""Profile-likelihood confidence intervals for lmer and glmer fits (lme4's profile/confint).

The deviance is written in the parameters users read — each term's SDs and
correlations (or variances and covariances: lme4's ``prof.scale = "varcov"``), σ
for an LMM, and β — and profiled: for a trial value of one parameter the others
are optimised by BOBYQA, each optimisation starting where the previous one for
that parameter ended.  An LMM's β is profiled out analytically; a GLMM's
Laplace (or AGQ) deviance is evaluated by the GLMM engine's PIRLS at (θ, β), its
modes warm-started, with β among the optimised parameters (as lme4's devfun2).
The interval's ends are where the signed root ζ = ±√(d_profile − d_min) reaches
the normal quantile, found by root-finding on the profile itself (lme4
interpolates a spline through ζ on a grid; the roots agree to its accuracy).
As lme4, REML fits are profiled on the likelihood of their ML refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize as sopt
from scipy import stats

from ..errors import FitError
from .parameters import group_names, parameters, percent_label, variance_name
from ..engine.glmm import WarmPirls, or_inf
from ..engine.optimizer import minimize_bobyqa
from ..linalg.covariance import sd_and_correlation

_LOG_2PI = np.log(2 * np.pi)


SCALES = ("sd", "variance")  # the values of confint's ``scale``


@dataclass(frozen=True)
class _Param:
    """One variance parameter: kind 'sd', 'cor' or 'cov' of term t (engine order) at (a, b), or 'sigma'."""

    kind: str
    term: int = -1
    a: int = 0
    b: int = 0


class DevianceProfile:
    """The deviance of a fit as a function of its variance parameters ψ (SDs, correlations or
    covariances, σ for an LMM) and β: the ML deviance of an lmer fit (β profiled out), the
    Laplace/AGQ deviance of a glmer fit (β among the optimised parameters).

    With ``scale="variance"`` an unstructured term's correlations are replaced by
    covariances; the SDs stay (their profile is the variance's, squared).
    """

    def __init__(self, fit, scale: str = "sd"):
        if scale not in SCALES:
            raise ValueError(f"scale must be 'sd' or 'variance', not {scale!r}")
        self.glmm = getattr(fit, "family", None) is not None
        if self.glmm:
            _check_glmm(fit)
        self.fit = fit if self.glmm else fit.refit_ml()
        model = self.fit.model
        self.model = model
        self.n = model.n
        self.params: list[_Param] = []
        for t_index, t in enumerate(model.terms):  # a structured term's own parameters: its SDs and ρ
            association = "cov" if scale == "variance" and not t.structure.structured else "cor"
            self.params += [_Param("sd", t_index, a, a) for a in t.structure.sd_columns(t.p)]
            self.params += [_Param(association, t_index, a, b) for a, b in t.structure.correlation_pairs(t.p)]
        if not self.glmm:
            self.params.append(_Param("sigma"))
        self.psi_hat = self._psi_from_fit()
        self.beta_hat = self.fit.fixef.to_numpy()
        self.beta_se = self.fit.se.to_numpy()
        self.d_min = self.fit.objective
        if self.glmm:
            self._pirls = WarmPirls(model, self.fit.pirls_state.start)
        self._warm: dict[tuple[str, int], np.ndarray] = {}  # per profiled parameter: the last optimum

    @property
    def sigma_scale(self) -> float:
        """σ, the scale of θ: the ψ entry of an LMM, 1 for a GLMM (no residual SD)."""
        return float(self.psi_hat[-1]) if not self.glmm else 1.0

    def _psi_from_fit(self) -> np.ndarray:
        f = self.fit
        sigma = 1.0 if self.glmm else f.sigma
        covs = [sigma**2 * (T @ T.T) for T in f._factor.lambdas]
        out = []
        for prm in self.params:
            if prm.kind == "sigma":
                out.append(f.sigma)
            elif prm.kind == "cov":
                out.append(covs[prm.term][prm.a, prm.b])
            else:
                sd, R = sd_and_correlation(covs[prm.term])
                corr = R[prm.a, prm.b]  # NaN when a variance is 0: start such a correlation at 0
                out.append(sd[prm.a] if prm.kind == "sd" else (0.0 if np.isnan(corr) else corr))
        return np.array(out)

    def lower_upper(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ψ: SDs ≥ 0, σ > 0, correlations in [−1, 1] (a structure's ρ in its own
        interval), covariances unbounded (an invalid covariance matrix has infinite deviance)."""
        lower, upper = [], []
        for prm in self.params:
            if prm.kind == "cor":
                t = self.model.terms[prm.term]
                lo, hi = t.structure.rho_interval(t.p) if t.structure.structured else (-1.0, 1.0)
            elif prm.kind == "cov":
                lo, hi = -np.inf, np.inf
            else:
                lo, hi = (1e-10 if prm.kind == "sigma" else 0.0), np.inf
            lower.append(lo)
            upper.append(hi)
        return np.array(lower), np.array(upper)

    def theta(self, psi: np.ndarray) -> np.ndarray | None:
        """θ (engine order) from SDs, correlations or covariances (and σ); None if a covariance is not valid."""
        sigma = psi[-1] if not self.glmm else 1.0
        pieces = []
        for t_index, t in enumerate(self.model.terms):
            sd = np.zeros(t.p)
            R = np.eye(t.p)
            for value, prm in zip(psi, self.params):
                if prm.term == t_index and prm.kind == "sd":
                    sd[prm.a] = value
            for value, prm in zip(psi, self.params):
                if prm.term != t_index or prm.kind == "sd":
                    continue
                if prm.kind == "cov":
                    scale = sd[prm.a] * sd[prm.b]
                    if scale == 0:
                        if value != 0:
                            return None
                        continue
                    value = value / scale
                R[prm.a, prm.b] = R[prm.b, prm.a] = value
            if t.structure.structured:
                tau = sd[list(t.structure.sd_columns(t.p))] / sigma
                pieces.append(t.structure.theta_of(tau, R[1, 0] if t.structure.has_rho(t.p) else 0.0, t.p))
                continue
            C = _psd_cholesky(R)
            if C is None:
                return None
            T = C * (sd / sigma)[:, None]  # chol(D R D) = D chol(R)
            rows, cols = np.triu_indices(t.p)[1], np.triu_indices(t.p)[0]
            pieces.append(T[rows, cols])
        return np.concatenate(pieces)

    def deviance(self, psi: np.ndarray, j: int | None = None, b: float = 0.0,
                 beta: np.ndarray | None = None) -> float:
        """The deviance at ψ: an LMM's with β profiled out (or βⱼ fixed at b and the other β
        profiled), a GLMM's at the full β (``beta``)."""
        theta = self.theta(psi)
        if theta is None:
            return np.inf
        if self.glmm:
            return or_inf(lambda: self.model.deviance_from_modes(theta, self._pirls(theta, beta)))
        try:
            F = self.model.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        sigma2 = psi[-1] ** 2
        penalty = F.r**2
        if j is not None:
            penalty += (b - F.beta()[j]) ** 2 / F.beta_precision_inverse()[j, j]
        return F.logdet_z() + self.n * (_LOG_2PI + np.log(sigma2)) + penalty / sigma2 - self.model._log_weights

    def profile(self, k: int | None = None, value: float = 0.0, j: int | None = None, b: float = 0.0) -> float:
        """Minimum deviance with ψₖ = value (or βⱼ = b), over all other parameters.

        A GLMM's free β are optimised in units of their standard errors, β = β̂ + SE·z.
        """
        free = np.ones(len(self.params), dtype=bool)
        if k is not None:
            free[k] = False
        free_beta = np.ones(len(self.beta_hat) if self.glmm else 0, dtype=bool)
        if j is not None and self.glmm:
            free_beta[j] = False
        lower, upper = self.lower_upper()
        nfree = int(free.sum())

        def full(x):
            psi = self.psi_hat.copy()
            psi[free] = x[:nfree]
            if k is not None:
                psi[k] = value
            if not self.glmm:
                return self.deviance(psi, j, b)
            beta = self.beta_hat.copy()
            beta[free_beta] += self.beta_se[free_beta] * x[nfree:]
            if j is not None:
                beta[j] = b
            return self.deviance(psi, beta=beta)

        key = ("psi", k) if k is not None else ("beta", -1 if j is None else j)
        lo = np.concatenate([lower[free], np.full(free_beta.sum(), -np.inf)])
        hi = np.concatenate([upper[free], np.full(free_beta.sum(), np.inf)])
        hat = np.concatenate([self.psi_hat[free], np.zeros(free_beta.sum())])
        start = np.clip(self._warm.get(key, hat), lo + 1e-8, hi - 1e-8)
        if len(start) == 0:
            return full(start)
        control = self.fit.control
        step = np.concatenate([np.maximum(0.1 * np.abs(hat[:nfree]), 0.05), np.full(free_beta.sum(), 0.2)])
        x, fun, _, _ = minimize_bobyqa(full, start, lo, control, upper=hi, ftol_rel=control.profile_ftol_rel,
                                       initial_step=step)
        self._warm[key] = x
        return fun

    def interval(self, which: str, index: int, level: float) -> tuple[float, float]:
        """Lower and upper profile limits of variance parameter ``index`` or fixed effect ``index``."""
        z = stats.norm.ppf(1 - (1 - level) / 2)
        if which == "beta":
            center, scale = self.beta_hat[index], z * self.beta_se[index]  # Wald's limits first
            zeta = lambda x: self.profile(j=index, b=x) - self.d_min
            lo_bound, hi_bound = -np.inf, np.inf
        else:
            center = self.psi_hat[index]
            scale = max(0.25 * abs(center), 1e-3 * max(abs(self.sigma_scale), 1.0))
            zeta = lambda x: self.profile(k=index, value=x) - self.d_min
            lower, upper = self.lower_upper()
            lo_bound, hi_bound = lower[index], upper[index]
        return (_limit(zeta, center, -scale, z**2, lo_bound), _limit(zeta, center, scale, z**2, hi_bound))


def _check_glmm(fit) -> None:
    """Raise unless a glmer fit's deviance is a function of (θ, β) alone that PIRLS evaluates."""
    if fit.nAGQ == 0:
        raise FitError("profile intervals need the deviance in (θ, β): refit with nAGQ=1 (Laplace) or "
                       "use method='boot'")
    if fit.family.has_dispersion or fit.extra_parameters:
        raise FitError(f"profile intervals for the {fit.family.name} family (its dispersion is estimated "
                       "outside the Laplace deviance) are not available; use method='boot'")
    if fit.control.laplace != "exact":
        raise FitError("profile intervals use the exact Laplace deviance; refit with Control(laplace='exact') "
                       "or use method='boot'")


def _limit(excess, center: float, step: float, target: float, bound: float) -> float:
    """Where the deviance excess first reaches ``target`` walking from ``center`` by ``step``.

    The root is found on ζ = √excess, nearly linear in the parameter: each step is
    extrapolated linearly in ζ (at least ×1.2, at most ×4), then Brent's method.
    """
    z = float(np.sqrt(target))
    seen: dict[float, float] = {}

    def zeta(x: float) -> float:
        if x not in seen:
            seen[x] = float(np.sqrt(max(excess(x), 0.0))) - z
        return seen[x]

    inside = center
    for _ in range(60):
        trial = center + step
        if (step < 0 and trial <= bound) or (step > 0 and trial >= bound):
            if zeta(bound) < 0:
                return float(bound)
            trial = bound
        gap = zeta(trial)
        if gap >= 0:
            return float(sopt.brentq(zeta, inside, trial, xtol=1e-6 * max(abs(center), 1.0)))
        inside = trial
        step *= min(max(1.1 * z / (gap + z), 1.2), 4.0) if gap + z > 0 else 4.0
    return float("nan")


def _psd_cholesky(R: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a correlation matrix, allowing ±1 (singular) correlations."""
    try:
        return np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(R)
        if w.min() < -1e-10:
            return None
        _, r = np.linalg.qr((V * np.sqrt(np.clip(w, 0, None))).T)
        return r.T * np.sign(np.diag(r))[None, :] if np.all(np.diag(r) != 0) else r.T


def profile_confint(fit, level: float = 0.95, scale: str = "sd") -> pd.DataFrame:
    """Profile intervals for every parameter, in ``parameters()`` order.

    ``scale="variance"`` (lme4's ``prof.scale = "varcov"``) gives variances ('var_…', the
    SD limits squared, as the profile is the same), covariances ('cov_…', profiled with
    the covariance held) and 'sigma^2' in place of SDs, correlations and σ.
    """
    prof = DevianceProfile(fit, scale)
    # parameters() lists VarCorr rows (lme4's term order) then β; map to the profile's order
    labels = parameter_labels(prof)
    rows = {}
    for k, label in enumerate(labels):
        lo_k, hi_k = prof.interval("psi", k, level)
        rows[label] = (lo_k**2, hi_k**2) if scale == "variance" and prof.params[k].kind in ("sd", "sigma") else (lo_k, hi_k)
    for j, name in enumerate(prof.fit.fixef.index):
        rows[name] = prof.interval("beta", j, level)
    names = [label_on_scale(n, scale, labels) for n in parameters(prof.fit).index]
    lo, hi = percent_label((1 - level) / 2), percent_label(1 - (1 - level) / 2)
    ci = pd.DataFrame([rows[n] for n in names], index=names, columns=[lo, hi])
    if scale == "variance":
        ci.index = [("var_" + n[3:]) if n.startswith("sd_") else ("sigma^2" if n == "sigma" else n) for n in names]
    return ci


def label_on_scale(name: str, scale: str, labels: list[str]) -> str:
    """A parameters() name as the profile labels it: an unstructured term's 'cor_…' is 'cov_…'
    on the variance scale."""
    covariance = "cov_" + name[4:]
    return covariance if scale == "variance" and name.startswith("cor_") and covariance in labels else name


def parameter_labels(prof: DevianceProfile) -> list[str]:
    """parameters()-style names of the profile's variance parameters."""
    fit = prof.fit
    names = group_names(fit)
    group_of = {}
    for i, label in enumerate(fit.term_groups):
        group_of[fit._engine(i)] = names[label]
    out = []
    for prm in prof.params:
        if prm.kind == "sigma":
            out.append("sigma")
            continue
        t = prof.model.terms[prm.term]
        g = group_of[prm.term]
        out.append(variance_name("sd", g, t.columns[prm.a]) if prm.kind == "sd"
                   else variance_name(prm.kind, g, t.columns[prm.b], t.columns[prm.a]))
    return out
