"""Extract a dataset from a SQL database into the lake's raw Delta table.

:func:`extract` reads a table or a SELECT (with bound parameters) through SQLAlchemy 2 in
chunks, hashes every row's values, skips the rows the raw table already holds, and appends the
rest as one new Delta version: ``<lake>/<dataset>/raw``. Memory is bounded by the chunk, plus
8 bytes per row already in the lake for the hashes. Re-running an extract of unchanged rows adds
no version. Transient connection errors are retried with backoff; every attempt either commits
a whole version or nothing. The source URL is stored and shown without its credentials.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.data.declarations import get_contract
from regressops.data.lake import ROW_HASH, ROW_SEQ, Lake, delta_kind, row_hashes
from regressops.data.reader import arrow_type_for, open_read
from regressops.data.schemas import DatasetContract
from regressops.data.source import (
    check_select_only,
    create_source_engine,
    read_only,
    redact_url,
    resolve_source_url,
    with_retries,
)
from regressops.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import URL

logger = logging.getLogger(__name__)

# Source types (as Delta stores them) a contract type can be coerced from by validation.
_COERCIBLE = {
    "float": {"long", "double", "string", "boolean"},
    "int": {"long", "double", "string", "boolean"},
    "str": {"string", "long", "double", "boolean"},
    "bool": {"boolean", "long", "string"},
    "datetime": {"timestamp", "date", "string"},
}


@dataclass
class ExtractResult:
    """What :func:`extract` did.

    Attributes
    ----------
    dataset : str
        The dataset extracted.
    source : str
        The source URL without credentials.
    table, query : str or None
        What was read.
    params : dict
        The query's bound parameters.
    extracted_at : str
        When the extract started, ISO 8601 UTC.
    rows_read, rows_new : int
        Rows read from the source; rows the lake did not hold yet (and now does).
    raw_version : int
        The raw table's version after the extract (unchanged when nothing was new).
    created : bool
        Whether a new raw version was written.
    chunk_size, chunks, attempts : int
        Rows per chunk, chunks read, connection attempts.
    seconds : float
        Wall time.
    lake_path : Path
        The raw table's folder.
    """

    dataset: str
    source: str
    table: str | None
    query: str | None
    params: dict[str, Any]
    extracted_at: str
    rows_read: int
    rows_new: int
    raw_version: int
    created: bool
    chunk_size: int
    chunks: int
    attempts: int
    seconds: float
    lake_path: Path
    columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            **self.__dict__,
            "lake_path": str(self.lake_path),
            "seconds": round(self.seconds, 3),
        }


def extract(
    dataset: str,
    *,
    source_url: str | None = None,
    table: str | None = None,
    query: str | None = None,
    params: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    settings: Settings | None = None,
    progress: Callable[[int], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExtractResult:
    """Extract ``dataset`` from its source database into a new raw Delta version.

    Parameters
    ----------
    dataset : str
        A built-in dataset or one declared in ``regressops.toml``.
    source_url : str, optional
        SQLAlchemy URL (or ``env:VAR``); default: the dataset's declared source, then
        ``settings.data.source_url``, then the demo database ``<home>/demo.db``.
    table : str, optional
        ``TABLE`` or ``SCHEMA.TABLE`` to read; default: the declared one, or the dataset's name.
    query : str, optional
        A SELECT to read instead, with ``:name`` parameters bound from ``params``.
    params : mapping, optional
        Values of the query's parameters.
    chunk_size : int, optional
        Rows per chunk; default ``settings.data.chunk_size``.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.
    progress : callable, optional
        Called with the number of rows read so far after each chunk.
    sleep : callable, optional
        Waits between retries (``time.sleep``).

    Returns
    -------
    ExtractResult

    Raises
    ------
    ConfigError
        Unknown dataset; both or neither of table and query where one is needed; a query that
        is not a single SELECT; a parameter without a value.
    SourceError
        The database cannot be reached (after the retries) or refuses the credentials.
    DataError
        Missing table, empty result, a column the contract requires is missing, a value that
        cannot be stored as its column's type. Nothing is written to the lake in these cases.
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    contract = get_contract(dataset, settings)
    table, query, bound = _what_to_read(contract, table, query, params)
    size = chunk_size or settings.data.chunk_size
    if size < 1:
        raise ConfigError(f"--chunk-size must be at least 1, got {size}", reason="invalid_chunk")
    url = resolve_source_url(
        source_url,
        declared=contract.source,
        password_env=contract.password_env,
        settings=settings,
    )
    lake = Lake.from_settings(settings)
    with lake.lock(dataset):
        return _extract_locked(
            lake,
            contract,
            url,
            table=table,
            query=query,
            bound=bound,
            size=size,
            started=started,
            progress=progress,
            sleep=sleep,
            settings=settings,
        )


