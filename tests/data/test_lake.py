"""The Delta lake: versions, time travel, schema enforcement, atomic writes, row hashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.data.lake import ROW_HASH, ROW_SEQ, Lake, conform, row_hashes
from regressops.errors import DataError

SCHEMA = pa.schema([("x", pa.int64()), ("name", pa.string()), (ROW_SEQ, pa.int64())])


def _batch(start: int, n: int) -> pa.RecordBatch:
    seqs = list(range(start, start + n))
    return pa.record_batch(
        [pa.array(seqs, pa.int64()), pa.array([f"r{i}" for i in seqs]), pa.array(seqs, pa.int64())],
        schema=SCHEMA,
    )


def _files(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def test_appends_make_versions_and_old_versions_stay_readable(lake: Lake) -> None:
    assert lake.latest_version("d", "raw") is None
    v0 = lake.write("d", "raw", SCHEMA, [_batch(0, 3)], mode="append", info={"kind": "test"})
    v1 = lake.write("d", "raw", SCHEMA, [_batch(3, 2), _batch(5, 2)], mode="append", info={})
    assert (v0, v1) == (0, 1)
    assert lake.count("d", "raw", 0) == 3 and lake.count("d", "raw") == 7
    assert lake.read("d", "raw", 0).column("x").to_pylist() == [0, 1, 2]
    assert lake.read("d", "raw").column("x").to_pylist() == list(range(7))
    history = lake.history("d", "raw")
    assert [h.version for h in history] == [0, 1]
    assert history[0].info == {"kind": "test"} and history[1].rows_added == 4
    scanned = [x for b in lake.scan("d", "raw", batch_size=2) for x in b.column("x").to_pylist()]
    assert sorted(scanned) == list(range(7))
    assert scanned[:3] == [0, 1, 2]  # files ordered by their first _row_seq
    assert lake.datasets() == ["d"]


def test_overwrite_replaces_rows_but_keeps_history(lake: Lake) -> None:
    lake.write("d", "clean", SCHEMA, [_batch(0, 5)], mode="overwrite", info={})
    lake.write("d", "clean", SCHEMA, [_batch(10, 2)], mode="overwrite", info={})
    assert lake.read("d", "clean").column("x").to_pylist() == [10, 11]
    assert lake.read("d", "clean", 0).num_rows == 5


def test_unknown_version_and_table_are_clear_errors(lake: Lake) -> None:
    with pytest.raises(DataError, match="no clean table"):
        lake.open("d", "clean")
    lake.write("d", "raw", SCHEMA, [_batch(0, 1)], mode="append", info={})
    with pytest.raises(DataError, match="no version 4; its versions are 0 to 0"):
        lake.open("d", "raw", 4)


def test_schema_is_enforced(lake: Lake) -> None:
    lake.write("d", "raw", SCHEMA, [_batch(0, 2)], mode="append", info={})
    other = pa.schema([("x", pa.float64()), ("name", pa.string()), (ROW_SEQ, pa.int64())])
    with pytest.raises(DataError, match=r"changed types \['x: long -> double'\]"):
        lake.write("d", "raw", other, [], mode="append", info={})
    fewer = pa.schema([("x", pa.int64()), (ROW_SEQ, pa.int64())])
    with pytest.raises(DataError, match=r"missing columns \['name'\]"):
        lake.write("d", "raw", fewer, [], mode="append", info={})
    assert lake.latest_version("d", "raw") == 0


def test_conform_refuses_lossy_casts_that_delta_rs_would_make_silently() -> None:
    target = pa.schema([("x", pa.int64())])
    assert conform(pa.record_batch([pa.array([1.0, 2.0])], names=["x"]), target).column(
        0
    ).to_pylist() == [1, 2]
    with pytest.raises(DataError) as info:
        conform(pa.record_batch([pa.array([1.5])], names=["x"]), target)
    assert info.value.reason == "uncoercible_type"


def _failing(after: int) -> Iterator[pa.RecordBatch]:
    yield from (_batch(i * 10, 10) for i in range(after))
    raise DataError("the source broke mid-stream", reason="boom")


def test_a_failed_append_adds_no_version_and_leaves_no_file(lake: Lake) -> None:
    lake.write("d", "raw", SCHEMA, [_batch(0, 3)], mode="append", info={})
    before = _files(lake.path("d", "raw"))
    with pytest.raises(DataError, match="mid-stream") as info:
        lake.write("d", "raw", SCHEMA, _failing(after=30), mode="append", info={})
    assert info.value.reason == "boom"  # the producer's own error comes back
    assert lake.latest_version("d", "raw") == 0
    assert lake.read("d", "raw").num_rows == 3
    assert _files(lake.path("d", "raw")) == before


def test_a_failed_first_write_leaves_no_table(lake: Lake) -> None:
    with pytest.raises(DataError):
        lake.write("d", "raw", SCHEMA, _failing(after=2), mode="append", info={})
    assert not lake.exists("d", "raw")
    assert not lake.path("d", "raw").exists()


def test_row_hashes_ignore_technical_columns_and_see_every_value() -> None:
    batch = pa.record_batch(
        [pa.array([1, 1, 2]), pa.array(["a", "a", "a"]), pa.array([7, 8, 9]), pa.array([0, 0, 0])],
        names=["x", "s", ROW_SEQ, ROW_HASH],
    )
    hashes = row_hashes(batch)
    assert hashes.dtype == np.int64
    assert hashes[0] == hashes[1] != hashes[2]


rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(-(2**62), 2**62)),
        st.one_of(st.none(), st.floats(allow_nan=False)),
        st.one_of(st.none(), st.text(max_size=5)),
        st.one_of(st.none(), st.booleans()),
    ),
    min_size=2,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows, cut=st.integers(1, 29))
def test_row_hashes_do_not_depend_on_chunking(rows: list[tuple], cut: int) -> None:
    cut = min(cut, len(rows) - 1)
    types = [pa.int64(), pa.float64(), pa.string(), pa.bool_()]
    columns = list(zip(*rows, strict=True))
    whole = pa.record_batch(
        [pa.array(c, t) for c, t in zip(columns, types, strict=True)], names=list("abcd")
    )
    parts = np.concatenate([row_hashes(whole.slice(0, cut)), row_hashes(whole.slice(cut))])
    assert np.array_equal(parts, row_hashes(whole))
