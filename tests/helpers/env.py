"""Where the shared data sets are, and whether missing resources skip or fail (CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def in_ci() -> bool:
    """True under CI (``CI=true``), where missing resources fail instead of skipping."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_file(path: Path, what: str) -> Path:
    """Return ``path``; skip the test when it is missing, or fail under CI."""
    if path.is_file():
        return path
    message = f"{what} not found at {path}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: required)")
    pytest.skip(message)
