"""Fixtures for the serving unit tests: bundles fitted with numpy least squares, in-process apps.

The bundles come from ``tests/helpers/bundles.py`` (FeatureSpec + ``numpy.linalg.lstsq``), so the
serving tests do not depend on the training code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers.bundles import make_bundle
from regressops.config import Settings
from regressops.models.bundle import ModelBundle
from regressops.serving.app import create_app


def build_bundle(
    path: Path, dataset: str = "diabetes", *, version: str = "1", shift: float = 0.0
) -> ModelBundle:
    """Fit a linear model by least squares on a built-in dataset and save it at ``path``."""
    return make_bundle(path, dataset=dataset, version=version, shift=shift)


@pytest.fixture(scope="session")
def diabetes_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelBundle]:
    path = tmp_path_factory.mktemp("bundles") / "diabetes"
    return path, build_bundle(path)


@pytest.fixture(scope="session")
def insurance_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelBundle]:
    path = tmp_path_factory.mktemp("bundles") / "insurance"
    return path, build_bundle(path, "insurance")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def make_client(settings: Settings, model: Path | str, **kwargs: Any) -> TestClient:
    return TestClient(create_app(settings, model=str(model), **kwargs), client=("127.0.0.1", 50000))


@pytest.fixture
def client(settings: Settings, diabetes_bundle: tuple[Path, ModelBundle]) -> Iterator[TestClient]:
    with make_client(settings, diabetes_bundle[0]) as c:
        yield c


@pytest.fixture
def ins_client(
    settings: Settings, insurance_bundle: tuple[Path, ModelBundle]
) -> Iterator[TestClient]:
    with make_client(settings, insurance_bundle[0]) as c:
        yield c


@pytest.fixture
def bundle_factory() -> Any:
    """``build_bundle(path, dataset="diabetes", *, version="1", shift=0.0)``."""
    return build_bundle


@pytest.fixture
def client_factory() -> Any:
    """``make_client(settings, model, **create_app_kwargs)`` (use it as a context manager)."""
    return make_client
