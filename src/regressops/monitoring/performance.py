"""Performance once labels arrive: the logged predictions joined with their true values.

Labels are ``request_id,row,label`` rows: those ``POST /feedback`` stored in the labels sink
beside the prediction log (:mod:`regressops.serving.log.labels`), or a file given to
``--labels``. They are held as columns and joined on ``(request_id, row)`` with the logged
prediction of that row in one vectorised pass (:func:`locate_labels`: a sorted key per window
row, a binary search per label); labels of requests the window does not hold are counted and
reported, not an error. The metrics on the joined rows sit beside the model's test metrics; the
model is ``degraded`` when its RMSE grew by more than ``monitor.max_rmse_increase`` over at
least ``monitor.min_labelled_rows`` labelled rows.

With a challenger in shadow (``serve --shadow``) the log also holds the challenger's predictions
of the same rows; :func:`compare_shadow` measures both models on the labelled rows both scored
(:class:`ShadowComparison`), the evidence ``models promote --evidence`` accepts.
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
    """True values keyed by ``(request_id, row)``, as columns (one entry per key).

    A key labelled more than once keeps its latest label (a correction replaces the value).
    """

    request_ids: np.ndarray
    rows: np.ndarray
    values: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @classmethod
    def from_columns(
        cls, request_ids: np.ndarray, rows: np.ndarray, values: np.ndarray, *, source: str
    ) -> Labels:
        """Labels from columns in arrival order; a repeated key keeps its last value."""
        ids = np.asarray(request_ids, dtype=str)
        rows = np.asarray(rows, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if ids.size:
            keys = (_codes(ids) << 32) | rows
            # the last occurrence of each key: unique over the reversed keys
            _, first_from_end = np.unique(keys[::-1], return_index=True)
            keep = np.sort(keys.size - 1 - first_from_end)
            ids, rows, values = ids[keep], rows[keep], values[keep]
        return cls(ids, rows, values, source)


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
    bad = (
        ~np.isfinite(labels)
        | ~np.isfinite(rows)
        | (rows != np.round(rows))
        | (rows < 0)
        | (rows >= 2**31)
    )
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"labels file {path}: line {first + 2} has a row that is not a whole number or a "
            "label that is not a finite number",
            reason="bad_labels",
        )
    ids = frame["request_id"].astype(str).to_numpy(dtype=str)
    return Labels.from_columns(ids, rows.astype(np.int64), labels, source=str(Path(path)))


def read_label_sink(target: str) -> Labels | None:
    """The labels ``POST /feedback`` stored at ``target`` (beside the prediction log).

    Returns
    -------
    Labels or None
        None when the sink does not exist (no label has arrived).

    Raises
    ------
    ConfigError
        The file or table exists but cannot be read.
    """
    from regressops.redact import redact_text
    from regressops.serving.log.labels import labels_kept, read_label_columns

    if not labels_kept(target):
        return None
    cols = read_label_columns(target)
    return Labels.from_columns(cols.request_ids, cols.rows, cols.labels, source=redact_text(target))


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
    labels_source: str | None = None
    shadow: ShadowComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``performance`` part of ``drift.json``."""
        m = self.metrics or {}
        return {
            "status": self.status,
            "rows_labelled": self.rows_labelled,
            "labels_unmatched": self.unmatched,
            "labels_source": self.labels_source,
            **{k: m.get(k) for k in ("r2", "rmse", "mse", "mae")},
            "rmse_increase": self.rmse_increase,
            "reference": self.reference,
            "degraded": self.degraded,
            "shadow": self.shadow.to_dict() if self.shadow else None,
        }


@dataclass(frozen=True)
class Joined:
    """Where each label's row sits in a window's predictions.

    Attributes
    ----------
    at : ndarray of int64
        Per label, the index of its row in the window's predictions; -1 when the window does
        not hold the row.
    """

    at: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        """Per label: does the window hold its row."""
        return self.at >= 0


def locate_labels(labels: Labels, segments: Segments) -> Joined:
    """Find each label's ``(request_id, row)`` among a window's rows (vectorised).

    Parameters
    ----------
    labels : Labels
        The true values.
    segments : Segments
        The window's rows as runs of one request's consecutive rows.

    Returns
    -------
    Joined
        For a row logged more than once (a request id a client reused), the first one logged.
    """
    n = len(labels)
    if n == 0 or segments.rows == 0:
        return Joined(np.full(n, -1, dtype=np.int64))
    codes_all = _codes(np.concatenate([segments.request_ids, labels.request_ids]))
    split = segments.request_ids.size
    seg_codes, label_codes = codes_all[:split], codes_all[split:]
    counts = segments.counts
    # one key per window row: request code in the high bits, the row within the request low
    row_of = np.arange(segments.rows, dtype=np.int64) + np.repeat(
        segments.firsts - segments.offsets, counts
    )
    keys = (np.repeat(seg_codes, counts) << 32) | row_of
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    wanted = (label_codes << 32) | labels.rows
    pos = np.searchsorted(ordered, wanted, side="left")
    inside = pos < ordered.size
    hit = np.zeros(n, dtype=bool)
    hit[inside] = ordered[pos[inside]] == wanted[inside]
    at = np.full(n, -1, dtype=np.int64)
    at[hit] = order[pos[hit]]
    return Joined(at)


