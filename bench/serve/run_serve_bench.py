# ruff: noqa: E501  (command lines and table rows read better unwrapped)
"""Serving benchmark: our server vs a raw ASGI ceiling vs ``mlflow models serve``, measured by wrk.

All servers run at once, one uvicorn worker each on 127.0.0.1 with ``OMP_NUM_THREADS=1``; the
``--runs`` runs of each scenario alternate between them (so a ratio compares figures taken under
the same load on this shared machine); the median is reported with its ratio to the raw-ASGI
ceiling.

Scenarios: ``/stream`` one record at concurrency 8 and 64 (requests/s, p50, p99); ``/batch``
of 1,000 and 100,000 rows (rows/s); cold start (process start to the first 200 on
``/readyz``) and resident memory after the load.

Usage::

    .venv/bin/python bench/serve/run_serve_bench.py            # full run, writes RESULTS.md
    .venv/bin/python bench/serve/run_serve_bench.py --quick    # shorter runs, no MLflow
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- serve-bench:start -->", "<!-- serve-bench:end -->"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    ready_path: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    cold_start_s: float = float("nan")

    def start(self, tmp: Path) -> Server:
        cmd = [c.replace("{port}", str(self.port)) for c in self.cmd]
        log = (tmp / f"{self.name}.log").open("wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {(tmp / f'{self.name}.log').read_text()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    self.cold_start_s = time.perf_counter() - t0
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise TimeoutError(self.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (MLflow forks a uvicorn)."""
        assert self.proc is not None
        pids = [self.proc.pid]
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        pids += [int(p) for p in out.stdout.split()]
        total = 0.0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(m.group(1)) / 1024 if m else 0
        return total

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.name == "mlflow":  # its own session: the CLI and the uvicorn it starts
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:
                self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wrk(url: str, body_file: Path, *, conns: int, seconds: int) -> dict[str, float]:
    script = body_file.with_suffix(".lua")
    script.write_text(
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "60s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {k: _ms(v) for k, v in re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if bad or (errors and "timeout 0" not in errors.group(0)):
        raise RuntimeError(f"failed requests against {url}:\n{out}")
    return {
        "rps": rps,
        "p50_ms": lat.get("50", float("nan")),
        "p99_ms": lat.get("99", float("nan")),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def build_models(tmp: Path, with_mlflow: bool) -> tuple[Path, list[str], np.ndarray, str | None]:
    """Our bundle (numpy least squares) and, optionally, its scikit-learn twin logged to MLflow."""
    from sklearn.datasets import load_diabetes

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.bundles import make_bundle

    bundle_dir = tmp / "diabetes"
    bundle = make_bundle(bundle_dir)
    data = load_diabetes()
    names = list(bundle.spec.names)
    X = np.asarray(data.data, dtype=np.float64)
    model_uri = None
    if with_mlflow:
        import mlflow
        from sklearn.linear_model import LinearRegression

        twin = LinearRegression().fit(X, data.target)
        ours = bundle.predict_matrix(bundle.spec.transform_rows(X[:5]))
        assert np.allclose(twin.predict(X[:5]), ours), "the twin must predict like our model"
        mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
        # artefacts under tmp too (MLflow's default is ./mlruns in the working directory)
        mlflow.create_experiment("serve-bench", artifact_location=(tmp / "mlartifacts").as_uri())
        mlflow.set_experiment("serve-bench")
        import pandas as pd

        frame = pd.DataFrame(X[:2], columns=names)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(twin, name="model", input_example=frame)
        model_uri = info.model_uri
    return bundle_dir, names, X, model_uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs, no MLflow, no 100k batch")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument(
        "--log-breakdown",
        action="store_true",
        help="add a server logging to /dev/null: the log's formatting cost without its disk writes",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    seconds = 2 if args.quick else args.seconds
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    bundle_dir, names, X, model_uri = build_models(tmp, with_mlflow=not args.quick)
    row = X[0].tolist()
    bodies: dict[str, dict[str, Path]] = {"ours": {}, "raw": {}, "mlflow": {}}
    sizes = [1000] if args.quick else [1000, 100_000]
    rng = np.random.default_rng(0)
    for key, doc in {"stream": {"data": row}}.items():
        for target in ("ours", "raw"):
            bodies[target][key] = _write(tmp / f"{target}-{key}.json", doc)
        bodies["mlflow"][key] = _write(
            tmp / f"mlflow-{key}.json", {"dataframe_split": {"columns": names, "data": [row]}}
        )
    for n in sizes:
        rows = X[rng.integers(0, len(X), n)].tolist()
        for target in ("ours", "raw"):
            bodies[target][f"batch{n}"] = _write(tmp / f"{target}-batch{n}.json", {"data": rows})
        bodies["mlflow"][f"batch{n}"] = _write(
            tmp / f"mlflow-batch{n}.json", {"dataframe_split": {"columns": names, "data": rows}}
        )

    common = [
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--port",
        "{port}",
    ]
    home = tmp / "home"
    ours_env = {
        **ENV,
        "REGRESSOPS_HOME": str(home),
        "REGRESSOPS_SERVE__MAX_BODY_BYTES": str(64 << 20),
    }
    servers = [
        Server("raw", [str(BIN / "uvicorn"), "bench.serve.raw_asgi:app", *common],
               {**ENV, "RAW_BUNDLE": str(bundle_dir), "PYTHONPATH": str(ROOT)}, "/stream"),
        Server("ours+log", [str(BIN / "regressops"), "serve", "--model", str(bundle_dir), "--port", "{port}"],
               ours_env, "/readyz"),
        Server("ours-nolog", [str(BIN / "regressops"), "serve", "--model", str(bundle_dir), "--port", "{port}",
                              "--prediction-log", "off"], ours_env, "/readyz"),
    ]  # fmt: skip
    if args.log_breakdown:
        servers.append(Server("ours+log>null", [str(BIN / "regressops"), "serve", "--model", str(bundle_dir),
                                               "--port", "{port}", "--prediction-log", "/dev/null"],
                              ours_env, "/readyz"))  # fmt: skip
    if model_uri:
        servers.append(
            Server("mlflow", [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
                              "-h", "127.0.0.1", "-p", "{port}", "-w", "1"],
                   {**ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
                    "PATH": f"{BIN}{os.pathsep}{ENV.get('PATH', '')}"}, "/ping")
        )  # fmt: skip
    # All servers run at once (an idle one costs nothing) and the runs of a cell alternate
    # between them, so each ratio compares figures taken under the same machine load.
    endpoints = {"ours": ("/stream", "/batch"), "raw": ("/stream", "/batch"),
                 "mlflow": ("/invocations", "/invocations")}  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    try:
        for server in servers:
            _start(server, tmp)
            results[server.name] = {"cold_start_s": server.cold_start_s}
            print(f"started {server.name} in {server.cold_start_s:.2f} s", flush=True)
        cells = [(f"stream_c{c}", "stream", 0, c, seconds) for c in (8, 64)]
        cells += [(f"batch{n}", f"batch{n}", 1, 2, seconds if n <= 1000 else max(seconds, 10))
                  for n in sizes]  # fmt: skip
        for cell, body, which, conns, secs in cells:
            runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in servers}
            for _ in range(args.runs):
                for server in servers:
                    target = "ours" if server.name.startswith("ours") else server.name
                    url = server.url + endpoints[target][which]
                    runs[server.name].append(
                        wrk(url, bodies[target][body], conns=conns, seconds=secs)
                    )
            for server in servers:
                m = median_of(runs[server.name])
                if cell.startswith("batch"):
                    m["rows_per_s"] = m["rps"] * int(cell[5:])
                results[server.name][cell] = m
                print(f"   {cell} {server.name}: {m}", flush=True)
        for server in servers:
            results[server.name]["rss_mb"] = server.rss_mb()
    finally:
        for server in servers:
            server.stop()
    (tmp / "results.json").write_text(json.dumps(results, indent=2))
    write_results(results, args, sizes)
    print(f"results: {tmp / 'results.json'}; section written to {RESULTS}")


def _start(server: Server, tmp: Path) -> None:
    if server.name == "raw":
        # the raw app has no readiness route: wait for a 200 on /stream
        cmd = [c.replace("{port}", str(server.port)) for c in server.cmd]
        t0 = time.perf_counter()
        server.proc = subprocess.Popen(
            cmd, env=server.env, stdout=(tmp / "raw.log").open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.post(
                        server.url + "/stream", json={"data": [0.0] * 10}, timeout=1
                    ).status_code
                    == 200
                ):
                    server.cold_start_s = time.perf_counter() - t0
                    return
            except httpx.HTTPError:
                time.sleep(0.02)
        raise TimeoutError("raw")
    if server.name == "mlflow":
        server.proc = None
        cmd = [c.replace("{port}", str(server.port)) for c in server.cmd]
        t0 = time.perf_counter()
        server.proc = subprocess.Popen(cmd, env=server.env, stdout=(tmp / "mlflow.log").open("wb"),
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.proc.poll() is None:
            try:
                if httpx.get(server.url + "/ping", timeout=1).status_code == 200:
                    server.cold_start_s = time.perf_counter() - t0
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError(f"mlflow: {(tmp / 'mlflow.log').read_text()}")
    server.start(tmp)


def _write(path: Path, doc: Any) -> Path:
    path.write_bytes(json.dumps(doc).encode())
    return path


def write_results(
    results: dict[str, dict[str, Any]], args: argparse.Namespace, sizes: list[int]
) -> None:
    raw = results["raw"]
    lines = [
        START,
        "## Serving (`bench/serve/run_serve_bench.py`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores "
        f"{_cpu()}, shared with other work (noisy); Python {platform.python_version()}",
        f"- command: `.venv/bin/python bench/serve/run_serve_bench.py{_flags(args)}` "
        f"— wrk -t1, {args.runs} runs per cell, median; one uvicorn worker (uvloop, httptools) "
        "per server; all servers up at once, runs alternating between them; OMP_NUM_THREADS=1",
        "- raw = bare ASGI app under the same uvicorn (orjson parse + same dot product): the ceiling; "
        "mlflow = `mlflow models serve --env-manager local` of the scikit-learn twin "
        "(LinearRegression, same predictions)",
        "",
        "| server | /stream c8 req/s | p50 / p99 ms | ratio vs raw | /stream c64 req/s | p99 ms | ratio vs raw |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        c8, c64 = r["stream_c8"], r["stream_c64"]
        lines.append(
            f"| {name} | {c8['rps']:,.0f} | {c8['p50_ms']:.2f} / {c8['p99_ms']:.2f} | "
            f"{c8['rps'] / raw['stream_c8']['rps']:.0%} | {c64['rps']:,.0f} | {c64['p99_ms']:.2f} | "
            f"{c64['rps'] / raw['stream_c64']['rps']:.0%} |"
        )
    lines += ["", "| server | " + " | ".join(f"/batch {n:,} rows/s (vs raw) | p50 / p99 ms" for n in sizes)
              + " | cold start s | RSS MB |", "|---" * (2 * len(sizes) + 3) + "|"]  # fmt: skip
    for name, r in results.items():
        cells = [
            f"{r[f'batch{n}']['rows_per_s']:,.0f} ({r[f'batch{n}']['rows_per_s'] / raw[f'batch{n}']['rows_per_s']:.0%}) | "
            f"{r[f'batch{n}']['p50_ms']:.1f} / {r[f'batch{n}']['p99_ms']:.1f}"
            for n in sizes
        ]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {r['cold_start_s']:.2f} | {r['rss_mb']:.0f} |"
        )
    if "mlflow" in results:
        for key in ("ours+log", "ours-nolog"):
            ratio = results[key]["stream_c8"]["rps"] / results["mlflow"]["stream_c8"]["rps"]
            lines.append(f"\n{key} vs MLflow, /stream c8: {ratio:.0f}x")
    lines.append(END)
    replace_section(lines)


def replace_section(lines: list[str]) -> None:
    """Put ``lines`` (first and last: the section's markers) in RESULTS.md, replacing the
    section between the same markers if there is one."""
    start, end = lines[0], lines[-1]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text:
        text = text[: text.index(start)] + "\n".join(lines) + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    RESULTS.write_text(text)


def _flags(args: argparse.Namespace) -> str:
    flags = " --quick" if args.quick else ""
    flags += f" --runs {args.runs}" if args.runs != 3 else ""
    flags += f" --seconds {args.seconds}" if args.seconds != 5 and not args.quick else ""
    return flags + (" --log-breakdown" if args.log_breakdown else "")


def _cpu() -> str:
    try:
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        return m.group(1).strip() if m else platform.processor()
    except OSError:
        return platform.processor()


if __name__ == "__main__":
    main()
