"""nlme's spellings of the residual structures: ``corAR1(form = ~ week | id)``, ``varIdent(form = ~ 1 | arm)``,
the same calls written as strings, and nlme's keywords ``correlation=``, ``weights=`` and ``method=``.

Each constructor returns the structure of ``design.residual`` that it names (``corAR1`` → ``AR1``,
``varIdent`` → ``VarIdent``, ...), so a fit is the same whichever way it is written.  ``form`` is
read by ``formula.nlme`` (text only: no code runs).  nlme's ``value=`` (starting values) and
``fixed = TRUE`` (parameters held at their value) are not offered and are refused with an error;
``fixed = FALSE`` is nlme's default and is accepted.

``weights=`` means two things in R: lme4's prior weights (a column) and nlme's variance function.
:func:`structures` tells them apart: a variance-function object, or a string written as a call
(``"varIdent(form = ~ 1 | arm)"``) that is not a column of the data, is nlme's; a column name or
an array keeps lme4's meaning.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ..errors import DataError, FormulaError, did_you_mean, match_arg
from ..formula.nlme import NlmeCall, NlmeForm, logical, parse_call, parse_form
from .residual import AR1, CAR1, CompSymm, Correlation, Symm, VarIdent, VarPower, Variance

#: nlme's structures that mixedmodels does not have, with what each is
UNAVAILABLE: dict[str, str] = {
    "corARMA": "ARMA(p, q) correlation", "corExp": "exponential spatial correlation",
    "corGaus": "Gaussian spatial correlation", "corLin": "linear spatial correlation",
    "corRatio": "rational quadratic spatial correlation", "corSpher": "spherical spatial correlation",
    "corIdent": "identity correlation (no structure: leave correlation= out)",
    "varExp": "exponential variance function", "varConstPower": "constant-plus-power variance function",
    "varConstProp": "constant-plus-proportion variance function", "varComb": "combination of variance functions",
    "varFixed": "fixed variance covariate",
}
_NUMBER = r"\s*-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*"
_ITEM = rf"(?:\s*[A-Za-z.][A-Za-z0-9._]*\s*=)?{_NUMBER}"  # 0.5 or Female = 0.5
_NUMBERS = re.compile(rf"{_NUMBER}|\s*c\s*\({_ITEM}(?:,{_ITEM})*\)\s*")  # R's 0.3, c(0.3, 0.5), c(B = 2)
_AVAILABLE = ("correlation= takes corAR1, corCAR1, corCompSymm, corSymm and weights= takes varIdent, varPower "
              "(also as mm.AR1, mm.CAR1, mm.CompSymm, mm.Symm, mm.VarIdent, mm.VarPower)")


def corAR1(value: object = None, form: str = "~ 1", fixed: bool = False) -> AR1:
    """nlme's ``corAR1``: AR(1) correlation φ^|tᵢ − tⱼ| over whole-number times (``form = "~ week | id"``;
    ``"~ 1 | id"`` takes the data's order within each id)."""
    f = _form("corAR1", value, form, fixed)
    return AR1(time=f.covariate, group=f.group)


def corCAR1(value: object = None, form: str = "~ 1", fixed: bool = False) -> CAR1:
    """nlme's ``corCAR1``: continuous-time AR(1), φ^|tᵢ − tⱼ| for any times (``form = "~ day | id"``)."""
    f = _form("corCAR1", value, form, fixed)
    return CAR1(time=f.covariate, group=f.group)


def corCompSymm(value: object = None, form: str = "~ 1", fixed: bool = False) -> CompSymm:
    """nlme's ``corCompSymm``: one correlation between any two rows of a group (``form = "~ 1 | id"``)."""
    f = _form("corCompSymm", value, form, fixed)
    return CompSymm(time=f.covariate, group=f.group)


def corSymm(value: object = None, form: str = "~ 1", fixed: bool = False) -> Symm:
    """nlme's ``corSymm``: a free correlation between each pair of distinct times (``form = "~ visit | id"``)."""
    f = _form("corSymm", value, form, fixed)
    return Symm(time=f.covariate, group=f.group)


