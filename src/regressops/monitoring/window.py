"""The current window: logged rows read as columnar numpy blocks, never one dict per row.

A JSON line of the prediction log holds one request's rows column by column
(:meth:`~regressops.serving.log.batch.LogBatch.json_lines`); each line becomes one numpy block
per numeric feature (``None`` → NaN) and a count per category, kept in a list per column and
joined only when the detector asks for that column (so the window's memory is its float64 size
plus one column). The SQL sink is read in chunks of :data:`SQL_CHUNK` rows with the filters in
the query. Filters: the model's name and version, a time range, the last N rows, and the served
rows or the rows a challenger in shadow scored (endpoint ``shadow:…``).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from regressops.errors import ConfigError, DataError
from regressops.monitoring.fitted import CurrentColumn
from regressops.monitoring.log_lines import decoded_lines
from regressops.monitoring.performance import Segments
from regressops.serving.log.batch import SHADOW_PREFIX

logger = logging.getLogger(__name__)

SQL_CHUNK = 10_000
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"  # the log's own layout: compares as text


@dataclass(frozen=True)
class LogSelection:
    """Which logged rows form the window.

    Attributes
    ----------
    model_name : str or None
        Rows of this model only (None: any).
    model_version : str or None
        Rows of this version only (None: any).
    since, until : datetime or None
        Rows logged at or after ``since`` and at or before ``until`` (timezone-aware).
    last : int or None
        The last ``last`` rows that pass the other filters.
    shadow : bool
        False: the rows the server answered; True: the rows a challenger in shadow scored
        (logged with the endpoint ``shadow:<endpoint>``).
    """

    model_name: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    last: int | None = None
    shadow: bool = False

    def describe(self) -> str:
        """One line for errors and the report."""
        parts = [f"model {self.model_name}" if self.model_name else "any model"]
        if self.shadow:
            parts[0] += " in shadow"
        if self.model_version:
            parts.append(f"version {self.model_version}")
        if self.since:
            parts.append(f"since {self.since.isoformat()}")
        if self.until:
            parts.append(f"until {self.until.isoformat()}")
        if self.last:
            parts.append(f"last {self.last} rows")
        return ", ".join(parts)


@dataclass
class _Block:
    """The rows of one log line (or SQL chunk) that passed the filters."""

    rows: int
    numeric: dict[str, np.ndarray]
    categorical: dict[str, list[Any]]
    predictions: np.ndarray
    ts: tuple[str, str]
    ids: list[tuple[str, int, int]] | None  # (request_id, first_row, rows) per run of a request
    versions: Counter[str] = field(default_factory=Counter)
    models: Counter[tuple[str, str]] = field(default_factory=Counter)

    def tail(self, n: int) -> _Block:
        """The last ``n`` rows of the block."""
        cut = self.rows - n
        ids = None
        if self.ids is not None:
            ids, skip = [], cut
            for rid, first, count in self.ids:
                if skip >= count:
                    skip -= count
                    continue
                ids.append((rid, first + skip, count - skip))
                skip = 0
        return _Block(
            n,
            {k: v[cut:] for k, v in self.numeric.items()},
            {k: v[cut:] for k, v in self.categorical.items()},
            self.predictions[cut:],
            self.ts,
            ids,
            # a log line holds one version; SQL chunks (several) are never cut: LIMIT does it
            Counter(dict.fromkeys(self.versions, n)),
            Counter(dict.fromkeys(self.models, n)),
        )


@dataclass
class LogWindow:
    """The rows of a window, column by column.

    Attributes
    ----------
    rows : int
        Rows in the window.
    first_ts, last_ts : str or None
        Time of the first and last request in it.
    versions : Counter
        Rows per model version in the window.
    models : Counter
        Rows per ``(model_name, model_version)`` in the window.
    seen : Counter
        Rows per ``(model_name, model_version)`` in the whole log read (for error messages).
    """

    rows: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    versions: Counter[str] = field(default_factory=Counter)
    models: Counter[tuple[str, str]] = field(default_factory=Counter)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    _numeric: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _categorical: dict[str, tuple[Counter[str], int]] = field(default_factory=dict)
    _predictions: list[np.ndarray] = field(default_factory=list)
    _ids: list[tuple[str, int, int, int]] | None = None  # request_id, first_row, rows, offset

    def column(self, name: str) -> CurrentColumn:
        """One feature; a numeric column's blocks are joined and released."""
        if name in self._numeric:
            blocks = self._numeric.pop(name)
            values = np.concatenate(blocks) if blocks else np.empty(0)
            blocks.clear()
            return CurrentColumn(values, owned=True)
        counts, missing = self._categorical.get(name, (Counter(), 0))
        return CurrentColumn(dict(counts), missing=missing)

    def prediction(self) -> CurrentColumn | None:
        """The logged predictions (kept: the labels' join needs them too)."""
        if not self._predictions:
            return None
        return CurrentColumn(self.predictions())

    def predictions(self) -> np.ndarray:
        """All predictions of the window in log order."""
        if len(self._predictions) > 1:
            self._predictions = [np.concatenate(self._predictions)]
        return self._predictions[0] if self._predictions else np.empty(0)

    def segments(self) -> Segments:
        """The window's rows as runs of one request's rows (needs ``keep_ids``)."""
        return Segments.from_runs(self._ids or [])

    def _add(self, block: _Block) -> None:
        for name, values in block.numeric.items():
            self._numeric.setdefault(name, []).append(values)
        for name, cells in block.categorical.items():
            counts, missing = self._categorical.get(name, (Counter(), 0))
            present = [v if isinstance(v, str) else str(v) for v in cells if v is not None]
            counts.update(present)
            self._categorical[name] = (counts, missing + len(cells) - len(present))
        self._predictions.append(block.predictions)
        if block.ids is not None:
            if self._ids is None:
                self._ids = []
            offset = self.rows
            for rid, first, count in block.ids:
                self._ids.append((rid, first, count, offset))
                offset += count
        self.rows += block.rows
        self.versions.update(block.versions)
        self.models.update(block.models)
        if self.first_ts is None or block.ts[0] < self.first_ts:
            self.first_ts = block.ts[0]
        if self.last_ts is None or block.ts[1] > self.last_ts:
            self.last_ts = block.ts[1]


