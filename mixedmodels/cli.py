"""Command-line interface: ``mixedmodels fit "FORMULA" --data file.csv [options]``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from typing import Any
from pathlib import Path

import pandas as pd

from .api import glmer, lmer
from .errors import DataError, FormulaError, MixedModelsError, MixedModelsWarning, did_you_mean
from .engine.families import get_family
from .results.glmer import GlmerResult
from .results.lmer import LmerResult

_FIT_EXAMPLES = """\
examples:
  mixedmodels fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy.csv
  mixedmodels fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy.csv --ml --json
  mixedmodels fit "cbind(incidence, size - incidence) ~ period + (1 | herd)" \\
      --data cbpp.csv --family binomial --factors period,herd
  mixedmodels fit "r2 ~ Anger + Gender + (1 | id)" --data VerbAgg.csv \\
      --family binomial --link probit --nagq 0
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixedmodels", description="Fit lme4-style linear and generalized linear mixed models."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = commands.add_parser(
        "fit", help="fit a model to a CSV file and print its summary or JSON",
        description="Fit a linear mixed model (lmer) or, with --family, a generalized one (glmer).",
        epilog=_FIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    fit.add_argument("--data", required=True, metavar="FILE", help="CSV file with a header row, e.g. --data sleepstudy.csv")
    fit.add_argument("--factors", metavar="COLS", default="",
                     help="comma-separated columns to treat as categorical, e.g. --factors period,herd")
    fit.add_argument("--family", metavar="NAME",
                     help="fit a GLMM of this family: binomial, poisson, Gamma, inverse_gaussian, gaussian "
                          "(default: a linear mixed model), e.g. --family poisson")
    fit.add_argument("--link", metavar="NAME", help="link function of --family, e.g. --link probit")
    fit.add_argument("--ml", action="store_true",
                     help="fit a linear mixed model by maximum likelihood instead of REML")
    fit.add_argument("--nagq", type=int, metavar="N",
                     help="GLMM quadrature: 1 Laplace (default), 0 fast, >1 adaptive Gauss-Hermite, e.g. --nagq 10")
    fit.add_argument("--json", action="store_true", help="print the results as a JSON document instead of the summary")
    fit.add_argument("--unsafe", action="store_true",
                     help="allow any Python expression in the formula (by default only column names, "
                          "numbers, arithmetic and transforms such as np.log, I, C, poly are accepted, "
                          "because formulas are evaluated as code)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for errors in the input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    conflict = _conflict(args)
    if conflict:
        print(f"mixedmodels: error: {conflict}", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MixedModelsWarning)
            fit = _fit(args)
            output = json.dumps(_document(fit, caught), indent=2) if args.json else str(fit.summary())
    except (MixedModelsError, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        print(f"mixedmodels: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"mixedmodels: warning: {w.message}", file=sys.stderr)
    print(output.rstrip("\n"))
    return 0


def _conflict(args: argparse.Namespace) -> str | None:
    """Options that do not go together."""
    if args.family is None and (args.link is not None or args.nagq is not None):
        return "--link and --nagq apply to generalized models; give --family too"
    if args.family is not None and args.ml:
        return "--ml applies to linear mixed models; generalized models are always fitted by maximum likelihood"
    return None


def _one_line(exc: Exception) -> str:
    """The error as one line; a formula error names the formula (and position) instead of drawing a caret."""
    if isinstance(exc, FormulaError) and exc.formula is not None:
        where = "" if exc.position is None else f"at character {exc.position + 1} of "
        return f"{exc.message} ({where}the formula {exc.formula!r})"
    return " ".join(str(exc).split())


def _fit(args: argparse.Namespace) -> LmerResult | GlmerResult:
    data = _read(args.data, [c.strip() for c in args.factors.split(",") if c.strip()])
    if args.family is None:
        return lmer(args.formula, data, REML=not args.ml, safe=not args.unsafe)
    family = get_family(args.family, args.link)
    return glmer(args.formula, data, family=family, nAGQ=1 if args.nagq is None else args.nagq, safe=not args.unsafe)


def _read(path: str, factors: list[str]) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"cannot read {path!r}: no such file")
    data = pd.read_csv(path)
    for c in factors:
        if c not in data.columns:
            raise DataError(f"--factors: {c!r} is not a column of {path}." + did_you_mean(c, map(str, data.columns)))
        data[c] = data[c].astype("category")
    data.attrs["name"] = Path(path).stem
    return data


def _document(fit: LmerResult | GlmerResult, caught: list[warnings.WarningMessage]) -> dict[str, Any]:
    """The results as plain JSON values (NaN becomes null)."""
    family = fit.family if isinstance(fit, GlmerResult) else None
    if isinstance(fit, LmerResult):
        tests = fit.satterthwaite()
        fixed = [{"term": term, "estimate": r["Estimate"], "std_error": r["Std. Error"], "df": r["df"],
                  "statistic": r["t value"], "p_value": r["Pr(>|t|)"]} for term, r in tests.iterrows()]
        method = "REML" if fit.REML else "ML"
    else:
        tests = fit.coefficients()
        fixed = [{"term": term, "estimate": r["Estimate"], "std_error": r["Std. Error"],
                  "statistic": r["z value"], "p_value": r["Pr(>|z|)"]} for term, r in tests.iterrows()]
        method = fit.method
    components = [{"group": r.grp, "var1": r.var1, "var2": r.var2, "variance": r.vcov, "sd_cor": r.sdcor}
                  for r in fit.varcorr.itertuples(index=False)]
    return _plain_dict({
        "formula": fit.formula,
        "family": "gaussian" if family is None else family.name,
        "link": "identity" if family is None else family.link.name,
        "method": method,
        "nobs": fit.nobs,
        "ngroups": fit.ngroups,
        "objective": fit.objective,
        "loglik": fit.loglik,
        "aic": fit.aic,
        "bic": fit.bic,
        "fixed_effects": fixed,
        "variance_components": components,
        "converged": fit.optimum.converged,
        "singular": fit.is_singular(),
        "warnings": [str(w.message) for w in caught],
    })


def _plain_dict(value: dict[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in value.items()}


def _plain(value: object) -> object:
    """Python scalars for JSON: numpy numbers to int/float/bool, NaN and missing to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if pd.isna(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value
