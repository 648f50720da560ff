"""Kenward–Roger small-sample inference for the fixed effects of an LMM (lmerTest / pbkrtest).

Kenward & Roger (1997, Biometrics 53:983) as Halekoh & Højsgaard (2014, JSS 59(9))
implement it in pbkrtest, which lmerTest's ``ddf = "Kenward-Roger"`` calls.

The marginal covariance is written linearly in the variance parameters φ,

    V = Σₖ φₖ Gₖ + σ² W⁻¹,

one Gₖ per element (a, b), a ≥ b, of each term's covariance σ²TTᵀ:
Gₖ = Z_a Z_bᵀ + Z_b Z_aᵀ (a ≠ b) or Z_a Z_aᵀ (a = b), Z_a the term's n×ℓ level
indicators times column a of its raw model matrix; the last is the residual
(W the prior weights).  With Φ = (XᵀV⁻¹X)⁻¹,

    Pₖ = −XᵀV⁻¹GₖV⁻¹X,   Qₖₗ = XᵀV⁻¹GₖV⁻¹GₗV⁻¹X,
    Iₖₗ = tr(V⁻¹GₖV⁻¹Gₗ) − 2 tr(ΦQₖₗ) + tr(ΦPₖΦPₗ)   (twice REML's expected information),
    𝒲 = 2 I⁻¹   (the asymptotic covariance of φ̂),
    Λ = Φ [Σₖₗ 𝒲ₖₗ (Qₖₗ − PₖΦPₗ)] Φ,   Φ_A = Φ + 2Λ

(the second-derivative terms Rₖₗ vanish as V is linear in φ).  For Lβ = 0, L of
rank q, Θ = Lᵀ(LΦLᵀ)⁻¹L:

    A₁ = Σₖₗ 𝒲ₖₗ tr(ΘΦPₖΦ) tr(ΘΦPₗΦ),   A₂ = Σₖₗ 𝒲ₖₗ tr(ΘΦPₖΦΘΦPₗΦ),
    B = (A₁ + 6A₂)/(2q),   g = ((q+1)A₁ − (q+4)A₂)/((q+2)A₂),
    c₁ = g/(3q + 2(1−g)),  c₂ = (q−g)/(3q + 2(1−g)),  c₃ = (q+2−g)/(3q + 2(1−g)),
    E* = 1/(1 − A₂/q),   V* = (2/q)(1 + c₁B)/((1 − c₂B)²(1 − c₃B)),
    ρ = V*/(2E*²),   m = 4 + (q+2)/(qρ − 1),   λ = m/(E*(m − 2)),

and F = λ (Lβ̂)ᵀ(LΦ_ALᵀ)⁻¹(Lβ̂)/q ~ F(q, m).  A single coefficient's t test uses
the adjusted standard error √(lᵀΦ_A l) and m with q = 1 (unscaled, as lmerTest).

Prior weights: pbkrtest 0.5.2 builds the residual part of V as σ²I whatever the
weights, while its Φ (lme4's vcov) uses them; here V has σ²W⁻¹ throughout, so
weighted fits differ from lmerTest's numbers (they agree with pbkrtest's own
computation given the weighted V).

No n×n matrix is formed: with Λ any factor of the random effects' covariance in
σ² units (ZΨZᵀ = σ²ZΛΛᵀZᵀ) and A = ZᵀWZ, Woodbury's identity gives

    V⁻¹ = σ⁻² (W − WZ B ZᵀW),   B = Λ (I + ΛᵀAΛ)⁻¹ Λᵀ,

so V⁻¹ applies to the n×p matrices (X, the Uₖ = GₖV⁻¹X) in O(n) and the traces
reduce to q×q matrices (q random effects):

    ZᵀV⁻¹Z = σ⁻² (A − ABA),   ZᵀV⁻¹W⁻¹V⁻¹Z = σ⁻⁴ HᵀAH (H = I − BA; only traces of its blocks),
    tr(V⁻¹W⁻¹V⁻¹W⁻¹) = σ⁻⁴ (n − 2 tr(BA) + tr(BABA)).

Memory grows as q² and n·p (``MEMORY_BUDGET``), not n².  Only REML fits are
supported, as in lmerTest.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from scipy import stats

from ..errors import MemoryBudgetError, MixedModelsError
from ..design.covstruct import lower_indices
from .satterthwaite import FTest

if TYPE_CHECKING:
    from ..results.lmer import LmerResult

#: Bytes of dense matrices Kenward–Roger may hold: a few q×q matrices (q random effects) and
#: 2K + 4 n×p ones (K variance parameters); beyond it a ``MemoryBudgetError`` before
#: allocating.  Raise it on a machine with the memory to spare.
MEMORY_BUDGET = 2 * 2**30


@dataclass(frozen=True)
class KRPieces:
    """What the tests need: β̂, Φ, Φ_A, the Pₖ and 𝒲 = cov(φ̂)."""

    beta: np.ndarray
    vcov: np.ndarray  # Φ
    vcov_adj: np.ndarray  # Φ_A
    P: np.ndarray  # (K, p, p)
    W: np.ndarray  # (K, K)
    varpar: np.ndarray  # φ: covariance elements per term (lme4 order), then σ²


_PIECES: weakref.WeakKeyDictionary[LmerResult, KRPieces] = weakref.WeakKeyDictionary()


def check_applicable(fit: LmerResult) -> None:
    """Raise unless Kenward–Roger applies: a REML fit with unstructured covariances within MEMORY_BUDGET."""
    if not getattr(fit, "REML", False):
        raise ValueError("Kenward-Roger's method is only available for REML fits; refit with REML=True "
                         "or use ddf='Satterthwaite'")
    structured = [t.structure.spelling(t.expr, t.group) for t in fit.reterms if t.structure.structured]
    if structured:
        raise MixedModelsError(f"Kenward-Roger's method needs covariances linear in their parameters, which "
                               f"{', '.join(structured)} are not; use ddf='Satterthwaite' instead")
    q = sum(t.p * t.nlevels for t in fit.reterms)
    K = sum(t.p * (t.p + 1) // 2 for t in fit.reterms) + 1
    size = 8 * (6 * q**2 + (2 * K + 4) * fit.nobs * len(fit.fixef))
    if size > MEMORY_BUDGET:
        raise MemoryBudgetError(
            f"Kenward-Roger's method needs dense {q:,}×{q:,} matrices for this fit's {q:,} random effects "
            f"(about {size / 2**30:.2f} GiB), above the memory budget of {MEMORY_BUDGET / 2**30:.2f} GiB; "
            "use ddf='Satterthwaite', or on a machine with the memory raise "
            "mixedmodels.inference.kenward_roger.MEMORY_BUDGET (bytes)"
        )


def _indicator_blocks(fit: LmerResult) -> tuple[sp.csr_matrix, list[slice], list[list[tuple[int, int]]]]:
    """Z with column blocks Z_(t,a) (term t, raw column a; levels within), their slices, and per
    variance parameter the block pairs (i, j) with Gₖ = Σ Z_i Z_jᵀ."""
    n = fit.nobs
    rows = np.arange(n)
    blocks: list[sp.csr_matrix] = []
    slices: list[slice] = []
    pairs: list[list[tuple[int, int]]] = []
    start = 0
    for t in fit.reterms:
        first = len(blocks)
        for a in range(t.p):
            blocks.append(sp.csr_matrix((t.matrix[:, a], (rows, t.codes)), shape=(n, t.nlevels)))
            slices.append(slice(start, start + t.nlevels))
            start += t.nlevels
        for a, b in zip(*lower_indices(t.p)):
            i, j = first + int(a), first + int(b)
            pairs.append([(i, i)] if i == j else [(i, j), (j, i)])
    return sp.hstack(blocks, format="csc"), slices, pairs


@dataclass(frozen=True)
class MarginalInverse:
    """V⁻¹ = σ⁻² (W − WZ B ZᵀW) by Woodbury's identity, B = Λ (I + ΛᵀAΛ)⁻¹ Λᵀ, A = ZᵀWZ.

    A and Λ stay sparse: the only dense q×q work of order q³ is M = I + ΛᵀAΛ's inverse.
    """

    Z: sp.csc_matrix
    w: np.ndarray  # the prior weights: the diagonal of W
    A: sp.csr_matrix
    B: np.ndarray
    AB: np.ndarray
    sigma2: float

    @classmethod
    def of(cls, Z: sp.csc_matrix, Lam: sp.csc_matrix, w: np.ndarray, sigma2: float) -> MarginalInverse:
        A = sp.csr_matrix(Z.T @ sp.diags(w) @ Z)
        M = np.asarray((sp.identity(A.shape[0]) + Lam.T @ A @ Lam).todense())
        Minv = _sym_inverse(M)
        B = np.asarray(Lam @ (Lam @ Minv.T).T)  # Λ M⁻¹ Λᵀ
        B = (B + B.T) / 2
        return cls(Z, w, A, B, np.asarray(A @ B), sigma2)

    def apply(self, Y: np.ndarray) -> np.ndarray:
        """V⁻¹Y for an n×m matrix Y."""
        WY = self.w[:, None] * Y
        return (WY - self.w[:, None] * (self.Z @ (self.B @ (self.Z.T @ WY)))) / self.sigma2

    def z_vinv_z(self) -> np.ndarray:
        """ZᵀV⁻¹Z = σ⁻² (A − ABA), ABA = A (AB)ᵀ with A sparse."""
        return (self.A.toarray() - np.asarray(self.A @ self.AB.T)) / self.sigma2

    def trace_z_vinv_d_vinv_z(self, C: np.ndarray, b: slice, a: slice) -> float:
        """tr(Z_bᵀV⁻¹W⁻¹V⁻¹Z_a) = σ⁻⁴ tr(H_bᵀ A H_a) with H = I − BA and AH = σ² ZᵀV⁻¹Z (``C``):
        σ⁻² (tr(C_ba) − Σ (AB)_b,·ᵀ ∘ C_·a), no q×q product."""
        return float(np.trace(C[b, a]) - np.sum(self.AB[b, :].T * C[:, a])) / self.sigma2

    def trace_vinv_d_squared(self) -> float:
        """tr(V⁻¹W⁻¹V⁻¹W⁻¹) = σ⁻⁴ (n − 2 tr(BA) + tr(BABA))."""
        AB = self.AB
        return float(len(self.w) - 2 * np.trace(AB) + np.sum(AB * AB.T)) / self.sigma2**2


def _sym_inverse(M: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix from its Cholesky factor."""
    c, info = scipy.linalg.lapack.dpotrf(M, lower=True)
    if info != 0:
        raise MixedModelsError("the marginal covariance of the response is not positive definite")
    inv, info = scipy.linalg.lapack.dpotri(c, lower=True)
    inv = np.tril(inv)
    return inv + np.tril(inv, -1).T


