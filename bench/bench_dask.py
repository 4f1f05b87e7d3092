"""The Dask engine's exact fit vs dask-ml and dask.array.linalg.lstsq on one LocalCluster.

Writes synthetic float64 data (d = 20) to Parquet files, starts one ``LocalCluster`` of 2
worker processes (1 thread each, BLAS single-threaded, memory limit 2 GB each) and fits, on
the same files and the same cluster, in interleaved runs:

- **ours**: ``regressops.compute`` as ``train --engine dask`` runs it: one pass over the data
  (``profile_and_factor``: the FeatureSpec statistics and, the data being numbers with no gap,
  the raw rows' TSQR factor), then ``fit_exact`` on that factor; every row, no split;
- **dask-ml**: ``dask_ml.linear_model.LinearRegression(solver="newton")`` (unpenalised; its
  default ``admm`` solver adds an L2 penalty of 1), on ``read_parquet(...).to_dask_array``;
- **lstsq**: ``dask.array.linalg.lstsq`` of ``[1 | X]`` (dask's tall-skinny QR, then a solve).

Reference, measured in every run just before the cluster methods: our in-process streaming fit
(``LinearRegressor(solver="exact").partial_fit`` over the files' row groups, in this process
with 2 BLAS threads). Each method's peak worker memory is the high-water mark of the workers'
RSS (workers restarted before each run); a run records whether any worker was paused,
restarted or killed (the scheduler's events: status changes, removed workers, the nanny's
memory restarts; and the worker process ids). CPU seconds are the workers' (ours, summed over
both) and this process's (the reference): on a shared machine they move less than wall time.

The data are written once, streamed (one row group in memory at a time), into
``--data-dir/rows-N-d20-seed0`` and reused while its manifest matches (rows, shape, seed).

    .venv/bin/python bench/bench_dask.py --quick          # 1,000,000 rows, printed only
    .venv/bin/python bench/bench_dask.py                  # 10,000,000 rows, into RESULTS.md
    .venv/bin/python bench/bench_dask.py --rows 50000000 --methods ours   # the issue's run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
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
SEED = 0
DATA_VERSION = 1  # bump when write_parquet changes what it writes


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


def cached_data(root: Path, n: int) -> Path:
    """The folder of ``n`` rows under ``root``: reused when its manifest matches, else written."""
    manifest = {
        "rows": n,
        "features": D,
        "file_rows": FILE_ROWS,
        "row_group": ROW_GROUP,
        "seed": SEED,
        "version": DATA_VERSION,
    }
    folder = root / f"rows-{n}-d{D}-seed{SEED}"
    marker = folder / "_manifest.json"  # "_": not an input file for list_files
    if marker.exists() and json.loads(marker.read_text()) == manifest:
        print(f"reusing {folder}")
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    print(f"writing {n:,} rows to {folder} ...", flush=True)
    started = time.perf_counter()
    write_parquet(folder, n, SEED)
    marker.write_text(json.dumps(manifest))  # last: a partial folder is never reused
    print(f"written in {time.perf_counter() - started:.0f} s")
    return folder


def cpu_seconds() -> float:
    """This process's user + system CPU time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reference(folder: Path) -> tuple[np.ndarray, float, float]:
    """Our in-process streaming exact fit over every row group: (coefficients, s, CPU s)."""
    import pyarrow.parquet as pq

    from regressops.models.linear import LinearRegressor

    model = LinearRegressor()
    cpu, start = cpu_seconds(), time.perf_counter()
    for path in sorted(folder.glob("*.parquet")):
        reader = pq.ParquetFile(path)
        for g in range(reader.num_row_groups):
            cols = [c.to_numpy() for c in reader.read_row_group(g).columns]
            model.partial_fit(np.column_stack(cols[:-1]), cols[-1])
    coef = np.concatenate([[model.intercept_], model.coef_])
    return coef, time.perf_counter() - start, cpu_seconds() - cpu


