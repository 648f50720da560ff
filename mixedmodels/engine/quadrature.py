"""Adaptive Gauss–Hermite quadrature (nAGQ > 1, one scalar term): the deviance and its gradient in (θ, β).

Groups g are independent.  With t = Λ's one entry, zᵢ the term's value in row i and
dᵢ(η) its deviance residual, group g's integrand (as −2 log) is

    d_g(v) = Σᵢ∈g dᵢ(fᵢ + t zᵢ v) + v²,    fᵢ = xᵢᵀβ (+ offset),

minimised at the conditional mode u*_g (PIRLS with β fixed).  With the nodes z_k and
weights ω_k of ∫ φ, the scale σ_g = (1 + t² W_g)^(−½) (W_g = Σ zᵢ² wᵢ, w the expected
information at the mode: the factor's diagonal) and v_gk = u*_g + σ_g z_k,

    D = Σ_g −2 log Σ_k exp ℓ_gk − 2 log σ_g,   ℓ_gk = log ω_k − ½ d_g(v_gk) + ½ z_k²

(evaluated as d_g(u*) + log|L|² + the log-sum relative to the mode, on lme4's scale).

Gradient.  ∂dᵢ/∂η = −2sᵢ (s the score, ``rows.score_and_information``).  With
p_gk = softmax_k ℓ_gk, S_gk = Σᵢ zᵢ sᵢ(η_gk) and r_gk = t S_gk − v_gk (= ∂ℓ/∂v),

    dD_g = −2 Σ_k p_gk (Σᵢ sᵢ(η_gk)(xᵢ dβ + zᵢ v_gk dt) + r_gk dv_gk) − 2 dσ_g/σ_g,

dv_gk = du*_g + z_k dσ_g.  The mode moves by
du*_g = (−t Σ zᵢ w°ᵢ xᵢ dβ + (Σ zᵢ sᵢ − t u*_g W°_g) dt) / H_g (w° the observed information at
the mode, W°_g = Σ zᵢ² w°ᵢ, H_g = 1 + t² W°_g) and the scale by
dσ_g/σ_g = −½ σ_g² (2t W_g dt + t² Σ zᵢ² w'ᵢ dη*ᵢ), w' = dw/dη (``rows.expected_information_slope``),
dη*ᵢ = xᵢ dβ + zᵢ u*_g dt + t zᵢ du*_g.  Everything is numpy over rows × nodes and groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..design.reterm import ReTerm
from .families import Family
from .rows import expected_information_slope, score_and_information


@dataclass(frozen=True)
class Quadrature:
    """The adaptive rule at the modes u* of one scalar term (Λ's entry t): nodes v_gk per group, η per
    row and node, and each group's log integrands ℓ_gk (relative to the mode's)."""

    term: ReTerm
    t: float
    u: np.ndarray  # u*_g
    sd: np.ndarray  # σ_g
    nodes: np.ndarray  # z_k
    v: np.ndarray  # (groups, nodes)
    eta: np.ndarray  # (rows, nodes)
    mu: np.ndarray  # (rows, nodes)
    base: np.ndarray  # d_g(u*)
    log_integrand: np.ndarray  # ℓ_gk + ½ d_g(u*), (groups, nodes)

    @classmethod
    def at_modes(cls, term: ReTerm, family: Family, y: np.ndarray, prior: np.ndarray, eta: np.ndarray,
                 t: float, u: np.ndarray, sd: np.ndarray, nAGQ: int) -> Quadrature:
        """The rule at the modes u (η there) with scales σ = ``sd``."""
        nodes, weights = np.polynomial.hermite_e.hermegauss(nAGQ)
        weights = weights / np.sqrt(2 * np.pi)
        z = term.matrix[:, 0]
        v = u[:, None] + sd[:, None] * nodes[None, :]
        node_eta = eta[:, None] + (t * z * sd[term.codes])[:, None] * nodes[None, :]
        node_mu = family.link.inverse(node_eta)
        dev = family.deviance_residuals(y[:, None], node_mu, prior[:, None])
        base = group_sums(term, family.deviance_residuals(y, family.link.inverse(eta), prior)) + u**2
        d = group_sums(term, dev) + v**2
        log_integrand = np.log(weights) - 0.5 * (d - base[:, None] - nodes**2)
        return cls(term, t, u, sd, nodes, v, node_eta, node_mu, base, log_integrand)

    def deviance(self) -> float:
        """Σ_g d_g(u*) − 2 log σ_g − 2 log Σ_k exp ℓ_gk (relative to the mode)."""
        top = self.log_integrand.max(axis=1)
        correction = -2 * (top + np.log(np.exp(self.log_integrand - top[:, None]).sum(axis=1)))
        return float(self.base.sum() - 2 * np.log(self.sd).sum() + correction.sum())

    def node_probabilities(self) -> np.ndarray:
        """p_gk = softmax over the nodes of ℓ_gk."""
        p = np.exp(self.log_integrand - self.log_integrand.max(axis=1)[:, None])
        return p / p.sum(axis=1)[:, None]


def group_sums(term: ReTerm, values: np.ndarray) -> np.ndarray:
    """Σᵢ∈g of each row's values (a vector, or rows × columns) per level g of the term."""
    if values.ndim == 1:
        return np.bincount(term.codes, weights=values, minlength=term.nlevels)
    out = np.zeros((term.nlevels, values.shape[1]))
    np.add.at(out, term.codes, values)
    return out


def agq_gradient(rule: Quadrature, family: Family, X: np.ndarray, y: np.ndarray, prior: np.ndarray,
                 eta: np.ndarray, mu: np.ndarray) -> tuple[float, np.ndarray]:
    """∂D/∂(t, β) of the quadrature deviance (module docstring), at the modes (η, μ there) of PIRLS
    with β fixed."""
    term, t, u, sd, codes = rule.term, rule.t, rule.u, rule.sd, rule.term.codes
    z = term.matrix[:, 0]
    s_mode, w, w_observed = score_and_information(family, y, prior, eta, mu)
    s_nodes = score_and_information(family, y[:, None], prior[:, None], rule.eta, rule.mu)[0]
    p = rule.node_probabilities()
    r = t * group_sums(term, z[:, None] * s_nodes) - rule.v
    B = 1 + sd * (p * r * rule.nodes).sum(axis=1)  # −½ ∂(−2 Σ p ℓ)/∂σ · σ, plus the log σ term's 1
    W, W_observed = group_sums(term, z**2 * w), group_sums(term, z**2 * w_observed)
    H = 1 + t**2 * W_observed
    a = (B * sd**2 * t**2)[codes] * z**2 * expected_information_slope(family, prior, eta, mu)  # weights of dη*
    kappa = (-2 * (p * r).sum(axis=1) + t * group_sums(term, a * z)) / H  # of du*, over H
    P = (p[codes] * s_nodes).sum(axis=1)  # Σ_k p sᵢ(η_gk)
    Q = (p[codes] * s_nodes * rule.v[codes]).sum(axis=1)
    d_beta = X.T @ (-2 * P + a - t * kappa[codes] * z * w_observed)
    d_t = (-2 * z @ Q + 2 * t * (B * sd**2 * W).sum() + (a * z) @ u[codes]
           + kappa @ (group_sums(term, z * s_mode) - t * u * W_observed))
    return float(d_t), d_beta
