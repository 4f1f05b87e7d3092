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
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from regressops.errors import ConfigError
from regressops.serving.log import segments
from regressops.serving.log.batch import LINE_ROWS, LogBatch
from regressops.serving.log.segments import Rotation

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


class ShortWriteError(OSError):
    """``writev_all`` failed after writing ``written`` bytes of its buffers (then ``errno``)."""

    def __init__(self, cause: OSError, written: int) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.written = written


def writev_all(fd: int, buffers: list[Any]) -> None:
    """Write every buffer to ``fd`` in order with ``writev``, resuming after short writes.

    Raises
    ------
    ShortWriteError
        A write failed (e.g. a full disk); ``written`` says how many bytes went out before.
    """
    total = 0
    while buffers:
        head = buffers[:_IOV_MAX]
        try:
            written = os.writev(fd, head)
        except OSError as exc:
            raise ShortWriteError(exc, total) from exc
        total += written
        # a short write (a signal, a full disk, a full pipe) resumes after the last byte written
        for i, buf in enumerate(head):
            size = memoryview(buf).nbytes
            if written < size:
                buffers = [memoryview(buf)[written:], *buffers[i + 1 :]]
                break
            written -= size
        else:
            buffers = buffers[len(head) :]


def _from(batches: list[LogBatch], owners: list[tuple[int, int]], line: int) -> list[LogBatch]:
    """The batches still to write when ``line`` (an index into ``owners``) is the first line
    not written in full: its batch resumes at that line's first row."""
    if line >= len(owners):
        return batches[owners[-1][0] + 1 :] if owners else list(batches)
    index, first_row = owners[line]
    return [replace(batches[index], first_row=first_row), *batches[index + 1 :]]


def _ends_torn(fd: int) -> bool:
    """True when the file's last byte is not a newline (a writer stopped mid-line)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


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
    """Append rows as JSON lines to ``path`` (created with its folder).

    Parameters
    ----------
    path : path-like
        The current segment of the log.
    rotation : Rotation, optional
        When to start a new segment and which old ones to remove (see
        :mod:`~regressops.serving.log.segments`); ``None``: one file that grows.
    """

    def __init__(self, path: str | os.PathLike[str], rotation: Rotation | None = None) -> None:
        self.path = Path(path)
        self.rotation = rotation
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as exc:
            raise ConfigError(
                f"cannot open prediction log {self.path}: {exc.strerror}", reason="prediction_log"
            ) from None

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        self._torn = _ends_torn(self._fd)

    def _next_segment(self) -> None:
        """Move to a new segment when due, or when another writer rotated the file."""
        if self.rotation is None:
            return
        if segments.rotation_due(self._fd, self.rotation):
            segments.rotate(self._fd, self.path, self.rotation)
        if segments.replaced(self._fd, self.path):
            torn = self._torn
            os.close(self._fd)
            self._open()
            if torn:  # the torn line is written again, whole, in the new segment
                logger.info("prediction log: a torn line stays at the end of the old segment")

    def write(self, batches: list[LogBatch]) -> int:
        """Append every row of ``batches``: one ``write`` call per 8 MB of lines.

        A write that fails part-way (a full disk) leaves whole lines and at most one torn line
        at the end of the file; the next write first ends that line (the reader skips the
        fragment) and then writes the torn line again in full, so every row is in the file in
        exactly one whole line.

        Raises
        ------
        PartialWriteError
            Writing failed; ``remaining`` starts at the first line not written in full.
        """
        rows = size = 0
        pace = _GilPacer()
        lines: list[bytes] = []
        owners: list[tuple[int, int]] = []  # (batch index, first row of the line) per line
        for i, batch in enumerate(batches):
            start = batch.first_row
            for line in batch.json_lines():
                lines.append(line)
                owners.append((i, start))
                start += LINE_ROWS
                size += len(line)
            rows += len(batch)
            pace()
            if size >= _WRITE_BYTES:  # bounded memory: write as we go
                self._append(lines, owners, batches)
                lines, owners, size = [], [], 0
        self._append(lines, owners, batches)
        return rows

    def _append(
        self, lines: list[bytes], owners: list[tuple[int, int]], batches: list[LogBatch]
    ) -> None:
        """Write ``lines`` with ``writev`` (no joined copy; the GIL is released meanwhile)."""
        self._next_segment()
        buffers: list[bytes] = [b"\n"] if self._torn else []
        for line in lines:
            buffers += (line, b"\n")
        try:
            writev_all(self._fd, buffers)
        except ShortWriteError as exc:
            written = exc.written - (1 if self._torn else 0)
            if written < 0:  # not even the end of the torn line went out
                raise PartialWriteError(_from(batches, owners, 0), exc) from exc
            whole = 0
            for line in lines:
                if written < len(line) + 1:
                    break
                written -= len(line) + 1
                whole += 1
            self._torn = written > 0
            raise PartialWriteError(_from(batches, owners, whole), exc) from exc
        self._torn = False

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


def open_thread_sink(
    target: str | None, home: Path, rotation: Rotation | None = None
) -> PredictionSink | None:
    """Build the sink ``target`` names (see :func:`resolve_log_target`); ``None`` when off.

    Raises
    ------
    ConfigError
        The file cannot be opened or the database URL is invalid or unreachable.
    """
    where = resolve_log_target(target, home)
    if where is None:
        return None
    return SqlSink(where) if is_sql_url(where) else JsonLinesSink(where, rotation)
