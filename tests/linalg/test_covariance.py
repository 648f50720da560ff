"""sd_and_correlation: a covariance matrix as standard deviations and correlations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from mixedmodels.linalg.covariance import sd_and_correlation


@settings(max_examples=50, deadline=None)
@given(p=st.integers(1, 5), data=st.data())
def test_rebuilding_the_covariance_from_sds_and_correlations(p, data):
    B = data.draw(arrays(float, (p, p), elements=st.floats(-3, 3, allow_nan=False)))
    S = B @ B.T + 0.1 * np.eye(p)
    sd, R = sd_and_correlation(S)
    np.testing.assert_allclose(R * np.outer(sd, sd), S, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.diag(R), 1.0, rtol=1e-14)
    assert np.all(np.abs(R) <= 1 + 1e-12) and np.allclose(R, R.T)


def test_a_variable_without_variance_has_undefined_correlations():
    S = np.array([[4.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    sd, R = sd_and_correlation(S)
    np.testing.assert_array_equal(sd, [2.0, 0.0, 1.0])
    assert np.isnan(R[1]).all() and np.isnan(R[:, 1]).all()
    assert R[0, 2] == R[2, 0] == 0.5