def ours(client: Any, folder: Path) -> np.ndarray:
    from regressops.compute.engines import DaskEngine
    from regressops.compute.linear import Design, LinearFitPlan, fit_exact, profile_and_factor
    from regressops.compute.partitions import list_files
    from regressops.compute.profile import spec_from_profile
    from regressops.compute.rows import SplitPlan

    engine = DaskEngine(client)
    parts = list_files(folder, partition_rows=PARTITION_ROWS).partitions
    split = SplitPlan(0.0, 0)
    features = [f"x{j}" for j in range(D)]
    profile, raw = profile_and_factor(engine, parts, features=features, target="y", plan=split)
    spec = spec_from_profile(profile, features=features, target="y", scale=False)
    design = Design(spec, "y", split)
    fit = fit_exact(engine, parts, design, LinearFitPlan(), raw_factor=raw)
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
    """Import, in a worker, what every method's first task would import."""
    import contextlib

    import dask.array
    import dask.dataframe  # noqa: F401
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401

    import regressops.compute.linear
    import regressops.compute.profile
    import regressops.data.storage  # noqa: F401
    from regressops.models._parallel import row_ranges

    row_ranges(1, 1)  # builds the BLAS thread controller once
    with contextlib.suppress(ImportError):
        import dask_ml.linear_model  # noqa: F401


def worker_state(client: Any) -> dict[str, Any]:
    """Worker pids and statuses (a changed pid is a restart; a missing one a kill)."""
    info = client.scheduler_info()["workers"]
    pids = client.run(os.getpid)
    return {
        "pids": sorted(pids.values()),
        "status": sorted(w.get("status", "?") for w in info.values()),
    }


def worker_incidents(client: Any, since: float) -> list[str]:
    """Pauses, removed workers and memory restarts the scheduler logged after ``since``."""
    found = []
    for topic, events in client.get_events().items():
        for stamp, msg in events:
            if stamp < since or not isinstance(msg, dict):
                continue
            action = msg.get("action")
            if topic == "worker-restart-memory":
                found.append(f"nanny restarted {msg.get('worker')} (rss {msg.get('rss')})")
            elif action == "worker-status-change" and msg.get("status") != "running":
                found.append(f"{topic} {msg.get('prev-status')} -> {msg.get('status')}")
            elif action == "remove-worker" and topic != "all":
                found.append(f"{topic} removed (expected: {msg.get('expected')})")
    return found


def peak_worker_mb(client: Any) -> float:
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    return max(peaks.values())


def worker_cpu(client: Any) -> float:
    """CPU seconds of every worker process so far, summed."""
    return float(sum(client.run(cpu_seconds).values()))


