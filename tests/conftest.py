"""Shared fixtures: an isolated regressops home per test, the shared data sets, trained bundles.

Every test runs with ``REGRESSOPS_HOME`` in its own temporary folder and no ``regressops.toml``,
so nothing is written to the working directory and no local configuration leaks in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.env import SHARED_DATA, require_file
from regressops.config import Settings, get_settings

CALIFORNIA_RAW = SHARED_DATA / "california_housing" / "cal_housing.data"
CALIFORNIA_SKLEARN_CSV = SHARED_DATA / "california_housing" / "california_housing_sklearn.csv"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "regressops-home"
    monkeypatch.setenv("REGRESSOPS_HOME", str(home))
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(tmp_path / "no-regressops.toml"))
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
def california_sklearn_csv() -> Path:
    """The shared CSV of scikit-learn's California frame (derived from ``cal_housing.data``)."""
    return require_file(CALIFORNIA_SKLEARN_CSV, "scikit-learn California CSV")


@pytest.fixture(scope="session")
def diabetes_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear (exact) model trained once on diabetes; tests must not modify it."""
    from regressops.training.train import train

    root = tmp_path_factory.mktemp("diabetes-bundle")
    settings = Settings(home=root / "home")
    return train(dataset="diabetes", output=root / "bundle", plots=False, settings=settings).path