def read_window(
    where: str,
    *,
    kinds: Mapping[str, str],
    selection: LogSelection,
    keep_ids: bool = False,
    workers: int = 1,
) -> LogWindow:
    """Read the window ``selection`` names from the log at ``where`` (a file or SQL URL).

    Parameters
    ----------
    where : str
        A JSON-lines file or a SQLAlchemy URL of the prediction log table.
    kinds : mapping of str to {"numeric", "categorical"}
        The features to read, with their kinds.
    selection : LogSelection
        The filters.
    keep_ids : bool, default=False
        Keep each row's ``(request_id, row)`` for the labels' join.
    workers : int, default=1
        Processes decoding a large JSON-lines log (:mod:`regressops.monitoring.log_fanout`).

    Raises
    ------
    ConfigError
        The log cannot be read.
    DataError
        A line is malformed, a feature is missing from the logged rows, or a numeric feature
        holds text.
    """
    from regressops.serving.log.sinks import is_sql_url

    blocks = (
        _sql_blocks(where, kinds, selection, keep_ids)
        if is_sql_url(where)
        else _file_blocks(Path(where), kinds, selection, keep_ids, workers)
    )
    window = LogWindow()
    tail: deque[_Block] = deque()
    kept, last = 0, selection.last
    for block, key, count in blocks:
        if key is not None:
            window.seen[key] += count
        if block is None or not block.rows:
            continue
        if last is None:
            window._add(block)
            continue
        tail.append(block)
        kept += block.rows
        while tail and kept - tail[0].rows >= last:
            kept -= tail.popleft().rows
    if last is not None and tail and kept > last:
        tail[0] = tail[0].tail(tail[0].rows - (kept - last))
    for block in tail:
        window._add(block)
    return window


def _ts_text(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime(_TS_FORMAT)


def _file_blocks(
    path: Path, kinds: Mapping[str, str], sel: LogSelection, keep_ids: bool, workers: int
) -> Iterator[tuple[_Block | None, tuple[str, str] | None, int]]:
    since, until = _ts_text(sel.since), _ts_text(sel.until)
    for number, doc in enumerate(decoded_lines(path, kinds, workers=workers), start=1):
        try:
            key = (str(doc["model_name"]), str(doc["model_version"]))
            ts, n = str(doc["ts"]), int(doc["rows"])
            shadow = str(doc["endpoint"]).startswith(SHADOW_PREFIX)
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"line {number} of {path} is not a prediction log line", reason="bad_log_line"
            ) from None
        keep = (
            (sel.model_name is None or key[0] == sel.model_name)
            and (sel.model_version is None or key[1] == sel.model_version)
            and (since is None or ts >= since)
            and (until is None or ts <= until)
            and shadow == sel.shadow
        )
        if not keep:
            yield None, key, n
            continue
        ids = _line_ids(doc, n, f"line {number} of {path}") if keep_ids else None
        block = _columns(
            doc.get("features"),
            doc.get("predictions"),
            n,
            kinds,
            (ts, ts),
            ids,
            f"line {number} of {path}",
        )
        block.versions[key[1]] = n
        block.models[key] = n
        yield block, key, n


