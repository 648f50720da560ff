"""Formula stage: an lme4 formula string split into its fixed part and random-effects terms,
and the safety check that reads a formula without running it."""

from .parse import ParsedFormula, RandomTerm, parse_formula
from .safety import DEFAULT_ALLOWED, check_formula

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula", "DEFAULT_ALLOWED", "check_formula"]
