"""A read-only look at a dataset's source: its rows the lake does not hold yet, and a hash.

:func:`peek_source` reads the dataset's table (or query) the way ``extract`` does, without
writing anything: retraining judges drift on the rows that arrived since the last extract, and
``pipeline run`` skips an extract whose source did not change (the same snapshot hash).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.data.declarations import get_contract
from regressops.data.extract import _check_columns, _what_to_read
from regressops.data.lake import ROW_HASH, Lake, row_hashes
from regressops.data.reader import arrow_type_for, open_read
from regressops.data.source import create_source_engine, read_only, resolve_source_url, with_retries

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)


@dataclass
class SourcePeek:
    """What :func:`peek_source` saw.

    Attributes
    ----------
    dataset : str
        The dataset.
    rows_read : int
        Rows the source holds now.
    new : pyarrow.Table
        Those of them not behind the latest clean version (every row before the first
        extract). Rows extracted by a run whose validation then failed still count as new.
    snapshot_hash : str
        SHA-256 over the sorted row hashes: equal for equal row sets, whatever their order.
    target : str
        The dataset's target column.
    """

    dataset: str
    rows_read: int
    new: pa.Table
    snapshot_hash: str
    target: str

    @property
    def rows_new(self) -> int:
        """Rows the lake lacks."""
        return int(self.new.num_rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the rows)."""
        return {
            "dataset": self.dataset,
            "rows_read": self.rows_read,
            "rows_new": self.rows_new,
            "snapshot_hash": self.snapshot_hash,
        }


def peek_source(dataset: str, *, settings: Settings | None = None) -> SourcePeek:
    """Read ``dataset``'s source and return its rows the lake lacks; writes nothing.

    Raises
    ------
    ConfigError
        Unknown dataset or an invalid declaration.
    SourceError
        The database cannot be reached (after the configured retries).
    DataError
        Missing table or a column the contract requires.
    """
    import pyarrow as pa

    settings = settings or get_settings()
    contract = get_contract(dataset, settings)
    table, query, bound = _what_to_read(contract, None, None, None)
    url = resolve_source_url(
        None, declared=contract.source, password_env=contract.password_env, settings=settings
    )
    lake = Lake.from_settings(settings)
    known = baseline_hashes(lake, contract.name)
    defaults = {c.name: arrow_type_for(c.dtype) for c in contract.columns}
    engine = create_source_engine(url, settings)

    def attempt() -> tuple[pa.Table, np.ndarray]:
        batches: list[pa.RecordBatch] = []
        hashes: list[np.ndarray] = []
        with read_only(engine) as conn:
            read = open_read(
                conn,
                table=table,
                query=query,
                params=bound,
                chunk_size=settings.data.chunk_size,
                defaults=defaults,
            )
            _check_columns(read.schema, contract, read.what)
            for batch in read.batches:
                h = row_hashes(batch)
                hashes.append(h)
                if known.size:
                    at = np.minimum(np.searchsorted(known, h), known.size - 1)
                    batch = batch.filter(pa.array(known[at] != h))
                batches.append(batch)
            return pa.Table.from_batches(batches, schema=read.schema), (
                np.concatenate(hashes) if hashes else np.empty(0, dtype=np.int64)
            )

    try:
        new, all_hashes = with_retries(
            attempt, url=url, retries=settings.data.retries, backoff=settings.data.retry_backoff
        )
    finally:
        engine.dispose()
    digest = hashlib.sha256(np.sort(all_hashes).astype("<i8").tobytes()).hexdigest()
    logger.info("source of %s: %d rows, %d new", dataset, len(all_hashes), new.num_rows)
    return SourcePeek(contract.name, len(all_hashes), new, digest, str(contract.target))


def baseline_hashes(lake: Lake, dataset: str) -> np.ndarray:
    """Sorted row hashes of the raw version behind the latest clean version (else the latest
    raw version; empty before the first extract)."""
    if not lake.exists(dataset, "raw"):
        return np.empty(0, dtype=np.int64)
    version = None
    clean = lake.latest_version(dataset, "clean") if lake.exists(dataset, "clean") else None
    if clean is not None:
        raw = lake.version_info(dataset, "clean", clean).info.get("raw_version")
        version = int(raw) if raw is not None else None
    data = lake.open(dataset, "raw", version).to_pyarrow_table(columns=[ROW_HASH])
    return np.sort(data.column(ROW_HASH).to_numpy())
