"""The Dask engine's exact fit vs dask-ml and dask.array.linalg.lstsq on one LocalCluster.

Writes synthetic float64 data (d = 20) to Parquet files, starts one ``LocalCluster`` of 2
worker processes (1 thread each, BLAS single-threaded, memory limit 2 GB each) and fits, on
the same files and the same cluster, in interleaved runs:

- **ours**: ``regressops.compute`` — the profile pass (FeatureSpec statistics) plus the TSQR
  pass (``fit_exact``), every row, no split;
- **dask-ml**: ``dask_ml.linear_model.LinearRegression(solver="newton")`` (unpenalised; its
  default ``admm`` solver adds an L2 penalty of 1), on ``read_parquet(...).to_dask_array``;
- **lstsq**: ``dask.array.linalg.lstsq`` of ``[1 | X]`` (the normal equations of a TSQR-less
  QR: dask's tall-skinny QR, then a solve).

Reference: our in-process streaming fit (``LinearRegressor(solver="exact").partial_fit`` over
the files' row groups, in this process with 2 BLAS threads). Each method's peak worker memory is
the high-water mark of the workers' RSS (workers restarted before each run), and the run
records whether any worker was paused, restarted or killed (worker process ids and status).
The workers import every method's modules before each timed run.

    .venv/bin/python bench/bench_dask.py --quick          # 1,000,000 rows, printed only
    .venv/bin/python bench/bench_dask.py                  # 10,000,000 rows, into RESULTS.md
    .venv/bin/python bench/bench_dask.py --rows 50000000  # the issue's 50M-row run (~8 GB)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linear_common import load_average, median, report, table

D = 20
FILE_ROWS = 1_000_000
ROW_GROUP = 250_000
PARTITION_ROWS = 500_000


def write_parquet(folder: Path, n: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    scales, offsets = 10.0 ** rng.uniform(-1, 2, D), rng.uniform(-50, 50, D)
    coef = rng.standard_normal(D) / scales
    schema = pa.schema([(f"x{j}", pa.float64()) for j in range(D)] + [("y", pa.float64())])
    folder.mkdir(parents=True, exist_ok=True)
    for f, start in enumerate(range(0, n, FILE_ROWS)):
        with pq.ParquetWriter(folder / f"part-{f:04d}.parquet", schema) as writer:
            for lo in range(start, min(n, start + FILE_ROWS), ROW_GROUP):
                m = min(ROW_GROUP, n - lo, start + FILE_ROWS - lo)
                X = rng.standard_normal((m, D)) * scales + offsets
                y = X @ coef + 3.0 + rng.standard_normal(m)
                arrays = [pa.array(X[:, j]) for j in range(D)] + [pa.array(y)]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def reference(folder: Path) -> tuple[np.ndarray, float]:
    """Our in-process streaming exact fit over every row group: (coefficients, seconds)."""
    import pyarrow.parquet as pq

    from regressops.models.linear import LinearRegressor

    model = LinearRegressor()
    start = time.perf_counter()
    for path in sorted(folder.glob("*.parquet")):
        reader = pq.ParquetFile(path)
        for g in range(reader.num_row_groups):
            cols = [c.to_numpy() for c in reader.read_row_group(g).columns]
            model.partial_fit(np.column_stack(cols[:-1]), cols[-1])
    return np.concatenate([[model.intercept_], model.coef_]), time.perf_counter() - start


def ours(client: Any, folder: Path) -> np.ndarray:
    from regressops.compute.engines import DaskEngine
    from regressops.compute.linear import Design, LinearFitPlan, fit_exact
    from regressops.compute.partitions import list_files
    from regressops.compute.profile import profile_input, spec_from_profile
    from regressops.compute.rows import SplitPlan

    engine = DaskEngine(client)
    parts = list_files(folder, partition_rows=PARTITION_ROWS).partitions
    split = SplitPlan(0.0, 0)
    features = [f"x{j}" for j in range(D)]
    profile = profile_input(engine, parts, columns=[*features, "y"], plan=split, side="train")
    spec = spec_from_profile(profile, features=features, target="y", scale=False)
    fit = fit_exact(engine, parts, Design(spec, "y", split), LinearFitPlan())
    return np.concatenate([[fit.estimator.intercept_], fit.estimator.coef_])


def _dask_arrays(folder: Path) -> tuple[Any, Any]:
    import dask.dataframe as dd

    # the whole frame, then columns: selecting columns first made dask-expr's partition
    # count disagree with the lengths it computed (dask 2026.8)
    array = dd.read_parquet(str(folder)).to_dask_array(lengths=True)
    return array[:, :D], array[:, D]


def dask_ml(client: Any, folder: Path) -> np.ndarray:
    from dask_ml.linear_model import LinearRegression

    X, y = _dask_arrays(folder)
    model = LinearRegression(solver="newton", fit_intercept=True).fit(X, y)
    return np.concatenate([[float(model.intercept_)], np.asarray(model.coef_)])


def lstsq(client: Any, folder: Path) -> np.ndarray:
    import dask.array as da

    X, y = _dask_arrays(folder)
    ones = da.ones((X.shape[0], 1), chunks=(X.chunks[0], 1))
    A = da.concatenate([ones, X], axis=1).rechunk({1: -1})
    solution = da.linalg.lstsq(A, y)[0]
    return np.asarray(solution.compute())


METHODS = {"ours": ours, "dask-ml": dask_ml, "lstsq": lstsq}


def _warm_up() -> None:

    import regressops.compute.linear
    import regressops.compute.profile  # noqa: F401


def worker_state(client: Any) -> dict[str, Any]:
    """Worker pids and statuses (a changed pid is a restart; a missing one a kill)."""
    info = client.scheduler_info()["workers"]
    pids = client.run(os.getpid)
    return {
        "pids": sorted(pids.values()),
        "status": sorted(w.get("status", "?") for w in info.values()),
    }


def peak_worker_mb(client: Any) -> float:
    import resource

    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    return max(peaks.values())


def run(rows: int, runs: int, write: bool) -> None:
    import dask
    from distributed import Client, LocalCluster

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # the workers (spawned with this environment): 1 BLAS thread
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        folder = Path(tmp) / "data"
        write_parquet(folder, rows)
        size_mb = sum(p.stat().st_size for p in folder.glob("*.parquet")) / 2**20
        os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "2"
        from threadpoolctl import threadpool_limits

        with threadpool_limits(2):
            ref, ref_seconds = reference(folder)
        os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"
        loads = [load_average()]
        results: dict[str, dict[str, list[float]]] = {
            m: {"seconds": [], "mb": [], "err": []} for m in METHODS
        }
        incidents: dict[str, list[str]] = {m: [] for m in METHODS}
        with (
            dask.config.set({"distributed.worker.memory.pause": 0.8}),
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                memory_limit="2GB",
                dashboard_address=":0",
                silence_logs=logging.CRITICAL,
            ) as cluster,
            Client(cluster) as client,
        ):
            for r in range(runs):
                for name, method in METHODS.items():
                    client.restart()
                    client.run(_warm_up)  # imports are not what is measured
                    before = worker_state(client)
                    start = time.perf_counter()
                    try:
                        coef = method(client, folder)
                    except Exception as exc:  # a method that fails at this size is reported
                        incidents[name].append(f"run {r + 1}: {type(exc).__name__}: {exc}"[:160])
                        continue
                    seconds = time.perf_counter() - start
                    after = worker_state(client)
                    if after != before:
                        incidents[name].append(f"run {r + 1}: workers {before} -> {after}")
                    results[name]["seconds"].append(seconds)
                    results[name]["mb"].append(peak_worker_mb(client))
                    rel = np.abs(coef - ref) / np.maximum(np.abs(ref), 1e-300)
                    results[name]["err"].append(float(rel.max()))
                    print(f"{name} run {r + 1}: {seconds:.2f} s, max rel err {rel.max():.1e}")
            loads.append(load_average())
    body = _body(rows, runs, size_mb, ref_seconds, results, incidents, loads)
    report(
        f"Dask engine exact fit vs dask-ml and dask lstsq ({rows:,} rows)",
        body,
        key=f"dask-{rows}",
        write=write,
    )


def _body(
    rows: int,
    runs: int,
    size_mb: float,
    ref_seconds: float,
    results: dict[str, dict[str, list[float]]],
    incidents: dict[str, list[str]],
    loads: list[str],
) -> str:
    ours_s = median(results["ours"]["seconds"]) if results["ours"]["seconds"] else float("nan")
    lines = []
    for name, r in results.items():
        if not r["seconds"]:
            lines.append([name, "failed", "", "", "", "", ""])
            continue
        s = median(r["seconds"])
        lines.append(
            [
                name,
                f"{s:.2f}",
                f"{s / ours_s:.2f}x" if name != "ours" else "1.00x",
                f"{rows / s / 1e6:.2f}",
                f"{median(r['mb']):,.0f}",
                f"{max(r['err']):.1e}",
                " / ".join(f"{v:.2f}" for v in r["seconds"]),
            ]
        )
    notes = [
        f"Data: {rows:,} rows x {D} float64 features + y, {size_mb:,.0f} MB of Parquet in files of "
        f"{FILE_ROWS:,} rows (row groups of {ROW_GROUP:,}); ours reads partitions of "
        f"{PARTITION_ROWS:,} rows.",
        "Cluster: LocalCluster, 2 worker processes x 1 thread, memory_limit 2 GB each, BLAS "
        "threads 1 in the workers (OMP/OPENBLAS/MKL_NUM_THREADS=1); workers restarted before "
        f"every run; runs interleaved, median of {runs}.",
        f"Reference: in-process streaming exact fit (partial_fit per row group, 2 BLAS threads): "
        f"{ref_seconds:.2f} s ({rows / ref_seconds / 1e6:.2f} M rows/s); ours on the cluster "
        f"takes {ours_s / ref_seconds:.2f}x its time per row.",
        "Coefficient error: max over [intercept, coef] of |c - c_ref| / |c_ref|.",
        f"Load average (1/5/15 min) before -> after: {' -> '.join(loads)}.",
    ]
    for name, items in incidents.items():
        for item in items:
            notes.append(f"{name}: {item}")
    if not any(incidents.values()):
        notes.append("No worker was paused, restarted or killed during any fit.")
    head = [
        "method",
        "seconds",
        "time vs ours",
        "M rows/s",
        "peak worker MB",
        "max rel coef err",
        "runs",
    ]
    return "\n".join(f"- {n}" for n in notes) + "\n\n" + table(head, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, print only")
    parser.add_argument("--rows", type=int, default=None, help="rows (default 10,000,000)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    run(rows, args.runs, write=not args.quick)


if __name__ == "__main__":
    main()