def run(rows: int, runs: int, write: bool, data_dir: Path, methods: list[str]) -> None:
    import dask
    from distributed import Client, LocalCluster
    from threadpoolctl import threadpool_limits

    from regressops.compute.engines import LOCAL_CLUSTER_CONFIG

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # the workers (spawned with this environment): 1 BLAS thread
    folder = cached_data(data_dir, rows)
    size_mb = sum(p.stat().st_size for p in folder.glob("*.parquet")) / 2**20
    loads = [load_average()]
    results: dict[str, dict[str, list[float]]] = {
        m: {"seconds": [], "mb": [], "err": [], "cpu": []} for m in ["reference", *methods]
    }
    incidents: dict[str, list[str]] = {m: [] for m in methods}
    ref = np.zeros(D + 1)
    with (
        dask.config.set({"distributed.worker.memory.pause": 0.8, **LOCAL_CLUSTER_CONFIG}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="2GB",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        for r in range(runs):
            with threadpool_limits(2):  # the reference: this process, 2 BLAS threads
                ref, ref_seconds, ref_cpu = reference(folder)
            results["reference"]["seconds"].append(ref_seconds)
            results["reference"]["cpu"].append(ref_cpu)
            print(f"reference run {r + 1}: {ref_seconds:.2f} s (CPU {ref_cpu:.2f} s)", flush=True)
            for name in methods:
                client.restart(timeout=600)  # a loaded machine restarts slowly
                client.run(_warm_up)  # imports are not what is measured
                before, since, cpu = worker_state(client), time.time(), worker_cpu(client)
                start = time.perf_counter()
                try:
                    coef = METHODS[name](client, folder)
                except Exception as exc:  # a method that fails at this size is reported
                    incidents[name].append(f"run {r + 1}: {type(exc).__name__}: {exc}"[:160])
                    continue
                seconds = time.perf_counter() - start
                after = worker_state(client)
                if after["pids"] != before["pids"]:
                    incidents[name].append(f"run {r + 1}: worker pids {before} -> {after}")
                incidents[name] += [f"run {r + 1}: {i}" for i in worker_incidents(client, since)]
                results[name]["seconds"].append(seconds)
                results[name]["cpu"].append(worker_cpu(client) - cpu)
                results[name]["mb"].append(peak_worker_mb(client))
                rel = np.abs(coef - ref) / np.maximum(np.abs(ref), 1e-300)
                results[name]["err"].append(float(rel.max()))
                print(
                    f"{name} run {r + 1}: {seconds:.2f} s (worker CPU "
                    f"{results[name]['cpu'][-1]:.2f} s), {seconds / ref_seconds:.2f}x the "
                    f"reference, max rel err {rel.max():.1e}",
                    flush=True,
                )
        loads.append(load_average())
    body = _body(rows, runs, size_mb, results, incidents, loads)
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
    results: dict[str, dict[str, list[float]]],
    incidents: dict[str, list[str]],
    loads: list[str],
) -> str:
    ref_s = median(results["reference"]["seconds"])
    ref_cpu = median(results["reference"]["cpu"])
    ours = results.get("ours", {}).get("seconds") or [float("nan")]
    ours_s = median(ours)
    lines = [
        [
            "reference (in-process streaming)",
            f"{ref_s:.2f}",
            f"{ref_s / ours_s:.2f}x",
            f"{rows / ref_s / 1e6:.2f}",
            f"{ref_cpu:.2f}",
            "",
            "0",
            " / ".join(f"{v:.2f}" for v in results["reference"]["seconds"]),
        ]
    ]
    for name, r in results.items():
        if name == "reference":
            continue
        if not r["seconds"]:
            lines.append([name, "failed", "", "", "", "", "", ""])
            continue
        s = median(r["seconds"])
        lines.append(
            [
                name,
                f"{s:.2f}",
                f"{s / ours_s:.2f}x",
                f"{rows / s / 1e6:.2f}",
                f"{median(r['cpu']):.2f}",
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
        f"every run; runs interleaved (reference, then each method), median of {runs}.",
        f"Reference: in-process streaming exact fit (partial_fit per row group, 2 BLAS threads): "
        f"{ref_s:.2f} s ({rows / ref_s / 1e6:.2f} M rows/s, CPU {ref_cpu:.2f} s). **Ours on "
        f"the cluster takes {ours_s / ref_s:.2f}x its time per row** (goal: within 2x); per "
        "run: "
        + " / ".join(
            f"{o / f:.2f}x"
            for o, f in zip(
                results.get("ours", {}).get("seconds", []),
                results["reference"]["seconds"],
                strict=False,
            )
        )
        + ".",
        "Coefficient error: max over [intercept, coef] of |c - c_ref| / |c_ref|, against the "
        "reference of the same run. CPU s: the workers' CPU time (summed) for the cluster "
        "methods, this process's for the reference.",
        f"Load average (1/5/15 min) before -> after: {' -> '.join(loads)}.",
    ]
    for name, items in incidents.items():
        for item in items:
            notes.append(f"{name}: {item}")
    for name, items in incidents.items():
        if not items and results[name]["seconds"]:
            notes.append(f"{name}: no worker was paused, restarted or killed during any fit.")
    head = [
        "method",
        "seconds",
        "time vs ours",
        "M rows/s",
        "CPU s",
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
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated, of {', '.join(METHODS)} (default all)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "regressops-bench-dask",
        help="where the Parquet data are written once and reused (default: %(default)s)",
    )
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    write = (not args.quick) if args.write is None else args.write
    run(rows, args.runs, write, args.data_dir, methods)


if __name__ == "__main__":
    main()
