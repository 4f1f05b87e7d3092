"""The prediction log: every predicted row, written off the event loop, nothing lost on shutdown.

A request hands one :class:`LogBatch` (references to its arrays, no copying or formatting) to
:meth:`PredictionLogger.log`, which only appends it to a queue. A writer thread formats and
writes the queued batches every ``flush_interval`` seconds. :meth:`PredictionLogger.close`,
called when the app shuts down (uvicorn's graceful SIGTERM handling runs it after the last
in-flight request), drains the queue before it returns.

Sinks:

- :class:`JsonLinesSink` (default, ``<home>/predictions.jsonl``): one JSON object per row,
  appended with ``O_APPEND`` in one ``write`` per flush, so several workers can share the file;
- :class:`SqlSink` (any SQLAlchemy URL): one table row per prediction in ``prediction_log``,
  inserted with bound parameters.

Each row holds ``ts`` (ISO-8601 UTC), ``request_id``, ``endpoint``, ``model_name``,
``model_version``, ``row`` (its index in the request), ``features`` (an object of feature
values), ``prediction`` and ``latency_ms`` (of the whole request).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from regressops.errors import ConfigError

logger = logging.getLogger(__name__)

TABLE_NAME = "prediction_log"
_SQL_URL = re.compile(r"^[a-z][a-z0-9+]*://")
_OFF = frozenset({"off", "none", "false", "0", ""})
RETRY_SECONDS = 1.0
_PACE_ROWS = 256  # the writer thread releases the GIL at least this often
_CHUNK_ROWS = 20_000  # rows formatted before they are written out
_TEMPLATE_MIN_ROWS = 8  # below this, building the byte template costs more than it saves
_RETRY: Any = object()


@dataclass(frozen=True)
class LogBatch:
    """The rows one request predicted, as handed to the logger (cheap to create)."""

    ts: float
    request_id: str
    endpoint: str
    model_name: str
    model_version: str
    names: list[str]
    features: np.ndarray | dict[str, Any]
    predictions: np.ndarray
    latency_ms: float

    def __len__(self) -> int:
        return int(self.predictions.shape[0])

    def rows(self) -> Iterator[dict[str, Any]]:
        """Yield one log record per predicted row."""
        if isinstance(self.features, np.ndarray):
            values: Any = self.features.tolist()
        else:
            values = zip(*(_tolist(self.features[n]) for n in self.names), strict=True)
        names = self.names
        ts, rid, endpoint = _iso(self.ts), self.request_id, self.endpoint
        name, version, latency = self.model_name, self.model_version, round(self.latency_ms, 3)
        for i, (vals, pred) in enumerate(zip(values, self.predictions.tolist(), strict=True)):
            yield {
                "ts": ts,
                "request_id": rid,
                "endpoint": endpoint,
                "model_name": name,
                "model_version": version,
                "row": i,
                "features": dict(zip(names, vals, strict=True)),
                "prediction": pred,
                "latency_ms": latency,
            }

    def json_lines(self) -> list[bytes]:
        """The rows as JSON lines (the same objects as :meth:`rows`, formatted faster).

        A float feature matrix is serialised by orjson in one call and each row is spliced
        into a per-batch byte template; other inputs go through :meth:`rows`.
        """
        if (
            len(self) < _TEMPLATE_MIN_ROWS
            or not isinstance(self.features, np.ndarray)
            or self.features.dtype.kind != "f"
        ):
            return [orjson.dumps(r) for r in self.rows()]
        head = orjson.dumps(
            {
                "ts": _iso(self.ts),
                "request_id": self.request_id,
                "endpoint": self.endpoint,
                "model_name": self.model_name,
                "model_version": self.model_version,
            }
        )[:-1].replace(b"%", b"%%")
        keys = b",".join(orjson.dumps(n).replace(b"%", b"%%") + b":%s" for n in self.names)
        latency = orjson.dumps(round(self.latency_ms, 3))
        template = (
            head + b',"row":%d,"features":{' + keys + b'},"prediction":%s,"latency_ms":'
            + latency + b"}"
        )  # fmt: skip
        matrix = orjson.dumps(self.features, option=orjson.OPT_SERIALIZE_NUMPY)
        rows = matrix[2:-2].split(b"],[")
        preds = orjson.dumps(self.predictions, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
        return [
            template % (i, *row.split(b","), pred)
            for i, (row, pred) in enumerate(zip(rows, preds, strict=True))
        ]


_iso_cache: tuple[int, str] = (-1, "")


def _iso(ts: float) -> str:
    """ISO-8601 UTC with microseconds; the per-second prefix is cached (a 10x saving)."""
    global _iso_cache
    second = int(ts)
    if _iso_cache[0] != second:
        _iso_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_iso_cache[1]}.{int((ts - second) * 1e6):06d}+00:00"


def _paced_rows(batches: list[LogBatch], every: int = _PACE_ROWS) -> Iterator[dict[str, Any]]:
    """All rows of ``batches``, pausing every ``every`` rows so the event loop gets the GIL.

    Formatting runs in the writer thread; without the pauses it would hold the GIL for up to
    the interpreter's switch interval (5 ms) at a time and show up in request tail latency.
    """
    n = 0
    for batch in batches:
        for row in batch.rows():
            yield row
            n += 1
            if n % every == 0:
                time.sleep(0)


def _tolist(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


class PredictionSink(Protocol):
    """Where the writer thread puts rows."""

    def write(self, batches: list[LogBatch]) -> int:
        """Write the batches' rows; return how many rows were written."""
        ...

    def close(self) -> None:
        """Release the sink's resources."""
        ...


