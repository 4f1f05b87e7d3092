"""The prediction log on a disk that fills up and then gets room: every row exactly once.

A small tmpfs is mounted (root only; skipped with the reason elsewhere), requests of random sizes
are logged through the real writer thread and writer process until the disk is full at a random
point, the tmpfs is remounted larger, and the log must then hold each logged row exactly once,
in whole lines, with the values it was given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from regressops.serving.log.batch import LogBatch
from regressops.serving.log.process import HybridSink
from regressops.serving.log.queue import PredictionLogger
from regressops.serving.log.reader import iter_log_rows
from regressops.serving.log.sinks import JsonLinesSink


def _mount(path: Path, size_kb: int, remount: bool = False) -> bool:
    options = f"{'remount,' if remount else ''}size={size_kb}k"
    args = ["mount", "-o", options, str(path)] if remount else ["mount", "-t", "tmpfs"]
    if not remount:
        args += ["-o", options, "tmpfs", str(path)]
    return subprocess.run(args, capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to create a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount(disk, 192):
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _batches(rng: np.random.Generator, n: int) -> list[LogBatch]:
    out = []
    for i in range(n):
        rows = int(rng.choice([1, 3, 70, 500, 2_100, 5_000]))
        feats = np.round(rng.normal(size=(rows, 3)), 6)
        out.append(
            LogBatch(time.time(), f"r{i}", "/batch", "m", "1", ["a", "b", "c"], feats,
                     feats.sum(axis=1), 1.0)
        )  # fmt: skip
    return out


def _check_exactly_once(path: Path, batches: list[LogBatch]) -> None:
    seen: dict[tuple[str, int], dict] = {}
    for row in iter_log_rows(str(path), path.parent):
        key = (row["request_id"], row["row"])
        assert key not in seen, f"row {key} logged twice"
        seen[key] = row
    expected = {(b.request_id, i) for b in batches for i in range(len(b))}
    assert set(seen) == expected, f"{len(expected - set(seen))} rows missing"
    for b in batches[:: max(1, len(batches) // 10)]:
        for i in (0, len(b) - 1):
            got = seen[(b.request_id, i)]
            assert got["features"]["a"] == b.features[i, 0]
            assert got["prediction"] == pytest.approx(b.predictions[i])


def _fill_then_free(disk: Path, logger: PredictionLogger, batches: list[LogBatch]) -> None:
    logger.start()
    for b in batches:
        logger.log(b)
    deadline = time.monotonic() + 60
    while not logger.failing and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the state: the disk is full once the writer fails
    assert logger.failing, "the disk never filled up"
    assert _mount(disk, 64 * 1024, remount=True)
    assert logger.flush(timeout=120), "the log did not catch up once the disk had room"
    logger.close()


@pytest.mark.parametrize("seed", range(4))
def test_the_writer_thread_logs_every_row_once_across_a_full_disk(
    small_disk: Path, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    path = small_disk / "predictions.jsonl"
    # a random amount already on the disk moves the point where it fills up
    (small_disk / "ballast").write_bytes(b"x" * int(rng.integers(0, 60_000)))
    batches = _batches(rng, 60)
    sink = JsonLinesSink(path)
    _fill_then_free(small_disk, PredictionLogger(sink, flush_interval=0.01), batches)
    _check_exactly_once(path, batches)


@pytest.mark.parametrize("seed", range(3))
def test_the_writer_process_logs_every_row_once_across_a_full_disk(
    small_disk: Path, seed: int
) -> None:
    rng = np.random.default_rng(100 + seed)
    path = small_disk / "predictions.jsonl"
    (small_disk / "ballast").write_bytes(b"x" * int(rng.integers(0, 60_000)))
    batches = _batches(rng, 60)
    sink = HybridSink(str(path), small_disk)
    _fill_then_free(small_disk, PredictionLogger(sink, flush_interval=0.01), batches)
    _check_exactly_once(path, batches)