def _line_ids(doc: dict[str, Any], n: int, where: str) -> list[tuple[str, int, int]]:
    """``(request_id, first_row, rows)`` runs of a log line: one for a request's line, one per
    run of consecutive rows of a request for a line of several (the shadow model's)."""
    ids, rows = doc.get("request_ids"), doc.get("request_rows")
    if ids is None:
        return [(str(doc["request_id"]), int(doc.get("first_row", 0)), n)]
    if not isinstance(ids, list) or not isinstance(rows, list) or not len(ids) == len(rows) == n:
        raise DataError(
            f"{where}: request_ids and request_rows do not match its rows", reason="bad_log_line"
        )
    runs: list[tuple[str, int, int]] = []
    for rid, row in zip(ids, rows, strict=True):
        if runs and runs[-1][0] == rid and runs[-1][1] + runs[-1][2] == row:
            runs[-1] = (rid, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((str(rid), int(row), 1))
    return runs


def _columns(
    features: Any,
    predictions: Any,
    n: int,
    kinds: Mapping[str, str],
    ts: tuple[str, str],
    ids: list[tuple[str, int, int]] | None,
    where: str,
) -> _Block:
    if not isinstance(features, dict) or not isinstance(predictions, list | np.ndarray):
        raise DataError(f"{where} is not a prediction log line", reason="bad_log_line")
    missing = [k for k in kinds if k not in features]
    if missing:
        raise DataError(
            f"the logged rows lack feature(s) {', '.join(missing)} ({where}); was this log "
            "written by another model?",
            reason="missing_feature",
        )
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, list[Any]] = {}
    for name, kind in kinds.items():
        cells = features[name]
        if not isinstance(cells, list | np.ndarray) or len(cells) != n:
            raise DataError(
                f"{where}: column {name!r} does not hold {n} values", reason="bad_log_line"
            )
        if kind == "numeric" and isinstance(cells, np.ndarray):
            numeric[name] = cells  # decoded straight into float64 (log_lines)
        elif kind == "numeric":
            try:
                # fromiter: one pass over the list, no shape discovery (about 20% less time)
                numeric[name] = np.fromiter(cells, dtype=np.float64, count=n)
            except (TypeError, ValueError):
                raise DataError(
                    f"feature {name!r} is numeric in the reference but the log holds text for it "
                    f"({where})",
                    reason="type_mismatch",
                ) from None
        else:
            categorical[name] = cells.tolist() if isinstance(cells, np.ndarray) else cells
    try:
        preds = np.array(predictions, dtype=np.float64)  # its own, writable
    except (TypeError, ValueError):
        raise DataError(f"{where}: predictions are not numbers", reason="bad_log_line") from None
    if preds.shape != (n,):
        raise DataError(f"{where}: {preds.size} predictions for {n} rows", reason="bad_log_line")
    return _Block(n, numeric, categorical, preds, ts, ids)


def _sql_blocks(
    url: str, kinds: Mapping[str, str], sel: LogSelection, keep_ids: bool
) -> Iterator[tuple[_Block | None, tuple[str, str] | None, int]]:
    """Chunks of the SQL log table with the filters in the query."""
    import sqlalchemy as sa

    from regressops.serving.log.reader import log_engine, log_table

    engine = log_engine(url)
    try:
        table = log_table(engine)
        c = table.c
        query = sa.select(
            c.id, c.ts, c.request_id, c.model_name, c.model_version, c.row, c.features, c.prediction
        )
        if sel.model_name is not None:
            query = query.where(c.model_name == sel.model_name)
        if sel.model_version is not None:
            query = query.where(c.model_version == sel.model_version)
        if sel.since is not None:
            query = query.where(c.ts >= sel.since)
        if sel.until is not None:
            query = query.where(c.ts <= sel.until)
        shadow_rows = c.endpoint.like(SHADOW_PREFIX + "%")
        query = query.where(shadow_rows if sel.shadow else sa.not_(shadow_rows))
        if sel.last is not None:  # the newest N, then back into log order
            inner = query.order_by(c.id.desc()).limit(sel.last).subquery()
            query = sa.select(inner).order_by(inner.c.id)
        else:
            query = query.order_by(c.id)
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=SQL_CHUNK).execute(query)
            for chunk in result.partitions():
                yield _sql_block(chunk, kinds, keep_ids), None, 0
            seen = sa.select(c.model_name, c.model_version, sa.func.count()).group_by(
                c.model_name, c.model_version
            )
            for name, version, count in conn.execute(seen):
                yield None, (str(name), str(version)), int(count)
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot read the prediction log table: {exc.__class__.__name__}",
            reason="prediction_log",
        ) from None
    finally:
        engine.dispose()


def _sql_block(rows: Iterable[Any], kinds: Mapping[str, str], keep_ids: bool) -> _Block:
    rows = list(rows)
    feats = [r.features if isinstance(r.features, dict) else orjson.loads(r.features) for r in rows]
    missing = [k for k in kinds if feats and k not in feats[0]]
    if missing:
        raise DataError(
            f"the logged rows lack feature(s) {', '.join(missing)}", reason="missing_feature"
        )
    columns = {name: [f.get(name) for f in feats] for name in kinds}
    stamps = [_sql_ts(r.ts) for r in (rows[0], rows[-1])]
    ids = [(str(r.request_id), int(r.row), 1) for r in rows] if keep_ids else None
    block = _columns(
        columns,
        [r.prediction for r in rows],
        len(rows),
        kinds,
        (stamps[0], stamps[1]),
        ids,
        "the prediction log table",
    )
    block.versions.update(str(r.model_version) for r in rows)
    block.models.update((str(r.model_name), str(r.model_version)) for r in rows)
    return block


def _sql_ts(ts: Any) -> str:
    if not isinstance(ts, datetime):
        return str(ts)
    if ts.tzinfo is None:  # SQLite hands back naive datetimes; the sink writes UTC
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime(_TS_FORMAT)
