"""Reload swaps atomically and survives failures; the prediction log records every row."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from regressops.config import ServeSettings, Settings
from regressops.errors import ConfigError
from regressops.serving import loader
from regressops.serving.prediction_log import (
    JsonLinesSink,
    LogBatch,
    PredictionLogger,
    SqlSink,
    open_sink,
)

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


def test_reload_swaps_and_failed_reload_keeps_old(
    tmp_path: Path, bundle_factory: Any, client_factory: Any
) -> None:
    model = tmp_path / "model"
    bundle_factory(model, version="1")
    with client_factory(Settings(home=tmp_path / "home"), model) as c:
        before = c.post("/stream", json={"data": ROW}).json()
        bundle_factory(model, version="2", shift=100.0)
        r = c.post("/admin/reload")
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "2" and r.json()["previous_version"] == "1"
        after = c.post("/stream", json={"data": ROW}).json()
        assert after["model_version"] == "2"
        assert after["prediction"] == pytest.approx(before["prediction"] + 100.0)
        assert (
            '"version":"2"' in c.get("/openapi.json").text
            or c.get("/model-check").json()["version"] == "2"
        )
        (model / "model.json").write_text("{broken")
        r = c.post("/admin/reload")
        assert r.status_code == 409 and r.json()["reason"] == "reload_failed"
        assert "still serving diabetes version 2" in r.json()["message"]
        assert c.post("/stream", json={"data": ROW}).json()["model_version"] == "2"
        shutil.rmtree(model)
        assert c.post("/admin/reload").status_code == 409
        assert c.get("/model-check").json()["last_reload"]["reloaded"] is False
        text = c.get("/metrics").text
        assert 'regressops_model_reloads_total{result="failed"} 2.0' in text
        assert 'regressops_model_info{kind="linear",name="diabetes",version="1"} 0.0' in text


def test_reload_from_elsewhere_needs_keys(settings: Settings, diabetes_bundle: Any) -> None:
    from fastapi.testclient import TestClient

    from regressops.serving.app import create_app

    with TestClient(
        create_app(settings, model=str(diabetes_bundle[0])), client=("10.1.2.3", 1)
    ) as c:
        r = c.post("/admin/reload")
        assert r.status_code == 403 and "unless API keys are set" in r.json()["message"]


def test_reload_polling_picks_up_a_new_bundle(
    tmp_path: Path, bundle_factory: Any, client_factory: Any
) -> None:
    model = tmp_path / "model"
    bundle_factory(model, version="1")
    settings = Settings(home=tmp_path / "home", serve=ServeSettings(reload_poll_seconds=0.05))
    with client_factory(settings, model) as c:
        bundle_factory(model, version="7")
        deadline = time.monotonic() + 5
        while c.get("/readyz").json()["version"] != "7" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/readyz").json()["version"] == "7"


def test_every_row_is_logged_as_json_lines(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any
) -> None:
    with client_factory(Settings(home=tmp_path), diabetes_bundle[0]) as c:
        c.post("/stream", json={"data": ROW}, headers={"X-Request-ID": "one"})
        c.post("/batch", json={"data": [ROW, ROW, ROW]}, headers={"X-Request-ID": "three"})
        c.post("/stream", json={"data": [1]})  # refused: not logged
        c.post(
            "/v2/models/diabetes/infer",
            json={"inputs": [{"name": "x", "shape": [2, 10], "datatype": "FP64", "data": ROW * 2}]},
        )
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["request_id"] for r in rows[:4]] == ["one", "three", "three", "three"]
    assert [r["endpoint"] for r in rows] == ["/stream"] + ["/batch"] * 3 + [
        "/v2/models/{name}/infer"
    ] * 2
    first = rows[0]
    assert set(first) == {
        "ts",
        "request_id",
        "endpoint",
        "model_name",
        "model_version",
        "row",
        "features",
        "prediction",
        "latency_ms",
    }
    assert first["features"] == dict(zip(diabetes_bundle[1].spec.names, ROW, strict=True))
    assert first["model_name"] == "diabetes" and first["model_version"] == "1"
    assert first["prediction"] == pytest.approx(
        float(diabetes_bundle[1].predict_records([first["features"]])[0])
    )
    assert first["ts"].endswith("+00:00") and first["latency_ms"] > 0
    assert [r["row"] for r in rows[1:4]] == [0, 1, 2]


def test_categorical_rows_are_logged_with_their_categories(
    tmp_path: Path, insurance_bundle: Any, client_factory: Any
) -> None:
    rec = {
        "age": 19,
        "sex": "female",
        "bmi": 27.9,
        "children": 0,
        "smoker": "yes",
        "region": "southwest",
    }
    log = tmp_path / "custom" / "log.jsonl"
    with client_factory(Settings(home=tmp_path), insurance_bundle[0], prediction_log=str(log)) as c:
        assert c.post("/batch", json={"data": [rec, rec]}).status_code == 200
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["features"] == {**rec, "age": 19.0, "children": 0.0}


def _batch(n: int, rid: str = "r") -> LogBatch:
    feats = np.arange(n * 2, dtype=float).reshape(n, 2)
    return LogBatch(time.time(), rid, "/batch", "m", "1", ["a", "b"], feats, feats.sum(axis=1), 1.5)


def test_logger_loses_nothing_and_retries_a_failing_sink(tmp_path: Path) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.inner = JsonLinesSink(tmp_path / "flaky.jsonl")
            self.failures = 2

        def write(self, batches: list[LogBatch]) -> int:
            if self.failures:
                self.failures -= 1
                raise OSError("disk unavailable")
            return self.inner.write(batches)

        def close(self) -> None:
            self.inner.close()

    plog = PredictionLogger(Flaky(), flush_interval=0.01)
    plog.start()
    threads = [
        threading.Thread(target=lambda i=i: [plog.log(_batch(3, f"t{i}")) for _ in range(50)])
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    plog.flush()  # returns once the writer has tried; failed rows stay queued for a retry
    plog.log(_batch(1))
    plog.close()
    lines = (tmp_path / "flaky.jsonl").read_text().splitlines()
    assert len(lines) == 4 * 50 * 3 + 1 == plog.rows_written
    assert plog.pending_rows == 0


def test_sql_sink_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    sink = open_sink(url, tmp_path)
    assert isinstance(sink, SqlSink)
    assert sink.write([_batch(3, "a"), _batch(2, "b")]) == 5
    sink.close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select request_id, row, features, prediction from prediction_log order by id")
        ).all()
    assert [(r[0], r[1]) for r in rows] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert json.loads(rows[1][2]) == {"a": 2.0, "b": 3.0} and rows[1][3] == 5.0


def test_open_sink_targets(tmp_path: Path) -> None:
    assert open_sink("off", tmp_path) is None
    default = open_sink(None, tmp_path)
    assert isinstance(default, JsonLinesSink) and default.path == tmp_path / "predictions.jsonl"
    default.close()
    with pytest.raises(ConfigError, match="cannot open prediction log"):
        open_sink(str(tmp_path / "predictions.jsonl" / "x" / "y"), tmp_path)


def test_loader_references(tmp_path: Path, bundle_factory: Any) -> None:
    with pytest.raises(ConfigError, match="no model to serve"):
        loader.load_model("  ")
    with pytest.raises(ConfigError, match="scheme 'zz:'"):
        loader.load_model("zz:/thing")
    assert loader.scheme_of("models:/diabetes@champion") == "models"
    assert loader.scheme_of("C:/models/x") is None
    bundle_factory(tmp_path / "m")
    served: list[str] = []

    def load(ref: str) -> Any:
        served.append(ref)
        return loader.load_model(tmp_path / "m")

    loader.register_model_resolver(
        "testreg", loader.ModelResolver(load=load, fingerprint=lambda ref: "v1")
    )
    assert loader.load_model("testreg:/diabetes@champion").name == "diabetes"
    assert served == ["testreg:/diabetes@champion"]
    assert loader.fingerprint("testreg:/x") == "v1"
    before = loader.fingerprint(tmp_path / "m")
    time.sleep(0.01)
    bundle_factory(tmp_path / "m", version="2")
    assert loader.fingerprint(tmp_path / "m") not in (None, before)


@pytest.mark.parametrize("n", [1, 7, 8, 300])
def test_fast_json_lines_equal_the_row_objects(n: int) -> None:
    rng = np.random.default_rng(n)
    feats = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-8, 8, size=(n, 3))
    feats[0, 0] = -0.0
    batch = LogBatch(
        time.time(),
        "id%1",
        "/batch",
        'na"me',
        "v%s",
        ["a", "b%", 'c"'],
        feats,
        feats[:, 0] * 2,
        1.23456,
    )
    assert [json.loads(line) for line in batch.json_lines()] == list(batch.rows())
