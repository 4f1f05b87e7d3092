"""Speed of everyday commands, each a fresh ``regressops`` process as a user runs it.

Cases, interleaved, ``--runs`` times each (median wall time and median CPU time of the process):

- ``models list``: the command (reads the store directly, no MLflow import), against the
  reference in the same run: the same rows through ``MlflowClient`` (``listing.list_models``
  after ``connect``), which is what ``models list`` did before;
- ``train`` of diabetes, ``--no-track`` (the reference) and tracked (the default): the
  difference is what tracking adds to a train;
- ``train (tracked, fresh home)``: the first tracked train of a new home, which also creates
  the embedded store (MLflow's schema migrations);
- with ``--before PATH``: the same commands with another checkout's ``regressops`` executable.

Tracking's overhead is printed in wall and in CPU seconds (user + system of the process, the
steadier figure on a shared machine).

The home is a fresh temporary one with one registered model (set up first, not timed).
BLAS threads: OMP/OPENBLAS/MKL_NUM_THREADS=1. Usage:
``python bench/bench_everyday.py [--runs 5] [--before /path/to/other/.venv/bin/regressops]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = Path(sys.executable).with_name("regressops")
TRAIN = ["train", "-d", "diabetes", "--no-plots", "--cv", "0"]
REFERENCE_LIST = (
    "from regressops.config import get_settings\n"
    "from regressops.registry.connection import connect\n"
    "from regressops.registry.listing import list_models\n"
    "print(list_models(connect(get_settings().resolved_tracking_uri)))\n"
)


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another checkout's regressops executable")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regressops-bench-") as tmp:
        env = {
            **os.environ,
            "REGRESSOPS_HOME": str(Path(tmp) / "home"),
            "REGRESSOPS_CONFIG": "none",
        }
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        _timed([str(EXE), *TRAIN, "--register"], env)  # the store and one model, not timed
        cases: dict[str, list[str]] = {
            "models list": [str(EXE), "models", "list"],
            "models list via MlflowClient (reference)": [sys.executable, "-c", REFERENCE_LIST],
            "train --no-track (reference)": [str(EXE), *TRAIN, "--no-track"],
            "train (tracked)": [str(EXE), *TRAIN],
        }
        if args.before is not None:
            cases["before: models list"] = [str(args.before), "models", "list"]
            cases["before: train --no-track"] = [str(args.before), *TRAIN, "--no-track"]
            cases["before: train (tracked)"] = [str(args.before), *TRAIN]
        cases["train (tracked, fresh home)"] = [str(EXE), *TRAIN]
        walls: dict[str, list[float]] = {k: [] for k in cases}
        cpus: dict[str, list[float]] = {k: [] for k in cases}
        for run in range(args.runs):
            for name, cmd in cases.items():
                fresh = {"REGRESSOPS_HOME": str(Path(tmp) / f"fresh-{run}")}
                wall, cpu = _timed(cmd, {**env, **fresh} if "fresh home" in name else env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    print("| command | median wall s | median CPU s | runs (wall s) |")
    print("|---|---|---|---|")
    for name in cases:
        runs = ", ".join(f"{w:.2f}" for w in walls[name])
        print(
            f"| {name} | {statistics.median(walls[name]):.2f} | "
            f"{statistics.median(cpus[name]):.2f} | {runs} |"
        )
    med = {k: statistics.median(v) for k, v in walls.items()}
    ref = med["models list via MlflowClient (reference)"]
    print(f"\nmodels list / reference: {med['models list'] / ref:.2f}")
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    for label in ("train (tracked)", "train (tracked, fresh home)"):
        overhead = med[label] - med["train --no-track (reference)"]
        extra = cpu[label] - cpu["train --no-track (reference)"]
        print(f"{label}: tracking adds {overhead:+.2f} s wall, {extra:+.2f} s CPU")
    if args.before is not None:
        before = med["before: train (tracked)"] - med["before: train --no-track"]
        print(
            f"before: tracking adds {before:+.2f} s; models list {med['before: models list']:.2f} s"
        )


if __name__ == "__main__":
    main()
