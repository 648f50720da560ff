"""Predictions on new data: the stored formulaic specs replayed, levels mapped to modes.

``re_form`` chooses the random effects: None uses all, "~0" or "NA" none, and a
formula such as "~(1 | Subject)" the terms of the grouping factors it names.
Levels not seen in fitting get zero random effects when ``allow_new_levels``,
else a DataError naming them; unseen categories of fixed-effect factors are
always an error, since no coefficient exists for them.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic.errors import FormulaicError
from scipy import stats

from ..design.build import formula_part, numeric_column
from ..design.transforms import FORMULA_CONTEXT
from ..design.reterm import ReTerm, z_times_b
from ..design.spec import ModelSpec, TermLayout
from ..errors import DataError, FormulaError, type_name
from ..formula.parse import parse_formula


@dataclass(frozen=True)
class Predictor:
    """What predictions read of a fit: its spec, β̂ and the modes b̂ (one (ℓᵢ, pᵢ) array per term,
    canonical order).  Small and picklable: the same object predicts in memory and on every
    partition of a Dask frame."""

    spec: ModelSpec
    beta: np.ndarray
    modes: tuple[np.ndarray, ...]
    offset_argument: bool  # whether the fit had an offset= argument (newdata then needs one too)

    def new_rows(self, newdata: pd.DataFrame, re_form: str | None = None, allow_new_levels: bool = False,
                 offset: object = None) -> np.ndarray:
        """η = Xβ + Zb (+ offset) for the rows of ``newdata``; NaN where a predictor is missing."""
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, not {type_name(newdata)}")
        X = _replay(self.spec.fixed_spec, newdata, "fixed-effects")
        eta = X[:, list(self.spec.kept)] @ self.beta
        for t, b in self._selected(self.spec.terms, re_form):
            eta = eta + _random_part(t, b, newdata, allow_new_levels)
        return eta + self.offset_values(newdata, offset)

    def fitted_rows(self, X: np.ndarray, terms: tuple[ReTerm, ...], offset: np.ndarray | None,
                    re_form: str | None = None) -> np.ndarray:
        """η on fitted rows (X of the kept columns, the terms with their codes) with the random
        effects ``re_form`` names."""
        selected = self._selected(terms, re_form)
        eta = X @ self.beta + z_times_b([t for t, _ in selected], [b for _, b in selected], len(X))
        return eta if offset is None else eta + offset

    def check_re_form(self, re_form: str | None) -> None:
        """A DataError or FormulaError now for a re_form that names no term of the model."""
        self._wanted(re_form)

    def _selected(self, terms, re_form: str | None) -> list:
        """Each term with its modes, keeping only the effects ``re_form`` names (others set to 0).

        As lme4, ``(1 | g)`` in re_form keeps g's intercepts but not its slopes.
        """
        wanted = self._wanted(re_form)
        out = []
        for t, b in zip(terms, self.modes):
            if wanted is None:
                out.append((t, b))
            elif t.group in wanted:
                keep = np.array([c in wanted[t.group] for c in t.columns], dtype=float)
                out.append((t, b * keep))
        return out

    def _wanted(self, re_form: str | None) -> dict[str, set[str]] | None:
        """Grouping factor → the random-effect columns re_form names; None for all of them.

        re_form may name only terms of the model's random effects, so it is matched against
        the fitted terms (formulaic's parse, nothing evaluated) and never runs code.
        """
        if re_form is None:
            return None
        if not isinstance(re_form, str):
            raise FormulaError(f"re_form must be a formula string such as '~(1 | g)', '~0' or None, "
                               f"not {type_name(re_form)}")
        if is_population(re_form):
            return {}
        text = re_form.strip()
        parsed = parse_formula(text if "~" in text else f"~ {text}")
        known = {t.group for t in self.spec.terms}
        if (not parsed.random or parsed.response or parsed.offsets
                or parsed.fixed.replace(" ", "") not in ("1", "0", "-1")
                or any(bar.group_name not in known for bar in parsed.random)):
            raise FormulaError(
                f"re_form must name random-effect terms of the model ({', '.join(sorted(known))}) and nothing else, "
                f"or be '~0' for none; got {re_form!r}"
            )
        wanted: dict[str, set[str]] = {}
        for bar in parsed.random:
            asked = {str(term) for term in formula_part(bar.expr)}
            fitted = [t for t in self.spec.terms if t.group == bar.group_name and t.spec is not None]
            slices = [(t, sl) for t in fitted for term, sl in t.spec.term_slices.items() if str(term) in asked]
            unknown = asked - {str(term) for t in fitted for term in t.spec.term_slices}
            if unknown:
                raise FormulaError(
                    f"re_form's term ({bar.expr} | {bar.group_name}) names {', '.join(sorted(unknown))}, which "
                    f"the model's random effects for {bar.group_name} do not have"
                )
            wanted.setdefault(bar.group_name, set()).update(
                t.columns[k] for t, sl in slices for k, j in enumerate(t.column_index) if sl.start <= j < sl.stop)
        return wanted

    def offset_values(self, newdata: pd.DataFrame, offset: object) -> np.ndarray:
        """Formula offsets evaluated on newdata, plus an explicit ``offset`` vector."""
        total = np.zeros(len(newdata))
        for expr in self.spec.parsed.offsets:
            total = total + numeric_column(expr, newdata, "the offset", self.spec.parsed.checked)
        if offset is not None:
            total = total + np.asarray(offset, dtype=float)
        elif self.offset_argument:
            raise DataError("the model was fitted with offset=; pass offset= for newdata too")
        return total


def fixed_effects_rows(fit, newdata: pd.DataFrame | None) -> np.ndarray:
    """The fixed-effects model matrix of newdata's rows (of the fitted rows when None)."""
    if newdata is None:
        return fit.design.X
    return _replay(fit.design.model_spec, newdata, "fixed-effects")[:, list(fit.design.kept_columns)]


def new_group_variance(fit, newdata: pd.DataFrame | None) -> np.ndarray:
    """zᵀΣz summed over the terms, per row: the variance of the random part for a group not in the data."""
    total = np.zeros(fit.nobs if newdata is None else len(newdata))
    for t, S in zip(fit.reterms, fit.covariances):
        Z = t.matrix if newdata is None else _replay(t.spec, newdata, f"random-effects ({t.expr} | {t.group})")[
            :, list(t.column_index)]
        total = total + np.einsum("ia,ab,ib->i", Z, S, Z)
    return total


def population_prediction(fit, newdata: pd.DataFrame | None, type: str, interval: str | None,
                          level: float, offset: object = None) -> pd.DataFrame:
    """Predictions of the fixed part with their standard errors and intervals.

    se_fit = √(xᵀ V x), V the covariance of β̂ (what emmeans reports for the same row).
    "confidence": η̂ ± z·se on the link scale, mapped through the inverse link for
    type "response" (so the limits stay in the response's range); the standard error
    on the response scale is the delta method's |dμ/dη|·se.  "prediction" (LMMs): a
    new observation of a new group, ± z·√(se² + zᵀΣz + σ²) (prior weight 1).
    Intervals are Wald intervals with the normal quantile.
    """
    if interval not in (None, "confidence", "prediction"):
        raise ValueError(f"interval must be None, 'confidence' or 'prediction', not {interval!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}")
    if interval == "prediction" and fit.kind != "lmer":
        raise ValueError("prediction intervals are available for lmer fits only; use interval='confidence'")
    X = fixed_effects_rows(fit, newdata)
    eta = X @ fit.fixef.to_numpy()
    if newdata is None:
        eta = eta if fit.design.offset is None else eta + fit.design.offset
    else:
        eta = eta + fit.predictor.offset_values(newdata, offset)
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, fit.vcov.to_numpy(), X))
    response = type == "response"
    out = {"fit": fit.inverse_link(eta) if response else eta,
           "se_fit": se * np.abs(fit.link_derivative(eta)) if response else se}
    if interval is not None:
        spread = se if interval == "confidence" else np.sqrt(se**2 + new_group_variance(fit, newdata) + fit.sigma**2)
        z = stats.norm.ppf((1 + level) / 2)
        a, b = eta - z * spread, eta + z * spread
        if response:
            a, b = fit.inverse_link(a), fit.inverse_link(b)
        out["lower"], out["upper"] = np.minimum(a, b), np.maximum(a, b)
    return pd.DataFrame(out, index=fit.rows_used if newdata is None else newdata.index)


