"""train, evaluate, predict: bundle contents, determinism, lineage, errors, no half-writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regressops.errors import BundleError, ConfigError, DataError, SchemaError
from regressops.models.bundle import load_bundle
from regressops.training.evaluate import evaluate, predict
from regressops.training.train import TrainEvent, train

PNG = b"\x89PNG\r\n\x1a\n"


def test_bundle_has_metrics_lineage_and_plots(home: Path) -> None:
    events: list[TrainEvent] = []
    result = train(dataset="diabetes", solver="gd", max_iter=50, progress=events.append)
    path = result.path
    assert path == home / "models" / "diabetes"
    metrics = json.loads((path / "metrics.json").read_text())
    assert {"r2", "rmse", "mse", "mae", "n_test", "train", "fit"} <= set(metrics)
    assert metrics["n_test"] == 89
    assert set(metrics["train"]) == {"r2", "rmse", "mse", "mae", "n"}
    assert metrics["train"]["n"] == 353
    assert metrics["rmse"] == pytest.approx(np.sqrt(metrics["mse"]))
    assert metrics["fit"]["solver"] == "gd"
    assert len(metrics["fit"]["loss_curve"]) == metrics["fit"]["n_iter"]

    lineage = json.loads((path / "lineage.json").read_text())
    assert lineage["source"] == "dataset"
    assert lineage["dataset"] == "diabetes"
    assert lineage["rows"] == 442
    assert len(lineage["content_hash"]) == 64
    assert lineage["seed"] == 42
    assert lineage["split"]["random_state"] == 42
    assert lineage["split"]["n_test"] == 89
    assert lineage["regressops_version"] == "0.1.0"
    assert {"numpy", "scikit-learn", "pandas"} <= set(lineage["packages"])
    assert "git_commit" in lineage

    model = json.loads((path / "model.json").read_text())
    assert model["kind"] == "linear"
    assert model["params"]["solver"] == "gd"
    assert "callback" not in model["params"]
    assert sorted(model["plots"]) == [
        "plots/loss_curve.png", "plots/predicted_vs_actual.png", "plots/residuals.png",
    ]  # fmt: skip
    for plot in result.plots:
        assert plot.read_bytes().startswith(PNG)
    stages = [e.stage for e in events]
    assert stages[:2] == ["load", "split"]
    assert stages[-2:] == ["save", "done"]
    assert any(e.stage == "fit" and e.step > 0 and e.loss is not None for e in events)


def test_exact_solver_has_no_loss_curve_plot(tmp_path: Path) -> None:
    result = train(dataset="diabetes", output=tmp_path / "m")
    assert sorted(p.name for p in result.plots) == ["predicted_vs_actual.png", "residuals.png"]


def test_training_is_deterministic(tmp_path: Path) -> None:
    kwargs = {"dataset": "insurance", "solver": "sgd", "max_iter": 5, "plots": False}
    a = train(output=tmp_path / "a", **kwargs)
    b = train(output=tmp_path / "b", **kwargs)
    np.testing.assert_array_equal(a.bundle.coef, b.bundle.coef)
    assert a.bundle.intercept == b.bundle.intercept
    assert a.metrics == b.metrics
    assert a.bundle.lineage["content_hash"] == b.bundle.lineage["content_hash"]
    c = train(output=tmp_path / "c", random_state=7, **kwargs)
    assert c.metrics["r2"] != a.metrics["r2"]


def test_features_are_fitted_on_training_rows_only(tmp_path: Path) -> None:
    result = train(dataset="diabetes", features=["bmi"], test_size=20, shuffle=False, plots=False)
    from regressops.datasets import load_dataset

    bmi = load_dataset("diabetes")["bmi"].to_numpy()
    feature = result.bundle.spec.feature("bmi")
    assert feature.center == pytest.approx(bmi[:422].mean(), abs=1e-15)  # type: ignore[union-attr]
    assert feature.center != pytest.approx(bmi.mean(), abs=1e-15)  # type: ignore[union-attr]


def test_convergence_is_reported(tmp_path: Path) -> None:
    result = train(dataset="insurance", solver="gd", max_iter=1, plots=False, output=tmp_path / "m")
    assert result.converged is False
    assert result.metrics["fit"]["converged"] is False


@pytest.mark.parametrize(
    ("kwargs", "error", "reason"),
    [
        ({"solver": "newton"}, ConfigError, "unknown_solver"),
        ({"model": "svm"}, ConfigError, "unknown_model_kind"),
        ({"solver": "gd", "learning_rate": -1.0}, ConfigError, "invalid_parameter"),
        ({"max_iter": 0}, ConfigError, "invalid_parameter"),
        ({"test_size": 442}, ConfigError, "invalid_test_size"),
        ({"features": ["bmi", "nope"]}, DataError, "unknown_column"),
        ({"target": "nope"}, DataError, "unknown_column"),
    ],
)
def test_bad_arguments_write_nothing(
    home: Path, kwargs: dict, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error) as info:
        train(dataset="diabetes", **kwargs)
    assert getattr(info.value, "reason", None) == reason
    assert not (home / "models").exists()


def test_nan_target_and_text_target(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, None, 3.0, 4.0], "s": list("abcd")}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError, match="missing or infinite") as info:
        train(data=path, target="y", features=["x"])
    assert info.value.reason == "missing_target"
    with pytest.raises(DataError, match="not numeric"):
        train(data=path, target="s", features=["x"])


def test_evaluate_reproduces_the_test_metrics(diabetes_bundle: Path, tmp_path: Path) -> None:
    saved = load_bundle(diabetes_bundle).metrics
    result = evaluate(diabetes_bundle, dataset="diabetes", rows="test", report=tmp_path / "r.json")
    for name in ("r2", "rmse", "mse", "mae"):
        assert result.metrics[name] == saved[name]
    assert result.metrics["n"] == saved["n_test"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metrics"]["r2"] == saved["r2"]
    assert report["rows"] == "test"
    everything = evaluate(diabetes_bundle, dataset="diabetes")
    assert everything.metrics["n"] == 442


def test_evaluate_on_a_file_and_on_other_data(diabetes_bundle: Path, tmp_path: Path) -> None:
    from regressops.datasets import load_dataset

    frame = load_dataset("diabetes")
    path = tmp_path / "d.parquet"
    frame.to_parquet(path)
    on_file = evaluate(diabetes_bundle, data=path)
    assert on_file.metrics == evaluate(diabetes_bundle, dataset="diabetes").metrics
    frame.iloc[:100].to_csv(tmp_path / "part.csv", index=False)
    with pytest.raises(DataError, match="not the data") as info:
        evaluate(diabetes_bundle, data=tmp_path / "part.csv", rows="test")
    assert info.value.reason == "data_mismatch"
    with pytest.raises(DataError, match="unknown feature"):
        evaluate(diabetes_bundle, dataset="insurance", target="charges")
    with pytest.raises(BundleError):
        evaluate(tmp_path / "nowhere", dataset="diabetes")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_predict_writes_inputs_plus_prediction(
    diabetes_bundle: Path, tmp_path: Path, suffix: str
) -> None:
    from regressops.data.files import read_table
    from regressops.datasets import load_dataset

    frame = load_dataset("diabetes").drop(columns="target").head(7).assign(note="keep me")
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / f"out{suffix}"
    result = predict(diabetes_bundle, src, out)
    assert result.rows == 7
    written = read_table(out)
    assert list(written.columns) == [*frame.columns, "prediction"]
    assert (written["note"] == "keep me").all()
    expected = load_bundle(diabetes_bundle).predict_frame(frame)
    np.testing.assert_allclose(written["prediction"].to_numpy(), expected, rtol=1e-12)


def test_predict_errors_write_nothing(diabetes_bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({"bmi": [0.1], "prediction": [1.0]}).to_csv(src, index=False)
    with pytest.raises(DataError, match="already has a 'prediction' column"):
        predict(diabetes_bundle, src, tmp_path / "out.csv")
    with pytest.raises(DataError, match="unsupported output type"):
        predict(diabetes_bundle, src, tmp_path / "out.xlsx")
    pd.DataFrame({"bmi": [0.1]}).to_csv(src, index=False)
    with pytest.raises(SchemaError, match="missing feature"):
        predict(diabetes_bundle, src, tmp_path / "out.csv")
    with pytest.raises(DataError, match="file not found"):
        predict(diabetes_bundle, tmp_path / "none.csv", tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_test_size_from_the_settings_may_be_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from regressops.config import get_settings

    monkeypatch.setenv("REGRESSOPS_TRAIN__TEST_SIZE", "20")
    get_settings.cache_clear()
    result = train(dataset="diabetes", plots=False)
    assert result.metrics["n_test"] == 20
    assert result.bundle.lineage["split"]["test_size"] == 20
