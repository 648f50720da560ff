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

import numpy as np
import pandas as pd
from formulaic.errors import FormulaicError
from scipy import stats

from ..errors import DataError, FormulaError, type_name
from ..design.build import formula_part, numeric_column
from ..design.transforms import FORMULA_CONTEXT
from ..formula.parse import parse_formula
from ..design.reterm import ReTerm, z_times_b


def linear_predictor(fit, newdata: pd.DataFrame, re_form: str | None = None,
                     allow_new_levels: bool = False, offset: object = None) -> np.ndarray:
    """η = Xβ + Zb (+ offset) for the rows of ``newdata``; NaN where a predictor is missing."""
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, not {type_name(newdata)}")
    eta = fixed_effects_rows(fit, newdata) @ fit.fixef.to_numpy()
    for t, b in _selected_modes(fit, re_form):
        eta = eta + _random_part(t, b, newdata, allow_new_levels)
    return eta + _offset(fit, newdata, offset)


def fitted_linear_predictor(fit, re_form: str | None = None) -> np.ndarray:
    """η on the fitted rows with only the random effects that ``re_form`` names."""
    selected = _selected_modes(fit, re_form)
    X = fit.design.X
    eta = X @ fit.fixef.to_numpy() + z_times_b([t for t, _ in selected], [b for _, b in selected], len(X))
    return eta if fit.design.offset is None else eta + fit.design.offset


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
        eta = eta + _offset(fit, newdata, offset)
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


def _selected_modes(fit, re_form: str | None) -> list[tuple[ReTerm, np.ndarray]]:
    """Each term with its modes, keeping only the effects ``re_form`` names (others set to 0).

    As lme4, ``(1 | g)`` in re_form keeps g's intercepts but not its slopes.
    """
    wanted = _wanted_columns(fit, re_form)
    out = []
    for t, b in zip(fit.model.terms, fit._b):
        if wanted is None:
            out.append((t, b))
        elif t.group in wanted:
            keep = np.array([c in wanted[t.group] for c in t.columns], dtype=float)
            out.append((t, b * keep))
    return out


def _wanted_columns(fit, re_form: str | None) -> dict[str, set[str]] | None:
    """Grouping factor → the random-effect columns re_form names; None for all of them.

    re_form may name only terms of the model's random effects, so it is matched against
    the fitted terms (formulaic's parse, nothing evaluated) and never runs code.
    """
    if re_form is None:
        return None
    if not isinstance(re_form, str):
        raise FormulaError(f"re_form must be a formula string such as '~(1 | g)', '~0' or None, not {type_name(re_form)}")
    if is_population(re_form):
        return {}
    text = re_form.strip()
    parsed = parse_formula(text if "~" in text else f"~ {text}")
    known = {t.group for t in fit.design.reterms}
    if (not parsed.random or parsed.response or parsed.offsets or parsed.fixed.replace(" ", "") not in ("1", "0", "-1")
            or any(bar.group_name not in known for bar in parsed.random)):
        raise FormulaError(
            f"re_form must name random-effect terms of the model ({', '.join(sorted(known))}) and nothing else, "
            f"or be '~0' for none; got {re_form!r}"
        )
    wanted: dict[str, set[str]] = {}
    for bar in parsed.random:
        asked = {str(term) for term in formula_part(bar.expr)}
        fitted = [t for t in fit.design.reterms if t.group == bar.group_name and t.spec is not None]
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


def random_term_rows(t: ReTerm, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A term's raw model-matrix rows for newdata (its stored spec replayed) and the grouping
    labels of those rows ('a:b' for interactions, None where a grouping value is missing)."""
    missing = [c for c in t.group_columns if c not in newdata.columns]
    if missing:
        raise DataError(f"newdata lacks the grouping column(s) {', '.join(map(repr, missing))}")
    Xi = _replay(t.spec, newdata, f"random-effects ({t.expr} | {t.group})")[:, list(t.column_index)]
    return Xi, _group_labels(newdata, t.group_columns)


def _random_part(t: ReTerm, b: np.ndarray, newdata: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
    """Zᵢ b for new rows: their raw matrix times the modes of their levels (0 for new levels)."""
    Xi, labels = random_term_rows(t, newdata)
    codes = pd.Index(t.levels.astype(str)).get_indexer(labels)
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


def _offset(fit, newdata: pd.DataFrame, offset: object) -> np.ndarray:
    """Formula offsets evaluated on newdata, plus an explicit ``offset`` vector."""
    total = np.zeros(len(newdata))
    for expr in fit.parsed.offsets:
        total = total + numeric_column(expr, newdata, "the offset", fit.parsed.checked)
    if offset is not None:
        total = total + np.asarray(offset, dtype=float)
    elif fit.design.offset is not None and not fit.parsed.offsets:
        raise DataError("the model was fitted with offset=; pass offset= for newdata too")
    return total
