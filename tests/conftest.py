"""Shared fixtures: an isolated regressops home per test, the shared data sets, trained bundles.

Every test runs with ``REGRESSOPS_HOME`` in its own temporary folder and no ``regressops.toml``,
so nothing is written to the working directory and no local configuration leaks in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from regressops.config import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
# the shared data sets beside the repository; REGRESSOPS_SHARED_DATA points elsewhere (a worktree)
SHARED_DATA = Path(os.environ.get("REGRESSOPS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CALIFORNIA_RAW = SHARED_DATA / "california_housing" / "cal_housing.data"
CALIFORNIA_SKLEARN_CSV = SHARED_DATA / "california_housing" / "california_housing_sklearn.csv"
#: The Hands-On-ML housing table: 207 gaps in total_bedrooms, a text column, capped values.
HOUSING_CSV = SHARED_DATA / "california_housing_raw" / "housing.csv"


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


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "regressops-home"
    monkeypatch.setenv("REGRESSOPS_HOME", str(home))
    monkeypatch.setenv("REGRESSOPS_CONFIG", "none")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    """This test's ``REGRESSOPS_HOME`` (not created until something writes to it)."""
    return _isolated_home


@pytest.fixture
def california(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``REGRESSOPS_CALIFORNIA_PATH`` at the shared raw ``cal_housing.data``."""
    path = require_file(CALIFORNIA_RAW, "California housing raw data")
    monkeypatch.setenv("REGRESSOPS_CALIFORNIA_PATH", str(path))
    return path


@pytest.fixture
def housing_csv() -> Path:
    """The shared raw housing CSV (gaps, a text column, capped target values)."""
    return require_file(HOUSING_CSV, "California housing raw CSV")


@pytest.fixture
def california_sklearn_csv() -> Path:
    """The shared CSV of scikit-learn's California frame (derived from ``cal_housing.data``)."""
    return require_file(CALIFORNIA_SKLEARN_CSV, "scikit-learn California CSV")


@pytest.fixture(scope="session")
def diabetes_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear (exact) model trained once on diabetes; tests must not modify it."""
    from helpers.training import train_with

    root = tmp_path_factory.mktemp("diabetes-bundle")
    settings = Settings(home=root / "home")
    return train_with(
        dataset="diabetes", output=root / "bundle", plots=False, settings=settings
    ).path
