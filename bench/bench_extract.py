"""Extract + validate + write throughput and peak memory, against a plain ``pandas.read_sql``.

For each backend (SQLite file, PostgreSQL at 127.0.0.1:5432) and table size, a table of the
insurance data repeated to N rows (fresh ids) is seeded once; then, alternating, in fresh
processes:

- pipeline: ``extract`` (chunks of 100,000 rows, content hashes, one raw Delta version) then
  ``validate --on-fail quarantine`` (coercion, pandera checks, key uniqueness, report,
  clean Delta version) into an empty lake;
- reference: ``pandas.read_sql("SELECT * FROM table")`` of the whole table (no checks, no
  writes): what a notebook does.

Each figure is the median of ``--repeats`` runs; peak memory is the child's ``ru_maxrss``
(VmHWM, imports included; the peak after imports is reported too). Results are appended to
bench/RESULTS.md.

    .venv/bin/python bench/bench_extract.py                      # 1M and 5M rows, 3 repeats
    .venv/bin/python bench/bench_extract.py --quick              # 100k and 500k rows, 1 repeat
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
PG_URL = os.environ.get(
    "REGRESSOPS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_SCHEMA = "regressops_bench"
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM (reset by exec, unlike ru_maxrss,
    which keeps the parent's peak across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- children
def child_pipeline(url: str, table: str, home: str) -> dict:
    import deltalake  # noqa: F401 - imported before the baseline is read
    import pandas  # noqa: F401
    import pandera.pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import sqlalchemy  # noqa: F401

    from regressops.config import Settings
    from regressops.data.extract import extract
    from regressops.data.validate import validate

    base = _rss_mb()
    settings = Settings(home=Path(home))
    started = time.perf_counter()
    extracted = extract("insurance", source_url=url, table=table, settings=settings)
    middle = time.perf_counter()
    validated = validate("insurance", on_fail="quarantine", settings=settings)
    done = time.perf_counter()
    return {
        "rows": extracted.rows_new,
        "clean": validated.rows["clean"],
        "extract_s": middle - started,
        "validate_s": done - middle,
        "seconds": done - started,
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


def child_read_sql(url: str, table: str) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine, text

    base = _rss_mb()
    engine = create_engine(url)
    started = time.perf_counter()
    with engine.connect() as conn:
        frame = pd.read_sql(text(f"SELECT * FROM {table}"), conn)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"rows": len(frame), "seconds": seconds, "base_mb": base, "peak_mb": _rss_mb()}


def run_child(kind: str, url: str, table: str) -> dict:
    home = tempfile.mkdtemp(prefix="regressops-bench-")
    try:
        cmd = [sys.executable, __file__, "--child", kind, "--url", url, "--table", table]
        cmd += ["--home", home]
        env = {**os.environ, **THREADS}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{kind} child failed: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------- setup
def seed(backend: str, rows: int, work: Path) -> tuple[str, str]:
    from regressops.config import Settings
    from regressops.data.demo_db import seed_demo_db

    settings = Settings(home=work / "seed-home")
    if backend == "sqlite":
        url = f"sqlite:///{work / 'bench.db'}"
        table = f"insurance_{rows}"
    else:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
        engine.dispose()
        url, table = PG_URL, f"{PG_SCHEMA}.insurance_{rows}"
    started = time.perf_counter()
    seed_demo_db(url=url, dataset="insurance", table=table, rows=rows, settings=settings)
    print(f"  seeded {table} ({rows:,} rows) in {time.perf_counter() - started:.1f}s", flush=True)
    return url, table


def drop_pg_schema() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE'))
    engine.dispose()


def pg_available() -> bool:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------- main
def measure(backends: list[str], sizes: list[int], repeats: int) -> list[dict]:
    rows_out = []
    work = Path(tempfile.mkdtemp(prefix="regressops-bench-src-"))
    try:
        for backend in backends:
            for size in sizes:
                print(f"{backend} {size:,} rows", flush=True)
                url, table = seed(backend, size, work)
                pipe, ref = [], []
                for i in range(repeats):  # interleaved, so drift in machine load hits both
                    pipe.append(run_child("pipeline", url, table))
                    ref.append(run_child("read_sql", url, table))
                    print(
                        f"  run {i + 1}: pipeline {pipe[-1]['seconds']:.1f}s "
                        f"{pipe[-1]['peak_mb']:.0f} MB; read_sql {ref[-1]['seconds']:.1f}s "
                        f"{ref[-1]['peak_mb']:.0f} MB",
                        flush=True,
                    )
                assert all(p["rows"] == size == r["rows"] for p, r in zip(pipe, ref, strict=True))
                rows_out.append(summarize(backend, size, pipe, ref))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if "postgresql" in backends:
            drop_pg_schema()
    return rows_out


def summarize(backend: str, size: int, pipe: list[dict], ref: list[dict]) -> dict:
    med = statistics.median
    seconds = med(p["seconds"] for p in pipe)
    ref_seconds = med(r["seconds"] for r in ref)
    return {
        "backend": backend,
        "rows": size,
        "extract_s": med(p["extract_s"] for p in pipe),
        "validate_s": med(p["validate_s"] for p in pipe),
        "seconds": seconds,
        "rows_per_s": size / seconds,
        "peak_mb": med(p["peak_mb"] for p in pipe),
        "base_mb": med(p["base_mb"] for p in pipe),
        "ref_seconds": ref_seconds,
        "ref_rows_per_s": size / ref_seconds,
        "ref_peak_mb": med(r["peak_mb"] for r in ref),
        "ref_base_mb": med(r["base_mb"] for r in ref),
        "runs": [round(p["seconds"], 1) for p in pipe],
        "ref_runs": [round(r["seconds"], 1) for r in ref],
    }


def write_results(results: list[dict], command: str, repeats: int, note: str) -> str:
    import deltalake
    import pandas
    import pandera
    import sqlalchemy

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        "## Extract + validate + write vs pandas.read_sql (`bench/bench_extract.py`)",
        "",
        f"- date: {now}; machine: 2 cores AMD EPYC, shared with other work (noisy); "
        f"Python {platform.python_version()}; pandas {pandas.__version__}, pandera "
        f"{pandera.__version__}, deltalake {deltalake.__version__}, SQLAlchemy "
        f"{sqlalchemy.__version__}",
        f"- command: `{command}`; median of {repeats} interleaved runs, each in a fresh process; "
        "OMP/OPENBLAS/MKL_NUM_THREADS=1 (pyarrow and delta-rs use their own pools)",
        "- pipeline = `extract` (chunks of 100,000 rows, row hashes, one raw Delta version) + "
        "`validate --on-fail quarantine` (coercion, pandera checks, key uniqueness, report, "
        "clean Delta version) into an empty lake; reference = `pandas.read_sql` of the whole "
        "table into one DataFrame (no checks, nothing written). Peak = VmHWM of the process, "
        "imports included (peak after imports in brackets).",
    ]
    if note:
        lines.append(f"- {note}")
    lines += [
        "",
        "| source | rows | extract s | validate s | total s | rows/s | peak MB | "
        "read_sql s | read_sql rows/s | read_sql peak MB | time ratio | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['rows']:,} | {r['extract_s']:.1f} | {r['validate_s']:.1f} | "
            f"{r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['peak_mb']:.0f} "
            f"({r['base_mb']:.0f}) | {r['ref_seconds']:.1f} | {r['ref_rows_per_s']:,.0f} | "
            f"{r['ref_peak_mb']:.0f} ({r['ref_base_mb']:.0f}) | "
            f"{r['seconds'] / r['ref_seconds']:.2f}x | {r['peak_mb'] / r['ref_peak_mb']:.2f} |"
        )
    lines.append("")
    runs = "; ".join(
        f"{r['backend']} {r['rows']:,}: pipeline {r['runs']}, read_sql {r['ref_runs']}"
        for r in results
    )
    lines.append(f"Runs (s): {runs}.")
    text = "\n".join(lines) + "\n"
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["pipeline", "read_sql"])
    parser.add_argument("--url")
    parser.add_argument("--table")
    parser.add_argument("--home")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k and 500k rows, one run")
    parser.add_argument("--note", default="", help="a line added to the results")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.child == "pipeline":
        print(json.dumps(child_pipeline(args.url, args.table, args.home)))
        return
    if args.child == "read_sql":
        print(json.dumps(child_read_sql(args.url, args.table)))
        return
    if args.quick:
        args.sizes, args.repeats = [100_000, 500_000], 1
    backends = list(args.backends)
    if "postgresql" in backends and not pg_available():
        print(f"PostgreSQL not reachable at {PG_URL}: skipping it", flush=True)
        backends.remove("postgresql")
    results = measure(backends, args.sizes, args.repeats)
    command = "python bench/bench_extract.py " + " ".join(sys.argv[1:])
    if not args.no_write:
        print(write_results(results, command.strip(), args.repeats, args.note))
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
