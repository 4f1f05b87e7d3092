"""Run every benchmark in turn: ``python bench/run_all.py [--quick]``.

``--quick`` runs each at its small sizes and prints the figures without touching RESULTS.md;
without it each benchmark runs its full sizes and appends its section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, extra arguments for --quick); each script takes --quick itself unless noted.
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("bench_exact.py", ["--quick"]),
    ("bench_stream.py", ["--quick"]),
    ("bench_sgd.py", ["--quick"]),
    ("bench_extract.py", ["--quick", "--backends", "sqlite"]),
    ("bench_tracking.py", ["--repeats", "1", "--no-write"]),
    ("bench_quantize.py", ["--quick"]),
    ("serve/run_serve_bench.py", ["--quick"]),
]


def main() -> int:
    """Run the benchmarks; return non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, print only")
    parser.add_argument("--only", nargs="*", help="run only scripts whose name contains these")
    args = parser.parse_args()
    failed = []
    for script, quick_args in BENCHMARKS:
        if args.only and not any(o in script for o in args.only):
            continue
        cmd = [sys.executable, str(HERE / script), *(quick_args if args.quick else [])]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd, cwd=HERE.parent)
        print(f"=== {script}: exit {rc} in {time.perf_counter() - start:.1f} s", flush=True)
        if rc:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
