"""A log decoded by several processes: the same lines, warnings and errors as one process."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.errors import DataError
from regressops.monitoring import log_fanout
from regressops.monitoring.log_lines import decoded_lines
from regressops.monitoring.window import LogSelection, read_window
from regressops.serving.log.batch import LogBatch

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="Linux only")
KINDS = {"a": "numeric", "b": "numeric", "colour": "categorical"}


@pytest.fixture(autouse=True)
def _small_logs_fan_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fan out whatever the log's size, and although the test worker runs other threads (its
    own I/O thread, servers of earlier tests): the children here touch no lock they could
    hold, and a process that forks with threads running is what the rule guards, tested apart.
    """
    monkeypatch.setattr(log_fanout, "MIN_BYTES", 0)
    monkeypatch.setattr(log_fanout, "threading", SimpleNamespace(active_count=lambda: 1))


def _lines(rng: np.random.Generator, requests: int, version: str = "1") -> list[bytes]:
    out = []
    for r in range(requests):
        n = int(rng.integers(1, 40))
        feats = {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 5, size=n).astype(np.float64),
            "colour": [["red", "blue", "green"][i % 3] for i in range(n)],
        }
        batch = LogBatch(
            1_767_225_600.0 + r,
            f"r{r}",
            "/batch",
            "m",
            version,
            ["a", "b", "colour"],
            feats,
            rng.normal(size=n),
            1.0,
        )
        out.extend(batch.json_lines(line_rows=16))
    return out


def _write_segments(root: Path, lines: list[bytes], segments: int) -> Path:
    """``lines`` spread over ``segments`` files the way rotation names them."""
    path = root / "log.jsonl"
    chunks = np.array_split(np.arange(len(lines)), segments)
    names = [root / f"log.{i + 1:06d}.jsonl" for i in range(segments - 1)] + [path]
    for name, idx in zip(names, chunks, strict=True):
        name.write_bytes(b"".join(lines[i] + b"\n" for i in idx))
    return path


def _bits(values: np.ndarray) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


def _same_window(path: Path, workers: int) -> None:
    one = read_window(str(path), kinds=KINDS, selection=LogSelection(), keep_ids=True)
    many = read_window(
        str(path), kinds=KINDS, selection=LogSelection(), keep_ids=True, workers=workers
    )
    assert many.rows == one.rows
    assert many.models == one.models and many.seen == one.seen
    assert (many.first_ts, many.last_ts) == (one.first_ts, one.last_ts)
    for name in ("a", "b"):
        assert _bits(many.column(name).sorted) == _bits(one.column(name).sorted)
    assert many.column("colour").counts(None) == one.column("colour").counts(None)  # type: ignore[arg-type]
    assert _bits(many.predictions()) == _bits(one.predictions())
    assert many._ids == one._ids


@pytest.mark.parametrize(("segments", "workers"), [(1, 2), (1, 3), (3, 2), (4, 5)])
def test_the_same_window_from_several_processes(
    tmp_path: Path, segments: int, workers: int
) -> None:
    path = _write_segments(tmp_path, _lines(np.random.default_rng(segments), 60), segments)
    _same_window(path, workers)


def test_torn_lines_are_warned_with_the_same_line_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = _lines(np.random.default_rng(1), 40)
    lines[30] = lines[30][:50] + lines[30]  # a fragment of a killed writer, then the line
    lines[5] = lines[5][:20] + lines[5]
    path = _write_segments(tmp_path, lines, 1)
    path.write_bytes(path.read_bytes() + lines[0][:30])  # a line being appended
    caplog.set_level(logging.WARNING)
    _same_window(path, 1)
    single = _torn_warnings(caplog)
    caplog.clear()
    _same_window(path, 3)
    assert _torn_warnings(caplog) == single  # both read each twice
    assert any("line 31 of" in m for m in single)


def _torn_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The reader's warnings (not another test's threads still logging in this worker)."""
    return sorted(m for r in caplog.records if "torn fragment" in (m := r.getMessage()))


def test_a_bad_line_in_a_childs_part_is_the_same_error(tmp_path: Path) -> None:
    lines = _lines(np.random.default_rng(2), 40)
    lines[-3] = b"[1, 2, 3]"
    path = _write_segments(tmp_path, lines, 1)
    with pytest.raises(DataError) as one:
        read_window(str(path), kinds=KINDS, selection=LogSelection())
    with pytest.raises(DataError) as many:
        read_window(str(path), kinds=KINDS, selection=LogSelection(), workers=2)
    assert str(many.value) == str(one.value)
    assert f"line {len(lines) - 2} of" in str(one.value)


def test_a_child_that_dies_costs_only_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_segments(tmp_path, _lines(np.random.default_rng(3), 50), 2)
    monkeypatch.setattr(log_fanout, "_child", lambda *args: os._exit(9))
    _same_window(path, 3)


def test_children_are_reaped_even_when_reading_stops_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write_segments(tmp_path, _lines(np.random.default_rng(4), 50), 1)
    forked: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(log_fanout.os, "fork", fork)
    lines = decoded_lines(path, KINDS, workers=3)
    next(lines)
    lines.close()
    assert len(forked) == 2
    for pid in forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_no_fan_out_while_another_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_fanout, "threading", threading)  # the real count
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not log_fanout.can_fan_out(1 << 30, 2)
    finally:
        stop.set()
        thread.join()
    assert log_fanout.can_fan_out(1 << 30, 2, threads=1)
    assert not log_fanout.can_fan_out(1 << 30, 2, threads=2)
    assert not log_fanout.can_fan_out(1 << 30, 1, threads=1)


def test_the_children_really_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent decodes only the first part: the others come from the children's files."""
    path = _write_segments(tmp_path, _lines(np.random.default_rng(5), 60), 2)
    decoded_here = []
    real = log_fanout._here

    def here(segments: list[Path], part: log_fanout.Part, read_range: object) -> object:
        decoded_here.append(part)
        return real(segments, part, read_range)  # type: ignore[arg-type]

    monkeypatch.setattr(log_fanout, "_here", here)
    _same_window(path, 3)
    assert len(decoded_here) == 1 and decoded_here[0].ranges[0][1] == 0


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.lists(st.integers(1, 30), max_size=8), min_size=1, max_size=5),
    parts=st.integers(1, 6),
)
def test_parts_cover_every_byte_once_at_line_starts(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[list[int]], parts: int
) -> None:
    root = tmp_path_factory.mktemp("parts")
    segments = []
    for i, lengths in enumerate(sizes):
        path = root / f"s{i}"
        path.write_bytes(b"".join(b"x" * (n - 1) + b"\n" for n in lengths))
        segments.append(path)
    byte_sizes = [p.stat().st_size for p in segments]
    plan = log_fanout.plan_parts(segments, byte_sizes, parts)
    assert len(plan) <= parts
    assert bool(plan) == (sum(byte_sizes) > 0)
    covered = [(seg, start, stop) for part in plan for seg, start, stop in part.ranges]
    assert covered == sorted(covered)
    for seg, size in enumerate(byte_sizes):
        spans = [(a, b) for s, a, b in covered if s == seg]
        assert sum(b - a for a, b in spans) == size
        data = segments[seg].read_bytes()
        for a, _ in spans:
            assert a == 0 or data[a - 1 : a] == b"\n"
