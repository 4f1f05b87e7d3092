"""A trained diabetes bundle (with its stored reference) and a writer of its prediction log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.monitoring import diabetes_rows, log_rows
from regressops.models.bundle import load_bundle


@pytest.fixture(scope="module")
def diabetes_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear model trained by ``train`` on diabetes (so ``reference.json`` is the real one)."""
    from regressops.training.train import train

    out = tmp_path_factory.mktemp("bundle") / "diabetes"
    train(dataset="diabetes", output=out, plots=False)
    return out


@pytest.fixture
def shifted_log(tmp_path: Path, diabetes_bundle: Path) -> Path:
    """1,000 rows resampled from diabetes with ``bmi`` and ``s5`` shifted by 0.5 std."""
    bundle = load_bundle(diabetes_bundle)
    data = diabetes_rows()
    rows = data[np.random.default_rng(1).integers(0, len(data), 1000)].copy()
    for name in ("bmi", "s5"):
        j = bundle.spec.names.index(name)
        rows[:, j] += 0.5 * data[:, j].std()
    path = tmp_path / "predictions.jsonl"
    log_rows(path, bundle, rows)
    return path
