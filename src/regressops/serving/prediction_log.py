"""The prediction log: every predicted row, written off the event loop, nothing lost on shutdown.

A request hands one :class:`LogBatch` (references to its arrays, no copying or formatting) to
:meth:`PredictionLogger.log`, which appends it to a queue without waking any thread. A writer
thread wakes every ``flush_interval`` seconds, formats what has queued and hands it to the sink.
:meth:`PredictionLogger.close`, called when the app shuts down (uvicorn's graceful SIGTERM
handling runs it after the last in-flight request), drains the queue before it returns. When
the sink falls behind by more than ``max_pending_rows``, :meth:`PredictionLogger.wait_for_room`
holds the requests that add more (backpressure instead of unbounded memory or lost rows).

Sinks:

- :class:`JsonLinesSink` (default, ``<home>/predictions.jsonl``): one JSON object per request
  (per slice of at most ``LINE_ROWS`` rows of a larger one) holding its rows column by column,
  appended with ``O_APPEND`` in one ``write`` per flush, so several workers can share the file.
  Formatting is a handful of orjson calls per line, never a Python loop over rows.
  :func:`regressops.serving.log_reader.iter_log_rows` turns lines back into one record per row;
- :class:`SqlSink` (any SQLAlchemy URL): one table row per prediction in ``prediction_log``,
  inserted with bound parameters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections import deque
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
LINE_ROWS = 2_048  # rows per JSON line: bounds how long one orjson call holds the GIL (~0.4 ms)
MAX_PENDING_ROWS = 1_000_000  # rows queued beyond this hold new requests until the sink catches up
_NUMPY_MIN_ROWS = 64  # below this, Python lists serialise faster than numpy arrays
_PACE_ROWS = 256  # the writer thread releases the GIL at least this often (SQL rows)
_GIL_SLICE = 0.0001  # seconds of formatting between two GIL releases of the writer thread
_RELEASE_STEP = 512  # written batches freed between GIL releases
_IOV_MAX = 1024  # buffers per writev call (Linux's limit)
_WRITE_BYTES = 8 << 20  # formatted bytes gathered before they are written out


@dataclass(slots=True)  # not frozen: a frozen dataclass takes 3x longer to create
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

    def json_lines(self, line_rows: int = LINE_ROWS) -> list[bytes]:
        """The rows as JSON lines: one per slice of at most ``line_rows`` rows.

        Each line is ``{"ts", "request_id", "endpoint", "model_name", "model_version",
        "latency_ms", "first_row", "rows", "features": {name: [values]}, "predictions":
        [values]}``, where ``first_row`` is the index of the slice's first row in its request.
        Numeric columns are serialised by orjson straight from numpy.
        """
        n = len(self)
        feats = self.features
        if (
            n <= min(line_rows, _NUMPY_MIN_ROWS)
            and isinstance(feats, np.ndarray)
            and feats.dtype.kind in "fiu"
        ):
            # the common single-record request: one dict, one orjson call
            return [
                orjson.dumps(
                    {
                        "ts": _iso(self.ts),
                        "request_id": self.request_id,
                        "endpoint": self.endpoint,
                        "model_name": self.model_name,
                        "model_version": self.model_version,
                        "latency_ms": round(self.latency_ms, 3),
                        "first_row": 0,
                        "rows": n,
                        "features": dict(zip(self.names, feats.T.tolist(), strict=True)),
                        "predictions": self.predictions.tolist(),
                    }
                )
            ]
        head = {
            "ts": _iso(self.ts),
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "latency_ms": round(self.latency_ms, 3),
        }
        matrix = self.features if isinstance(self.features, np.ndarray) else None
        if matrix is not None and matrix.dtype.kind not in "fiu":
            matrix = None
        lines = []
        for start in range(0, max(n, 1), line_rows):
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


def writev_all(fd: int, buffers: list[Any]) -> None:
    """Write every buffer to ``fd`` in order with ``writev``, resuming after short writes."""
    while buffers:
        head = buffers[:_IOV_MAX]
        written = os.writev(fd, head)
        # a short write (a signal, a full disk, a full pipe) resumes after the last byte written
        for i, buf in enumerate(head):
            size = memoryview(buf).nbytes
            if written < size:
                buffers = [memoryview(buf)[written:], *buffers[i + 1 :]]
                break
            written -= size
        else:
            buffers = buffers[len(head) :]


def is_sql_url(target: str | None) -> bool:
    """True when ``target`` is a SQLAlchemy URL (the log goes to a table)."""
    return target is not None and _SQL_URL.match(target) is not None


def is_off(target: str | None) -> bool:
    """True when ``target`` turns the prediction log off."""
    return target is not None and target.strip().lower() in _OFF


class PartialWriteError(Exception):
    """A sink wrote some of the batches it was given; ``remaining`` were not written.

    Parameters
    ----------
    remaining : list of LogBatch
        The batches not written (in order); the others were written in full.
    cause : BaseException
        What went wrong.
    """

    def __init__(self, remaining: list[LogBatch], cause: BaseException) -> None:
        super().__init__(
            f"{len(remaining)} batches not written: {cause.__class__.__name__}: {cause}"
        )
        self.remaining = remaining
        self.cause = cause


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
        """Append every row of ``batches``: one ``write`` call per 8 MB of lines.

        Raises
        ------
        PartialWriteError
            Writing failed after the first batches were appended in full.
        """
        done = rows = size = 0
        pause_at = time.perf_counter() + _GIL_SLICE
        lines: list[bytes] = []
        try:
            for i, batch in enumerate(batches):
                for line in batch.json_lines():
                    lines.append(line)
                    size += len(line)
                rows += len(batch)
                if time.perf_counter() >= pause_at:  # let the event loop have the GIL
                    time.sleep(0)
                    pause_at = time.perf_counter() + _GIL_SLICE
                if size >= _WRITE_BYTES:  # bounded memory: write as we go
                    self._append(lines)
                    done, lines, size = i + 1, [], 0
            self._append(lines)
        except OSError as exc:
            raise PartialWriteError(batches[done:], exc) from exc
        return rows

    def _append(self, lines: list[bytes]) -> None:
        """Write ``lines`` with ``writev`` (no joined copy; the GIL is released meanwhile)."""
        buffers: list[bytes] = []
        for line in lines:
            buffers += (line, b"\n")
        writev_all(self._fd, buffers)

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
    if is_off(target):
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
    max_pending_rows : int, default=1,000,000
        Queued rows beyond which :attr:`backlogged` turns true.
    """

    def __init__(
        self,
        sink: PredictionSink,
        *,
        flush_interval: float = 0.25,
        max_pending_rows: int = MAX_PENDING_ROWS,
    ) -> None:
        self.sink = sink
        self.flush_interval = flush_interval
        self.max_pending_rows = max_pending_rows
        self.rows_written = 0
        self._queued_rows = 0
        self._count_lock = threading.Lock()
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._failed: list[LogBatch] = []
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._closed = False

    @property
    def pending_rows(self) -> int:
        """Rows logged but not yet written."""
        return self._queued_rows - self.rows_written

    @property
    def backlogged(self) -> bool:
        """True while more than ``max_pending_rows`` rows wait for the sink."""
        return self._queued_rows - self.rows_written > self.max_pending_rows

    @property
    def failing(self) -> bool:
        """True while the sink refuses writes (rows wait for a retry)."""
        return bool(self._failed)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def log(self, batch: LogBatch) -> None:
        """Queue one request's rows (O(1), safe to call on the event loop; wakes no thread)."""
        with self._count_lock:
            self._queued_rows += len(batch)
        self._queue.append(batch)

    async def wait_for_room(self, timeout: float = 30.0) -> bool:
        """Wait until the backlog is under ``max_pending_rows``; False on timeout or failing sink.

        The writer is woken at once; a sink that is failing will not catch up, so this returns
        False straight away rather than holding the request.
        """
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.backlogged:
            if self._failed or not self._thread.is_alive() or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every batch queued so far is handed to the sink; False if not all written."""
        if self._thread.is_alive():
            done = threading.Event()
            self._queue.append(done)
            self._wake.set()
            if not done.wait(timeout):
                return False
        return not self._failed

    def close(self, timeout: float = 60.0) -> None:
        """Write everything still queued, stop the thread and close the sink."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.append(None)
            self._wake.set()
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
            # Requests never wake this thread: it sleeps a whole interval (or until a flush,
            # close or backlog asks), then takes everything queued at once.
            self._wake.wait(RETRY_SECONDS if self._failed else self.flush_interval)
            self._wake.clear()
            batches: list[LogBatch] = []
            waiters: list[threading.Event] = []
            queue = self._queue
            while queue:
                item = queue.popleft()
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batches.append(item)
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
        """Hand ``batches`` (after any earlier failed ones) to the sink; empties the list."""
        batches[:0] = self._failed
        if not batches:
            return
        try:
            n = self.sink.write(batches)
        except PartialWriteError as exc:
            self._failed = list(exc.remaining)
            self.rows_written += sum(len(b) for b in batches) - sum(len(b) for b in self._failed)
            logger.warning(
                "prediction log write failed (%s); will retry", exc.cause.__class__.__name__
            )
            return
        except Exception as exc:
            self._failed = batches
            logger.warning("prediction log write failed (%s); will retry", exc.__class__.__name__)
            return
        self._failed = []
        self.rows_written += n
        # Freeing thousands of requests' arrays at once would hold the GIL for milliseconds.
        while batches:
            del batches[-_RELEASE_STEP:]
            time.sleep(0)