def _relative_factor(S: np.ndarray, sigma2: float) -> np.ndarray:
    """A factor L with LLᵀ = S/σ² for a positive semi-definite S (singular fits included)."""
    values, vectors = np.linalg.eigh(S / sigma2)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def kr_pieces(fit: LmerResult) -> KRPieces:
    """Φ, the Pₖ, 𝒲 and Φ_A of a REML fit (cached per fit)."""
    if fit in _PIECES:
        return _PIECES[fit]
    check_applicable(fit)
    X = np.asarray(fit.design.X, dtype=float)
    n = X.shape[0]
    weights = fit.design.weights
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    d = 1.0 / w  # residual G = W⁻¹
    sigma2 = fit.sigma**2

    Z, slices, pairs = _indicator_blocks(fit)
    varpar = np.array([S[a, b] for t, S in zip(fit.reterms, fit.covariances)
                       for a, b in zip(*lower_indices(t.p))] + [sigma2])
    # Λ in the blocks' layout: cov(b_(t,a), b_(t,b)) = Sₐᵦ I_ℓ = σ² (LLᵀ)ₐᵦ I_ℓ
    Lam = sp.block_diag([sp.kron(_relative_factor(S, sigma2), sp.identity(t.nlevels))
                         for t, S in zip(fit.reterms, fit.covariances)], format="csc")
    Vinv = MarginalInverse.of(Z, Lam, w, sigma2)
    del Lam

    T = Vinv.apply(X)  # V⁻¹X
    Phi = np.linalg.inv(X.T @ T)
    Phi = (Phi + Phi.T) / 2
    C = Vinv.z_vinv_z()  # ZᵀV⁻¹Z, q×q
    ZT = [np.asarray(Z[:, s].T @ T) for s in slices]  # Z_iᵀV⁻¹X

    # Uₖ = Gₖ V⁻¹X; the residual's is W⁻¹V⁻¹X
    K = len(pairs) + 1
    U = [sum(Z[:, slices[i]] @ ZT[j] for i, j in pk) for pk in pairs] + [d[:, None] * T]
    P = np.array([-(T.T @ u) for u in U])
    P = (P + P.transpose(0, 2, 1)) / 2
    SU = [Vinv.apply(u) for u in U]
    Q = np.array([[U[k].T @ SU[l] for l in range(K)] for k in range(K)])

    # tr(V⁻¹GₖV⁻¹Gₗ)
    Ktr = np.empty((K, K))
    for k, pk in enumerate(pairs):
        for l in range(k, len(pairs)):
            Ktr[k, l] = sum(np.sum(C[slices[b], slices[c]] * C[slices[a], slices[dd]])
                            for a, b in pk for c, dd in pairs[l])
        Ktr[k, -1] = sum(Vinv.trace_z_vinv_d_vinv_z(C, slices[b], slices[a]) for a, b in pk)
    Ktr[-1, -1] = Vinv.trace_vinv_d_squared()
    Ktr = np.triu(Ktr) + np.triu(Ktr, 1).T
    del C, Vinv

    PhiP = np.einsum("ij,kjl->kil", Phi, P)  # ΦPₖ
    info = Ktr - 2 * np.einsum("ij,klij->kl", Phi, Q) + np.einsum("kij,lji->kl", PhiP, PhiP)
    info = (info + info.T) / 2
    if np.min(np.abs(np.linalg.eigvalsh(info))) > 1e-10:
        W = 2 * np.linalg.inv(info)
    else:
        W = 2 * np.linalg.pinv(info, rcond=np.sqrt(np.finfo(float).eps))
    W = (W + W.T) / 2

    # Σₖₗ 𝒲ₖₗ (Qₖₗ − PₖΦPₗ)
    middle = np.einsum("kl,klij->ij", W, Q) - np.einsum("kl,kij,ljm->im", W, P, PhiP)
    Phi_A = Phi + 2 * Phi @ middle @ Phi
    Phi_A = (Phi_A + Phi_A.T) / 2
    pieces = KRPieces(beta=fit.fixef.to_numpy(), vcov=Phi, vcov_adj=Phi_A, P=P, W=W, varpar=varpar)
    _PIECES[fit] = pieces
    return pieces


