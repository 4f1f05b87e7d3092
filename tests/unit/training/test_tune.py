"""Cross-validation and Optuna tuning without tracking (tracking is in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from regressops.config import Settings
from regressops.data.selection import DataSelection
from regressops.data.split import SplitPlan, split_rows
from regressops.datasets import DATASETS
from regressops.errors import ConfigError
from regressops.training.crossval import cross_validate
from regressops.training.estimator import EstimatorParams
from regressops.training.sources import TrainingData, load_training_data
from regressops.training.train import train
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
    with pytest.raises(ConfigError, match="between 2 and 442 \\(the training rows\\), got 1"):
        cross_validate(diabetes, target=info.target, features=info.features, kind="linear", cv=1)


@pytest.fixture(scope="module")
def diabetes_data() -> TrainingData:
    return load_training_data(DataSelection("diabetes"))


def test_tune_finds_better_than_default_and_writes_back(  # type: ignore[no-untyped-def]
    diabetes_data, tmp_path: Path
) -> None:
    info = DATASETS["diabetes"]
    settings = Settings(home=tmp_path)
    seen: list[tuple[int, int]] = []
    plan = SplitPlan(test_size=0.2, seed=42)
    result = tune(
        diabetes_data,
        plan,
        kind="tree",
        n_trials=12,
        cv=4,
        track=False,
        settings=settings,
        progress=lambda done, total, best: seen.append((done, total)),
    )
    assert seen[-1] == (12, 12) and len(result.trials) == 12
    rows = diabetes_data.frame.iloc[split_rows(plan, len(diabetes_data.frame)).train]
    default = cross_validate(
        rows, target=info.target, features=info.features, kind="tree", cv=4, random_state=42
    )
    assert result.best_cv["cv_rmse_mean"] <= default.mean["rmse"]
    assert result.params_path is not None
    doc = json.loads(result.params_path.read_text())
    assert doc["params"] == result.best_params == load_tuned_params("diabetes", "tree", settings)
    assert doc["split"] == result.split and result.split["n_train"] == len(rows)
    assert result.parent_run_id is None and result.tracking_error is None


def test_tune_bad_arguments(diabetes_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kw = dict(track=False, settings=Settings(home=tmp_path))
    plan = SplitPlan()
    with pytest.raises(ConfigError, match="unknown model kind 'svm'"):
        tune(diabetes_data, plan, kind="svm", **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--trials must be at least 1"):
        tune(diabetes_data, plan, kind="tree", n_trials=0, **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no tuned parameters for 'hgb' on 'diabetes'"):
        load_tuned_params("diabetes", "hgb", Settings(home=tmp_path))


@pytest.mark.parametrize(
    "plan",
    [
        SplitPlan(key="id", test_size=0.25),
        SplitPlan(shuffle=False, test_size=30),
        SplitPlan(seed=7),
    ],
    ids=["split-key", "no-shuffle", "seed"],
)
def test_tuning_never_sees_a_row_of_trains_test_split(
    plan: SplitPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row cross-validated by tune is a training row of the split train draws."""
    import regressops.training.tune as tuning

    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {"id": rng.permutation(10_000)[:n], "x": rng.normal(size=n), "z": rng.normal(size=n)}
    )
    frame["y"] = 3 * frame["x"] - frame["z"] + rng.normal(scale=0.1, size=n)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    settings = Settings(home=tmp_path / "home")
    # with a split key, the default features are every column but the target and the key
    selection = DataSelection(data=path, target="y", features=None if plan.key else ["x", "z"])
    seen_ids: set[int] = set()
    real = tuning.cross_validate

    def spy(rows: pd.DataFrame, **kw: Any) -> Any:
        seen_ids.update(frame["id"].to_numpy()[rows.index.to_numpy()].tolist())
        return real(rows, **kw)

    monkeypatch.setattr(tuning, "cross_validate", spy)
    data = load_training_data(selection, settings=settings, key=plan.key)
    tuning.tune(data, plan, kind="ridge", n_trials=3, cv=3, track=False, settings=settings)

    trained = train(
        selection, plan, EstimatorParams("linear"), plots=False, settings=settings,
        output=tmp_path / "m",
    )  # fmt: skip
    assert trained.split is not None
    test_ids = set(frame["id"].to_numpy()[trained.split.test].tolist())
    train_ids = set(frame["id"].to_numpy()[trained.split.train].tolist())
    assert seen_ids and not seen_ids & test_ids
    assert seen_ids == train_ids
    assert "id" not in trained.bundle.spec.names  # the key is an identifier, not a feature
