"""Labels for logged predictions: what ``POST /feedback`` receives, kept beside the log.

A label names a logged row by ``(request_id, row)`` and carries the true value once it is known.
Labels go where the prediction log goes: a JSON-lines file ``<log stem>.labels.jsonl`` beside a
JSON-lines log (``<home>/predictions.labels.jsonl`` by default, also when the log is off), or
the table ``prediction_labels`` in the database of a SQL log. ``regressops monitor`` joins them
with the log to measure the model's performance on live data.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from regressops.errors import ConfigError
from regressops.serving.log.sinks import DEFAULT_FILE, is_off, is_sql_url

logger = logging.getLogger(__name__)

LABELS_TABLE = "prediction_labels"
LABELS_SUFFIX = ".labels.jsonl"
_SQL_CHUNK = 50_000


def labels_target(log_target: str | None, home: Path) -> str:
    """Where the labels of the log ``log_target`` names are kept (a file path or a SQL URL)."""
    if log_target is not None and is_sql_url(log_target):
        return log_target
    base = home / DEFAULT_FILE if log_target is None or is_off(log_target) else Path(log_target)
    return str(base.with_name(base.stem + LABELS_SUFFIX))


def _labels_table(meta: Any) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        LABELS_TABLE,
        meta,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("label", sa.Float, nullable=False),
    )


class LabelSink:
    """Append labels to the file or table :func:`labels_target` names (thread-safe).

    Raises
    ------
    ConfigError
        The file cannot be opened or the database cannot be used.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._table: Any = None
        self._engine: Any = None
        if is_sql_url(target):
            self._open_table()
        else:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            except OSError as exc:
                raise ConfigError(
                    f"cannot open the labels file {target}: {exc.strerror}",
                    reason="prediction_log",
                ) from None

    def _open_table(self) -> None:
        import sqlalchemy as sa

        from regressops.redact import redact_text

        try:
            self._engine = sa.create_engine(self.target, pool_pre_ping=True)
            meta = sa.MetaData()
            self._table = _labels_table(meta)
            meta.create_all(self._engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(
                f"cannot use the labels table in {redact_text(self.target)}: "
                f"{exc.__class__.__name__}",
                reason="prediction_log",
            ) from None

    def write(self, labels: list[tuple[str, int, float]]) -> int:
        """Append ``(request_id, row, label)`` triples; return how many were written."""
        now = time.time()
        if self._table is not None:
            ts = datetime.fromtimestamp(now, tz=UTC)
            rows = [{"ts": ts, "request_id": r, "row": i, "label": y} for r, i, y in labels]
            with self._engine.begin() as conn:
                conn.execute(self._table.insert(), rows)
            return len(rows)
        stamp = datetime.fromtimestamp(now, tz=UTC).isoformat()
        data = b"".join(
            orjson.dumps({"ts": stamp, "request_id": r, "row": i, "label": y}) + b"\n"
            for r, i, y in labels
        )
        assert self._fd is not None
        with self._lock:  # one write per request: lines of two requests never interleave
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        return len(labels)

    def close(self) -> None:
        """Close the file or the connection pool."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._engine is not None:
            self._engine.dispose()


@dataclass(frozen=True)
class LabelColumns:
    """Labels as columns, in arrival order (oldest first).

    Attributes
    ----------
    request_ids : ndarray of str
        The ``X-Request-ID`` each label names.
    rows : ndarray of int64
        The row within that request.
    labels : ndarray of float64
        The true values.
    """

    request_ids: np.ndarray
    rows: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def labels_kept(target: str) -> bool:
    """True when the labels sink at ``target`` exists (a file, or the table in the database).

    Raises
    ------
    ConfigError
        The database cannot be reached.
    """
    if not is_sql_url(target):
        return Path(target).is_file()
    import sqlalchemy as sa

    with _labels_database(target) as engine:
        return bool(sa.inspect(engine).has_table(LABELS_TABLE))


@contextlib.contextmanager
def _labels_database(target: str) -> Iterator[Any]:
    """An engine on the labels database for the block; its failures as one-line ConfigErrors."""
    import sqlalchemy as sa

    from regressops.redact import redact_text

    try:
        engine = sa.create_engine(target)
    except Exception as exc:  # an invalid URL or a missing driver
        raise ConfigError(f"invalid labels URL: {exc}", reason="prediction_log") from None
    try:
        yield engine
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot read the labels table in {redact_text(target)}: {exc.__class__.__name__}",
            reason="prediction_log",
        ) from None
    finally:
        engine.dispose()


def read_label_columns(target: str) -> LabelColumns:
    """Every label kept at ``target`` as columns, oldest first (empty when none arrived yet).

    The JSON-lines file is parsed by Arrow's JSON reader straight into columns (a line still
    being appended is left out; a file holding a torn line falls back to line-by-line reading
    that skips it with a warning); the table is read in chunks of 50,000 rows.

    Raises
    ------
    ConfigError
        The file or the table cannot be read.
    """
    if is_sql_url(target):
        return _sql_label_columns(target)
    path = Path(target)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _label_columns([], [], [])
    except OSError as exc:
        raise ConfigError(
            f"cannot read the labels file {path}: {exc.strerror}", reason="prediction_log"
        ) from None
    data = data[: data.rfind(b"\n") + 1]  # a line still being appended is not read yet
    if not data.strip():
        return _label_columns([], [], [])
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema([("request_id", pa.string()), ("row", pa.int64()), ("label", pa.float64())])
    try:
        table = pj.read_json(
            io.BytesIO(data),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _label_lines(data, path)
    if table.num_rows and any(table.column(c).null_count for c in schema.names):
        return _label_lines(data, path)
    return LabelColumns(
        np.asarray(table.column("request_id").to_numpy(zero_copy_only=False), dtype=str),
        table.column("row").to_numpy().astype(np.int64, copy=False),
        table.column("label").to_numpy().astype(np.float64, copy=False),
    )


def _label_lines(data: bytes, path: Path) -> LabelColumns:
    """The slow path for a file holding a damaged line: each good line, the others skipped."""
    ids: list[str] = []
    rows: list[int] = []
    values: list[float] = []
    skipped = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
            rid, row, label = str(doc["request_id"]), int(doc["row"]), float(doc["label"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            skipped += 1
            continue
        ids.append(rid)
        rows.append(row)
        values.append(label)
    if skipped:
        logger.warning("%d damaged line(s) of the labels file %s skipped", skipped, path)
    return _label_columns(ids, rows, values)


def _label_columns(ids: list[str], rows: list[int], values: list[float]) -> LabelColumns:
    return LabelColumns(
        np.asarray(ids, dtype=str),
        np.asarray(rows, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
    )


def _sql_label_columns(target: str) -> LabelColumns:
    import sqlalchemy as sa

    ids: list[str] = []
    rows: list[int] = []
    values: list[float] = []
    with _labels_database(target) as engine:
        if not sa.inspect(engine).has_table(LABELS_TABLE):
            return _label_columns([], [], [])
        table = _labels_table(sa.MetaData())
        query = sa.select(table.c.request_id, table.c.row, table.c.label).order_by(table.c.id)
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=_SQL_CHUNK).execute(query)
            for chunk in result.partitions():
                rid, row, label = zip(*chunk, strict=True)
                ids.extend(rid)
                rows.extend(row)
                values.extend(label)
    return _label_columns(ids, rows, values)
