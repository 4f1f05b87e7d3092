"""Labels for logged predictions: what ``POST /feedback`` receives, kept beside the log.

A label names a logged row by ``(request_id, row)`` and carries the true value once it is known.
Labels go where the prediction log goes: a JSON-lines file ``<log stem>.labels.jsonl`` beside a
JSON-lines log (``<home>/predictions.labels.jsonl`` by default, also when the log is off), or
the table ``prediction_labels`` in the database of a SQL log. ``regressops monitor`` joins them
with the log to measure the model's performance on live data.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from regressops.errors import ConfigError
from regressops.serving.log.sinks import DEFAULT_FILE, is_off, is_sql_url

LABELS_TABLE = "prediction_labels"
LABELS_SUFFIX = ".labels.jsonl"


def labels_target(log_target: str | None, home: Path) -> str:
    """Where the labels of the log ``log_target`` names are kept (a file path or a SQL URL)."""
    if log_target is not None and is_sql_url(log_target):
        return log_target
    base = home / DEFAULT_FILE if log_target is None or is_off(log_target) else Path(log_target)
    return str(base.with_name(base.stem + LABELS_SUFFIX))


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
            self._table = sa.Table(
                LABELS_TABLE,
                meta,
                sa.Column(
                    "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
                ),
                sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
                sa.Column("request_id", sa.String(128), nullable=False, index=True),
                sa.Column("row", sa.Integer, nullable=False),
                sa.Column("label", sa.Float, nullable=False),
            )
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


def iter_labels(target: str) -> Iterator[dict[str, Any]]:
    """Every label kept at ``target`` (oldest first) as ``{"ts", "request_id", "row", "label"}``.

    A missing file or table yields nothing (no label has arrived yet).
    """
    if is_sql_url(target):
        import sqlalchemy as sa

        engine = sa.create_engine(target)
        try:
            if not sa.inspect(engine).has_table(LABELS_TABLE):
                return
            query = sa.text(
                f"SELECT ts, request_id, row, label FROM {LABELS_TABLE} ORDER BY id"  # noqa: S608
            )
            with engine.connect() as conn:
                for ts, rid, row, label in conn.execute(query):
                    yield {"ts": str(ts), "request_id": rid, "row": int(row), "label": label}
        finally:
            engine.dispose()
        return
    path = Path(target)
    if not path.is_file():
        return
    with path.open("rb") as handle:
        for line in handle:
            if line.endswith(b"\n") and line.strip():
                yield orjson.loads(line)
