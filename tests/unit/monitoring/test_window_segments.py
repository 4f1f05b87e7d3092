"""The monitor's window reads every segment of a rotated log, and the whole line after a torn
fragment, as the log reader does."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from regressops.monitoring.window import LogSelection, read_window
from regressops.serving.log.batch import LogBatch
from regressops.serving.log.segments import Rotation, segment_paths
from regressops.serving.log.sinks import JsonLinesSink


def _batch(rows: int, rid: str) -> LogBatch:
    x = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2)
    return LogBatch(time.time(), rid, "/batch", "m", "1", ["a", "b"], x, x[:, 0], 1.0)


def test_the_window_spans_rotated_segments(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    sink = JsonLinesSink(path, Rotation(max_bytes=1_500))
    for i in range(30):
        sink.write([_batch(5, f"r{i}")])
    sink.close()
    assert len(segment_paths(path)) >= 3
    window = read_window(
        str(path), kinds={"a": "numeric", "b": "numeric"}, selection=LogSelection()
    )
    assert window.rows == 150


def test_the_window_reads_the_whole_line_after_a_torn_fragment(tmp_path: Path) -> None:
    first, second = _batch(2, "a").json_lines()[0], _batch(3, "b").json_lines()[0]
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(first + b"\n" + second[:40] + second + b"\n")
    window = read_window(
        str(path), kinds={"a": "numeric", "b": "numeric"}, selection=LogSelection()
    )
    assert window.rows == 5
