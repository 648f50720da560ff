"""Profile-likelihood confidence intervals for linear mixed models (lme4's profile/confint).

The ML deviance is written in the parameters users read — each term's SDs and
correlations, σ, and β — and profiled: for a trial value of one parameter the
others are optimised (β analytically, the rest by BOBYQA).  The interval's ends
are where the signed root ζ = ±√(d_profile − d_min) reaches the normal quantile.
As lme4, REML fits are profiled on the likelihood of their ML refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize as sopt
from scipy import stats

from ..errors import FitError
from .parameters import parameters, percent_label
from ..engine.optimizer import minimize_bobyqa
from ..linalg.covariance import sd_and_correlation

_LOG_2PI = np.log(2 * np.pi)


@dataclass(frozen=True)
class _Param:
    """One variance parameter: kind 'sd' or 'cor' of term t (engine order) at (a, b), or 'sigma'."""

    kind: str
    term: int = -1
    a: int = 0
    b: int = 0


class LmmProfile:
    """The ML deviance of an LMM as a function of (SDs, correlations, σ) and a fixed βⱼ."""

    def __init__(self, fit):
        self.fit = fit.refit_ml()
        model = self.fit.model
        self.model = model
        self.n = model.n
        self.params: list[_Param] = []
        for t_index, t in enumerate(model.terms):  # a structured term's own parameters: its SDs and ρ
            self.params += [_Param("sd", t_index, a, a) for a in t.structure.sd_columns(t.p)]
            self.params += [_Param("cor", t_index, a, b) for a, b in t.structure.correlation_pairs(t.p)]
        self.params.append(_Param("sigma"))
        self.psi_hat = self._psi_from_fit()
        self.d_min = self.fit.objective

    def _psi_from_fit(self) -> np.ndarray:
        f = self.fit
        covs = [f.sigma**2 * (T @ T.T) for T in f._factor.lambdas]
        out = []
        for prm in self.params:
            if prm.kind == "sigma":
                out.append(f.sigma)
            else:
                sd, R = sd_and_correlation(covs[prm.term])
                corr = R[prm.a, prm.b]  # NaN when a variance is 0: start such a correlation at 0
                out.append(sd[prm.a] if prm.kind == "sd" else (0.0 if np.isnan(corr) else corr))
        return np.array(out)

    def lower_upper(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ψ: SDs ≥ 0, σ > 0, correlations in [−1, 1] (a structure's ρ in its own interval)."""
        lower, upper = [], []
        for prm in self.params:
            if prm.kind == "cor":
                t = self.model.terms[prm.term]
                lo, hi = t.structure.rho_interval(t.p) if t.structure.structured else (-1.0, 1.0)
            else:
                lo, hi = (1e-10 if prm.kind == "sigma" else 0.0), np.inf
            lower.append(lo)
            upper.append(hi)
        return np.array(lower), np.array(upper)

    def theta(self, psi: np.ndarray) -> np.ndarray | None:
        """θ (engine order) from SDs, correlations and σ; None if a covariance is not valid."""
        sigma = psi[-1]
        pieces = []
        for t_index, t in enumerate(self.model.terms):
            sd = np.zeros(t.p)
            R = np.eye(t.p)
            for value, prm in zip(psi, self.params):
                if prm.term != t_index:
                    continue
                if prm.kind == "sd":
                    sd[prm.a] = value
                else:
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

    def deviance(self, psi: np.ndarray, j: int | None = None, b: float = 0.0) -> float:
        """ML deviance at ψ with β profiled out, or with βⱼ fixed at b and the other β profiled."""
        theta = self.theta(psi)
        if theta is None:
            return np.inf
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
        """Minimum deviance with ψₖ = value (or βⱼ = b), over all other parameters."""
        free = np.ones(len(self.params), dtype=bool)
        if k is not None:
            free[k] = False
        lower, upper = self.lower_upper()

        def full(x):
            psi = self.psi_hat.copy()
            psi[free] = x
            if k is not None:
                psi[k] = value
            return self.deviance(psi, j, b)

        start = np.clip(self.psi_hat[free], lower[free] + 1e-8, upper[free] - 1e-8)
        control = self.fit.control
        _, fun, _, _ = minimize_bobyqa(full, start, lower[free], control, upper=upper[free],
                                       ftol_rel=control.profile_ftol_rel,
                                       initial_step=np.maximum(0.1 * np.abs(start), 0.05))
        return fun

    def interval(self, which: str, index: int, level: float) -> tuple[float, float]:
        """Lower and upper profile limits of variance parameter ``index`` or fixed effect ``index``."""
        z = stats.norm.ppf(1 - (1 - level) / 2)
        if which == "beta":
            center, scale = self.fit.fixef.iloc[index], self.fit.se.iloc[index]
            zeta = lambda x: self.profile(j=index, b=x) - self.d_min
            lo_bound, hi_bound = -np.inf, np.inf
        else:
            center = self.psi_hat[index]
            scale = max(0.25 * abs(center), 1e-3 * max(abs(self.psi_hat[-1]), 1.0))
            zeta = lambda x: self.profile(k=index, value=x) - self.d_min
            lower, upper = self.lower_upper()
            lo_bound, hi_bound = lower[index], upper[index]
        return (_limit(zeta, center, -scale, z**2, lo_bound), _limit(zeta, center, scale, z**2, hi_bound))


def _limit(excess, center: float, step: float, target: float, bound: float) -> float:
    """Where the deviance excess first reaches ``target`` walking from ``center`` by ``step``."""
    inside = center
    for _ in range(60):
        trial = center + step
        if (step < 0 and trial <= bound) or (step > 0 and trial >= bound):
            if excess(bound) < target:
                return float(bound)
            trial = bound
        if excess(trial) >= target:
            return float(sopt.brentq(lambda x: excess(x) - target, inside, trial, xtol=1e-6 * max(abs(center), 1.0)))
        inside = trial
        step *= 1.6
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


def profile_confint(fit, level: float = 0.95) -> pd.DataFrame:
    """Profile intervals for every parameter, in ``parameters()`` order."""
    if getattr(fit, "family", None) is not None:
        raise FitError("profile intervals are available for lmer fits; use method='boot' or 'wald' for glmer")
    prof = LmmProfile(fit)
    names = parameters(prof.fit).index
    # parameters() lists VarCorr rows (lme4's term order) then β; map to the profile's order
    labels = parameter_labels(prof)
    rows = {}
    for k, label in enumerate(labels):
        rows[label] = prof.interval("psi", k, level)
    for j, name in enumerate(prof.fit.fixef.index):
        rows[name] = prof.interval("beta", j, level)
    lo, hi = percent_label((1 - level) / 2), percent_label(1 - (1 - level) / 2)
    return pd.DataFrame([rows[n] for n in names], index=names, columns=[lo, hi])


def parameter_labels(prof: LmmProfile) -> list[str]:
    """parameters()-style names of the profile's variance parameters."""
    fit = prof.fit
    group_of = {}
    for i, label in enumerate(fit.term_groups):
        group_of[fit._engine(i)] = label
    out = []
    for prm in prof.params:
        if prm.kind == "sigma":
            out.append("sigma")
            continue
        t = prof.model.terms[prm.term]
        g = group_of[prm.term]
        out.append(f"sd_{t.columns[prm.a]}|{g}" if prm.kind == "sd" else f"cor_{t.columns[prm.b]}.{t.columns[prm.a]}|{g}")
    return out
