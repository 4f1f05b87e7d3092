"""Performance once labels arrive: the logged predictions joined with their true values.

Labels are ``request_id,row,label`` rows (a file given to ``--labels``). Each is joined on
``(request_id, row)`` with the logged prediction of that row; labels of requests the window does
not hold are counted and reported, not an error. The metrics on the joined rows sit beside the
model's test metrics; the model is ``degraded`` when its RMSE grew by more than
``monitor.max_rmse_increase`` over at least ``monitor.min_labelled_rows`` labelled rows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regressops.config import MonitorSettings
from regressops.errors import DataError

LABEL_COLUMNS = ("request_id", "row", "label")


@dataclass(frozen=True)
class Labels:
    """True values keyed by ``(request_id, row)``."""

    values: dict[tuple[str, int], float]
    source: str


def read_labels(path: str | os.PathLike[str]) -> Labels:
    """Read a labels file (CSV, Parquet or JSON) with columns ``request_id,row,label``.

    Raises
    ------
    DataError
        The file cannot be read, lacks a column, or holds a row that is not a whole number or a
        label that is not a finite number.
    """
    from regressops.data.files import read_table

    frame = read_table(path)
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"labels file {path} needs columns {','.join(LABEL_COLUMNS)}; it lacks "
            f"{', '.join(missing)} (it has {', '.join(map(str, frame.columns))})",
            reason="bad_labels",
        )
    try:
        rows = frame["row"].to_numpy(dtype=np.float64)
        labels = frame["label"].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"labels file {path}: 'row' and 'label' must be numbers", reason="bad_labels"
        ) from None
    bad = ~np.isfinite(labels) | ~np.isfinite(rows) | (rows != np.round(rows)) | (rows < 0)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"labels file {path}: line {first + 2} has a row that is not a whole number or a "
            "label that is not a finite number",
            reason="bad_labels",
        )
    ids = frame["request_id"].astype(str).tolist()
    values = dict(
        zip(zip(ids, rows.astype(np.int64).tolist(), strict=True), labels.tolist(), strict=True)
    )
    return Labels(values=values, source=str(Path(path)))


@dataclass(frozen=True)
class Performance:
    """Metrics on the labelled rows beside the model's test metrics."""

    rows_labelled: int
    unmatched: int
    metrics: dict[str, float] | None
    reference: dict[str, float]
    degraded: bool
    status: str
    rmse_increase: float | None

    def to_dict(self) -> dict[str, Any]:
        """The ``performance`` part of ``drift.json``."""
        m = self.metrics or {}
        return {
            "status": self.status,
            "rows_labelled": self.rows_labelled,
            "labels_unmatched": self.unmatched,
            **{k: m.get(k) for k in ("r2", "rmse", "mse", "mae")},
            "rmse_increase": self.rmse_increase,
            "reference": self.reference,
            "degraded": self.degraded,
        }


def join_labels(
    labels: Labels,
    *,
    segments: Mapping[str, list[tuple[int, int, int]]],
    predictions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Join labels to the window's predictions on ``(request_id, row)``.

    Parameters
    ----------
    labels : Labels
        The true values.
    segments : mapping of request id to ``[(first_row, rows, offset)]``
        Where each request's rows sit in ``predictions``.
    predictions : ndarray
        The window's predictions.

    Returns
    -------
    y_true, y_pred : ndarray
        The joined rows.
    unmatched : int
        Labels of rows the window does not hold.
    """
    y_true: list[float] = []
    at: list[int] = []
    for (rid, row), label in labels.values.items():
        for first, count, offset in segments.get(rid, ()):
            if first <= row < first + count:
                y_true.append(label)
                at.append(offset + row - first)
                break
    y_pred = predictions[np.asarray(at, dtype=np.int64)]
    return np.asarray(y_true, dtype=np.float64), y_pred, len(labels.values) - len(at)


def judge_performance(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    unmatched: int = 0,
    reference: Mapping[str, Any],
    settings: MonitorSettings,
) -> Performance:
    """Metrics on labelled rows beside the model's test metrics, and the verdict.

    Parameters
    ----------
    y_true, y_pred : ndarray
        True values and the logged predictions of the labelled rows.
    unmatched : int, default=0
        Labels that matched no row (reported).
    reference : mapping
        The model's test metrics (``metrics.json``).
    settings : MonitorSettings
        ``max_rmse_increase`` and ``min_labelled_rows``.
    """
    k = int(y_true.size)
    metrics = None
    if k:
        from regressops.training.metrics import regression_metrics

        metrics = regression_metrics(y_true, y_pred)
    return judge_metrics(k, metrics, unmatched=unmatched, reference=reference, settings=settings)


def judge_metrics(
    k: int,
    metrics: Mapping[str, float] | None,
    *,
    unmatched: int = 0,
    reference: Mapping[str, Any],
    settings: MonitorSettings,
) -> Performance:
    """The verdict of :func:`judge_performance` on metrics already computed over ``k`` rows
    (for example combined over partitions)."""
    ref = {
        m: float(reference[m]) for m in ("r2", "rmse", "mse", "mae") if _number(reference.get(m))
    }
    metrics = dict(metrics) if metrics is not None else None
    increase = None
    if metrics is not None and ref.get("rmse"):
        increase = metrics["rmse"] / ref["rmse"] - 1.0
    enough = k >= settings.min_labelled_rows
    degraded = bool(enough and increase is not None and increase > settings.max_rmse_increase)
    status = "not_enough_data" if not enough else ("degraded" if degraded else "ok")
    return Performance(k, unmatched, metrics, ref, degraded, status, increase)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
