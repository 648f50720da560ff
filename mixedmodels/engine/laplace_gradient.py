"""The analytic gradient of the GLMM's Laplace deviance in (θ, β).

With η = Xβ + ZΛu (+ offset), s the score of −½ deviance in η and w the expected
information (``rows.score_and_information``), the Laplace deviance is

    D(θ, β) = −2 log p(y | η*) + ‖u*‖² + log |M|,   M = ΛᵀZᵀ W ZΛ + I,

at the modes u*, where g(u) = ΛᵀZᵀ s(η) − u = 0, and W at them.  Write −2 log p as
the penalised deviance's kernel plus R(η) (a constant of y, or for families with a
dispersion φ = deviance / n, R = Σ −2 log f(y | μ, φ) − deviance).  Then:

* the penalised deviance is stationary in u at u*: its derivative is the partial one,
  ∂/∂β = −2 Xᵀs and ∂/∂θₖ = −2 sᵀ Z (∂Λ/∂θₖ) u*;
* log |M| at fixed W gives tr(M⁻¹ dM), the LMM's trace terms (``gradient.logdet_traces``
  on the selected inverse S of M);
* R and W change with η: Σᵢ aᵢ dηᵢ with aᵢ = hᵢ w'(ηᵢ) + ∂R/∂ηᵢ, hᵢ = zᵢᵀΛ M⁻¹ Λᵀzᵢ the
  leverages (from S on ZᵀZ's pattern), ∂R/∂ηᵢ = −2sᵢ (1/φ + Σⱼ ∂(−2 log fⱼ)/∂φ / n − 1)
  (−2 log f is φ⁻¹ times the deviance in μ, up to terms in φ).

The modes move with (θ, β): dη = X dβ + Z dΛ u* + ZΛ du*, du* = H⁻¹ ∂g with H =
ΛᵀZᵀ W_obs ZΛ + I, W_obs = −∂s/∂η the observed information (W itself for a canonical
link), ∂g = dΛᵀZᵀs − ΛᵀZᵀ W_obs (X dβ + Z dΛ u*).  By the adjoint, one solve
v = H⁻¹ ΛᵀZᵀ a serves every parameter: with ã = a − W_obs ZΛv,

    Σᵢ aᵢ dηᵢ = ãᵀ (X dβ + Z dΛ u*) + sᵀ Z dΛ v.

Cost: the selected inverse (about one factorisation), one pass over the rows, and
for a non-canonical link one more factorisation (of H).  The modes must be those of
PIRLS with β fixed, at the expected information's factor (``PirlsModel.pirls``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..design.reterm import TermSet
from ..linalg.blockchol import BlockedCholesky, factorize
from ..linalg.crossprod import Crossproducts
from .gradient import GradientPlan, SelectedInverse, logdet_traces, selected_inverse, theta_gradient
from .rows import InMemoryRows, expected_information_slope, score_and_information


def laplace_gradient(terms: TermSet, rows: InMemoryRows, theta: np.ndarray, u: list[np.ndarray], eta: np.ndarray,
                     mu: np.ndarray, L: BlockedCholesky, A: Crossproducts, dispersion: float | None) -> np.ndarray:
    """∂D/∂(θ, β) at the modes u (η and μ there) of PIRLS with β fixed; L the factor of M from the
    crossproducts A at the expected information; ``dispersion`` φ where −2 log f has one (else
    −2 log f is the deviance kernel plus a constant of y)."""
    fam, y, prior = rows.family, rows.y, rows.prior_weights
    T = terms.lambdas(theta)
    s, _, w_observed = score_and_information(fam, y, prior, eta, mu)
    plan = GradientPlan.from_crossproducts(A)
    S = selected_inverse(L, plan, plan.ends[-1])
    a = leverages(S, plan, terms, T) * expected_information_slope(fam, prior, eta, mu)
    if dispersion is not None:
        slope = fam.minus_two_loglik_dispersion_deriv(y, mu, prior, dispersion).sum() / len(y)
        a -= 2 * s * (1 / dispersion + slope - 1)
    H = L if fam.canonical else observed_factor(rows, w_observed, T)
    v = H.solve_z([_lam_t_zt(zt, a, Ti) for zt, Ti in zip(rows.build.zts, T)])
    zlv = rows.random_part([vj.reshape(-1, Ti.shape[0]) @ Ti.T for vj, Ti in zip(v, T)])
    adjoint = a - w_observed * zlv - 2 * s  # ã − 2s: the modes' and the penalised deviance's weights of ∂η|u
    G = []
    for zt, Ti, uj, vj, D in zip(rows.build.zts, T, u, v, logdet_traces(S, plan, T)):
        pi = Ti.shape[0]
        G.append((zt @ adjoint).reshape(-1, pi).T @ uj.reshape(-1, pi)
                 + (zt @ s).reshape(-1, pi).T @ vj.reshape(-1, pi) + 2.0 * D.T)
    return np.concatenate([theta_gradient(terms, theta, G), rows.X.T @ adjoint])


def observed_factor(rows: InMemoryRows, w_observed: np.ndarray, T: list[np.ndarray]) -> BlockedCholesky:
    """The factor of H = ΛᵀZᵀ W_obs ZΛ + I, its response row a placeholder (zero, with unit norm)."""
    A = rows.build(np.zeros((len(w_observed), 1)), w_observed)
    return factorize(replace(A, xx=np.ones((1, 1))), T, 0)


def leverages(S: SelectedInverse, plan: GradientPlan, terms: TermSet, T: list[np.ndarray]) -> np.ndarray:
    """hᵢ = zᵢᵀ Λ M⁻¹ Λᵀ zᵢ for each row: its blocks of M⁻¹ are on ZᵀZ's pattern, which S holds."""
    first, *rest = terms.terms
    a0 = first.matrix @ T[0]  # row i: (T₀ᵀ zᵢ₀)ᵀ
    h = np.einsum("ia,iab,ib->i", a0, S.S00[first.codes], a0)
    if not rest:
        return h
    at = (first.codes[:, None] * first.p + np.arange(first.p))[:, None, :]
    idx = np.hstack([plan.ends[j] + t.codes[:, None] * t.p + np.arange(t.p) for j, t in enumerate(rest)])
    aR = np.hstack([t.matrix @ Tj for t, Tj in zip(rest, T[1:])])
    h += 2 * np.einsum("ia,iab,ib->i", aR, S.SR0[idx[:, :, None], at], a0)
    h += np.einsum("ia,iab,ib->i", aR, S.SRR[idx[:, :, None], idx[:, None, :]], aR)
    return h


def _lam_t_zt(zt, a: np.ndarray, Ti: np.ndarray) -> np.ndarray:
    """Λᵢᵀ Zᵢᵀ a, level-major."""
    return ((zt @ a).reshape(-1, Ti.shape[0]) @ Ti).ravel()
