"""Property: whatever a request held, its JSON lines read back as exactly its per-row records."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from regressops.serving.log.batch import LogBatch
from regressops.serving.log.reader import iter_log_rows
from regressops.serving.log.sinks import JsonLinesSink

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
names = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8),
    min_size=1,
    max_size=5,
    unique=True,
)


@st.composite
def batches(draw: st.DrawFn) -> LogBatch:
    cols = draw(names)
    n = draw(st.integers(1, 150))
    preds = draw(hnp.arrays(np.float64, n, elements=finite))
    if draw(st.booleans()):
        features: np.ndarray | dict[str, object] = draw(
            hnp.arrays(np.float64, (n, len(cols)), elements=finite)
        )
    else:  # a categorical model's columns: numbers and strings side by side
        features = {
            c: draw(hnp.arrays(np.float64, n, elements=finite))
            if i % 2 == 0
            else draw(st.lists(st.text(max_size=6), min_size=n, max_size=n))
            for i, c in enumerate(cols)
        }
    rid = draw(st.text(min_size=1, max_size=12))
    batch = LogBatch(time.time(), rid, "/batch", "m\"o'del", "v1", cols, features, preds, 1.5)
    if draw(st.booleans()):  # the rows of several requests (a shadow model's batch)
        owners = sorted(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
        batch.request_ids = [f"{rid}-{i}" for i in owners]
        batch.request_rows = [owners[:j].count(owners[j]) for j in range(n)]
    return batch


@settings(max_examples=60, deadline=None)
@given(group=st.lists(batches(), min_size=1, max_size=3), line_rows=st.integers(1, 200))
def test_lines_read_back_as_the_rows(group: list[LogBatch], line_rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:  # a fresh file per example
        path = Path(tmp) / "log.jsonl"
        sink = JsonLinesSink(path)
        for batch in group:
            lines = batch.json_lines(line_rows)
            assert len(lines) == -(-len(batch) // line_rows)
        assert sink.write(group) == sum(len(b) for b in group)
        sink.close()
        expected = [row for batch in group for row in batch.rows()]
        assert list(iter_log_rows(str(path), Path(tmp))) == expected


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    last=st.integers(1, 60),
    line_rows=st.integers(1, 5),
)
def test_the_last_rows_are_the_tail_of_all_rows(
    sizes: list[int], last: int, line_rows: int
) -> None:
    from regressops.serving.log.reader import last_log_rows

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        group = []
        for i, n in enumerate(sizes):
            feats = np.arange(n * 2, dtype=float).reshape(n, 2) + i
            group.append(
                LogBatch(
                    time.time(), f"r{i}", "/batch", "m", "1", ["a", "b"], feats, feats[:, 0], 1.0
                )
            )
        path.write_bytes(b"".join(line + b"\n" for b in group for line in b.json_lines(line_rows)))
        everything = list(iter_log_rows(str(path), Path(tmp)))
        rows, total = last_log_rows(str(path), Path(tmp), last)
        assert total == sum(sizes) == len(everything)
        assert rows == everything[-last:]
