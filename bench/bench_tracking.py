"""Overhead of MLflow tracking on a training run, and time to resolve ``models:/NAME@champion``.

Measured on the embedded store (MLflow on SQLite in a temporary home), in one process, the
variants interleaved, median of ``--repeats`` runs:

- ``train``: :func:`regressops.training.train.train` alone (the reference: fit, evaluate, save);
- ``train+log``: the same, then :func:`record_training` with tracking on (gates, one MLflow run
  with params, metrics, plots, lineage, held-out rows and the pyfunc model), no CV;
- ``train+log+register``: also registers the version and promotes it under the lock.

One-off costs are measured in fresh processes: importing MLflow, creating a new SQLite store
(schema migrations). Resolution: a fresh process resolves ``models:/NAME@champion`` and loads the
bundle (cold: downloads into the cache; warm: cache hit, one alias lookup), against
``load_bundle`` of the same bundle directory.

Usage: ``python bench/bench_tracking.py [--repeats 3] [--no-write]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")

RESULTS = Path(__file__).with_name("RESULTS.md")
IMPORT_MLFLOW = "import time\nt = time.perf_counter()\nimport mlflow\nprint(time.perf_counter()-t)"
START, END = "<!-- tracking-bench:start -->", "<!-- tracking-bench:end -->"
CASES = [("diabetes", "linear"), ("insurance", "hgb")]


def _train_variants(home: Path, repeats: int) -> dict[str, dict[str, list[float]]]:
    from regressops.config import Settings
    from regressops.data.selection import DataSelection
    from regressops.training.candidates import RecordPlan, record_training
    from regressops.training.estimator import EstimatorParams
    from regressops.training.train import train

    settings = Settings(home=home)
    times: dict[str, dict[str, list[float]]] = {}
    # warm up: imports, the store's schema, the first experiment
    log, register = RecordPlan(cv=0), RecordPlan(cv=0, register=True)
    warm = train(DataSelection("diabetes"), settings=settings, plots=False, output=home / "warm")
    record_training([warm], register, settings=settings)
    for _ in range(repeats):
        for dataset, kind in CASES:
            case = times.setdefault(f"{dataset}/{kind}", {})
            data, model = DataSelection(dataset), EstimatorParams(kind)
            out = home / "models" / f"{dataset}-{kind}"
            start = time.perf_counter()
            train(data, estimator=model, settings=settings, output=out)
            case.setdefault("train", []).append(time.perf_counter() - start)

            start = time.perf_counter()
            r = train(data, estimator=model, settings=settings, output=out)
            rec = record_training([r], log, settings=settings)
            case.setdefault("train+log", []).append(time.perf_counter() - start)
            assert rec.tracking_error is None and rec.best.run_id

            start = time.perf_counter()
            r = train(data, estimator=model, settings=settings, output=out)
            rec = record_training([r], register, settings=settings)
            case.setdefault("train+log+register", []).append(time.perf_counter() - start)
            assert rec.version is not None
    return times


def _fresh(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    return float(out.stdout.strip().splitlines()[-1])


def _one_off(repeats: int) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {"import mlflow": [], "new sqlite store": []}
    for _ in range(repeats):
        res["import mlflow"].append(_fresh(IMPORT_MLFLOW))
        with tempfile.TemporaryDirectory() as tmp:
            res["new sqlite store"].append(
                _fresh(
                    "import time, mlflow\n"
                    "from regressops.registry.connection import connect\n"
                    f"t=time.perf_counter(); connect('sqlite:///{tmp}/m.db')\n"
                    "print(time.perf_counter()-t)"
                )
            )
    return res


RESOLVE = """
import time, json
t0 = time.perf_counter()
from regressops.config import Settings
from regressops.models.bundle import load_bundle
{body}
print(json.dumps(out))
"""


def _resolution(home: Path, repeats: int) -> dict[str, list[float]]:
    import shutil

    res: dict[str, list[float]] = {"load_bundle (dir)": [], "resolve cold": [], "resolve warm": []}
    local = home / "models" / "diabetes-linear"
    for _ in range(repeats):
        shutil.rmtree(home / "cache", ignore_errors=True)
        for label in ("resolve cold", "resolve warm"):
            body = (
                f"s = Settings(home={str(home)!r}); t = time.perf_counter()\n"
                "from regressops.registry.resolve import resolve_model\n"
                "b = load_bundle(resolve_model('models:/diabetes@champion', settings=s).path)\n"
                "out = {'total': time.perf_counter() - t0, 'resolve': time.perf_counter() - t}"
            )
            doc = json.loads(_run_json(RESOLVE.format(body=body)))
            res[label].append(doc["resolve"])
            res.setdefault(f"{label} (process total)", []).append(doc["total"])
        body = (
            f"t = time.perf_counter(); b = load_bundle({str(local)!r})\n"
            "out = {'total': time.perf_counter() - t0, 'resolve': time.perf_counter() - t}"
        )
        doc = json.loads(_run_json(RESOLVE.format(body=body)))
        res["load_bundle (dir)"].append(doc["resolve"])
        res.setdefault("load_bundle (dir) (process total)", []).append(doc["total"])
    return res


def _run_json(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


def _report(train_t: dict, one_off: dict, resolve: dict, repeats: int) -> str:
    import mlflow

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START,
        "## Tracking overhead and registry resolution (`bench/bench_tracking.py`)",
        "",
        f"- date: {now}; machine: 2 cores AMD EPYC, shared with other work (noisy); Python "
        f"{platform.python_version()}; MLflow {mlflow.__version__}; embedded store (SQLite)",
        f"- command: `.venv/bin/python bench/bench_tracking.py --repeats {repeats}`; median of "
        f"{repeats} interleaved runs in one warm process; OMP/OPENBLAS/MKL_NUM_THREADS=1",
        "- train = fit + evaluate + plots + bundle save; +log = gates, one MLflow run (params, "
        "metrics, plots, lineage, held-out rows, pyfunc model with signature and example), no CV; "
        "+register = also a registry version promoted to @champion under the lock",
        "",
        "| dataset/kind | train s | train+log s | overhead s | ratio | train+log+register s "
        "| ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, t in train_t.items():
        a, b, c = _med(t["train"]), _med(t["train+log"]), _med(t["train+log+register"])
        lines.append(
            f"| {case} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {b / a:.1f}x | {c:.2f} | {c / a:.1f}x |"
        )
    lines += [
        "",
        "One-off costs (fresh process, median): "
        + "; ".join(f"{k} {_med(v):.2f} s" for k, v in one_off.items())
        + ".",
        "",
        "| load of the champion at server start | median s | process total s (imports incl.) |",
        "|---|---|---|",
    ]
    for label in ("load_bundle (dir)", "resolve cold", "resolve warm"):
        lines.append(
            f"| {label} | {_med(resolve[label]):.3f} | "
            f"{_med(resolve[label + ' (process total)']):.2f} |"
        )
    lines += [
        "",
        "resolve = `resolve_model('models:/diabetes@champion')` (MLflow import, client, alias "
        "lookup, download into the cache when cold) + `load_bundle`; the reference loads the "
        "same bundle from its directory (numpy only).",
        "",
        "Raw runs (s): " + json.dumps({k: [round(x, 3) for x in v] for k, v in resolve.items()}),
        END,
    ]
    return "\n".join(lines)


def _write(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        home = Path(tmp)
        train_t = _train_variants(home, args.repeats)
        one_off = _one_off(args.repeats)
        resolve = _resolution(home, args.repeats)
    section = _report(train_t, one_off, resolve, args.repeats)
    print(section)
    if not args.no_write:
        _write(section)


if __name__ == "__main__":
    main()