def is_population(re_form: str | None) -> bool:
    """Whether ``re_form`` asks for no random effects: "~0" or "NA" (lme4's re.form = NA)."""
    return isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "~NA")


def _replay(spec, newdata: pd.DataFrame, what: str) -> np.ndarray:
    """The model matrix of a stored spec on new data; unseen categories are an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return spec.get_model_matrix(newdata, na_action="ignore", context=FORMULA_CONTEXT).to_numpy(dtype=float)
        except (FormulaicError, Warning) as exc:
            text = str(exc)
            if "categories outside" in text or "not seen" in text:
                levels = re.search(r"\{.*?\}", text)
                raise DataError(
                    f"newdata has factor levels not seen when fitting ({what} part): "
                    f"{levels.group(0) if levels else text}; a prediction needs a coefficient for each level"
                ) from None
            raise DataError(f"cannot evaluate the {what} part on newdata: {text}") from None
        except KeyError as exc:
            raise DataError(f"newdata lacks the column {exc} that the model uses") from None


def random_term_rows(t: TermLayout, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A term's raw model-matrix rows for newdata (its stored spec replayed) and the grouping
    labels of those rows ('a:b' for interactions, None where a grouping value is missing)."""
    columns = t.grouping.columns
    missing = [c for c in columns if c not in newdata.columns]
    if missing:
        raise DataError(f"newdata lacks the grouping column(s) {', '.join(map(repr, missing))}")
    Xi = _replay(t.spec, newdata, f"random-effects ({t.expr} | {t.group})")[:, list(t.column_index)]
    return Xi, _group_labels(newdata, columns)


