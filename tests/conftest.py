"""Shared pytest fixtures."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from reference import load_reference


@pytest.fixture
def reference() -> Callable[[str], dict[str, Any]]:
    """Return a loader: ``reference("sleepstudy_slope_reml") -> dict``."""
    return load_reference
