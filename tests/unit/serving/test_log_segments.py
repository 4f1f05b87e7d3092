"""JSON-lines log segments: rotation by size and age, retention, every row once across them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from regressops.serving.log.batch import LogBatch
from regressops.serving.log.process import HybridSink
from regressops.serving.log.reader import iter_log_rows, last_log_rows
from regressops.serving.log.segments import Rotation, apply_retention, segment_paths
from regressops.serving.log.sinks import JsonLinesSink


def _batch(rows: int, rid: str, ts: float | None = None) -> LogBatch:
    feats = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2)
    return LogBatch(
        time.time() if ts is None else ts, rid, "/batch", "m", "1", ["a", "b"], feats,
        feats.sum(axis=1), 1.0,
    )  # fmt: skip


def _keys(path: Path) -> list[tuple[str, int]]:
    return [(r["request_id"], r["row"]) for r in iter_log_rows(str(path), path.parent)]


def test_size_rotation_keeps_every_row_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    sink = JsonLinesSink(path, Rotation(max_bytes=2_000))
    expected = []
    for i in range(40):
        sink.write([_batch(5, f"r{i}")])
        expected += [(f"r{i}", j) for j in range(5)]
    sink.close()
    segments = segment_paths(path)
    assert len(segments) >= 4 and segments[-1] == path
    assert all(p.stat().st_size < 2_000 + 1_000 for p in segments)
    assert _keys(path) == expected
    rows, total = last_log_rows(str(path), tmp_path, 7)
    assert total == 200 and [(r["request_id"], r["row"]) for r in rows] == expected[-7:]


def test_an_old_segment_rotates_by_age(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    sink = JsonLinesSink(path, Rotation(max_seconds=3_600))
    sink.write([_batch(2, "old", ts=time.time() - 7_200)])
    sink.write([_batch(2, "new")])
    sink.close()
    assert len(segment_paths(path)) == 2
    assert _keys(path) == [("old", 0), ("old", 1), ("new", 0), ("new", 1)]


def test_two_writers_sharing_a_rotating_log_lose_and_repeat_nothing(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    rotation = Rotation(max_bytes=3_000)
    one, two = JsonLinesSink(path, rotation), JsonLinesSink(path, rotation)
    for i in range(60):
        (one if i % 3 else two).write([_batch(4, f"r{i}")])
    one.close()
    two.close()
    keys = _keys(path)
    assert sorted(keys) == sorted((f"r{i}", j) for i in range(60) for j in range(4))
    assert len(set(keys)) == len(keys)


def test_the_writer_process_rotates_with_the_same_settings(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    sink = HybridSink(str(path), tmp_path, Rotation(max_bytes=20_000))
    for i in range(12):
        sink.write([_batch(300, f"big{i}"), _batch(1, f"small{i}")])  # child, then thread
    sink.close()
    assert len(segment_paths(path)) >= 3
    assert len(_keys(path)) == 12 * 301 == len(set(_keys(path)))


def test_retention_removes_the_oldest_segments_never_the_current(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    sink = JsonLinesSink(path, Rotation(max_bytes=1_500, retention_bytes=4_000))
    for i in range(60):
        sink.write([_batch(3, f"r{i}")])
    sink.close()
    segments = segment_paths(path)
    assert sum(p.stat().st_size for p in segments[:-1]) <= 4_000 and path in segments
    keys = _keys(path)
    assert keys[-1] == ("r59", 2) and ("r0", 0) not in keys  # the newest kept, the oldest gone
    aged = Rotation(retention_seconds=60)
    assert apply_retention(path, aged, now=time.time() + 3_600) == segments[:-1]
    assert segment_paths(path) == [path]
