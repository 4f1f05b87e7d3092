"""Uniqueness over a whole table, in bounded memory.

A unique column (a dataset's key, or a column declared ``unique``) is checked across every row
of a raw version, not chunk by chunk: :func:`repeated_keys` finds each row whose value a row
extracted earlier (smaller ``_row_seq``) already has. Integer keys are spilled with their
``_row_seq`` to temporary files partitioned by a hash of the key, so each partition is sorted in
memory alone and memory does not grow with the table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.data.lake import ROW_SEQ, Lake
from regressops.data.reports import ReportBuilder
from regressops.data.schemas import DatasetContract

if TYPE_CHECKING:
    import pyarrow as pa

UNIQUE_BUCKET_ROWS = 1_000_000
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing spreads keys over the buckets


def repeated_keys(
    lake: Lake, dataset: str, version: int, contract: DatasetContract, builder: ReportBuilder
) -> dict[int, list[str]]:
    """Rows repeating a unique column's value (all but the first extracted), with reasons.

    Every repeat is recorded as a failure of the column's ``field_uniqueness`` check in
    ``builder``; the result maps each failing row's ``_row_seq`` to its reasons.
    """
    failing: dict[int, list[str]] = defaultdict(list)
    total = lake.count(dataset, "raw", version)
    for name in contract.unique_columns():
        columns = [name, ROW_SEQ]
        batches = lake.scan(dataset, "raw", version, columns=columns, batch_size=250_000)
        seqs, values = _repeated(batches, name, total)
        for seq, value in zip(seqs, values, strict=True):
            builder.fail(name, "field_uniqueness", row=seq, value=value)
            failing[seq].append(f"{name}: field_uniqueness")
    return dict(failing)


def _repeated(
    batches: Iterator[pa.RecordBatch], name: str, total: int
) -> tuple[list[int], list[Any]]:
    """``_row_seq`` and value of each row whose (non-null) value a row of smaller seq has.

    Integer keys are spilled, with their ``_row_seq``, to temporary files partitioned by a hash
    of the key (about :data:`UNIQUE_BUCKET_ROWS` rows each), then each partition is sorted in
    memory: memory stays bounded however many rows the table has. Other keys are compared in
    memory with pandas.
    """
    import tempfile

    import pandas as pd
    import pyarrow as pa

    bits = max(0, math.ceil(math.log2(max(1.0, total / UNIQUE_BUCKET_ROWS))))
    others: list[pd.Series] = []
    found: list[tuple[np.ndarray, np.ndarray]] = []
    with tempfile.TemporaryDirectory(prefix="regressops-unique-") as tmp:
        paths = [Path(tmp) / f"{i}.bin" for i in range(1 << bits)]
        handles = [path.open("wb") for path in paths]
        try:
            for batch in batches:
                column = batch.column(name)
                valid = column.is_valid().to_numpy(zero_copy_only=False)
                seqs = batch.column(ROW_SEQ).to_numpy()[valid]
                if not pa.types.is_integer(column.type):
                    others.append(pd.Series(column.drop_null().to_pylist(), index=seqs))
                    continue
                keys = column.drop_null().to_numpy().astype(np.int64, copy=False)
                bucket = (keys.view(np.uint64) * _MIX) >> np.uint64(64 - bits) if bits else None
                pairs = np.column_stack([keys, seqs])
                if bucket is None:
                    pairs.tofile(handles[0])
                    continue
                order = np.argsort(bucket, kind="stable")
                bounds = np.cumsum(np.bincount(bucket.astype(np.intp), minlength=len(paths)))
                for i, part in enumerate(np.split(pairs[order], bounds[:-1])):
                    part.tofile(handles[i])
        finally:
            for handle in handles:
                handle.close()
        for path in paths:
            pairs = np.fromfile(path, dtype=np.int64).reshape(-1, 2)
            found.append(_first_repeats(pairs[:, 0], pairs[:, 1]))
    if others:
        frame = pd.concat(others).sort_index()
        repeated = frame[frame.duplicated(keep="first")]
        return repeated.index.tolist(), repeated.tolist()
    seqs = np.concatenate([f[0] for f in found]) if found else np.empty(0, np.int64)
    keys = np.concatenate([f[1] for f in found]) if found else np.empty(0, np.int64)
    order = np.argsort(seqs)
    return seqs[order].tolist(), keys[order].tolist()


def _first_repeats(keys: np.ndarray, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seqs and keys of the rows whose key a row of smaller seq has (in memory)."""
    if len(keys) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort((seqs, keys))
    ordered = keys[order]
    hits = order[1:][ordered[1:] == ordered[:-1]]
    return seqs[hits], keys[hits]