def _random_part(t: TermLayout, b: np.ndarray, newdata: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
    """Zᵢ b for new rows: their raw matrix times the modes of their levels (0 for new levels)."""
    Xi, labels = random_term_rows(t, newdata)
    codes = pd.Index(t.grouping.labels.astype(str)).get_indexer(labels)
    if not allow_new_levels:
        absent = pd.isna(labels)
        if absent.any():
            raise DataError(
                f"newdata has {int(absent.sum())} row(s) with a missing value of {t.group!r}; pass "
                "allow_new_levels=True to predict them with zero random effects (the population mean), as lme4 does"
            )
        if (codes < 0).any():
            shown = ", ".join(repr(v) for v in pd.unique(labels[codes < 0])[:5])
            raise DataError(
                f"newdata has level(s) of {t.group!r} not seen when fitting: {shown}; pass "
                "allow_new_levels=True to predict them with zero random effects (the population mean)"
            )
    modes = np.vstack([b, np.zeros((1, b.shape[1]))])[np.where(codes < 0, len(b), codes)]
    return np.einsum("ij,ij->i", Xi, modes)


def _group_labels(newdata: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """String labels of the grouping factor, 'a:b' for interactions (as when fitting);
    None where a grouping value is missing."""
    texts = [newdata[c].astype(object).astype(str).to_numpy(dtype=object) for c in columns]
    labels = texts[0]
    for text in texts[1:]:
        labels = labels + ":" + text
    labels[newdata[list(columns)].isna().any(axis=1).to_numpy()] = None
    return labels
