"""One request's predictions as the prediction log receives them, and their JSON lines.

:class:`LogBatch` holds references to a request's arrays (cheap to create on the request path);
:meth:`LogBatch.json_lines` formats it — one line per request (per slice of at most
:data:`LINE_ROWS` rows), column by column, a handful of orjson calls and never a Python loop
over rows; :meth:`LogBatch.rows` gives the per-row records the log reads back as.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

SHADOW_PREFIX = "shadow:"  # the endpoint of rows a challenger in shadow scored: shadow:/batch
LINE_ROWS = 2_048  # rows per JSON line: bounds how long one orjson call holds the GIL (~0.4 ms)
_NUMPY_MIN_ROWS = 64  # below this, Python lists serialise faster than numpy arrays


@dataclass(slots=True)  # not frozen: a frozen dataclass takes 3x longer to create
class LogBatch:
    """The rows one request predicted, as handed to the logger (cheap to create).

    A batch can also hold the rows of several requests (the shadow model logs what it scored
    together as one batch): then ``request_ids[i]`` and ``request_rows[i]`` name the request
    and the row within it of row ``i``, and ``request_id`` is the first of them.
    """

    ts: float
    request_id: str
    endpoint: str
    model_name: str
    model_version: str
    names: list[str]
    features: np.ndarray | dict[str, Any]
    predictions: np.ndarray
    latency_ms: float
    first_row: int = 0  # rows before it are already in the log (a write resumed mid-request)
    request_ids: list[str] | None = None
    request_rows: list[int] | None = None
    imputed: int = 0  # missing values replaced by their learned impute value

    def __len__(self) -> int:
        """Rows still to be logged (from ``first_row`` on)."""
        return int(self.predictions.shape[0]) - self.first_row

    def rows(self) -> Iterator[dict[str, Any]]:
        """Yield one log record per predicted row."""
        if isinstance(self.features, np.ndarray):
            values: Any = self.features.tolist()
        else:
            values = zip(*(_tolist(self.features[n]) for n in self.names), strict=True)
        names = self.names
        ts, rid, endpoint = _iso(self.ts), self.request_id, self.endpoint
        name, version, latency = self.model_name, self.model_version, round(self.latency_ms, 3)
        ids, rows = self.request_ids, self.request_rows
        for i, (vals, pred) in enumerate(zip(values, self.predictions.tolist(), strict=True)):
            if i < self.first_row:
                continue
            yield {
                "ts": ts,
                "request_id": rid if ids is None else ids[i],
                "endpoint": endpoint,
                "model_name": name,
                "model_version": version,
                "row": i if rows is None else rows[i],
                "features": dict(zip(names, vals, strict=True)),
                "prediction": pred,
                "latency_ms": latency,
            }

    def json_lines(self, line_rows: int = LINE_ROWS) -> list[bytes]:
        """The rows as JSON lines: one per slice of at most ``line_rows`` rows.

        Each line is ``{"ts", "request_id", "endpoint", "model_name", "model_version",
        "latency_ms", "first_row", "rows", "features": {name: [values]}, "predictions":
        [values]}``, where ``first_row`` is the index of the slice's first row in its request.
        A batch whose ``first_row`` is set (a write that stopped after some of its lines) starts
        at that row, which is always the start of a line.
        A batch of several requests adds ``"request_ids"`` and ``"request_rows"`` (one entry per
        row). ``"imputed": n`` is added when the request had ``n`` missing values imputed
        (the features are logged as the model saw them). Numeric columns are serialised by
        orjson straight from numpy.
        """
        n = int(self.predictions.shape[0])
        head = {
            "ts": _iso(self.ts),
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.imputed:
            head["imputed"] = self.imputed
        feats = self.features
        if (
            self.first_row == 0
            and self.request_ids is None
            and n <= min(line_rows, _NUMPY_MIN_ROWS)
            and isinstance(feats, np.ndarray)
            and feats.dtype.kind in "fiu"
        ):  # the common single-record request: one dict, one orjson call
            head["first_row"], head["rows"] = 0, n
            head["features"] = dict(zip(self.names, feats.T.tolist(), strict=True))
            head["predictions"] = self.predictions.tolist()
            return [orjson.dumps(head)]
        matrix = self.features if isinstance(self.features, np.ndarray) else None
        if matrix is not None and matrix.dtype.kind not in "fiu":
            matrix = None
        lines = []
        for start in range(self.first_row, max(n, 1), line_rows):
            stop = min(n, start + line_rows)
            preds: Any = self.predictions[start:stop]
            if matrix is not None and stop - start >= _NUMPY_MIN_ROWS:
                cols = np.ascontiguousarray(matrix[start:stop].T)
                features: dict[str, Any] = dict(zip(self.names, cols, strict=True))
                preds = np.ascontiguousarray(preds)
            elif isinstance(self.features, np.ndarray):
                cells = self.features[start:stop].T.tolist()
                features = dict(zip(self.names, cells, strict=True))
                preds = preds.tolist()
            else:
                features = {k: _column(self.features[k], start, stop) for k in self.names}
                preds = preds.tolist()
            doc = {**head, "first_row": start, "rows": stop - start}
            doc["features"] = features
            doc["predictions"] = preds
            if self.request_ids is not None and self.request_rows is not None:
                doc["request_id"] = self.request_ids[start] if n else self.request_id
                doc["request_ids"] = self.request_ids[start:stop]
                doc["request_rows"] = self.request_rows[start:stop]
            lines.append(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
        return lines


def _column(values: Any, start: int, stop: int) -> Any:
    """A slice of one feature column, in a form orjson serialises."""
    if isinstance(values, np.ndarray):
        part = values[start:stop]
        return np.ascontiguousarray(part) if part.dtype.kind in "fiub" else part.tolist()
    return list(values[start:stop])


_iso_cache: tuple[int, str] = (-1, "")


def _iso(ts: float) -> str:
    """ISO-8601 UTC with microseconds; the per-second prefix is cached (a 10x saving)."""
    global _iso_cache
    second = int(ts)
    if _iso_cache[0] != second:
        _iso_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_iso_cache[1]}.{int((ts - second) * 1e6):06d}+00:00"


def _tolist(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
