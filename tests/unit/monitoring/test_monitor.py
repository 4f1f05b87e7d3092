"""``run_monitor`` end to end on real data: the stored reference, the log, tables, labels.

Bad input: each a one-line error of a documented kind and nothing written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.monitoring import diabetes_rows, log_rows
from regressops.config import MonitorSettings, Settings
from regressops.errors import BundleError, ConfigError, DataError
from regressops.models.bundle import load_bundle
from regressops.monitoring.monitor import MonitorRequest, run_monitor, write_report
from regressops.monitoring.reference import REFERENCE_FILE, load_reference
from regressops.monitoring.window import LogSelection


def test_training_stores_a_reference_that_reads_back_bit_for_bit(diabetes_bundle: Path) -> None:
    ref = load_reference(diabetes_bundle)
    bundle = load_bundle(diabetes_bundle)
    assert list(ref.features) == bundle.spec.names
    bmi = ref.features["bmi"]
    assert bmi.kind == "numeric" and bmi.rows == ref.rows == 353  # the training rows
    assert np.all(np.diff(bmi.sample) >= 0)
    assert ref.prediction is not None and ref.prediction.rows == 353
    again = type(ref).from_dict(
        json.loads((diabetes_bundle / REFERENCE_FILE).read_text()), where="x"
    )
    assert np.array_equal(again.features["bmi"].sample, bmi.sample)  # type: ignore[union-attr]


def test_monitor_flags_exactly_the_shifted_features(
    diabetes_bundle: Path, shifted_log: Path, tmp_path: Path
) -> None:
    report = run_monitor(
        MonitorRequest(model=str(diabetes_bundle), prediction_log=str(shifted_log))
    )
    doc = report.to_dict()
    assert doc["drifted_features"] == ["bmi", "s5"]
    assert doc["status"] == "ok" and doc["dataset_drift"] is False  # 2 of 10 < 0.5
    assert doc["share_drifted"] == pytest.approx(0.2)
    assert doc["current"]["rows"] == 1000 and doc["current"]["model_version"] == "local"
    assert doc["reference"]["rows"] == 353
    bmi = doc["features"]["bmi"]
    assert bmi["method"] == "ks" and bmi["type"] == "numeric" and bmi["std_score"] is not None
    assert doc["features"]["sex"]["method"] == "z"
    assert doc["prediction"]["drifted"] is True
    assert doc["performance"] is None
    json_path, html_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["drifted_features"] == ["bmi", "s5"]
    html = html_path.read_text()
    assert "No dataset drift" in html and "http://" not in html.replace(
        "http://www.w3.org/2000/svg", ""
    )


def test_monitor_unshifted_window_raises_no_alarm(diabetes_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(diabetes_bundle)
    data = diabetes_rows()
    log = tmp_path / "log.jsonl"
    log_rows(log, bundle, data[np.random.default_rng(2).permutation(len(data))])
    doc = run_monitor(MonitorRequest(model=str(diabetes_bundle), prediction_log=str(log))).to_dict()
    assert doc["drifted_features"] == []
    assert doc["status"] == "ok"


def test_labels_give_performance_and_unknown_ids_are_counted(
    diabetes_bundle: Path, tmp_path: Path
) -> None:
    bundle = load_bundle(diabetes_bundle)
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    log = tmp_path / "log.jsonl"
    ids = log_rows(log, bundle, data.data, request_rows=100)
    rows = [
        (rid, j, float(data.target[i * 100 + j]) * 1.5)
        for i, rid in enumerate(ids)
        for j in range(min(100, 442 - i * 100))
    ]
    labels = pd.DataFrame([*rows, ("unknown", 0, 1.0)], columns=["request_id", "row", "label"])
    labels.to_csv(tmp_path / "labels.csv", index=False)
    doc = run_monitor(
        MonitorRequest(
            model=str(diabetes_bundle), prediction_log=str(log), labels=tmp_path / "labels.csv"
        )
    ).to_dict()
    perf = doc["performance"]
    assert perf["rows_labelled"] == 442 and perf["labels_unmatched"] == 1
    expected = np.sqrt(
        np.mean(
            (data.target * 1.5 - bundle.predict_matrix(bundle.spec.transform_rows(data.data))) ** 2
        )
    )
    assert perf["rmse"] == pytest.approx(expected, rel=1e-9)
    assert perf["degraded"] is True and perf["status"] == "degraded"
    assert perf["reference"]["rmse"] == pytest.approx(bundle.metrics["rmse"])


def test_two_tables_without_a_model(tmp_path: Path) -> None:
    from regressops.datasets import get_dataset

    frame = get_dataset("insurance").load()
    order = np.random.default_rng(0).permutation(len(frame))  # the file is not in random order
    ref, cur = frame.iloc[order[:669]].copy(), frame.iloc[order[669:]].copy()
    cur["smoker"] = np.where(np.arange(len(cur)) % 3 == 0, "yes", cur["smoker"])
    cur["bmi"] = cur["bmi"] + 0.5 * frame["bmi"].std()
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet")
    doc = run_monitor(
        MonitorRequest(
            reference_data=tmp_path / "ref.csv",
            current_data=tmp_path / "cur.parquet",
            target="charges",
        )
    ).to_dict()
    assert doc["drifted_features"] == ["bmi", "smoker"]
    assert doc["features"]["smoker"]["type"] == "categorical"
    assert doc["features"]["region"]["method"] == "chisquare"
    assert doc["target"] is not None and doc["model"] is None and doc["prediction"] is None


def test_few_rows_are_not_enough_data(diabetes_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(diabetes_bundle)
    log = tmp_path / "log.jsonl"
    log_rows(log, bundle, diabetes_rows()[:10])
    s = Settings(monitor=MonitorSettings(min_rows=30))
    doc = run_monitor(
        MonitorRequest(model=str(diabetes_bundle), prediction_log=str(log)), settings=s
    ).to_dict()
    assert doc["status"] == "not_enough_data"
    assert {f["status"] for f in doc["features"].values()} == {"not_enough_data"}
    assert doc["features"]["bmi"]["score"] is None


def test_per_feature_method_override(diabetes_bundle: Path, shifted_log: Path) -> None:
    s = Settings(monitor={"features": {"bmi": {"method": "psi", "threshold": 0.05}}})
    doc = run_monitor(
        MonitorRequest(model=str(diabetes_bundle), prediction_log=str(shifted_log)), settings=s
    ).to_dict()
    assert doc["features"]["bmi"]["method"] == "psi"
    assert doc["features"]["bmi"]["threshold"] == 0.05
    with pytest.raises(ConfigError, match="unknown drift method 'nope'"):
        run_monitor(
            MonitorRequest(model=str(diabetes_bundle), prediction_log=str(shifted_log)),
            settings=Settings(monitor={"method": "nope"}),
        )


# ---------------------------------------------------------------------- bad input
def test_empty_log_and_empty_window(
    diabetes_bundle: Path, shifted_log: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty") as info:
        run_monitor(MonitorRequest(model=str(diabetes_bundle), prediction_log=str(empty)))
    assert info.value.exit_code == 3
    import datetime as dt

    future = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(DataError, match="no logged rows of model diabetes"):
        run_monitor(
            MonitorRequest(
                model=str(diabetes_bundle),
                prediction_log=str(shifted_log),
                selection=LogSelection(since=future),
            )
        )


def test_log_of_another_model(diabetes_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(diabetes_bundle)
    log = tmp_path / "log.jsonl"
    log_rows(log, bundle, diabetes_rows()[:50], version="7")
    with pytest.raises(
        DataError,
        match="holds no rows of model diabetes version local; it holds diabetes version 7: 50 rows",
    ):
        run_monitor(MonitorRequest(model=str(diabetes_bundle), prediction_log=str(log)))


def test_current_data_missing_features_and_other_types(tmp_path: Path) -> None:
    ref = pd.DataFrame({"a": np.arange(100.0), "b": ["x", "y"] * 50})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    ref[["a"]].to_csv(tmp_path / "cur.csv", index=False)
    with pytest.raises(DataError, match="lacks feature column"):
        run_monitor(
            MonitorRequest(reference_data=tmp_path / "ref.csv", current_data=tmp_path / "cur.csv")
        )
    pd.DataFrame({"a": ["p", "q"] * 50, "b": ["x"] * 100}).to_csv(tmp_path / "cur.csv", index=False)
    with pytest.raises(DataError, match="'a' is numeric in the reference but categorical"):
        run_monitor(
            MonitorRequest(reference_data=tmp_path / "ref.csv", current_data=tmp_path / "cur.csv")
        )


def test_labels_file_with_wrong_columns(
    diabetes_bundle: Path, shifted_log: Path, tmp_path: Path
) -> None:
    (tmp_path / "labels.csv").write_text("id,label\nr,1\n")
    with pytest.raises(DataError, match="needs columns request_id,row,label; it lacks request_id"):
        run_monitor(
            MonitorRequest(
                model=str(diabetes_bundle),
                prediction_log=str(shifted_log),
                labels=tmp_path / "labels.csv",
            )
        )


def test_old_bundle_without_reference(
    diabetes_bundle: Path, tmp_path: Path, shifted_log: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(diabetes_bundle, old)
    (old / REFERENCE_FILE).unlink()
    with pytest.raises(BundleError, match="pass --reference-data") as info:
        run_monitor(MonitorRequest(model=str(old), prediction_log=str(shifted_log)))
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_unwritable_report_directory(
    diabetes_bundle: Path, shifted_log: Path, tmp_path: Path
) -> None:
    report = run_monitor(
        MonitorRequest(model=str(diabetes_bundle), prediction_log=str(shifted_log))
    )
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="cannot write the report"):
        write_report(report, locked / "out")


def test_report_directory_that_is_a_file(
    diabetes_bundle: Path, shifted_log: Path, tmp_path: Path
) -> None:
    report = run_monitor(
        MonitorRequest(model=str(diabetes_bundle), prediction_log=str(shifted_log))
    )
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot write the report") as info:
        write_report(report, tmp_path / "file" / "out")
    assert info.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "predictions.jsonl"]


def test_raw_california_housing_with_gaps_and_a_text_column(tmp_path: Path) -> None:
    from helpers.env import SHARED_DATA, require_file

    path = require_file(SHARED_DATA / "california_housing_raw" / "housing.csv", "housing.csv")
    frame = pd.read_csv(path)
    order = np.random.default_rng(0).permutation(len(frame))
    ref, cur = frame.iloc[order[:10000]].copy(), frame.iloc[order[10000:]].copy()
    cur["median_income"] *= 1.3  # incomes grew
    cur.loc[cur["ocean_proximity"] == "INLAND", "ocean_proximity"] = "NEAR BAY"
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    doc = run_monitor(
        MonitorRequest(
            reference_data=tmp_path / "ref.csv",
            current_data=tmp_path / "cur.csv",
            target="median_house_value",
        )
    ).to_dict()
    assert doc["drifted_features"] == ["median_income", "ocean_proximity"]
    assert doc["features"]["ocean_proximity"]["method"] == "jensenshannon"
    assert doc["features"]["total_bedrooms"]["current_missing"] > 0  # the gaps are counted
    assert doc["features"]["median_income"]["method"] == "wasserstein"


def test_reference_dataset_replaces_the_stored_reference(
    diabetes_bundle: Path, shifted_log: Path
) -> None:
    doc = run_monitor(
        MonitorRequest(
            model=str(diabetes_bundle),
            prediction_log=str(shifted_log),
            reference_dataset="diabetes",
        )
    ).to_dict()
    assert doc["reference"]["rows"] == 442 and doc["reference"]["source"].startswith("dataset")
    assert doc["drifted_features"] == ["bmi", "s5"]