def vcov_adjusted(fit: LmerResult) -> pd.DataFrame:
    """Φ_A, the Kenward–Roger adjusted covariance of β̂ (pbkrtest's vcovAdj)."""
    names = list(fit.fixef.index)
    return pd.DataFrame(kr_pieces(fit).vcov_adj, index=names, columns=names)


def _div_zero(x: float, y: float, tol: float = 1e-14) -> float:
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def _ddf_scaling(D: KRPieces, L: np.ndarray) -> tuple[float, float]:
    """Kenward–Roger denominator df m and F scaling λ for Lβ = 0 (L of full row rank q)."""
    q = L.shape[0]
    Phi = D.vcov
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    u = np.einsum("ij,jl,klm,mn->kin", Theta, Phi, D.P, Phi)  # ΘΦPₖΦ
    tr = np.einsum("kii->k", u)
    A1 = float(tr @ D.W @ tr)
    A2 = float(np.einsum("kl,kij,lji->", D.W, u, u))
    with np.errstate(divide="ignore", invalid="ignore"):
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        denom = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
        v0 = 1 + c1 * B
        v0 = 0.0 if abs(v0) < 1e-10 else v0
        v1, v2 = 1 - c2 * B, 1 - c3 * B
        # ρ = V*/(2E*²) with E* = 1/(1 − A₂/q), V* = (2/q) v0/(v1² v2)
        rho = _div_zero(1 - A2 / q, v1) ** 2 * v0 / v2 / q
        m = 4 + (q + 2) / (q * rho - 1)
        scaling = 1.0 if abs(m - 2) < 1e-2 else m * (1 - A2 / q) / (m - 2)
    return float(m), float(scaling)


