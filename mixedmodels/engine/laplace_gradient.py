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

The rows enter only through sums (``RowSums``) of two passes, each a function of one
chunk of rows whose results add up (``rows.total``: the in-memory rows are one chunk, a
Dask fit's partitions many): ``leverage_sums`` gives Zᵀ and Xᵀ of s and of h w', and for
a non-canonical link the crossproducts of H; after the solve for v, ``adjoint_sums``
gives Zᵀ and Xᵀ of W_obs ZΛv.  Cost: the selected inverse (about one factorisation), two
passes over the rows, and for a non-canonical link one more factorisation (of H).  The
modes must be those of PIRLS with β fixed, at the expected information's factor
(``PirlsModel.pirls``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..design.reterm import ReTerm, TermSet
from ..linalg.blockchol import BlockedCholesky, factorize
from ..linalg.crossprod import Crossproducts, add_crossproducts
from .gradient import GradientPlan, SelectedInverse, logdet_traces, selected_inverse, theta_gradient
from .rows import InMemoryRows, expected_information_slope, score_and_information


@dataclass
class RowSums:
    """One chunk of rows' share of the gradient: chunks add up (``add_row_sums``)."""

    zt: np.ndarray  # (q, k): Zᵀ of k per-row vectors, the terms' effects stacked level-major
    xt: np.ndarray  # (p, k): Xᵀ of the same vectors
    dispersion_slope: float = 0.0  # Σ ∂(−2 log fᵢ)/∂φ
    observed: Crossproducts | None = None  # [Z 0]ᵀ W_obs [Z 0] for H (non-canonical links)


def add_row_sums(*parts: RowSums) -> RowSums:
    """The sums of several chunks of rows."""
    observed = [part.observed for part in parts if part.observed is not None]
    return RowSums(zt=np.sum([part.zt for part in parts], axis=0), xt=np.sum([part.xt for part in parts], axis=0),
                   dispersion_slope=float(sum(part.dispersion_slope for part in parts)),
                   observed=add_crossproducts(observed) if observed else None)


def leverage_sums(rows: InMemoryRows, point: tuple) -> RowSums:
    """Pass 1 over a chunk at η = Xβ + Zb (+ offset): Zᵀ and Xᵀ of [s, h w'], Σ ∂(−2 log f)/∂φ
    where there is a dispersion φ, and the crossproducts of H for a non-canonical link.

    ``point`` is (β, b, S's blocks, the plan's ``ends``, the Tᵢ, φ or None, (η, μ, s, w_obs) or None)."""
    beta, b, S, ends, T, dispersion, at = point
    fam = rows.family
    eta, mu, s, w_observed = _at_point(rows, beta, b, at)
    hw = leverages(SelectedInverse(*S), ends, rows.terms, list(T)) * expected_information_slope(
        fam, rows.prior_weights, eta, mu)
    slope = 0.0 if dispersion is None else float(
        fam.minus_two_loglik_dispersion_deriv(rows.y, mu, rows.prior_weights, dispersion).sum())
    observed = None if fam.canonical else rows.build(np.zeros((len(eta), 1)), w_observed)
    return _row_sums(rows, np.column_stack([s, hw]), slope, observed)


def adjoint_sums(rows: InMemoryRows, point: tuple) -> RowSums:
    """Pass 2 over a chunk: Zᵀ and Xᵀ of W_obs ZΛv; ``point`` is (β, b, Λv as b, (η, μ, s, w_obs) or None)."""
    beta, b, lv, at = point
    w_observed = _at_point(rows, beta, b, at)[3]
    return _row_sums(rows, (w_observed * rows.random_part(list(lv)))[:, None])


def _at_point(rows: InMemoryRows, beta: np.ndarray, b: tuple, at: tuple | None) -> tuple[np.ndarray, ...]:
    """η, μ, the score s and the observed information of the chunk at (β, b): ``at`` where the
    caller has them (rows in memory: found once for both passes)."""
    if at is not None:
        return at
    eta = rows.linear_predictor(beta, list(b))
    mu = rows.family.link.inverse(eta)
    s, _, w_observed = score_and_information(rows.family, rows.y, rows.prior_weights, eta, mu)
    return eta, mu, s, w_observed


def _row_sums(rows: InMemoryRows, V: np.ndarray, slope: float = 0.0,
              observed: Crossproducts | None = None) -> RowSums:
    return RowSums(zt=np.vstack([zt @ V for zt in rows.build.zts]), xt=rows.X.T @ V,
                   dispersion_slope=slope, observed=observed)


def laplace_gradient(terms: TermSet, rows, theta: np.ndarray, u: list[np.ndarray], beta: np.ndarray,
                     L: BlockedCholesky, A: Crossproducts, dispersion: float | None,
                     at: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """∂D/∂(θ, β) at the modes u of PIRLS with β fixed; L the factor of M from the crossproducts A
    at the expected information; ``dispersion`` φ where −2 log f has one (else −2 log f is the
    deviance kernel plus a constant of y).  ``rows`` give ``total(task, combine, point)``, the sum
    of ``task(chunk, point)`` over their chunks, and ``n``; ``at`` their η and μ at the modes where
    they are in memory (else each chunk computes them)."""
    T = terms.lambdas(theta)
    in_memory = None  # the rows' η, μ, score and observed information, found once for both passes
    if at is not None:
        s_at, _, w_at = score_and_information(rows.family, rows.y, rows.prior_weights, *at)
        in_memory = (*at, s_at, w_at)
    plan = GradientPlan.from_crossproducts(A)
    S = selected_inverse(L, plan, plan.ends[-1])
    b = tuple(terms.random_effects(u, T))
    first = rows.total(leverage_sums, add_row_sums,
                       (beta, b, (S.S00, S.SR0, S.SRR), plan.ends, tuple(T), dispersion, in_memory))
    c = 0.0 if dispersion is None else 1 / dispersion + first.dispersion_slope / rows.n - 1
    zt_s, xt_s = first.zt[:, 0], first.xt[:, 0]
    zt_a, xt_a = first.zt[:, 1] - 2 * c * zt_s, first.xt[:, 1] - 2 * c * xt_s  # Zᵀa, Xᵀa
    zt_s, zt_a = _by_term(terms.terms, zt_s), _by_term(terms.terms, zt_a)
    H = L if first.observed is None else factorize(replace(first.observed, xx=np.ones((1, 1))), T, 0)
    v = H.solve_z([(zj.reshape(-1, Ti.shape[0]) @ Ti).ravel() for zj, Ti in zip(zt_a, T)])
    second = rows.total(adjoint_sums, add_row_sums, (beta, b, tuple(terms.random_effects(v, T)), in_memory))
    # ã − 2s: the modes' and the penalised deviance's weights of ∂η|u
    zt_adjoint = [a - 2 * s - r for a, s, r in zip(zt_a, zt_s, _by_term(terms.terms, second.zt[:, 0]))]
    G = []
    for zj, sj, Ti, uj, vj, D in zip(zt_adjoint, zt_s, T, u, v, logdet_traces(S, plan, T)):
        pi = Ti.shape[0]
        G.append(zj.reshape(-1, pi).T @ uj.reshape(-1, pi) + sj.reshape(-1, pi).T @ vj.reshape(-1, pi) + 2.0 * D.T)
    return np.concatenate([theta_gradient(terms, theta, G), xt_a - 2 * xt_s - second.xt[:, 0]])


def leverages(S: SelectedInverse, ends: tuple[int, ...], terms: tuple[ReTerm, ...], T: list[np.ndarray]) -> np.ndarray:
    """hᵢ = zᵢᵀ Λ M⁻¹ Λᵀ zᵢ for each row: its blocks of M⁻¹ are on ZᵀZ's pattern, which S holds
    (``ends``: where each term after the first starts in S's rows, ``GradientPlan.ends``)."""
    first, *rest = terms
    a0 = first.matrix @ T[0]  # row i: (T₀ᵀ zᵢ₀)ᵀ
    h = np.einsum("ia,iab,ib->i", a0, S.S00[first.codes], a0)
    if not rest:
        return h
    at = (first.codes[:, None] * first.p + np.arange(first.p))[:, None, :]
    idx = np.hstack([ends[j] + t.codes[:, None] * t.p + np.arange(t.p) for j, t in enumerate(rest)])
    aR = np.hstack([t.matrix @ Tj for t, Tj in zip(rest, T[1:])])
    h += 2 * np.einsum("ia,iab,ib->i", aR, S.SR0[idx[:, :, None], at], a0)
    h += np.einsum("ia,iab,ib->i", aR, S.SRR[idx[:, :, None], idx[:, None, :]], aR)
    return h


def _by_term(terms: tuple[ReTerm, ...], x: np.ndarray) -> list[np.ndarray]:
    """A vector over all random effects split into each term's."""
    return np.split(x, np.cumsum([t.q for t in terms])[:-1])
