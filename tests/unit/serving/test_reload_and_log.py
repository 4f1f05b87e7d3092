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
from regressops.errors import ConfigError, DataError
from regressops.serving import loader
from regressops.serving.log.batch import LogBatch
from regressops.serving.log.queue import PredictionLogger
from regressops.serving.log.reader import iter_log_rows, last_log_rows
from regressops.serving.log.sinks import JsonLinesSink, PartialWriteError, SqlSink, open_thread_sink

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
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [(d["request_id"], d["first_row"], d["rows"]) for d in lines[:2]] == [
        ("one", 0, 1),
        ("three", 0, 3),
    ]
    assert len(lines) == 3  # one line per request; the refused one is not logged
    rows = list(iter_log_rows(None, tmp_path))
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
    rows = list(iter_log_rows(str(log), tmp_path))
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
    rows = list(iter_log_rows(str(tmp_path / "flaky.jsonl"), tmp_path))
    assert len(rows) == 4 * 50 * 3 + 1 == plog.rows_written
    assert plog.pending_rows == 0
    assert len({(r["request_id"], r["row"]) for r in rows}) == 4 * 3 + 1


def test_sql_sink_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    sink = open_thread_sink(url, tmp_path)
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
    assert open_thread_sink("off", tmp_path) is None
    default = open_thread_sink(None, tmp_path)
    assert isinstance(default, JsonLinesSink) and default.path == tmp_path / "predictions.jsonl"
    default.close()
    with pytest.raises(ConfigError, match="cannot open prediction log"):
        open_thread_sink(str(tmp_path / "predictions.jsonl" / "x" / "y"), tmp_path)


def test_loader_references(tmp_path: Path, bundle_factory: Any) -> None:
    with pytest.raises(ConfigError, match="no model to serve"):
        loader.load_model("  ")
    with pytest.raises(ConfigError, match="scheme 'zz:'"):
        loader.load_model("zz:/thing")
    assert loader.scheme_of("models:/diabetes@champion") == "models"
    assert loader.scheme_of("C:/models/x") is None
    bundle_factory(tmp_path / "m")
    with pytest.raises(ConfigError, match="expected a bundle directory, models:/NAME@ALIAS"):
        loader.fingerprint("testreg:/x")
    before = loader.fingerprint(tmp_path / "m")
    time.sleep(0.01)
    bundle_factory(tmp_path / "m", version="2")
    assert loader.fingerprint(tmp_path / "m") not in (None, before)


@pytest.mark.parametrize(("n", "line_rows"), [(1, 4), (7, 4), (8, 8), (300, 64), (300, 1000)])
def test_json_lines_read_back_as_the_row_objects(tmp_path: Path, n: int, line_rows: int) -> None:
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
    lines = batch.json_lines(line_rows)
    assert len(lines) == -(-n // line_rows)
    assert [json.loads(line)["first_row"] for line in lines] == list(range(0, n, line_rows))
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert list(iter_log_rows(str(path), tmp_path)) == list(batch.rows())


def test_categorical_columns_read_back_as_the_row_objects(tmp_path: Path) -> None:
    feats = {
        "age": np.array([19.0, 33.0, 61.0] * 30),
        "smoker": np.array(["yes", "no", "no"] * 30),
        "region": ["southwest", 'north"east', "x"] * 30,
    }
    batch = LogBatch(time.time(), "r", "/batch", "m", "1", list(feats), feats, np.arange(90.0), 2.0)
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(batch.json_lines(40)) + b"\n")
    assert list(iter_log_rows(str(path), tmp_path)) == list(batch.rows())


def test_a_partial_write_is_retried_without_duplicating_rows(tmp_path: Path) -> None:
    class HalfBroken:
        """Writes the first batch it is given, then fails once."""

        def __init__(self) -> None:
            self.inner = JsonLinesSink(tmp_path / "p.jsonl")
            self.broken = True

        def write(self, batches: list[LogBatch]) -> int:
            if self.broken and len(batches) > 1:
                self.broken = False
                self.inner.write(batches[:1])
                raise PartialWriteError(batches[1:], OSError("disk full"))
            return self.inner.write(batches)

        def close(self) -> None:
            self.inner.close()

    plog = PredictionLogger(HalfBroken(), flush_interval=60)
    for i in range(3):
        plog.log(_batch(2, f"b{i}"))
    plog.start()
    assert plog.flush() is False and plog.failing  # first write failed after one batch
    assert plog.pending_rows == 4
    plog.close()  # retries the rest
    rows = list(iter_log_rows(str(tmp_path / "p.jsonl"), tmp_path))
    assert [(r["request_id"], r["row"]) for r in rows] == [
        (f"b{i}", j) for i in range(3) for j in range(2)
    ]
    assert plog.rows_written == 6 and plog.pending_rows == 0


