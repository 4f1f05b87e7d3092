# ruff: noqa: E501  (command lines and table rows read better unwrapped)
"""Shadow benchmark: ``/stream`` throughput with a challenger in shadow vs without, under wrk.

Two servers run at once, one uvicorn worker each on 127.0.0.1 with ``OMP_NUM_THREADS=1``: the
champion alone, and the champion with ``--shadow`` (a second bundle that predicts differently).
Both write the prediction log (the shadow's rows go to it too). The runs alternate between the
two, so the ratio compares figures taken under the same machine load; the medians of ``--runs``
runs are reported. Goal: with a shadow ≥ 85% of the throughput without.

On a shared machine throughput swings with the neighbours' load, so the script also reads each
server's CPU time (``/proc/PID/stat``, all its threads) around every run: CPU microseconds per
answered request are steady under contention, and their ratio is the throughput ratio a
CPU-bound server would show on a machine of its own.

Usage::

    .venv/bin/python bench/serve/bench_shadow.py                 # writes a section to RESULTS.md
    .venv/bin/python bench/serve/bench_shadow.py --quick --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from run_serve_bench import ENV, Server, _cpu, replace_section, wrk  # noqa: E402

from helpers.bundles import make_bundle  # noqa: E402

BIN = Path(sys.executable).parent
START, END = "<!-- shadow-bench:start -->", "<!-- shadow-bench:end -->"
ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--conns", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--no-log", action="store_true", help="both servers with the log off")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    seconds = 2 if args.quick else args.seconds
    tmp = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    make_bundle(tmp / "champion", version="1")
    make_bundle(tmp / "challenger", version="2", shift=5.0)
    body = tmp / "stream.json"
    body.write_text(f'{{"data": {ROW}}}')
    env = {
        **ENV,
        "REGRESSOPS_HOME": str(tmp / "home"),
        "REGRESSOPS_CONFIG": "none",
    }
    base = [str(BIN / "regressops"), "serve", "--model", str(tmp / "champion"), "--port", "{port}"]
    servers = [
        Server("champion", [*base, "--prediction-log", "off" if args.no_log else str(tmp / "alone.jsonl")],
               env, "/readyz"),
        Server("champion+shadow", [*base, "--prediction-log", "off" if args.no_log else str(tmp / "shadow.jsonl"),
                                   "--shadow", str(tmp / "challenger")], env, "/readyz"),
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
        metrics = httpx.get(servers[1].url + "/metrics").text
    finally:
        for server in servers:
            server.stop()
    scored = sum(
        float(m)
        for m in re.findall(r'regressops_shadow_rows_total\{result="scored"\} ([\d.e+]+)', metrics)
    )
    dropped = sum(
        float(m)
        for m in re.findall(r'regressops_shadow_rows_total\{result="dropped"\} ([\d.e+]+)', metrics)
    )
    lines = [
        START,
        "## Challenger in shadow (`bench/serve/bench_shadow.py`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores {_cpu()}, "
        "shared with other work (noisy)",
        f"- command: `.venv/bin/python bench/serve/bench_shadow.py{' --quick' if args.quick else ''}"
        f"{f' --runs {args.runs}' if args.runs != 7 else ''}` — wrk -t1, {seconds} s per run, "
        f"{args.runs} runs per cell alternating between the two servers, median; one uvicorn worker "
        "each (uvloop, httptools); prediction log on (JSON lines) for both; OMP_NUM_THREADS=1 (BLAS single-threaded)",
        f"- shadow rows scored {scored:,.0f}, dropped {dropped:,.0f} (the shadow server's /metrics after the runs)",
        "",
        "| /stream | without shadow req/s | p50 / p99 ms | with shadow req/s | p50 / p99 ms | ratio (goal ≥ 85%) "
        "| CPU µs/request without / with | CPU ratio (without/with) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for conns, by_server in results.items():
        a, b = _median(by_server["champion"]), _median(by_server["champion+shadow"])
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


if __name__ == "__main__":
    main()
