"""Helpers for the monitoring tests: the diabetes rows and a writer of a model's prediction log."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from regressops.models.bundle import ModelBundle
from regressops.serving.log.batch import LogBatch


def diabetes_rows() -> np.ndarray:
    from sklearn.datasets import load_diabetes

    return np.asarray(load_diabetes().data, dtype=np.float64)


def log_rows(
    path: Path,
    bundle: ModelBundle,
    rows: np.ndarray,
    *,
    request_rows: int = 100,
    version: str | None = None,
    prefix: str = "req",
) -> list[str]:
    """Log ``rows`` as /batch requests of ``bundle`` (the server's own line format)."""
    ids = []
    with path.open("ab") as fh:
        for i, start in enumerate(range(0, len(rows), request_rows)):
            part = rows[start : start + request_rows]
            preds = bundle.predict_matrix(bundle.spec.transform_rows(part))
            rid = f"{prefix}{i}"
            ids.append(rid)
            batch = LogBatch(
                time.time(),
                rid,
                "/batch",
                bundle.name,
                version or bundle.version,
                bundle.spec.names,
                part,
                preds,
                1.0,
            )
            for line in batch.json_lines():
                fh.write(line + b"\n")
    return ids