class JsonLinesSink:
    """Append rows as JSON lines to ``path`` (created with its folder)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise ConfigError(
                f"cannot open prediction log {self.path}: {exc.strerror}", reason="prediction_log"
            ) from None

    def write(self, batches: list[LogBatch]) -> int:
        """Append every row of ``batches`` with a single ``write`` call."""
        written = paused_at = 0
        lines: list[bytes] = []
        for batch in batches:
            lines.extend(batch.json_lines())
            if len(lines) - paused_at >= _PACE_ROWS:  # let the event loop have the GIL
                time.sleep(0)
                paused_at = len(lines)
            if len(lines) >= _CHUNK_ROWS:  # bounded memory: write as we go
                written += self._append(lines)
                lines, paused_at = [], 0
        return written + self._append(lines)

    def _append(self, lines: list[bytes]) -> int:
        if lines:
            view = memoryview(b"\n".join(lines) + b"\n")
            while view:
                view = view[os.write(self._fd, view) :]
        return len(lines)

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


class SqlSink:
    """Insert rows into a table (default ``prediction_log``, created if absent) of a database."""

    def __init__(self, url: str, *, table: str = TABLE_NAME) -> None:
        import sqlalchemy as sa

        self._sa = sa
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # invalid URL or missing driver
            raise ConfigError(
                f"invalid prediction log URL: {exc}", reason="prediction_log"
            ) from None
        meta = sa.MetaData()
        self.table = sa.Table(
            table,
            meta,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
            sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
            sa.Column("request_id", sa.String(128), nullable=False),
            sa.Column("endpoint", sa.String(64), nullable=False),
            sa.Column("model_name", sa.String(200), nullable=False),
            sa.Column("model_version", sa.String(64), nullable=False),
            sa.Column("row", sa.Integer, nullable=False),
            sa.Column("features", sa.JSON, nullable=False),
            sa.Column("prediction", sa.Float, nullable=False),
            sa.Column("latency_ms", sa.Float, nullable=False),
        )
        try:
            meta.create_all(self.engine, checkfirst=True)
        except sa.exc.IntegrityError:
            pass  # another worker created it at the same moment
        except sa.exc.SQLAlchemyError as exc:
            if not sa.inspect(self.engine).has_table(table):
                raise ConfigError(
                    f"cannot create prediction log table {table!r}: {exc.__class__.__name__}",
                    reason="prediction_log",
                ) from None

    def write(self, batches: list[LogBatch]) -> int:
        """Insert every row of ``batches`` in one transaction."""
        rows = []
        for r in _paced_rows(batches):
            r["ts"] = datetime.fromisoformat(r["ts"])
            rows.append(r)
        if rows:
            with self.engine.begin() as conn:
                for start in range(0, len(rows), 10_000):
                    conn.execute(self.table.insert(), rows[start : start + 10_000])
        return len(rows)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()


def open_sink(target: str | None, home: Path) -> PredictionSink | None:
    """Build the sink ``target`` names: None → ``<home>/predictions.jsonl``; ``"off"`` → no log.

    Raises
    ------
    ConfigError
        The file cannot be opened or the database URL is invalid or unreachable.
    """
    if target is None:
        return JsonLinesSink(home / "predictions.jsonl")
    if target.strip().lower() in _OFF:
        return None
    if _SQL_URL.match(target):
        return SqlSink(target)
    return JsonLinesSink(target)


class PredictionLogger:
    """Buffer :class:`LogBatch` objects and write them from a background thread.

    Parameters
    ----------
    sink : PredictionSink
        Where rows go.
    flush_interval : float, default=0.25
        Seconds between writes while requests keep coming.
    """

    def __init__(self, sink: PredictionSink, *, flush_interval: float = 0.25) -> None:
        self.sink = sink
        self.flush_interval = flush_interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._failed: list[LogBatch] = []
        self.rows_written = 0
        self.pending_rows = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._closed = False

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def log(self, batch: LogBatch) -> None:
        """Queue one request's rows (O(1), safe to call on the event loop)."""
        self.pending_rows += len(batch)
        self._queue.put(batch)

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every batch queued so far is handed to the sink; False if not all written."""
        if self._thread.is_alive():
            done = threading.Event()
            self._queue.put(done)
            if not done.wait(timeout):
                return False
        return not self._failed

    def close(self, timeout: float = 60.0) -> None:
        """Write everything still queued, stop the thread and close the sink."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        if self._failed:
            logger.error(
                "prediction log: %d rows could not be written to the sink",
                sum(len(b) for b in self._failed),
            )
        self.sink.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            batches: list[LogBatch] = []
            waiters: list[threading.Event] = []
            try:  # while rows wait for a failed sink, wake up to retry
                item = self._queue.get(timeout=RETRY_SECONDS if self._failed else None)
            except queue.Empty:
                item = _RETRY
            deadline = time.monotonic() + self.flush_interval
            while True:
                if item is _RETRY:
                    break
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batches.append(item)
                if stop or waiters:
                    # drain what is already queued, without waiting further
                    try:
                        while True:
                            item = self._queue.get_nowait()
                            if item is None:
                                stop = True
                            elif isinstance(item, threading.Event):
                                waiters.append(item)
                            else:
                                batches.append(item)
                    except queue.Empty:
                        break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            self._write(batches)
            if stop:
                for delay in (0.1, 0.5, 2.0):  # last chances before giving up on the sink
                    if not self._failed:
                        break
                    time.sleep(delay)
                    self._write([])
            for w in waiters:
                w.set()

    def _write(self, batches: list[LogBatch]) -> None:
        batches = self._failed + batches
        if not batches:
            return
        try:
            n = self.sink.write(batches)
        except Exception as exc:
            self._failed = batches
            logger.warning("prediction log write failed (%s); will retry", exc.__class__.__name__)
            return
        self._failed = []
        self.rows_written += n
        self.pending_rows -= n
