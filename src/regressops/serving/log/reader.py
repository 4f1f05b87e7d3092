"""Read the prediction log back, one record per predicted row, whichever sink wrote it.

The JSON-lines sink stores one line per request (per slice of at most
:data:`~regressops.serving.log.batch.LINE_ROWS` rows), column by column; the SQL sink one
table row per prediction. Both read back as the same records::

    {"ts": "2026-01-01T12:00:00.123456+00:00", "request_id": "…", "endpoint": "/batch",
     "model_name": "diabetes", "model_version": "3", "row": 0,
     "features": {"age": 0.038, …}, "prediction": 206.1, "latency_ms": 1.42}

This is the input of drift monitoring and of ``regressops predictions``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from regressops.errors import ConfigError, DataError
from regressops.serving.log.segments import segment_paths
from regressops.serving.log.sinks import TABLE_NAME, is_sql_url, resolve_log_target

logger = logging.getLogger(__name__)

_ROW_FIELDS = ("ts", "request_id", "endpoint", "model_name", "model_version")


class NothingLogged(ConfigError):
    """The prediction log does not exist yet: no server has written to it."""

    default_reason = "nothing_logged"


def require_log_target(target: str | None, home: Path) -> str:
    """The file or URL a server started with ``--prediction-log target`` writes to."""
    where = resolve_log_target(target, home)
    if where is None:
        raise ConfigError("the prediction log is off; name a file or a URL", reason="no_log")
    return where


def expand_line(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The per-row records of one JSON line of the log."""
    try:
        common = {k: doc[k] for k in _ROW_FIELDS}
        first, n = int(doc["first_row"]), int(doc["rows"])
        features: dict[str, list[Any]] = doc["features"]
        preds: list[float] = doc["predictions"]
        latency = doc["latency_ms"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"not a prediction log line (missing or bad field {exc})", reason="bad_log_line"
        ) from None
    if len(preds) != n or any(len(col) != n for col in features.values()):
        raise DataError(
            f"prediction log line of request {common['request_id']!r} says {n} rows but holds "
            "columns of another length",
            reason="bad_log_line",
        )
    names = list(features)
    ids, rows = doc.get("request_ids"), doc.get("request_rows")  # a line of several requests
    if ids is not None and (rows is None or len(ids) != n or len(rows) != n):
        raise DataError(
            f"prediction log line of request {common['request_id']!r} names the requests of "
            "another number of rows",
            reason="bad_log_line",
        )
    for i, values in enumerate(zip(*features.values(), strict=True)):
        if ids is not None:
            common["request_id"] = ids[i]
        yield {
            **common,
            "row": first + i if rows is None else rows[i],
            "features": dict(zip(names, values, strict=True)),
            "prediction": preds[i],
            "latency_ms": latency,
        }


def iter_log_rows(target: str | None, home: Path) -> Iterator[dict[str, Any]]:
    """Every logged row, oldest first, from the JSON-lines file or SQL table ``target`` names.

    Raises
    ------
    ConfigError
        The log is off, the file does not exist or the database cannot be read.
    DataError
        A line of the file is not a prediction log line.
    """
    where = require_log_target(target, home)
    if is_sql_url(where):
        yield from _sql_rows(where, last=None)
        return
    for doc in _iter_segments(Path(where)):
        yield from expand_line(doc)


def _iter_segments(path: Path) -> Iterator[dict[str, Any]]:
    """The decoded lines of every segment of the log at ``path``, oldest segment first."""
    paths = segment_paths(path)
    if not paths:
        yield from _iter_lines(path)  # raises the "cannot read" error
        return
    for segment in paths:
        yield from _iter_lines(segment)


def _iter_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The decoded JSON lines of a log file (a line still being appended ends the file)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NothingLogged(f"nothing logged yet: no server has written {path}") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read prediction log {path}: {exc.strerror}", reason="prediction_log"
        ) from None
    good = damaged = 0
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                if not line.endswith(b"\n"):  # a writer is appending this very line
                    return
                doc = recover_line(line)
                if doc is None:
                    damaged += 1
                    if not good and damaged >= 2:  # two lines at the start: not a log at all
                        raise _not_a_log(path) from None
                # A write stopped by a full disk or a killed writer leaves a torn fragment that
                # the next append continues; the fragment's rows are written again in full.
                if good or doc is not None:
                    logger.warning(
                        "line %d of %s holds a torn fragment (%s)",
                        number,
                        path,
                        "skipped; the whole line after it is read" if doc else "skipped",
                    )
                if doc is None:
                    continue
            if not isinstance(doc, dict) or "rows" not in doc:
                if not good:
                    raise _not_a_log(path)
                raise DataError(
                    f"line {number} of {path} is not a prediction log line", reason="bad_log_line"
                )
            if not good and damaged:
                logger.warning("line 1 of %s is damaged (not JSON); skipped", path)
            good += 1
            yield doc


