"""Access to the lme4 reference results copied into ``tests/fixtures/reference``.

The originals live outside the project; tests must only ever read these copies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REFERENCE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference"


def reference_names() -> list[str]:
    """Ids of all reference fits (every JSON file except ``public_spec``)."""
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.json") if p.stem != "public_spec")


def load_reference(name: str) -> dict[str, Any]:
    """Load ``tests/fixtures/reference/<name>.json`` (``name`` without ``.json``)."""
    path = REFERENCE_DIR / f"{name.removesuffix('.json')}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no reference file {path.name!r}; available: {', '.join(reference_names())}"
        )
    with path.open("r", encoding="utf-8") as fh:
        return json.load(fh)
