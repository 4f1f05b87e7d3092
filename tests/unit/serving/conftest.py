"""Fixtures for the serving unit tests: bundles fitted with numpy least squares, in-process apps.

The bundles are built here (FeatureSpec + ``numpy.linalg.lstsq`` + ``ModelBundle.save``) so the
serving tests do not depend on the training code.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from regressops.config import Settings
from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle
from regressops.serving.app import create_app


def _diabetes() -> tuple[dict[str, Any], np.ndarray]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return {str(n): data.data[:, j] for j, n in enumerate(data.feature_names)}, data.target


def _insurance() -> tuple[dict[str, Any], np.ndarray]:
    text = resources.files("regressops").joinpath("datasets_data/insurance.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    cols: dict[str, Any] = {
        k: [float(r[k]) if k in ("age", "bmi", "children") else r[k] for r in rows]
        for k in ("age", "sex", "bmi", "children", "smoker", "region")
    }
    return cols, np.array([float(r["charges"]) for r in rows])


def build_bundle(
    path: Path, dataset: str = "diabetes", *, version: str = "1", shift: float = 0.0
) -> ModelBundle:
    """Fit a linear model by least squares on a built-in dataset and save it at ``path``."""
    if dataset == "diabetes":
        columns, y = _diabetes()
        spec = FeatureSpec.fit(columns)
    else:
        columns, y = _insurance()
        spec = FeatureSpec.fit(columns, categorical=["sex", "smoker", "region"])
    X = spec.transform_columns(columns)
    A = np.column_stack([X, np.ones(len(y))])
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    bundle = ModelBundle(
        name=dataset,
        kind="linear",
        spec=spec,
        coef=sol[:-1],
        intercept=float(sol[-1]) + shift,
        metrics={"r2": 0.5},
        lineage={"source": f"builtin:{dataset}"},
        version=version,
        created_at="2025-01-01T00:00:00+00:00",
    )
    bundle.save(path)
    return bundle


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
