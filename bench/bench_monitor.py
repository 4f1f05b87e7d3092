"""``regressops monitor`` end to end on a large JSON-lines prediction log, against Evidently.

Builds a linear bundle with 20 numeric features and its stored reference (100,000 training
rows, a 10,000-value sorted sample per feature), writes a prediction log of ``--rows`` rows in
the server's own line format (``/batch`` requests of 2,000 rows, 5 features shifted), then:

- **ours, end to end**: ``regressops monitor --model DIR --prediction-log LOG -o OUT`` as a
  user runs it (a fresh process: start-up, imports, reading the log, judging, writing
  ``drift.json`` and ``report.html``), wall time, median of ``--repeat`` runs, and its peak RSS;
- **memory of the work**: the same monitor in-process under ``tracemalloc`` (numpy's
  allocations included) in one process (``monitor.workers = 1``): the peak, against the
  window's float64 size (rows × features × 8); and, for the command as run (the log decoded by
  two processes), its peak resident set plus the largest private memory of its decoding
  child (interpreter and libraries included), against the same size;
- **scipy loop**: ``ks_2samp`` and ``wasserstein_distance`` per feature on the same arrays
  (already in memory);
- **Evidently 0.7.23** (``--evidently-python``): ``Report([DataDriftPreset()]).run`` on the same
  reference sample and current rows (DataFrames already in memory), in its own environment.

Run: ``.venv/bin/python bench/bench_monitor.py [--rows 1000000] [--repeat 3]
[--evidently-python /tmp/evid/bin/python]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FEATURES = 20
SHIFTED = 5
REQUEST_ROWS = 2_000
TRAIN_ROWS = 100_000


def build_bundle(directory: Path, rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    """A linear bundle over f0..f19 with its stored reference; returns it and the coefficients."""
    import pandas as pd

    from regressops.features import FeatureSpec
    from regressops.models.bundle import ModelBundle
    from regressops.monitoring.reference import build_reference

    names = [f"f{i}" for i in range(FEATURES)]
    X = rng.normal(size=(TRAIN_ROWS, FEATURES))
    coef = rng.normal(size=FEATURES)
    frame = pd.DataFrame(X, columns=names)
    spec = FeatureSpec.fit(frame, scale=False)
    bundle = ModelBundle(
        name="bench",
        kind="linear",
        spec=spec,
        coef=coef,
        intercept=0.0,
        metrics={"rmse": 0.1, "r2": 0.99, "mse": 0.01, "mae": 0.08},
    )
    path = bundle.save(directory / "bundle")
    build_reference(
        frame,
        kinds=dict.fromkeys(names, "numeric"),
        source="bench training rows",
        predictions=X @ coef,
    ).save(path)
    return path, coef


def write_log(path: Path, rows: int, coef: np.ndarray, rng: np.random.Generator) -> None:
    """``rows`` logged rows as /batch requests, in the server's JSON-lines format."""
    from regressops.serving.log.batch import LogBatch

    names = [f"f{i}" for i in range(FEATURES)]
    with path.open("wb") as fh:
        done = 0
        while done < rows:
            n = min(REQUEST_ROWS, rows - done)
            X = rng.normal(size=(n, FEATURES))
            X[:, :SHIFTED] += 0.3
            batch = LogBatch(
                time.time(), f"r{done}", "/batch", "bench", "local", names, X, X @ coef, 1.0
            )
            for line in batch.json_lines():
                fh.write(line + b"\n")
            done += n


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_cli(
    bundle: Path, log: Path, out: Path, repeat: int
) -> tuple[list[float], list[float], float, dict]:
    """Wall and CPU seconds of each end-to-end run, and the largest peak RSS (MB) of the runs.

    CPU time (user + system, both threads) is the figure a shared, overloaded machine
    disturbs least; wall time is what a user waits.
    """
    exe = Path(sys.executable).with_name("regressops")
    seconds, cpu, rss = [], [], 0.0
    for _ in range(repeat):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            [
                str(exe),
                "monitor",
                "--model",
                str(bundle),
                "--prediction-log",
                str(log),
                "-o",
                str(out),
                "--json",
            ],
            capture_output=True,
            check=True,
            text=True,
        )
        seconds.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_before)
        rss = max(rss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return seconds, cpu, rss, json.loads(done.stdout)


def traced_peak(bundle: Path, log: Path, out: Path) -> float:
    """Peak traced memory (MB) of one in-process monitor run (numpy allocations included).

    One process (``monitor.workers = 1``), so that tracemalloc sees every allocation: with
    several, the command's own figures are in :func:`tree_peak_rss`.
    """
    from regressops.config import Settings
    from regressops.monitoring.monitor import MonitorRequest, run_monitor, write_report

    settings = Settings(monitor={"workers": 1})  # type: ignore[arg-type]
    tracemalloc.start()
    report = run_monitor(
        MonitorRequest(model=str(bundle), prediction_log=str(log)), settings=settings
    )
    write_report(report, out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def tree_peak_rss(cmd: list[str]) -> tuple[float, float]:
    """Peak memory (MB) of ``cmd`` and the largest private memory of any of its children.

    The first is the process's own peak resident set, its kernel high-water mark (``VmHWM``,
    which starts afresh at exec, unlike ``ru_maxrss``, which keeps the forking parent's), the
    in-memory file its children pass arrays through included, as it maps it; the second the
    pages a child wrote since the fork (``Private_*`` of ``smaps_rollup``): what the fan-out
    adds beyond pages the child still shares with its parent. Both sampled every 5 ms.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own_peak = child_peak = 0
    while proc.poll() is None:
        own_peak = max(own_peak, _status_kb(proc.pid, "VmHWM:"))
        for child in _children(proc.pid):
            child_peak = max(child_peak, _memory_kb(child, ("Private_Clean:", "Private_Dirty:")))
        time.sleep(0.005)
    return own_peak / 1024, child_peak / 1024


def _status_kb(pid: int, field: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith(field))


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _memory_kb(pid: int, fields: tuple[str, ...]) -> int:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith(fields))


def scipy_loop(ref: np.ndarray, cur: np.ndarray) -> float:
    from scipy import stats

    started = time.perf_counter()
    for j in range(ref.shape[1]):
        stats.ks_2samp(ref[:, j], cur[:, j])
        stats.wasserstein_distance(ref[:, j], cur[:, j])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--evidently-python", default=None)
    parser.add_argument("--evidently-repeat", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        root = Path(tmp)
        bundle, coef = build_bundle(root, rng)
        log = root / "predictions.jsonl"
        write_log(log, args.rows, coef, rng)
        seconds, cpu, rss, doc = time_cli(bundle, log, root / "out", args.repeat)
        assert doc["drifted_features"] == [f"f{i}" for i in range(SHIFTED)], doc["drifted_features"]
        peak = traced_peak(bundle, log, root / "out-traced")
        exe = Path(sys.executable).with_name("regressops")
        cmd = [str(exe), "monitor", "--model", str(bundle), "--prediction-log", str(log)]
        own_peak, child_peak = tree_peak_rss([*cmd, "-o", str(root / "out-tree")])
        window_mb = args.rows * FEATURES * 8 / 2**20
        from regressops.monitoring.reference import load_reference

        reference = load_reference(bundle)
        ref = np.column_stack([p.sample for p in reference.features.values()])  # type: ignore[union-attr]
        cur = np.random.default_rng(1).normal(size=(args.rows, FEATURES))
        cur[:, :SHIFTED] += 0.3
        scipy_s = scipy_loop(ref, cur)
        evidently = None
        if args.evidently_python:
            evidently = run_evidently(args.evidently_python, ref, cur, root, args.evidently_repeat)
    ours = statistics.median(seconds)
    ev_wall = [w for w, _ in evidently] if evidently else None
    ev_cpu = [c for _, c in evidently] if evidently else None
    result = {
        "rows": args.rows,
        "features": FEATURES,
        "ours_seconds": seconds,
        "ours_median": ours,
        "ours_cpu_seconds": cpu,
        "ours_cpu_median": statistics.median(cpu),
        "ours_peak_rss_mb": rss,
        "traced_peak_mb": peak,
        "fan_out_peak_rss_mb": own_peak,
        "fan_out_child_private_mb": child_peak,
        "fan_out_total_over_window": (own_peak + child_peak) / window_mb,
        "window_float64_mb": window_mb,
        "peak_over_window": peak / window_mb,
        "scipy_loop_seconds": scipy_s,
        "evidently_seconds": ev_wall,
        "evidently_cpu_seconds": ev_cpu,
        "evidently_over_ours_wall": statistics.median(ev_wall) / ours if ev_wall else None,
        "evidently_over_ours_cpu": statistics.median(ev_cpu) / statistics.median(cpu)
        if ev_cpu
        else None,
        "load_average": os.getloadavg(),
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


def run_evidently(
    python: str, ref: np.ndarray, cur: np.ndarray, root: Path, repeat: int
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each ``Report([DataDriftPreset()]).run`` on the same data."""
    import pandas as pd

    names = [f"f{i}" for i in range(FEATURES)]
    pd.DataFrame(ref, columns=names).to_csv(root / "ref.csv", index=False)
    pd.DataFrame(cur, columns=names).to_csv(root / "cur.csv", index=False)
    job = {"csv_ref": str(root / "ref.csv"), "csv_cur": str(root / "cur.csv"), "repeat": repeat}
    done = subprocess.run(
        [python, str(HERE / "evidently_runner.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    return list(zip(out["seconds"], out["cpu_seconds"], strict=True))


if __name__ == "__main__":
    main()