def kenward_roger(fit: LmerResult, L: np.ndarray | None = None) -> pd.DataFrame:
    """t tests of lᵀβ = 0 with Kenward–Roger SEs and df, one per row of L (default: each coefficient).

    Columns as lmerTest's ``summary(m, ddf = "Kenward-Roger")``: Estimate, Std. Error
    (√(lᵀΦ_A l)), df, t value, Pr(>|t|).
    """
    D = kr_pieces(fit)
    index = list(fit.fixef.index) if L is None else None
    L = np.eye(len(D.beta)) if L is None else np.atleast_2d(np.asarray(L, dtype=float))
    estimate = L @ D.beta
    se = np.sqrt(np.einsum("ip,pq,iq->i", L, D.vcov_adj, L))
    df = np.array([_ddf_scaling(D, l[None, :])[0] for l in L])
    t = estimate / se
    return pd.DataFrame(
        {"Estimate": estimate, "Std. Error": se, "df": df, "t value": t,
         "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)},
        index=index,
    )


@dataclass(frozen=True)
class KRTest:
    """A Kenward–Roger F test: the scaled F, its df and p, and the unscaled Wald F and scaling λ."""

    F: float
    NumDF: int
    DenDF: float
    p: float
    F_unscaled: float
    scaling: float


def row_basis(L: np.ndarray) -> np.ndarray:
    """An orthonormal basis of L's row space (its rank rows): a hypothesis Lβ = 0 without redundant rows."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    _, s, Vt = np.linalg.svd(L, full_matrices=False)
    return Vt[:int(np.sum(s > max(L.shape) * np.finfo(float).eps * s.max(initial=0.0)))]


def kr_test(fit: LmerResult, L: np.ndarray) -> KRTest:
    """pbkrtest's KRmodcomp for Lβ = 0 (L replaced by a basis of its row space)."""
    D = kr_pieces(fit)
    L = row_basis(L)
    rank = len(L)
    if rank == 0:
        return KRTest(np.nan, 0, np.nan, np.nan, np.nan, np.nan)
    Lb = L @ D.beta
    F_unscaled = float(Lb @ np.linalg.solve(L @ D.vcov_adj @ L.T, Lb)) / rank
    m, scaling = _ddf_scaling(D, L)
    F = scaling * F_unscaled
    return KRTest(F, rank, m, float(stats.f.sf(F, rank, m)), F_unscaled, scaling)


def kenward_roger_f(fit: LmerResult, L: np.ndarray) -> FTest:
    """Kenward–Roger F test of Lβ = 0: scaled F value, NumDF, DenDF (m), Pr(>F)."""
    r = kr_test(fit, L)
    return FTest(r.F, r.NumDF, r.DenDF, r.p)
