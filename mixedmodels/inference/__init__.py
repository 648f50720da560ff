"""Inference on fitted models: Satterthwaite and Kenward-Roger tests, type III tables,
likelihood-ratio tests, profile and bootstrap intervals, prediction and simulation."""

from .kenward_roger import kenward_roger_f, vcov_adjusted
from .satterthwaite import satterthwaite_f

__all__ = ["kenward_roger_f", "satterthwaite_f", "vcov_adjusted"]