def _extract_locked(
    lake: Lake,
    contract: DatasetContract,
    url: URL,
    *,
    table: str | None,
    query: str | None,
    bound: dict[str, Any],
    size: int,
    started: float,
    progress: Callable[[int], object] | None,
    sleep: Callable[[float], None],
    settings: Settings,
) -> ExtractResult:
    """The extract itself, under the dataset's writer lock (the lake cannot change under it)."""
    dataset = contract.name
    shown = redact_url(url)
    raw_schema = lake.schema(dataset, "raw")
    known, next_seq = _known_rows(lake, dataset)
    extracted_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    info = {
        "kind": "extract",
        "source": shown,
        "table": table,
        "query": query,
        "params": dict(bound),
        "extracted_at": extracted_at,
        "chunk_size": size,
    }
    hints = {f.name: f.type for f in raw_schema} if raw_schema is not None else {}
    defaults = {c.name: arrow_type_for(c.dtype) for c in contract.columns}
    engine = create_source_engine(url, settings)
    attempts = 0

    def attempt() -> ExtractResult:
        nonlocal attempts
        attempts += 1
        counts = {"rows": 0, "new": 0, "chunks": 0}
        with read_only(engine) as conn:
            read = open_read(
                conn,
                table=table,
                query=query,
                params=bound,
                chunk_size=size,
                hints=hints,
                defaults=defaults,
            )
            _check_columns(read.schema, contract, read.what)
            schema = _with_technical(read.schema)
            batches = _new_rows(read.batches, known, next_seq, counts, progress)
            first = next(batches, None)
            if counts["rows"] == 0:
                raise DataError(
                    f"the {read.what} in {shown} returned no rows; nothing to extract",
                    reason="empty_result",
                )
            version = lake.latest_version(dataset, "raw")
            if first is not None:
                version = lake.write(
                    dataset,
                    "raw",
                    schema,
                    itertools.chain([first], batches),
                    mode="append",
                    info=info,
                )
        assert version is not None
        return ExtractResult(
            dataset=dataset,
            source=shown,
            table=table,
            query=query,
            params=dict(bound),
            extracted_at=extracted_at,
            rows_read=counts["rows"],
            rows_new=counts["new"],
            raw_version=version,
            created=first is not None,
            chunk_size=size,
            chunks=counts["chunks"],
            attempts=attempts,
            seconds=time.perf_counter() - started,
            lake_path=lake.path(dataset, "raw"),
            columns=[f.name for f in read.schema],
        )

    try:
        result = with_retries(
            attempt,
            url=url,
            retries=settings.data.retries,
            backoff=settings.data.retry_backoff,
            sleep=sleep,
        )
    finally:
        engine.dispose()
    logger.info(
        "extracted %d rows (%d new) of %s from %s: raw v%d%s",
        result.rows_read,
        result.rows_new,
        dataset,
        shown,
        result.raw_version,
        "" if result.created else " (unchanged)",
    )
    return result


# ---------------------------------------------------------------------- helpers
def _what_to_read(
    contract: DatasetContract,
    table: str | None,
    query: str | None,
    params: Mapping[str, Any] | None,
) -> tuple[str | None, str | None, dict[str, Any]]:
    if table and query:
        raise ConfigError("give --table or --query, not both", reason="ambiguous_source")
    if not table and not query:
        table, query = contract.table, contract.query
        bound = {**contract.params, **(params or {})}
        if not table and not query:
            table = contract.name
    else:
        bound = dict(params or {})
    if query:
        return None, check_select_only(query), bound
    if bound:
        raise ConfigError(
            f"--param {sorted(bound)[0]} needs a --query with that :parameter",
            reason="unknown_parameter",
        )
    return table, None, {}


def _known_rows(lake: Lake, dataset: str) -> tuple[np.ndarray, int]:
    """Sorted row hashes the raw table holds, and the next ``_row_seq`` to give."""
    if not lake.exists(dataset, "raw"):
        return np.empty(0, dtype=np.int64), 0
    data = lake.open(dataset, "raw").to_pyarrow_table(columns=[ROW_HASH, ROW_SEQ])
    hashes = np.sort(data.column(ROW_HASH).to_numpy())
    seqs = data.column(ROW_SEQ).to_numpy()
    return hashes, int(seqs.max()) + 1 if len(seqs) else 0


def _check_columns(schema: pa.Schema, contract: DatasetContract, what: str) -> None:
    names = schema.names
    missing = [c for c in contract.column_names if c not in names]
    if missing:
        raise DataError(
            f"the {what} lacks column(s) {missing} that the {contract.name} schema requires "
            f"(it has {names})",
            reason="missing_column",
        )
    for rule in contract.columns:
        kind = delta_kind(schema.field(rule.name).type)
        if kind != "null" and kind not in _COERCIBLE[rule.dtype]:
            raise DataError(
                f"column {rule.name!r} of the {what} is {kind}, which cannot be coerced to "
                f"{rule.dtype} as the {contract.name} schema requires",
                reason="uncoercible_type",
            )


def _with_technical(schema: pa.Schema) -> pa.Schema:
    import pyarrow as pa

    return schema.append(pa.field(ROW_SEQ, pa.int64())).append(pa.field(ROW_HASH, pa.int64()))


def _new_rows(
    batches: Iterator[pa.RecordBatch],
    known: np.ndarray,
    next_seq: int,
    counts: dict[str, int],
    progress: Callable[[int], object] | None,
) -> Iterator[pa.RecordBatch]:
    """Add ``_row_seq`` and ``_row_hash`` to each batch, dropping rows the lake holds."""
    import pyarrow as pa

    for batch in batches:
        counts["rows"] += batch.num_rows
        counts["chunks"] += 1
        if progress is not None:
            progress(counts["rows"])
        hashes = row_hashes(batch)
        if known.size:
            at = np.minimum(np.searchsorted(known, hashes), known.size - 1)
            fresh = known[at] != hashes
            if not fresh.any():
                continue
            if not fresh.all():
                batch, hashes = batch.filter(pa.array(fresh)), hashes[fresh]
        seqs = np.arange(next_seq, next_seq + batch.num_rows, dtype=np.int64)
        next_seq += batch.num_rows
        counts["new"] += batch.num_rows
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, pa.array(seqs), pa.array(hashes)],
            names=[*batch.schema.names, ROW_SEQ, ROW_HASH],
        )
