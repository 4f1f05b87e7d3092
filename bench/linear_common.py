"""Shared helpers of the LinearRegressor benchmarks: worker subprocesses, medians, RESULTS.md.

Every measured call runs in a fresh Python process (``--worker``). Just before the call the
process's resident-set high-water mark is reset to its current RSS (``/proc/self/clear_refs``);
after it, the mark (``VmHWM``) minus that baseline is the *extra* memory the call needed,
whatever allocated it (numpy, LAPACK, Cython). BLAS/OpenMP thread counts are fixed through
the environment of every worker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a worker with ``threads`` BLAS/OpenMP threads."""
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def blas_info() -> dict[str, Any]:
    """In a worker: BLAS threads and kernel (threadpoolctl), and the OpenBLAS overrides set."""
    from threadpoolctl import threadpool_info

    libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return {
        "threads": max((int(lib["num_threads"]) for lib in libs), default=1),
        "kernel": "/".join(sorted({str(lib.get("architecture", "?")) for lib in libs})),
        "overrides": " ".join(
            f"{var}={os.environ[var]}"
            for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            if var in os.environ
        )
        or "none",
    }


def blas_note(runs: Sequence[dict[str, Any]], threads: int) -> str:
    """One sentence on how BLAS ran in the workers (from their :func:`blas_info`)."""
    kernels = sorted({str(r.get("kernel", "?")) for r in runs})
    overrides = sorted({str(r.get("overrides", "?")) for r in runs})
    return (
        f"BLAS/OpenMP threads = {threads} (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, "
        f"MKL_NUM_THREADS in each worker's environment); OpenBLAS kernel "
        f"{', '.join(kernels)} (threadpoolctl), overrides: {', '.join(overrides)}"
    )


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MB (VmHWM; ru_maxrss as a fallback)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:  # pragma: no cover - not on Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> None:
    """Reset the high-water mark to the current RSS (Linux >= 4.0: ``clear_refs`` 5)."""
    with contextlib.suppress(OSError):  # elsewhere the mark covers the whole process
        Path("/proc/self/clear_refs").write_text("5")


def run_worker(script: Path, args: Sequence[str], threads: int) -> dict[str, Any]:
    """Run ``script --worker ARGS`` in a fresh interpreter; return the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", *args],
        env=thread_env(threads),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(call: Callable[[], Any]) -> dict[str, Any]:
    """Time ``call`` once and report the extra peak memory it needed (in a worker)."""
    import time

    reset_peak_rss()
    base = peak_rss_mb()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "extra_mb": max(peak_rss_mb() - base, 0.0), "result": result}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        return "n/a"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    return f"{os.cpu_count()} cores {cpu}, Python {platform.python_version()}"


def versions() -> str:
    import numpy
    import scipy
    import sklearn

    return (
        f"numpy {numpy.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}"
    )


def command_line() -> str:
    script = Path(sys.argv[0]).resolve().relative_to(REPO)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def report(title: str, body: str, *, key: str, write: bool) -> None:
    """Print a result section; when ``write``, put it in bench/RESULTS.md.

    The section sits between ``<!-- key:start -->`` and ``<!-- key:end -->``: a new full run
    replaces the previous one of the same script, other sections are left untouched.
    """
    header = (
        f"## {title}\n\n"
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- machine: {machine()}; {versions()}\n"
        f"- command: `{command_line()}`\n\n"
    )
    section = header + body.rstrip() + "\n"
    print(section)
    if not write:
        return
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{section}{end}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
