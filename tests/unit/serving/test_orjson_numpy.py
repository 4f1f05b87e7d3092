"""The prediction log's serialiser survives a document that made orjson 3.12/3.13 corrupt the heap.

Hypothesis found it (``test_log_format.py``): a line of 106 rows whose feature names hold
control characters and astral-plane letters, its columns as float64 numpy arrays serialised with
``OPT_SERIALIZE_NUMPY``. orjson 3.12.0 and 3.13.0 overflow their output buffer on it and glibc
aborts the process ("realloc(): invalid next size") — the log writer would die with its batch.
pyproject pins ``orjson<3.12``; the replay runs in a child process so an abort fails the test
instead of killing the test worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parent / "data" / "orjson_numpy_overflow.json"

REPLAY = """
import json, sys
import numpy as np
import orjson
from regressops.serving.log.batch import LogBatch

doc = json.loads(open(sys.argv[1], encoding="utf-8").read())
names = list(doc["features"])
matrix = np.column_stack([np.asarray(doc["features"][k], dtype=np.float64) for k in names])
batch = LogBatch(0.0, doc["request_id"], doc["endpoint"], doc["model_name"],
                 doc["model_version"], names, matrix,
                 np.asarray(doc["predictions"], dtype=np.float64), doc["latency_ms"])
batch.request_ids, batch.request_rows = doc["request_ids"], doc["request_rows"]
for _ in range(200):
    (line,) = batch.json_lines()
raw = dict(doc, features={k: np.asarray(v) for k, v in doc["features"].items()},
           predictions=np.asarray(doc["predictions"]))
for _ in range(200):
    direct = orjson.dumps(raw, option=orjson.OPT_SERIALIZE_NUMPY)
sys.stdout.buffer.write(line + b"\\n" + direct)
"""


def test_the_log_line_that_overflowed_orjson_serialises_and_reads_back() -> None:
    doc = json.loads(DOC.read_text(encoding="utf-8"))
    done = subprocess.run(
        [sys.executable, "-c", REPLAY, str(DOC)], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-400:]
    line, direct = done.stdout.split(b"\n", 1)
    assert json.loads(direct) == doc
    logged = json.loads(line)
    assert logged["features"] == doc["features"]
    assert logged["predictions"] == doc["predictions"]
    assert logged["request_ids"] == doc["request_ids"]
