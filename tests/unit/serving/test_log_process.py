"""The prediction log's writer process: same lines as in-thread, survives its own death, no loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from regressops.errors import ConfigError
from regressops.serving.log.batch import LogBatch
from regressops.serving.log.process import HybridSink, ProcessSink, decode, encode, payload_size
from regressops.serving.log.queue import PredictionLogger
from regressops.serving.log.reader import iter_log_rows
from regressops.serving.log.sinks import JsonLinesSink, PartialWriteError


def _matrix_batch(n: int, rid: str) -> LogBatch:
    rng = np.random.default_rng(n)
    feats = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-6, 6, size=(n, 3))
    return LogBatch(time.time(), rid, "/batch", "m", "2", ["a", 'b"', "c"], feats, feats[:, 0], 1.5)


def _columns_batch(n: int, rid: str) -> LogBatch:
    feats = {
        "age": np.arange(n, dtype=float),
        "smoker": ["yes", "no"] * (n // 2) + ["yes"] * (n % 2),
    }
    return LogBatch(
        time.time(), rid, "/predict", "m", "2", ["age", "smoker"], feats, np.ones(n), 2.0
    )


def _rows(path: Path) -> list[dict[str, object]]:
    return list(iter_log_rows(str(path), path.parent))


def _grouped_batch(sizes: list[int]) -> LogBatch:
    """The rows of several requests in one batch, as the shadow model logs them."""
    batch = _matrix_batch(sum(sizes), "g0")
    batch.request_ids = [f"g{i}" for i, n in enumerate(sizes) for _ in range(n)]
    batch.request_rows = [r for n in sizes for r in range(n)]
    return batch


def test_encode_decode_round_trip() -> None:
    batches = [_matrix_batch(5, "a"), _columns_batch(3, "b"), _matrix_batch(1, "c")]
    batches.append(_grouped_batch([1, 4, 2]))
    header, buffers = encode(batches)
    payload = memoryview(b"".join(bytes(b) for b in buffers))
    meta = orjson.loads(header)
    assert payload_size(meta) == len(payload)
    back = decode(meta, payload)
    assert [list(b.rows()) for b in back] == [list(b.rows()) for b in batches]


def test_the_child_writes_what_the_thread_would(tmp_path: Path) -> None:
    batches = [_matrix_batch(300, "big"), _columns_batch(7, "cat"), _matrix_batch(1, "one")]
    batches.append(_grouped_batch([100, 1, 30]))
    sink = ProcessSink(str(tmp_path / "child.jsonl"), tmp_path)
    assert sink.write(batches) == 439
    sink.close()
    local = JsonLinesSink(tmp_path / "thread.jsonl")
    local.write(batches)
    local.close()
    assert _rows(tmp_path / "child.jsonl") == _rows(tmp_path / "thread.jsonl")
    rows = _rows(tmp_path / "child.jsonl")
    assert len(rows) == 439
    assert [(r["request_id"], r["row"]) for r in rows[-131:]] == [
        (f"g{i}", r) for i, n in enumerate([100, 1, 30]) for r in range(n)
    ]


def test_a_child_that_cannot_open_the_log_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot open prediction log"):
        ProcessSink(str(tmp_path / "file" / "log.jsonl"), tmp_path)


def test_the_child_ignores_sigterm_and_a_killed_child_is_replaced_without_loss(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.jsonl"
    sink = ProcessSink(str(path), tmp_path)
    plog = PredictionLogger(sink, flush_interval=0.01)
    plog.start()
    plog.log(_matrix_batch(100, "first"))
    assert plog.flush()
    child = sink._proc
    assert child is not None
    os.kill(child.pid, signal.SIGTERM)  # a signal to the server's group must not stop it
    plog.log(_matrix_batch(100, "second"))
    assert plog.flush()  # the same child answered this write after the signal reached it
    assert sink._proc is child and child.poll() is None
    child.kill()  # the writer dies between two writes: the next write starts a new one
    child.wait(10)
    plog.log(_matrix_batch(100, "third"))
    assert plog.flush()
    # a writer that dies in the middle of a write: the batch stays queued and is retried
    sink._proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    plog.log(_matrix_batch(100, "fourth"))
    assert plog.flush() is False and plog.failing and plog.pending_rows == 100
    plog.close()  # retries through a new child before it gives up
    rows = _rows(path)
    assert [(r["request_id"], r["row"]) for r in rows] == [
        (rid, i) for rid in ("first", "second", "third", "fourth") for i in range(100)
    ]
    assert plog.rows_written == 400 and plog.pending_rows == 0
    assert sink._proc is None and child.returncode == -signal.SIGKILL


def test_hybrid_sends_large_requests_to_the_child_and_keeps_small_ones(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = HybridSink(str(path), tmp_path, min_rows=10)
    small, large = _matrix_batch(3, "small"), _matrix_batch(50, "large")
    assert sink.write([small, large, _columns_batch(4, "cat")]) == 57
    child = sink.large._proc
    assert child is not None
    child.kill()
    child.wait(10)
    sink.large._proc = None  # the replacement child must not start: make it fail
    sink.large.home = tmp_path / "file"
    (tmp_path / "file").write_text("x")
    sink.large.target = str(tmp_path / "file" / "x.jsonl")
    with pytest.raises(PartialWriteError) as info:
        sink.write([_matrix_batch(2, "s2"), _matrix_batch(20, "l2")])
    assert [b.request_id for b in info.value.remaining] == ["l2"]  # the small one was written
    sink.small.close()
    ids = {r["request_id"] for r in _rows(path)}
    assert ids == {"small", "large", "cat", "s2"}


def test_without_a_writer_process_the_server_logs_from_its_thread(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from regressops.config import Settings
    from regressops.serving.log import process as log_process

    def no_processes(*args: Any, **kwargs: Any) -> Any:
        raise OSError("fork refused")

    monkeypatch.setattr(log_process.subprocess, "Popen", no_processes)
    row = [0.03] * 10
    with client_factory(Settings(home=tmp_path), diabetes_bundle[0]) as c:
        assert c.post("/batch", json={"data": [row] * 100}).status_code == 200
    assert len(_rows(tmp_path / "predictions.jsonl")) == 100


def test_log_writer_setting_picks_the_sink_and_refuses_unknown_values(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any
) -> None:
    from pydantic import ValidationError

    from regressops.config import ServeSettings, Settings
    from regressops.serving.log.process import open_server_sink

    settings = Settings(home=tmp_path, serve=ServeSettings(log_writer="thread"))
    with client_factory(settings, diabetes_bundle[0]) as c:
        assert isinstance(c.app.state.serving.plog.sink, JsonLinesSink)
    assert open_server_sink("off", tmp_path) is None
    sink = open_server_sink(None, tmp_path)
    assert isinstance(sink, HybridSink)
    sink.close()
    with pytest.raises(ValidationError, match="log_writer"):
        ServeSettings(log_writer="fork")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="log_max_pending_rows"):
        ServeSettings(log_max_pending_rows=0)
