"""The log read as columnar blocks: filters, the last N rows, the labels' join, bad lines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from regressops.errors import DataError
from regressops.monitoring.window import LogSelection, read_window
from regressops.serving.log.batch import LogBatch

NAMES = ["a", "b", "colour"]
KINDS = {"a": "numeric", "b": "numeric", "colour": "categorical"}
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()


def write_log(path: Path, requests: list[tuple[float, str, str, int]], line_rows: int = 7) -> None:
    """Requests of (time, version, id, rows): a = row index, b = -row, colour alternating."""
    with path.open("ab") as fh:
        for ts, version, rid, n in requests:
            feats = {
                "a": np.arange(n, dtype=np.float64),
                "b": -np.arange(n, dtype=np.float64),
                "colour": ["red" if i % 2 else "blue" for i in range(n)],
            }
            batch = LogBatch(
                ts,
                rid,
                "/batch",
                "m",
                version,
                NAMES,
                feats,
                np.arange(n, dtype=np.float64) * 10,
                1.0,
            )
            for line in batch.json_lines(line_rows=line_rows):
                fh.write(line + b"\n")


def test_reads_every_row_as_columns(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    write_log(log, [(T0, "1", "r1", 20), (T0 + 60, "1", "r2", 5)])
    w = read_window(str(log), kinds=KINDS, selection=LogSelection(model_name="m"))
    assert w.rows == 25
    a = w.column("a").sorted
    assert a.tolist() == sorted(list(range(20)) + list(range(5)))
    colour = w.column("colour").counts(None)  # type: ignore[arg-type]
    assert colour == {"blue": 13, "red": 12}
    assert w.versions == {"1": 25}
    assert w.first_ts is not None and w.first_ts.startswith("2026-01-01T00:00:00")


def test_filters_by_version_time_and_last_rows(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    write_log(log, [(T0, "1", "old", 10), (T0 + 3600, "2", "r1", 20), (T0 + 7200, "2", "r2", 9)])
    sel = LogSelection(model_name="m", model_version="2")
    assert read_window(str(log), kinds=KINDS, selection=sel).rows == 29
    since = dt.datetime.fromtimestamp(T0 + 5000, dt.UTC)
    late = read_window(str(log), kinds=KINDS, selection=LogSelection(model_name="m", since=since))
    assert late.rows == 9
    until = dt.datetime.fromtimestamp(T0 + 10, dt.UTC)
    early = read_window(str(log), kinds=KINDS, selection=LogSelection(until=until))
    assert early.rows == 10
    last = read_window(str(log), kinds=KINDS, selection=LogSelection(last=12), keep_ids=True)
    assert last.rows == 12
    # the last 12 rows: rows 17..19 of r1 then all 9 of r2, in log order
    assert last.predictions().tolist() == [170.0, 180.0, 190.0] + [i * 10.0 for i in range(9)]
    runs = last.segments()
    assert runs.request_ids.tolist() == ["r1", "r2", "r2"]
    assert runs.firsts.tolist() == [17, 0, 7] and runs.counts.tolist() == [3, 7, 2]
    assert runs.offsets.tolist() == [0, 3, 10]


def test_shadow_rows_are_apart_from_the_served_rows_and_keep_each_requests_rows(
    tmp_path: Path,
) -> None:
    """A shadow line holds the rows of several requests (request_ids / request_rows)."""
    log = tmp_path / "log.jsonl"
    write_log(log, [(T0, "1", "a", 3), (T0, "1", "b", 2)])
    shadow = LogBatch(
        T0, "a", "shadow:/batch", "m", "2", ["a"], {"a": np.arange(5.0)},
        np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 1.0,
        request_ids=["a", "a", "a", "b", "b"], request_rows=[0, 1, 2, 0, 1],
    )  # fmt: skip
    with log.open("ab") as fh:
        fh.write(shadow.json_lines()[0] + b"\n")
    served = read_window(str(log), kinds=KINDS, selection=LogSelection(), keep_ids=True)
    assert served.rows == 5 and served.models == {("m", "1"): 5}
    sel = LogSelection(shadow=True)
    w = read_window(str(log), kinds={}, selection=sel, keep_ids=True)
    assert w.rows == 5 and w.models == {("m", "2"): 5}
    runs = w.segments()
    assert runs.request_ids.tolist() == ["a", "b"] and runs.firsts.tolist() == [0, 0]
    assert runs.counts.tolist() == [3, 2] and runs.offsets.tolist() == [0, 3]


def test_another_models_log_yields_an_empty_window_that_names_what_it_holds(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log.jsonl"
    write_log(log, [(T0, "1", "r1", 5)])
    w = read_window(str(log), kinds=KINDS, selection=LogSelection(model_name="other"))
    assert w.rows == 0
    assert w.seen == {("m", "1"): 5}


def test_missing_feature_and_text_in_a_numeric_feature_are_refused(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    write_log(log, [(T0, "1", "r1", 3)])
    with pytest.raises(DataError, match="lack feature"):
        read_window(str(log), kinds={**KINDS, "z": "numeric"}, selection=LogSelection())
    with pytest.raises(DataError, match="numeric in the reference but the log holds text"):
        read_window(str(log), kinds={"colour": "numeric"}, selection=LogSelection())


def test_missing_values_are_nan_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    feats = {"a": [1.0, None, 3.0], "b": [0.0, 0.0, 0.0], "colour": ["red", None, "red"]}
    batch = LogBatch(T0, "r", "/predict", "m", "1", NAMES, feats, np.zeros(3), 1.0)
    log.write_bytes(b"".join(line + b"\n" for line in batch.json_lines()))
    w = read_window(str(log), kinds=KINDS, selection=LogSelection())
    a = w.column("a")
    assert a.sorted.tolist() == [1.0, 3.0]
    assert a.missing == 1
    colour = w.column("colour")
    assert colour.rows == 2 and colour.missing == 1


def test_torn_lines_are_skipped_and_an_unfinished_last_line_ends_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "log.jsonl"
    write_log(log, [(T0, "1", "r1", 5)])
    good = log.read_bytes()
    log.write_bytes(good[:40] + b"\n\n" + good + good[:-30])  # torn, blank, whole, unfinished
    w = read_window(str(log), kinds=KINDS, selection=LogSelection())
    assert w.rows == 5
    assert "line 1 of" in caplog.text and "torn fragment" in caplog.text
    log.write_bytes(good + good.rstrip(b"\n"))  # a whole last line without its newline counts
    assert read_window(str(log), kinds=KINDS, selection=LogSelection()).rows == 10
    log.write_bytes(b"")
    assert read_window(str(log), kinds=KINDS, selection=LogSelection()).rows == 0
