"""A covariance matrix as standard deviations and correlations: the one place it is computed."""

from __future__ import annotations

import numpy as np


def sd_and_correlation(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """√diag(S) and S's correlation matrix Sᵢⱼ / (sdᵢ sdⱼ); NaN where a standard deviation is 0
    (a correlation with a variable without variance is undefined, as R prints it)."""
    S = np.asarray(S, dtype=float)
    sd = np.sqrt(np.diag(S))
    scale = np.outer(sd, sd)
    with np.errstate(invalid="ignore", divide="ignore"):
        R = np.where(scale > 0, S / np.where(scale > 0, scale, 1.0), np.nan)
    return sd, R
