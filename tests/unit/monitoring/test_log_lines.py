"""The monitor's line decoder: simdjson's float64 buffers equal orjson's values, bit for bit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.errors import DataError
from regressops.monitoring import log_lines
from regressops.monitoring.log_lines import decode_line, decoded_lines
from regressops.monitoring.window import LogSelection, read_window

pytest.importorskip("simdjson", reason="pysimdjson is part of the train extra")

KINDS = {"a": "numeric", "b": "numeric", "c": "categorical"}


def _line(a: list[Any], b: list[Any] | None = None, c: list[Any] | None = None) -> bytes:
    n = len(a)
    doc = {
        "ts": "2026-01-01T00:00:00.000000+00:00",
        "request_id": "r1",
        "endpoint": "/batch",
        "model_name": "m",
        "model_version": "1",
        "latency_ms": 1.0,
        "first_row": 0,
        "rows": n,
        "features": {"a": a, "b": b if b is not None else a, "c": c or ["x"] * n, "extra": a},
        "predictions": a,
    }
    return orjson.dumps(doc)


def _bits(values: Any) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(finite, st.integers(-(2**63), 2**63 - 1), finite.map(lambda x: x * 1e-300))


@settings(max_examples=300, deadline=None)
@given(st.lists(numbers, min_size=1, max_size=60))
def test_float64_buffers_equal_orjson_bit_for_bit(values: list[float]) -> None:
    line = _line(values)
    fast = decode_line(line, KINDS)
    slow = orjson.loads(line)
    assert isinstance(fast["features"]["a"], np.ndarray)
    assert _bits(fast["features"]["a"]) == _bits(np.fromiter(slow["features"]["a"], np.float64))
    assert _bits(fast["predictions"]) == _bits(slow["predictions"])
    assert fast["features"]["c"] == slow["features"]["c"]
    assert "extra" not in fast["features"]  # a column nobody asked for is not decoded
    assert {k: v for k, v in fast.items() if k not in ("features", "predictions")} == {
        k: v for k, v in slow.items() if k not in ("features", "predictions")
    }


@pytest.mark.parametrize(
    "cells",
    [
        [1.0, None, 3.0],  # a missing value: orjson's list, then NaN
        [1, True, 2],  # a boolean
        [1, 18446744073709551615],  # beyond int64 (simdjson: uint64)
        [1, "123456789012345678901234567890"],  # beyond 64 bits (written as text below)
    ],
)
def test_what_is_not_a_plain_array_is_read_as_before(tmp_path: Path, cells: list[Any]) -> None:
    log = tmp_path / "log.jsonl"
    big = "123456789012345678901234567890"
    log.write_bytes(_line(cells).replace(f'"{big}"'.encode(), big.encode()) + b"\n")
    cells = [float(v) if v == big else v for v in cells]
    fast = read_window(str(log), kinds=KINDS, selection=LogSelection())
    expected = np.fromiter(cells, dtype=np.float64)
    got = fast.column("a").sorted
    assert got.tolist() == sorted(v for v in expected.tolist() if not math.isnan(v))


def test_text_in_a_numeric_column_is_the_same_error(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(_line([1.0, 2.0], b=[1.0, "x"]) + b"\n")
    with pytest.raises(DataError, match="numeric in the reference but the log holds text"):
        read_window(str(log), kinds=KINDS, selection=LogSelection())


def test_a_number_simdjson_refuses_is_orjsons_to_judge() -> None:
    line = _line([1.0]).replace(b'"a":[1.0]', b'"a":[1e400]')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(line)
    with pytest.raises(orjson.JSONDecodeError):
        decode_line(line, KINDS)


def test_torn_and_unfinished_lines_follow_the_readers_rules(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    whole = _line([1.0, 2.0])
    torn = whole[: len(whole) // 2] + whole  # a fragment a killed writer left, then a line
    log.write_bytes(whole + b"\n" + torn + b"\n" + whole[:10])  # the last one is being written
    docs = list(decoded_lines(log, KINDS))
    assert len(docs) == 2
    assert docs[1]["rows"] == 2


def test_the_same_window_without_simdjson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.jsonl"
    rng = np.random.default_rng(0)
    with log.open("wb") as fh:
        for _ in range(5):
            a = rng.normal(size=50).tolist()
            fh.write(_line(a, [x * 3 for x in a], ["p", "q"] * 25) + b"\n")
    fast = read_window(str(log), kinds=KINDS, selection=LogSelection())
    monkeypatch.setattr(log_lines, "simdjson", None)
    slow = read_window(str(log), kinds=KINDS, selection=LogSelection())
    for name in ("a", "b"):
        assert _bits(fast.column(name).sorted) == _bits(slow.column(name).sorted)
    assert fast.column("c").counts(None) == slow.column("c").counts(None)  # type: ignore[arg-type]
    assert _bits(fast.predictions()) == _bits(slow.predictions())
