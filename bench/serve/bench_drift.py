# ruff: noqa: E501  (command lines and table rows read better unwrapped)
"""Live drift benchmark: ``/stream`` throughput with the live drift gauges on vs off, under wrk.

Two servers run at once, one uvicorn worker each on 127.0.0.1 with ``OMP_NUM_THREADS=1``, both
serving the same bundle (with its stored drift reference): one with ``serve.drift = false``, one
with the live drift on (``serve.drift_interval_seconds``: ``--interval``, default the shipped
30 s). The runs alternate between the two, so the ratio compares figures taken under the same
machine load; the medians of ``--runs`` runs are reported, with each server's CPU µs per
answered request (``/proc/PID/stat``), steady under contention. Goal: with drift on ≥ 95% of
the throughput with it off.

wrk sends one fixed record, so the window the server judges holds copies of one row; the cost
of a computation over a realistic window is measured on its own, in this process: a full
``--window`` rows × 10 features of random rows judged by the same
:class:`~regressops.monitoring.live.LiveDrift` (ms per computation, and its share of one core
at the interval).

Usage::

    .venv/bin/python bench/serve/bench_drift.py                 # writes a section to RESULTS.md
    .venv/bin/python bench/serve/bench_drift.py --quick --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from bench_shadow import ROW, _cpu_seconds, _median  # noqa: E402
from run_serve_bench import ENV, Server, _cpu, replace_section, wrk  # noqa: E402

from helpers.bundles import make_bundle  # noqa: E402
from helpers.drift import add_reference  # noqa: E402

BIN = Path(sys.executable).parent
START, END = "<!-- drift-bench:start -->", "<!-- drift-bench:end -->"


def computation_ms(bundle_dir: Path, window: int, repeat: int = 5) -> float:
    """Median ms of one live drift computation over a full window of random rows."""
    from regressops.models.bundle import load_bundle
    from regressops.monitoring.live import LiveDrift, RollingWindow
    from regressops.monitoring.reference import load_reference

    bundle = load_bundle(bundle_dir)
    reference = load_reference(bundle_dir)
    live = LiveDrift(reference)
    rng = np.random.default_rng(0)
    rows = np.column_stack(
        [rng.choice(reference.features[n].sample, window) for n in bundle.spec.names]  # type: ignore[union-attr]
    )
    ring = RollingWindow(live.kinds, window)
    ring.extend([rows])
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        live.calculate(ring, model=bundle.name, version=bundle.version)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--conns", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--interval", type=float, default=30.0, help="serve.drift_interval_seconds")
    parser.add_argument("--window", type=int, default=10_000, help="serve.drift_window_rows")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--no-log", action="store_true", help="both servers with the log off")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    seconds = 2 if args.quick else args.seconds
    tmp = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    bundle = tmp / "model"
    make_bundle(bundle, version="1")
    add_reference(bundle)
    body = tmp / "stream.json"
    body.write_text(f'{{"data": {ROW}}}')
    env = {
        **ENV,
        "REGRESSOPS_HOME": str(tmp / "home"),
        "REGRESSOPS_CONFIG": "none",
        "REGRESSOPS_SERVE__DRIFT_WINDOW_ROWS": str(args.window),
        "REGRESSOPS_SERVE__DRIFT_INTERVAL_SECONDS": str(args.interval),
    }
    base = [str(BIN / "regressops"), "serve", "--model", str(bundle), "--port", "{port}"]

    def log(name: str) -> list[str]:
        return ["--prediction-log", "off" if args.no_log else str(tmp / f"{name}.jsonl")]

    servers = [
        Server("drift off", [*base, *log("off")], {**env, "REGRESSOPS_SERVE__DRIFT": "false"}, "/readyz"),
        Server("drift on", [*base, *log("on")], {**env, "REGRESSOPS_SERVE__DRIFT": "true"}, "/readyz"),
    ]  # fmt: skip
    results: dict[int, dict[str, list[dict[str, float]]]] = {}
    try:
        for server in servers:
            server.start(tmp)
        for conns in args.conns:
            results[conns] = {s.name: [] for s in servers}
            for _ in range(args.runs):
                for server in servers:
                    assert server.proc is not None
                    cpu0 = _cpu_seconds(server.proc.pid)
                    r = wrk(server.url + "/stream", body, conns=conns, seconds=seconds)
                    r["cpu_us"] = (
                        (_cpu_seconds(server.proc.pid) - cpu0) / (r["rps"] * seconds) * 1e6
                    )
                    results[conns][server.name].append(r)
            for server in servers:
                print(conns, server.name, _median(results[conns][server.name]), flush=True)
        time.sleep(min(args.interval, 5.0) + 0.5)  # a last computation to show below
        metrics = {s.name: httpx.get(s.url + "/metrics").text for s in servers}
    finally:
        for server in servers:
            server.stop()
    window = re.search(r"regressops_drift_window_rows\{[^}]*\} ([\d.e+]+)", metrics["drift on"])
    assert "regressops_drift_window_rows" not in metrics["drift off"]
    ms = computation_ms(bundle, args.window)
    lines = [
        START,
        "## Live drift gauges (`bench/serve/bench_drift.py`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores {_cpu()}, "
        "shared with other work (noisy)",
        f"- command: `.venv/bin/python bench/serve/bench_drift.py{' --quick' if args.quick else ''}"
        f"{f' --runs {args.runs}' if args.runs != 7 else ''}"
        f"{f' --interval {args.interval:g}' if args.interval != 30 else ''}` — wrk -t1, {seconds} s per run, "
        f"{args.runs} runs per cell alternating between the two servers, median; one uvicorn worker "
        f"each (uvloop, httptools); prediction log {'off' if args.no_log else 'on (JSON lines)'} for both; "
        f"window {args.window:,} rows, interval {args.interval:g} s; OMP_NUM_THREADS=1",
        f"- the drift-on server's last window: {float(window.group(1)) if window else 0:,.0f} rows; "
        f"one computation over a full window of {args.window:,} random rows × 10 features: "
        f"{ms:.1f} ms ({ms / 10 / args.interval:.3f}% of a core at the interval)",
        "",
        "| /stream | drift off req/s | p50 / p99 ms | drift on req/s | p50 / p99 ms | ratio (goal ≥ 95%) "
        "| CPU µs/request off / on | CPU ratio (off/on) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for conns, by_server in results.items():
        a, b = _median(by_server["drift off"]), _median(by_server["drift on"])
        lines.append(
            f"| c{conns} | {a['rps']:,.0f} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | {b['rps']:,.0f} | "
            f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {b['rps'] / a['rps']:.0%} | "
            f"{a['cpu_us']:.1f} / {b['cpu_us']:.1f} | {a['cpu_us'] / b['cpu_us']:.0%} |"
        )
    lines.append(END)
    print("\n".join(lines))
    if not args.no_write:
        replace_section(lines)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