def _not_a_log(path: Path) -> DataError:
    return DataError(
        f"{path} is not a prediction log (its first lines are not the JSON lines a server writes)",
        reason="not_a_prediction_log",
    )


_LINE_START = b'{"ts":'


def recover_line(line: bytes | memoryview) -> dict[str, Any] | None:
    """The whole line that follows a torn fragment on the same physical line, if any.

    Every log line starts with ``{"ts":`` and that text cannot occur inside a line (JSON
    strings escape their quotes), so the last occurrence past the start begins a whole line.
    """
    data = bytes(line)
    start = data.rfind(_LINE_START)
    if start <= 0:
        return None
    try:
        doc = orjson.loads(data[start:])
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def last_log_rows(target: str | None, home: Path, n: int) -> tuple[list[dict[str, Any]], int]:
    """The last ``n`` logged rows (oldest first) and the number of rows in the whole log.

    Raises
    ------
    NothingLogged
        No server has written the log yet (no file, no table).
    DataError
        The file is not a prediction log.
    ConfigError
        The log is off, or its database cannot be reached.
    """
    where = require_log_target(target, home)
    if is_sql_url(where):
        return list(_sql_rows(where, last=n)), _sql_count(where)
    # Only the lines that hold the last n rows are expanded into records: a large log is
    # decoded once, line by line, and counted from each line's "rows".
    tail: deque[dict[str, Any]] = deque()
    total = kept = 0
    for doc in _iter_segments(Path(where)):
        count = doc.get("rows")
        if not isinstance(count, int):
            raise DataError("not a prediction log line (no row count)", reason="bad_log_line")
        total += count
        tail.append(doc)
        kept += count
        while tail and kept - int(tail[0]["rows"]) >= n:
            kept -= int(tail.popleft()["rows"])
    records = [row for doc in tail for row in expand_line(doc)]
    return records[-n:], total


def log_engine(url: str) -> Any:
    import sqlalchemy as sa

    try:
        return sa.create_engine(url)
    except Exception as exc:  # invalid URL or missing driver
        raise ConfigError(f"invalid prediction log URL: {exc}", reason="prediction_log") from None


def log_table(engine: Any) -> Any:
    import sqlalchemy as sa

    from regressops.redact import redact_text, redact_url

    try:
        return sa.Table(TABLE_NAME, sa.MetaData(), autoload_with=engine)
    except sa.exc.NoSuchTableError:
        raise NothingLogged(
            f"nothing logged yet: the database has no {TABLE_NAME} table (no server has "
            "logged to it)"
        ) from None
    except sa.exc.OperationalError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(
            f"cannot reach the prediction log database {redact_url(engine.url)}: "
            f"{redact_text(cause[0] if cause else exc.__class__.__name__)}",
            reason="prediction_log_unreachable",
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot read the prediction log table: {exc.__class__.__name__}",
            reason="prediction_log",
        ) from None


def request_log_rows(target: str | None, home: Path, request_id: str) -> list[dict[str, Any]]:
    """Every logged row of one request (in row order); empty when the id is not in the log.

    A JSON-lines log is scanned line by line and only that request's lines are expanded; a SQL
    log is queried with the id as a bound parameter.
    """
    where = require_log_target(target, home)
    if is_sql_url(where):
        return list(_sql_rows(where, last=None, request_id=request_id))
    rows = [
        row
        for doc in _iter_segments(Path(where))
        if doc.get("request_id") == request_id
        for row in expand_line(doc)
    ]
    return sorted(rows, key=lambda r: r["row"])


def _sql_rows(
    url: str, *, last: int | None, request_id: str | None = None
) -> Iterator[dict[str, Any]]:
    import sqlalchemy as sa

    engine = log_engine(url)
    try:
        table = log_table(engine)
        query = sa.select(table).order_by(table.c.id.desc() if last is not None else table.c.id)
        if request_id is not None:
            query = query.where(table.c.request_id == request_id)
        if last is not None:
            query = query.limit(last)
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=10_000).execute(query)
            rows = (_record(r._mapping) for r in result)
            if last is not None:
                yield from reversed(list(rows))
            else:
                yield from rows
    finally:
        engine.dispose()


def _sql_count(url: str) -> int:
    import sqlalchemy as sa

    engine = log_engine(url)
    try:
        table = log_table(engine)
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def _record(m: Any) -> dict[str, Any]:
    ts = m["ts"]
    features = m["features"]
    if isinstance(features, str | bytes):  # a JSON column some dialects hand back as text
        features = orjson.loads(features)
    return {
        "ts": ts.isoformat() if isinstance(ts, datetime) else str(ts),
        "request_id": m["request_id"],
        "endpoint": m["endpoint"],
        "model_name": m["model_name"],
        "model_version": m["model_version"],
        "row": m["row"],
        "features": features,
        "prediction": m["prediction"],
        "latency_ms": m["latency_ms"],
    }
