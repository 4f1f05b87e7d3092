"""Cross-validation and Optuna tuning without tracking (tracking is in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from regressops.config import Settings
from regressops.datasets import DATASETS
from regressops.errors import ConfigError
from regressops.training.crossval import cross_validate
from regressops.training.tune import load_tuned_params, tune


@pytest.fixture(scope="module")
def diabetes():  # type: ignore[no-untyped-def]
    return DATASETS["diabetes"].load()


def test_cross_validation_matches_scikit_learn(diabetes) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_score

    info = DATASETS["diabetes"]
    ours = cross_validate(
        diabetes, target=info.target, features=info.features, kind="linear", cv=5, random_state=3
    )
    theirs = cross_val_score(
        LinearRegression(),
        diabetes[list(info.features)],
        diabetes[info.target],
        cv=KFold(5, shuffle=True, random_state=3),
        scoring="r2",
    )
    np.testing.assert_allclose([f["r2"] for f in ours.folds], theirs, rtol=1e-8)
    flat = ours.flat()
    assert set(flat) == {
        f"cv_{m}_{s}" for m in ("r2", "rmse", "mse", "mae") for s in ("mean", "std")
    }
    with pytest.raises(ConfigError, match="between 2 and 442 folds, got 1"):
        cross_validate(diabetes, target=info.target, features=info.features, kind="linear", cv=1)


def test_tune_finds_better_than_default_and_writes_back(diabetes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    info = DATASETS["diabetes"]
    settings = Settings(home=tmp_path)
    seen: list[tuple[int, int]] = []
    result = tune(
        diabetes,
        dataset="diabetes",
        target=info.target,
        features=info.features,
        kind="tree",
        n_trials=12,
        cv=4,
        track=False,
        settings=settings,
        progress=lambda done, total, best: seen.append((done, total)),
    )
    assert seen[-1] == (12, 12) and len(result.trials) == 12
    default = cross_validate(
        diabetes, target=info.target, features=info.features, kind="tree", cv=4, random_state=42
    )
    assert result.best_cv["cv_rmse_mean"] <= default.mean["rmse"]
    assert result.params_path is not None
    doc = json.loads(result.params_path.read_text())
    assert doc["params"] == result.best_params == load_tuned_params("diabetes", "tree", settings)
    assert result.parent_run_id is None and result.tracking_error is None


def test_tune_bad_arguments(diabetes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    info = DATASETS["diabetes"]
    kw = dict(
        dataset="diabetes",
        target=info.target,
        features=info.features,
        track=False,
        settings=Settings(home=tmp_path),
    )
    with pytest.raises(ConfigError, match="unknown model kind 'svm'"):
        tune(diabetes, kind="svm", **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--trials must be at least 1"):
        tune(diabetes, kind="tree", n_trials=0, **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no tuned parameters for 'hgb' on 'diabetes'"):
        load_tuned_params("diabetes", "hgb", Settings(home=tmp_path))
