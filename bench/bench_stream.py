"""Streaming least squares: LinearRegressor(solver="exact").partial_fit over Parquet chunks.

Writes synthetic float64 data (d=20) to Parquet with pyarrow, then, in a fresh worker process
per run, reads it back 100,000 rows at a time and folds each chunk into the triangular factor.
Reports the median wall time of >= 3 runs and the extra peak memory (RSS high-water mark above
the process after imports): it should not depend on n. Each worker then checks the streamed
coefficients against an in-memory ``fit`` of the same rows.

    .venv/bin/python bench/bench_stream.py           # n = 1,000,000 and 5,000,000
    .venv/bin/python bench/bench_stream.py --quick   # n = 100,000 and 500,000, printed only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linear_common import load_average, measure, median, report, run_worker, table

D = 20
CHUNK = 100_000
FULL_SIZES = [1_000_000, 5_000_000]
QUICK_SIZES = [100_000, 500_000]


def write_parquet(path: Path, n: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    scales, offsets = 10.0 ** rng.uniform(-2, 2, D), rng.uniform(-100, 100, D)
    coef = rng.standard_normal(D) / scales
    schema = pa.schema([(f"x{j}", pa.float64()) for j in range(D)] + [("y", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            X = rng.standard_normal((m, D)) * scales + offsets
            y = X @ coef + 3.0 + rng.standard_normal(m)
            arrays = [pa.array(X[:, j]) for j in range(D)] + [pa.array(y)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=CHUNK)


def _chunks(path: str):
    """Yield (X, y) per Parquet row group (written as 100,000 rows each).

    Reading whole row groups keeps the reader's memory flat; ``iter_batches`` buffered more
    as the file grew (measured: +42 MB at 100k rows, +70 MB at 1M).
    """
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(path)
    for group in range(reader.num_row_groups):
        table = reader.read_row_group(group)
        cols = [col.to_numpy() for col in table.columns]
        del table
        yield np.column_stack(cols[:-1]), cols[-1]


def worker(path: str) -> None:
    import json

    import pyarrow.parquet  # noqa: F401 - imported before the baseline is taken

    from regressops.models import LinearRegressor

    def stream() -> LinearRegressor:
        model = LinearRegressor(solver="exact")
        for X, y in _chunks(path):
            model.partial_fit(X, y)
        return model

    out = measure(stream)
    model = out.pop("result")
    parts = list(_chunks(path))  # the reference, after the measurement
    X, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    full = LinearRegressor(solver="exact").fit(X, y)
    out["max_rel_diff"] = float(np.max(np.abs(model.coef_ - full.coef_) / np.abs(full.coef_)))
    out["rows"] = int(model.n_samples_seen_)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--worker", nargs=1, metavar="PARQUET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0])
        return
    write = (not args.quick) if args.write is None else args.write
    rows, loads = [], [load_average()]
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        for n in QUICK_SIZES if args.quick else FULL_SIZES:
            path = Path(tmp) / f"data_{n}.parquet"
            write_parquet(path, n)
            runs = [
                run_worker(Path(__file__), [str(path)], args.threads) for _ in range(args.repeats)
            ]
            loads.append(load_average())
            assert all(r["rows"] == n for r in runs)
            rows.append(
                [
                    f"{n:,}",
                    f"{path.stat().st_size / 2**20:,.0f}",
                    f"{median([r['seconds'] for r in runs]):.2f}",
                    f"{n / median([r['seconds'] for r in runs]) / 1e6:.2f}",
                    f"{median([r['extra_mb'] for r in runs]):.0f}",
                    f"{max(r['max_rel_diff'] for r in runs):.1e}",
                    " / ".join(f"{r['seconds']:.2f}" for r in runs),
                ]
            )
    body = (
        f"d = {D}, chunks of {CHUNK:,} rows (one Parquet row group each, read with "
        "`ParquetFile.read_row_group`); "
        f"BLAS threads = {args.threads}; median of {args.repeats} runs, each in a fresh process. "
        f"Extra memory = RSS high-water mark above the process after imports (includes the "
        f"Parquet reader's buffers). Load average: {' -> '.join(loads)}.\n\n"
        + table(
            [
                "n",
                "Parquet MB",
                "seconds",
                "M rows/s",
                "extra peak MB",
                "max rel diff vs fit",
                "runs",
            ],
            rows,
        )
    )
    report(
        "LinearRegressor exact partial_fit streaming from Parquet"
        + (" (quick)" if args.quick else ""),
        body,
        key="linear-stream",
        write=write,
    )


if __name__ == "__main__":
    main()