@dataclass(frozen=True)
class Segments:
    """A window's rows as runs: ``counts[i]`` rows of request ``request_ids[i]`` starting at
    row ``firsts[i]`` of that request, at ``offsets[i]`` in the window's predictions."""

    request_ids: np.ndarray
    firsts: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray

    @property
    def rows(self) -> int:
        """Rows the runs cover."""
        return int(self.counts.sum()) if self.counts.size else 0

    @classmethod
    def from_runs(cls, runs: list[tuple[str, int, int, int]]) -> Segments:
        """From ``(request_id, first_row, rows, offset)`` tuples."""
        if not runs:
            empty = np.empty(0, dtype=np.int64)
            return cls(np.empty(0, dtype=str), empty, empty, empty)
        ids, firsts, counts, offsets = zip(*runs, strict=True)
        return cls(
            np.asarray(ids, dtype=str),
            np.asarray(firsts, dtype=np.int64),
            np.asarray(counts, dtype=np.int64),
            np.asarray(offsets, dtype=np.int64),
        )


def join_labels(
    labels: Labels, *, segments: Segments, predictions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Join labels to a window's predictions on ``(request_id, row)``.

    Returns
    -------
    y_true, y_pred : ndarray
        The joined rows (in the labels' order).
    unmatched : int
        Labels of rows the window does not hold.
    """
    joined = locate_labels(labels, segments)
    hit = joined.matched
    return labels.values[hit], predictions[joined.at[hit]], int((~hit).sum())


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


@dataclass(frozen=True)
class ShadowComparison:
    """The champion and the challenger in shadow on the same labelled rows.

    Attributes
    ----------
    model_name, model_version : str
        The challenger.
    champion_version : str
        The champion it is compared with.
    rows_labelled : int
        Labelled rows both models scored (the comparison's rows).
    labelled_without_shadow : int
        Labelled champion rows the challenger did not score (dropped, failed, or before it ran).
    metrics, champion : dict or None
        R², RMSE, MSE and MAE of the challenger and of the champion on those rows.
    min_labelled_rows : int
        The rows needed before the comparison is a verdict.
    """

    model_name: str
    model_version: str
    champion_version: str
    rows_labelled: int
    labelled_without_shadow: int
    metrics: dict[str, float] | None
    champion: dict[str, float] | None
    min_labelled_rows: int

    @property
    def rmse_change(self) -> float | None:
        """Challenger RMSE over champion RMSE, minus one (negative: the challenger is better)."""
        if not self.metrics or not self.champion or not self.champion["rmse"]:
            return None
        return self.metrics["rmse"] / self.champion["rmse"] - 1.0

    @property
    def better(self) -> bool:
        """A lower RMSE than the champion's on at least ``min_labelled_rows`` rows."""
        return bool(
            self.rows_labelled >= self.min_labelled_rows
            and self.metrics is not None
            and self.champion is not None
            and self.metrics["rmse"] < self.champion["rmse"]
        )

    @property
    def status(self) -> str:
        """``not_enough_data``, ``better`` or ``not_better``."""
        if self.rows_labelled < self.min_labelled_rows:
            return "not_enough_data"
        return "better" if self.better else "not_better"

    def to_dict(self) -> dict[str, Any]:
        """The ``performance.shadow`` part of ``drift.json``."""
        m = self.metrics or {}
        return {
            "status": self.status,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "rows_labelled": self.rows_labelled,
            "labelled_without_shadow": self.labelled_without_shadow,
            **{k: m.get(k) for k in ("r2", "rmse", "mse", "mae")},
            "champion": {
                "model_version": self.champion_version,
                **{k: (self.champion or {}).get(k) for k in ("r2", "rmse", "mse", "mae")},
            },
            "rmse_change": self.rmse_change,
            "min_labelled_rows": self.min_labelled_rows,
            "better_than_champion": self.better,
        }


def compare_shadow(
    labels: Labels,
    *,
    champion: tuple[Segments, np.ndarray],
    shadow: tuple[Segments, np.ndarray],
    identity: tuple[str, str, str],
    settings: MonitorSettings,
) -> ShadowComparison:
    """Both models' metrics on the labelled rows both of them scored.

    Parameters
    ----------
    labels : Labels
        The true values.
    champion, shadow : (Segments, ndarray)
        Each model's logged rows and predictions.
    identity : (str, str, str)
        The challenger's name and version, and the champion's version.
    settings : MonitorSettings
        ``min_labelled_rows``.
    """
    at_champion = locate_labels(labels, champion[0]).at
    at_shadow = locate_labels(labels, shadow[0]).at
    both = (at_champion >= 0) & (at_shadow >= 0)
    return measure_shadow(
        labels.values[both],
        champion[1][at_champion[both]],
        shadow[1][at_shadow[both]],
        identity=identity,
        settings=settings,
        without=int(((at_champion >= 0) & (at_shadow < 0)).sum()),
    )


def measure_shadow(
    y_true: np.ndarray,
    champion: np.ndarray,
    shadow: np.ndarray,
    *,
    identity: tuple[str, str, str],
    settings: MonitorSettings,
    without: int = 0,
) -> ShadowComparison:
    """Both models' metrics on the same labelled rows (``y_true`` and each one's predictions).

    ``without`` counts labelled champion rows the challenger did not score (reported).
    """
    k = int(y_true.size)
    mine = theirs = None
    if k:
        from regressops.training.metrics import regression_metrics

        mine = regression_metrics(y_true, shadow)
        theirs = regression_metrics(y_true, champion)
    return ShadowComparison(
        model_name=identity[0],
        model_version=identity[1],
        champion_version=identity[2],
        rows_labelled=k,
        labelled_without_shadow=without,
        metrics=mine,
        champion=theirs,
        min_labelled_rows=settings.min_labelled_rows,
    )


def _codes(ids: np.ndarray) -> np.ndarray:
    """An integer per distinct string (a hash table in C: pandas' factorize)."""
    import pandas as pd

    return np.asarray(pd.factorize(ids)[0], dtype=np.int64)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