def varIdent(value: object = None, form: str | None = None, fixed: object = None) -> VarIdent:
    """nlme's ``varIdent``: a residual SD per stratum, ``form = "~ 1 | arm"``."""
    f = _form("varIdent", value, form, fixed)
    if f.group is None or f.covariate is not None:
        raise FormulaError("varIdent() takes form = '~ 1 | stratum', the column whose levels get their own "
                           f"standard deviation, not {form!r}", str(form))
    return VarIdent(f.group)


def varPower(value: object = None, form: str | None = None, fixed: object = None) -> VarPower:
    """nlme's ``varPower``: residual SD ∝ |v|^power of a positive covariate, ``form = "~ dose"``."""
    if form is None:
        raise DataError("varPower() without form= is nlme's power of the fitted values (~ fitted(.)), which "
                        "mixedmodels does not have; name a positive covariate: varPower(form = '~ dose')")
    f = _form("varPower", value, form, fixed)
    if f.covariate is None or f.group is not None:
        raise FormulaError("varPower() takes form = '~ covariate' (one power for all rows); a power per "
                           f"stratum ('~ v | g') and '~ 1' are not supported, not {form!r}", form)
    return VarPower(f.covariate)


CONSTRUCTORS: dict[str, Callable[..., Correlation | Variance]] = {
    "corAR1": corAR1, "corCAR1": corCAR1, "corCompSymm": corCompSymm, "corSymm": corSymm,
    "varIdent": varIdent, "varPower": varPower}


def _form(name: str, value: object, form: str | None, fixed: object) -> NlmeForm:
    """``form`` read, after refusing what is not offered (``value=``, ``fixed = TRUE``)."""
    if isinstance(value, str):
        _refuse_form_as_value(name, value)
    if value is not None:
        raise DataError(f"{name}(): value= (nlme's starting value) is not supported; the fit starts from "
                        "no correlation and equal variances. Leave value= out")
    if fixed not in (None, False):
        raise DataError(f"{name}(): fixed = TRUE (holding the parameter at value=) is not supported; leave it out")
    return NlmeForm(None, None) if form is None else parse_form(form, f"{name}(form = ...)")


def _refuse_form_as_value(name: str, value: str) -> None:
    """A formula given where nlme's first argument, value=, goes (nlme would ignore it): say where it belongs."""
    if value.lstrip().startswith("~"):
        raise FormulaError(f"{name}(): the first unnamed argument is nlme's value=, not the formula; "
                           f"write form = {value.strip()}", value)


def from_string(text: str) -> Correlation | Variance:
    """The structure written as nlme's call, ``"corAR1(form = ~ week | id)"``; a FormulaError for text that
    is not one of the calls offered, naming what exists."""
    call = parse_call(text)
    if call.name not in CONSTRUCTORS:
        if call.name in UNAVAILABLE:
            raise FormulaError(f"{call.name}() is nlme's {UNAVAILABLE[call.name]}, which mixedmodels does not "
                               f"have; {_AVAILABLE}", text)
        raise FormulaError(f"{call.name}() is not one of nlme's structures offered here; {_AVAILABLE}."
                           + did_you_mean(call.name, [*CONSTRUCTORS, *UNAVAILABLE]), text)
    return CONSTRUCTORS[call.name](**_keywords(call))


def _keywords(call: NlmeCall) -> dict[str, object]:
    """The call's arguments as the constructor's keywords (nlme's order for unnamed ones: value, form, fixed)."""
    names = ("value", "form", "fixed")
    out: dict[str, object] = {}
    for k, (name, text) in enumerate(call.arguments):
        name = name or (names[k] if k < len(names) else "")
        if name not in names:
            raise FormulaError(f"{call.name}() takes value, form and fixed, not "
                               f"{name or 'a fourth unnamed argument'}", call.text)
        if name in out:
            raise FormulaError(f"{call.name}(): {name} is given twice", call.text)
        if name == "value" and not _NUMBERS.fullmatch(text):
            _refuse_form_as_value(call.name, text)
            raise FormulaError(f"{call.name}(): value= takes numbers, not {text!r}", call.text)
        out[name] = logical(text, f"{call.name}(fixed = ...)") if name == "fixed" else text
    return out


# ----- nlme's keywords of a fit ------------------------------------------------------------------
@dataclass(frozen=True)
class Structures:
    """What a fit's arguments ask for: the residual correlation, the variance function and lme4's prior weights."""

    correlation: Correlation | None
    variance: Variance | None
    prior_weights: object


