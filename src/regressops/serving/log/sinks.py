"""Where the prediction log's rows go: a JSON-lines file or a SQL table.

- :class:`JsonLinesSink` (default, ``<home>/predictions.jsonl``): the lines of
  :meth:`~regressops.serving.log.batch.LogBatch.json_lines`, appended with ``O_APPEND`` in one
  ``writev`` per 8 MB, so several workers (and the writer process) can share the file;
- :class:`SqlSink` (any SQLAlchemy URL): one table row per prediction in ``prediction_log``,
  inserted with bound parameters.

A sink that fails part-way raises :class:`PartialWriteError` listing the batches it did not
write, so the logger retries exactly those.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from regressops.errors import ConfigError
from regressops.serving.log.batch import LogBatch

logger = logging.getLogger(__name__)

TABLE_NAME = "prediction_log"
DEFAULT_FILE = "predictions.jsonl"  # under the home folder
_SQL_URL = re.compile(r"^[a-z][a-z0-9+]*://")
_OFF = frozenset({"off", "none", "false", "0", ""})
_GIL_SLICE = 0.0001  # seconds of formatting between two GIL releases of the writer thread
_IOV_MAX = 1024  # buffers per writev call (Linux's limit)
_WRITE_BYTES = 8 << 20  # formatted bytes gathered before they are written out


class _GilPacer:
    """Release the GIL every ``_GIL_SLICE`` seconds of work done in the writer thread.

    Formatting runs in the writer thread; without the pauses it would hold the GIL for up to
    the interpreter's switch interval (5 ms) at a time and show up in request tail latency.
    """

    def __init__(self) -> None:
        self.due = time.perf_counter() + _GIL_SLICE

    def __call__(self) -> None:
        if time.perf_counter() >= self.due:
            time.sleep(0)
            self.due = time.perf_counter() + _GIL_SLICE


def _paced_rows(batches: list[LogBatch]) -> Iterator[dict[str, Any]]:
    """All rows of ``batches``, releasing the GIL regularly."""
    pace = _GilPacer()
    for batch in batches:
        for row in batch.rows():
            yield row
            pace()


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
        pace = _GilPacer()
        lines: list[bytes] = []
        try:
            for i, batch in enumerate(batches):
                for line in batch.json_lines():
                    lines.append(line)
                    size += len(line)
                rows += len(batch)
                pace()
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


def resolve_log_target(target: str | None, home: Path) -> str | None:
    """The file or URL ``--prediction-log target`` names: None → ``<home>/predictions.jsonl``;
    ``"off"`` → ``None``."""
    if target is None:
        return str(home / DEFAULT_FILE)
    return None if is_off(target) else target


def open_thread_sink(target: str | None, home: Path) -> PredictionSink | None:
    """Build the sink ``target`` names (see :func:`resolve_log_target`); ``None`` when off.

    Raises
    ------
    ConfigError
        The file cannot be opened or the database URL is invalid or unreachable.
    """
    where = resolve_log_target(target, home)
    if where is None:
        return None
    return SqlSink(where) if is_sql_url(where) else JsonLinesSink(where)