def test_backlog_turns_on_past_the_limit_and_a_failing_sink_is_not_waited_for(
    tmp_path: Path,
) -> None:
    import asyncio

    class Down:
        def write(self, batches: list[LogBatch]) -> int:
            raise OSError("database down")

        def close(self) -> None:
            pass

    plog = PredictionLogger(Down(), flush_interval=0.01, max_pending_rows=5)
    plog.start()
    plog.log(_batch(3))
    assert not plog.backlogged
    plog.log(_batch(3))
    assert plog.backlogged and plog.pending_rows == 6
    deadline = time.monotonic() + 60
    while not plog.failing and time.monotonic() < deadline:  # the writer's first attempt
        time.sleep(0.01)
    assert plog.failing
    started = time.monotonic()
    # a failing sink answers at once instead of holding the request for the whole timeout
    assert asyncio.run(plog.wait_for_room(timeout=120)) is False
    assert time.monotonic() - started < 60


def test_a_backlogged_log_holds_requests_until_the_sink_catches_up(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any
) -> None:
    settings = Settings(home=tmp_path, serve=ServeSettings(log_max_pending_rows=2))
    with client_factory(settings, diabetes_bundle[0]) as c:
        plog = c.app.state.serving.plog  # type: ignore[attr-defined]
        plog.flush_interval = 3600.0  # the writer only runs when something wakes it
        plog.flush()
        assert c.post("/batch", json={"data": [ROW] * 3}).status_code == 200
        assert plog.backlogged
        r = c.post("/stream", json={"data": ROW})  # waits for room, then is answered
        assert r.status_code == 200 and plog.pending_rows <= 1
        plog.sink.write = lambda batches: (_ for _ in ()).throw(OSError("gone"))
        c.post("/batch", json={"data": [ROW] * 3})
        plog.flush()
        r = c.post("/stream", json={"data": ROW})
        assert r.status_code == 503 and r.json()["reason"] == "prediction_log_backlogged"
        ready = c.get("/readyz")  # a load balancer stops sending requests it would refuse
        assert ready.status_code == 503 and ready.json()["prediction_log"]["failing"] is True


def test_an_unwritable_log_can_be_served_through_counting_dropped_rows(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        home=tmp_path, serve=ServeSettings(log_max_pending_rows=2, log_when_unwritable="drop")
    )
    with client_factory(settings, diabetes_bundle[0]) as c:
        plog = c.app.state.serving.plog  # type: ignore[attr-defined]
        plog.flush_interval = 3600.0
        plog.sink.write = lambda batches: (_ for _ in ()).throw(OSError("gone"))
        c.post("/batch", json={"data": [ROW] * 3})
        plog.flush()
        assert plog.failing and plog.backlogged
        with caplog.at_level("WARNING", logger="regressops.serving.log.queue"):
            for _ in range(2):  # answered, not logged, and counted
                assert c.post("/batch", json={"data": [ROW] * 4}).status_code == 200
        assert plog.rows_dropped == 8
        assert caplog.text.count("not logged from now on") == 1  # once per episode
        ready = c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["prediction_log"] == {
            "failing": True, "pending_rows": 3, "dropped_rows": 8, "when_unwritable": "drop"
        }  # fmt: skip
        text = c.get("/metrics").text
        assert "regressops_prediction_log_dropped_rows 8.0" in text
        assert "regressops_prediction_log_failing 1.0" in text


def test_predictions_reads_the_last_rows_of_a_sql_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    sink = open_thread_sink(url, tmp_path)
    assert sink is not None
    sink.write([_batch(3, "a"), _batch(2, "b")])
    sink.close()
    rows, total = last_log_rows(url, tmp_path, 2)
    assert total == 5 and [(r["request_id"], r["row"]) for r in rows] == [("b", 0), ("b", 1)]
    assert rows[0]["features"] == {"a": 0.0, "b": 1.0} and rows[0]["prediction"] == 1.0
    assert [r["row"] for r in iter_log_rows(url, tmp_path)] == [0, 1, 2, 0, 1]
    with pytest.raises(ConfigError, match="no prediction_log table"):
        last_log_rows(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path, 2)
    with pytest.raises(ConfigError, match="nothing logged yet: no server has written"):
        last_log_rows(str(tmp_path / "missing.jsonl"), tmp_path, 2)


def test_a_torn_fragment_is_skipped_with_a_warning_and_a_line_being_written_ends_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _batch(2, "a").json_lines()[0], _batch(3, "b").json_lines()[0]
    path = tmp_path / "log.jsonl"
    # a writer killed mid-write, the next append continuing its line, then a line being written
    path.write_bytes(first + b"\n" + second[:40] + second + b"\n" + first + b"\n" + second[:30])
    with caplog.at_level("WARNING"):
        rows = list(iter_log_rows(str(path), tmp_path))
    # the fragment is dropped; the whole line the next append wrote after it is read
    assert [r["request_id"] for r in rows] == ["a", "a", "b", "b", "b", "a", "a"]
    assert "line 2 of" in caplog.text and "torn fragment" in caplog.text
    path.write_bytes(second[:40] + b"\n" + first + b"\n")  # a fragment ended by a newline
    assert [r["request_id"] for r in iter_log_rows(str(path), tmp_path)] == ["a", "a"]
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match="is not a prediction log"):
        list(iter_log_rows(str(path), tmp_path))