def structures(residual: object, correlation: object, variance: object, weights: object,
               columns: pd.Index, prior_weights: bool = True) -> Structures:
    """Resolve ``residual=``/``correlation=`` (one meaning, two names) and ``variance=``/``weights=``:
    objects and nlme strings become structures; a column name or array given as ``weights=`` stays
    lme4's prior weights (refused where there are none, ``prior_weights=False``: nlme's gls)."""
    cor, cor_argument = _one("residual", residual, "correlation", correlation)
    if isinstance(weights, (VarIdent, VarPower, Correlation)) or _is_nlme_text(weights, columns):
        var, var_argument = _one("variance", variance, "weights", weights)
        weights = None
    else:
        var, var_argument = variance, "variance"
    if weights is not None and not prior_weights:
        raise DataError(f"gls's weights= takes an nlme variance function (mm.varIdent(form='~ 1 | arm'), "
                        f"'varPower(form = ~ dose)'), not {_shown(weights)}: gls has no prior weights")
    cor, var = _read(cor, cor_argument), _read(var, var_argument)
    if isinstance(cor, (VarIdent, VarPower)):
        raise DataError(f"{_named(cor)} is a variance function: give it as weights= (nlme) or variance=, "
                        f"not {cor_argument}=")
    if isinstance(var, Correlation):
        raise DataError(f"{_named(var)} is a correlation structure: give it as correlation= (or residual=), "
                        f"not {var_argument}=")
    return Structures(cor, var, weights)


def _one(name: str, value: object, alias: str, alias_value: object) -> tuple[object, str]:
    """The value given under either name, and that name."""
    if value is not None and alias_value is not None:
        raise DataError(f"{name}= and {alias}= give the same structure (nlme names it {alias}=); give one")
    return (alias_value, alias) if value is None else (value, name)


def _is_nlme_text(weights: object, columns: pd.Index) -> bool:
    """Whether a ``weights=`` string is nlme's (written as a call or a one-sided formula) rather than a column name."""
    if not isinstance(weights, str) or weights in columns:
        return False
    return weights.lstrip().startswith("~") or "(" in weights


def _read(value: object, argument: str) -> Correlation | Variance | None:
    """A structure from an object or an nlme string given as ``argument``."""
    if value is None or isinstance(value, (Correlation, VarIdent, VarPower)):
        return value
    if isinstance(value, str):
        if value.strip().startswith("~"):
            raise FormulaError(f"{argument}= given a bare formula is nlme's varFixed, which mixedmodels does not "
                               f"have; write a structure such as 'varPower(form = ~ dose)'", value)
        return from_string(value)
    raise DataError(f"{argument}= takes an nlme structure such as mm.corAR1(form='~ week | id') or "
                    f"'varIdent(form = ~ 1 | arm)', not {_shown(value)}; {_AVAILABLE}")


def _named(spec: Correlation | Variance) -> str:
    nlme = spec.nlme if isinstance(spec, Correlation) else type(spec).__name__[0].lower() + type(spec).__name__[1:]
    return f"{nlme}(form = {spec.formula()})"


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, (str, int, float)) else f"a {type(value).__name__}"


def reml_of(REML: bool | None, method: str | None) -> bool:
    """lme4's ``REML=`` or nlme's ``method = "REML" | "ML"`` (REML when neither is given); both, disagreeing,
    is an error."""
    if method is None:
        return True if REML is None else bool(REML)
    by_method = match_arg(method, ("REML", "ML"), "method") == "REML"
    if REML is not None and bool(REML) != by_method:
        raise DataError(f"method={method!r} and REML={REML} disagree; give one of them (nlme's method= is "
                        "lme4's REML=: 'REML' is REML=True, 'ML' is REML=False)")
    return by_method


def check_prior_weights(weights: object, columns: pd.Index, function: str) -> None:
    """A fit whose ``weights=`` are lme4's prior weights only (glmer, glmer_nb) refuses nlme's variance functions."""
    if isinstance(weights, (VarIdent, VarPower, Correlation)) or _is_nlme_text(weights, columns):
        raise DataError(f"{function}'s weights= are prior weights (a column name or a vector as long as data), "
                        f"not {_shown(weights)}: nlme's variance functions apply to Gaussian models, "
                        "mm.lmer(..., weights=mm.varIdent(...)) or mm.gls")
