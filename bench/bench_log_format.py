"""Prediction log segment formats: JSON lines (ours) vs Arrow IPC and Parquet.

The same requests (``--rows`` per request, ``--features`` float64 columns, ``--requests`` of
them) are written as a log segment in each format, the way a writer flush would (JSON lines:
``LogBatch.json_lines`` + one ``writev``; Arrow IPC: one record batch per request on a stream;
Parquet: one row group per flush of ``--flush`` requests), then read back into numpy columns as
the monitor reads a window. Reported per format, median of ``--runs``: CPU seconds to format and
write (what the writer costs the server), bytes per row (disk bandwidth), seconds to read the
whole segment back into a float64 matrix. The reference is JSON lines, measured in the same run.

    .venv/bin/python bench/bench_log_format.py [--requests 2000] [--rows 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from regressops.serving.log.batch import LogBatch
from regressops.serving.log.sinks import JsonLinesSink


def _batches(requests: int, rows: int, features: int) -> list[LogBatch]:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    out = []
    for i in range(requests):
        x = rng.normal(size=(rows, features))
        out.append(LogBatch(time.time(), f"r{i}", "/batch", "m", "1", names, x, x[:, 0], 1.0))
    return out


def _table(b: LogBatch) -> pa.RecordBatch:
    assert isinstance(b.features, np.ndarray)
    n = len(b)
    cols = {name: pa.array(b.features[:, j]) for j, name in enumerate(b.names)}
    cols["prediction"] = pa.array(b.predictions)
    cols["row"] = pa.array(np.arange(n, dtype=np.int32))
    cols["request_id"] = pa.array([b.request_id] * n).dictionary_encode()
    return pa.RecordBatch.from_pydict(cols)


def write_jsonl(path: Path, batches: list[LogBatch], flush: int) -> None:
    sink = JsonLinesSink(path)
    for i in range(0, len(batches), flush):
        sink.write(batches[i : i + flush])
    sink.close()


def write_arrow(path: Path, batches: list[LogBatch], flush: int) -> None:
    first = _table(batches[0])
    with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, first.schema) as writer:
        for b in batches:
            writer.write_batch(_table(b))


def write_parquet(path: Path, batches: list[LogBatch], flush: int) -> None:
    first = _table(batches[0])
    with pq.ParquetWriter(str(path), first.schema, compression="snappy") as writer:
        for i in range(0, len(batches), flush):
            part = [_table(b) for b in batches[i : i + flush]]
            writer.write_table(pa.Table.from_batches(part))


def read_jsonl(path: Path, names: list[str]) -> np.ndarray:
    blocks = []
    with path.open("rb") as handle:
        for line in handle:
            doc = orjson.loads(line)
            blocks.append(np.column_stack([doc["features"][n] for n in names]))
    return np.vstack(blocks)


def read_arrow(path: Path, names: list[str]) -> np.ndarray:
    with pa.memory_map(str(path)) as source:
        table = ipc.open_stream(source).read_all()
    return np.column_stack([table.column(n).to_numpy() for n in names])


def read_parquet(path: Path, names: list[str]) -> np.ndarray:
    table = pq.read_table(str(path), columns=names)
    return np.column_stack([table.column(n).to_numpy() for n in names])


FORMATS = {
    "JSON lines (ours)": (write_jsonl, read_jsonl, ".jsonl"),
    "Arrow IPC stream": (write_arrow, read_arrow, ".arrow"),
    "Parquet (snappy)": (write_parquet, read_parquet, ".parquet"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--flush", type=int, default=50, help="requests per writer flush")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200 requests, 3 runs")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.runs = 200, 3
    batches = _batches(args.requests, args.rows, args.features)
    names = batches[0].names
    n_rows = args.requests * args.rows
    results: dict[str, dict[str, list[float]]] = {
        k: {"write": [], "read": [], "bytes": []} for k in FORMATS
    }
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for label, (write, read, suffix) in FORMATS.items():  # alternating formats
                path = Path(tmp) / f"seg{run}{suffix}"
                t0 = time.process_time()
                write(path, batches, args.flush)
                results[label]["write"].append(time.process_time() - t0)
                results[label]["bytes"].append(path.stat().st_size / n_rows)
                os.sync()
                t0 = time.perf_counter()
                matrix = read(path, names)
                results[label]["read"].append(time.perf_counter() - t0)
                assert matrix.shape == (n_rows, args.features)
                path.unlink()
    ref = {k: statistics.median(v) for k, v in results["JSON lines (ours)"].items()}
    print(
        f"{args.requests} requests x {args.rows} rows x {args.features} features "
        f"({n_rows:,} rows), flush of {args.flush} requests; median of {args.runs} runs"
    )
    print("| format | write CPU s | vs JSON | bytes/row | read s | vs JSON |")
    print("|---|---|---|---|---|---|")
    for label, r in results.items():
        w, b, rd = (statistics.median(r[k]) for k in ("write", "bytes", "read"))
        print(
            f"| {label} | {w:.2f} | {w / ref['write']:.2f}x | {b:.0f} | {rd:.2f} | "
            f"{rd / ref['read']:.2f}x |"
        )


if __name__ == "__main__":
    main()
