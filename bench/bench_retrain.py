"""Time of one retrain cycle on quickstart data, and the loop's overhead around training.

Per repeat, in a fresh temporary home (not timed): ``quickstart`` (diabetes champion v1), then
every source row inserted again with new ids and each feature moved by +0.05. Timed, in one
process: :func:`regressops.pipelines.retrain.retrain` with ``--if drift`` (peek at the source,
monitor the 442 new rows against the champion's reference, extract, validate, train the linear
candidate with 5-fold CV, gate against the champion, register, promote). The reference is the
training step inside the same run (``train_candidates`` with registration: fit, CV, gates, the
MLflow run, register and promote); the overhead is everything else the loop does.

Usage: ``OMP_NUM_THREADS=1 python bench/bench_retrain.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
from pathlib import Path

STEPS = ("peek_source", "monitor", "extract", "validate", "train_gate_register", "reload")


def shift_source(db: Path) -> None:
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(diabetes)")]
    rows = con.execute("SELECT * FROM diabetes").fetchall()
    new = []
    for k, row in enumerate(rows):
        values = list(row)
        values[0] = 100000 + k
        for c in ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"):
            values[cols.index(c)] += 0.05
        new.append(values)
    con.executemany(f"INSERT INTO diabetes VALUES ({','.join('?' * len(cols))})", new)
    con.commit()
    con.close()


def one(root: Path) -> dict[str, float]:
    from regressops.config import Settings
    from regressops.pipelines.quickstart import quickstart
    from regressops.pipelines.retrain import RetrainRequest, retrain

    settings = Settings(home=root / "home")
    quickstart(settings=settings)
    shift_source(settings.home / "demo.db")
    record = retrain(RetrainRequest(dataset="diabetes", when="drift"), settings=settings)
    assert record.status == "promoted", record.to_dict()
    return dict(record.timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
            runs.append(one(Path(tmp)))
    med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in (*STEPS, "total")}
    overhead = [r["total"] - r["train_gate_register"] for r in runs]
    ratio = [r["total"] / r["train_gate_register"] for r in runs]
    print(json.dumps({"median": med, "overhead_s": statistics.median(overhead),
                      "ratio": statistics.median(ratio), "runs": runs}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
