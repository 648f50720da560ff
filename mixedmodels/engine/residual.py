"""Gaussian models whose residuals are correlated or heteroscedastic within groups (nlme's lme, gls).

At fixed structure parameters φ the model is an ordinary one on whitened rows
(``design/residual.py``): the crossproducts of W[Z X y], the profiled deviance of
``engine/lmm.py`` plus log|V(φ)|.  ``ResidualLMM.at(φ)`` is that model, a ``ProfiledLMM``
whose terms are the design's own (for fitted values and modes) and whose crossproducts are
whitened.  The fit minimises the deviance over (θ, φ) together by BOBYQA (the analytic
gradient covers θ only).  ``GlsModel`` is the same without random effects (nlme's gls):
φ alone, the deviance from the Cholesky factor of W[X y]'s crossproduct.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..design.build import Design
from ..design.residual import ResidualStructure
from ..linalg.crossprod import CrossproductBuilder
from .control import DEFAULT_CONTROL, Control
from .lmm import LinearMixedModel, ProfiledLMM, least_squares, profiled_deviance
from .optimizer import OptimumReport, optimize
from .starting import moment_start

PHI_STEP = 0.5  # BOBYQA's initial step for each structure parameter (unbounded, of order 1)


class WhitenedLMM(LinearMixedModel):
    """The LMM at fixed φ: whitened crossproducts, log|V(φ)| in the deviance (as −Σ log wᵢ is).  A
    ``LinearMixedModel`` of the design's rows, whose crossproducts are those of the whitened rows."""

    def __init__(self, design: Design, builder: CrossproductBuilder, columns: np.ndarray, beta_shift: np.ndarray,
                 structure: ResidualStructure, phi: np.ndarray, REML: bool, control: Control):
        """``columns``: the sorted rows of [Z's raw matrices, X, y − Xb₀] (``beta_shift`` b₀)."""
        terms = builder.reterms
        white = structure.whiten(phi, columns)
        ends = np.cumsum([t.p for t in terms], dtype=int)
        whitened = tuple(replace(t, matrix=np.ascontiguousarray(white[:, e - t.p:e])) for t, e in zip(terms, ends))
        Xy = np.ascontiguousarray(white[:, ends[-1] if len(ends) else 0:])
        A = replace(builder.with_matrices(whitened)(Xy, None), beta_shift=beta_shift)
        ProfiledLMM.__init__(self, design.reterms, A, design.n, design.X.shape[1], REML, -structure.logdet(phi),
                             control)
        self.design = design
        self.structure = structure
        self.phi = np.asarray(phi, dtype=float)


class ResidualLMM:
    """The profiled deviance of an LMM with a residual structure, over x = (θ, φ)."""

    def __init__(self, design: Design, structure: ResidualStructure, REML: bool = True,
                 control: Control = DEFAULT_CONTROL):
        y = design.y if design.offset is None else design.y - design.offset
        self.beta_shift = least_squares(design.X, y, None)
        order = structure.order
        self.builder = CrossproductBuilder(tuple(replace(t, codes=t.codes[order], matrix=t.matrix[order])
                                                 for t in design.reterms))
        self.columns = np.column_stack([t.matrix for t in design.reterms]
                                       + [design.X, y - design.X @ self.beta_shift])[order]
        self.design, self.structure, self.REML, self.control = design, structure, REML, control
        self.ntheta = sum(t.ntheta for t in design.reterms)

    def at(self, phi: np.ndarray) -> WhitenedLMM:
        """The model at fixed φ."""
        return WhitenedLMM(self.design, self.builder, self.columns, self.beta_shift, self.structure, phi,
                           self.REML, self.control)

    def with_REML(self, REML: bool) -> ResidualLMM:
        other = ResidualLMM.__new__(ResidualLMM)
        other.__dict__.update(self.__dict__)
        other.REML = REML
        return other

    def objective(self, x: np.ndarray) -> float:
        """The (RE)ML deviance at θ = x[:ntheta], φ = x[ntheta:]; inf where V or the factor breaks down."""
        k = self.ntheta
        with np.errstate(all="ignore"):
            try:
                value = self.at(x[k:]).objective(x[:k])
            except (np.linalg.LinAlgError, ValueError):
                return np.inf
        return float(value) if np.isfinite(value) else np.inf

    def fit(self, x0: np.ndarray | None = None) -> tuple[WhitenedLMM, OptimumReport]:
        """BOBYQA over (θ, φ) from the method-of-moments θ at φ's start (or ``x0``); the model at φ̂
        and the report of the whole optimum (x = (θ̂, φ̂))."""
        phi0 = self.structure.start()
        start_model = self.at(phi0)
        theta0, step = moment_start(start_model.crossprod, start_model, self.design.n, self.design.X.shape[1],
                                    self.control.initial_step)
        if x0 is None:
            x0 = np.concatenate([theta0, phi0])
        lower = np.concatenate([start_model.theta_lower, np.full(len(phi0), -np.inf)])
        steps = np.concatenate([step, np.full(len(phi0), PHI_STEP)])
        report = optimize(self.objective, np.asarray(x0, dtype=float), lower, self.control, initial_step=steps)
        return self.at(report.x[self.ntheta:]), report


class GlsModel:
    """nlme's gls: y = Xβ + ε with residual covariance σ² V(φ); the deviance profiled over β and σ."""

    def __init__(self, design: Design, structure: ResidualStructure, REML: bool = True,
                 control: Control = DEFAULT_CONTROL):
        y = design.y if design.offset is None else design.y - design.offset
        self.beta_shift = least_squares(design.X, y, None)
        self.rows = np.column_stack([design.X, y - design.X @ self.beta_shift])[structure.order]
        self.design, self.structure, self.REML, self.control = design, structure, REML, control
        self.n, self.p = design.n, design.X.shape[1]

    def factor(self, phi: np.ndarray) -> np.ndarray:
        """The lower Cholesky factor of (W[X y])ᵀ(W[X y]): [[L_X, 0], [c_βᵀ, r]]."""
        white = self.structure.whiten(phi, self.rows)
        return np.linalg.cholesky(white.T @ white)

    def objective(self, phi: np.ndarray, REML: bool | None = None) -> float:
        REML = self.REML if REML is None else REML
        with np.errstate(all="ignore"):
            try:
                L = self.factor(np.asarray(phi, dtype=float))
            except (np.linalg.LinAlgError, ValueError):
                return np.inf
            p = self.p
            logdet_x = 2.0 * float(np.log(np.diag(L)[:p]).sum())
            value = profiled_deviance(0.0, logdet_x, float(L[p, p]) ** 2, self.n, p, REML) + self.structure.logdet(phi)
        return float(value) if np.isfinite(value) else np.inf

    def with_REML(self, REML: bool) -> GlsModel:
        other = GlsModel.__new__(GlsModel)
        other.__dict__.update(self.__dict__)
        other.REML = REML
        return other

    def fit(self, x0: np.ndarray | None = None) -> OptimumReport:
        phi0 = self.structure.start() if x0 is None else np.asarray(x0, dtype=float)
        if not len(phi0):
            return OptimumReport(x=phi0, fun=self.objective(phi0), nfev=1, converged=True, gradient=phi0,
                                 message="converged (no structure parameters)")
        return optimize(self.objective, phi0, np.full(len(phi0), -np.inf), self.control,
                        initial_step=np.full(len(phi0), PHI_STEP))
