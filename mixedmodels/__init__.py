"""lme4-style linear and generalized linear mixed models."""

from . import datasets

__version__ = "0.1.0"
