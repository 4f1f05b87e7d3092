"""Time from ``regressops serve`` to the first 200 on ``/readyz``, per kind of model reference.

A temporary home gets the quickstart's champion (embedded MLflow store); then, alternating, real
server processes are started on 127.0.0.1 with ``--model`` set to the bundle directory,
``models:/diabetes@champion`` and ``models:/diabetes/1`` (the registry forms, resolved from the
cache without importing MLflow), and stopped. The reference measured in the same run is what the
registry forms used to pay on top of a directory: a fresh interpreter importing MLflow.

    .venv/bin/python bench/bench_serve_start.py [--runs 5] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).with_name("RESULTS.md")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time_to_ready(model: str, env: dict[str, str], cwd: Path) -> float:
    port = _port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(BIN / "regressops"),
            "serve",
            "--model",
            model,
            "--port",
            str(port),
            "--prediction-log",
            "off",
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = start + 120
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server for {model} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"server for {model} not ready in 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _import_mlflow(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mlflow"], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    parser.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = {**os.environ, "REGRESSOPS_HOME": str(cwd / "home"), "OMP_NUM_THREADS": "1"}
        subprocess.run(
            [str(BIN / "regressops"), "quickstart", "--json"],
            env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        forms = {
            "bundle directory": str(cwd / "home" / "models" / "diabetes"),
            "models:/diabetes@champion": "models:/diabetes@champion",
            "models:/diabetes/1": "models:/diabetes/1",
        }
        _time_to_ready(forms["models:/diabetes@champion"], env, cwd)  # fills the cache
        times: dict[str, list[float]] = {k: [] for k in [*forms, "reference: import mlflow"]}
        for _ in range(runs):
            for label, model in forms.items():
                times[label].append(_time_to_ready(model, env, cwd))
            times["reference: import mlflow"].append(_import_mlflow(env))
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"### serve start ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
        f"`python bench/bench_serve_start.py --runs {runs}`; OMP_NUM_THREADS=1; median of {runs}"
        " alternating runs, seconds from process start to the first 200 on /readyz.",
        "",
        "| --model | median s | runs |",
        "|---|---|---|",
    ]
    for label, values in times.items():
        lines.append(
            f"| {label} | {med[label]:.2f} | {json.dumps([round(v, 2) for v in values])} |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.write:
        RESULTS.write_text(RESULTS.read_text().rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
