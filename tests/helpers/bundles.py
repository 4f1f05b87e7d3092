"""Linear model bundles for the serving tests, fitted with numpy least squares.

Bundles are built directly (FeatureSpec + ``numpy.linalg.lstsq`` + ``ModelBundle.save``), so the
serving tests and the serving benchmark do not depend on the training code.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle


def diabetes_columns() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The diabetes data (442 rows, 10 numeric features) as columns and target."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    columns = {str(n): data.data[:, j] for j, n in enumerate(data.feature_names)}
    return columns, np.asarray(data.target, dtype=np.float64)


def insurance_columns() -> tuple[dict[str, list[Any]], np.ndarray]:
    """The insurance data (1338 rows; sex, smoker, region categorical) as columns and target."""
    text = resources.files("regressops").joinpath("datasets_data/insurance.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    cols: dict[str, list[Any]] = {
        "age": [float(r["age"]) for r in rows],
        "sex": [r["sex"] for r in rows],
        "bmi": [float(r["bmi"]) for r in rows],
        "children": [float(r["children"]) for r in rows],
        "smoker": [r["smoker"] for r in rows],
        "region": [r["region"] for r in rows],
    }
    return cols, np.array([float(r["charges"]) for r in rows])


def make_bundle(
    path: Path,
    *,
    dataset: str = "diabetes",
    version: str = "1",
    name: str | None = None,
    shift: float = 0.0,
    features: list[str] | None = None,
) -> ModelBundle:
    """Fit a least-squares linear model on ``dataset`` and save it as a bundle at ``path``.

    ``shift`` is added to the intercept, so two versions predict measurably differently;
    ``features`` keeps only those diabetes features.
    """
    columns: Mapping[str, Any]
    if dataset == "diabetes":
        columns, y = diabetes_columns()
        if features is not None:
            columns = {n: columns[n] for n in features}
        spec = FeatureSpec.fit(columns)
    else:
        columns, y = insurance_columns()
        spec = FeatureSpec.fit(columns, categorical=["sex", "smoker", "region"])
    X = spec.transform_columns(columns)
    A = np.column_stack([X, np.ones(len(y))])
    solution, *_ = np.linalg.lstsq(A, y, rcond=None)
    pred = A @ solution
    r2 = 1 - float(np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))
    bundle = ModelBundle(
        name=name or dataset,
        kind="linear",
        spec=spec,
        coef=solution[:-1],
        intercept=float(solution[-1]) + shift,
        params={"solver": "lstsq"},
        metrics={"r2": r2, "rmse": float(np.sqrt(np.mean((y - pred) ** 2)))},
        lineage={"source": f"builtin:{dataset}", "rows": len(y)},
        version=version,
        created_at="2025-01-01T00:00:00+00:00",
    )
    bundle.save(path)
    return bundle
