"""Seed a source database with a built-in dataset, clean or with realistic defects.

:func:`seed_demo_db` writes a built-in dataset (plus an ``id`` key column) as a table of any
SQLAlchemy database: by default the SQLite file ``<home>/demo.db``, or PostgreSQL. With
``messy=True`` (:func:`make_messy`) about 1% of the rows get each kind of defect validation must
catch: missing values, out-of-range numbers, unknown categories, numbers stored as text that do
not parse, exact duplicate rows and conflicting re-entries of a key. The table is replaced in one
transaction, so a failed seed leaves the previous table as it was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.data.schemas import BUILTIN_CONTRACTS, DatasetContract
from regressops.data.source import (
    DEMO_DB_FILE,
    create_source_engine,
    redact_url,
    resolve_source_url,
    split_table_name,
    with_retries,
)
from regressops.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Connection, Table

logger = logging.getLogger(__name__)

DEFECT_SHARE = 0.01
JUNK_NUMBERS = ("n/a", "?", "12,5", "unknown", "-")
_INSERT_CHUNK = 50_000


@dataclass
class DemoDbResult:
    """What :func:`seed_demo_db` wrote.

    Attributes
    ----------
    url : str
        The database, without credentials.
    dataset, table : str
        The dataset seeded and the table it went to.
    rows : int
        Rows written (defective and duplicate rows included).
    messy : bool
        Whether defects were injected.
    defects : dict
        Rows per kind of defect.
    seconds : float
        Wall time.
    """

    url: str
    dataset: str
    table: str
    rows: int
    messy: bool
    defects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def seed_demo_db(
    *,
    url: str | None = None,
    dataset: str = "insurance",
    table: str | None = None,
    messy: bool = False,
    rows: int | None = None,
    seed: int = 0,
    settings: Settings | None = None,
) -> DemoDbResult:
    """Write a built-in dataset as a table of a source database.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL (or ``env:VAR``); default ``sqlite:///<home>/demo.db``.
    dataset : str, default="insurance"
        ``insurance``, ``diabetes`` or ``california``.
    table : str, optional
        ``TABLE`` or ``SCHEMA.TABLE`` (the schema must exist); default: the dataset's name.
    messy : bool, default=False
        Inject defects (see :func:`make_messy`).
    rows : int, optional
        Repeat (or cut) the data to this many rows, with fresh ids; for benchmarks.
    seed : int, default=0
        Seed of the defects' placement.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.

    Raises
    ------
    ConfigError
        Not a built-in dataset, or ``rows`` below 1.
    SourceError
        The database cannot be reached.
    """
    from regressops.datasets import get_dataset

    started = time.perf_counter()
    settings = settings or get_settings()
    info = get_dataset(dataset)
    contract = BUILTIN_CONTRACTS[info.name]
    if rows is not None and rows < 1:
        raise ConfigError(f"--rows must be at least 1, got {rows}", reason="invalid_rows")
    if url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(settings.home / DEMO_DB_FILE).resolve()}"
    target = resolve_source_url(url, settings=settings)
    schema_name, name = split_table_name(table or info.name)
    frame = info.load(settings)
    frame.insert(0, "id", np.arange(1, len(frame) + 1, dtype=np.int64))
    if rows is not None:
        frame = _resize(frame, rows)
    defects: dict[str, int] = {}
    text_columns: set[str] = set()
    if messy:
        frame, defects, text_columns = make_messy(frame, contract, seed=seed)
    if target.get_backend_name() == "sqlite" and target.database:
        from pathlib import Path

        Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        Path(target.database).touch(exist_ok=True)
    engine = create_source_engine(target, settings)

    def write() -> None:
        with engine.begin() as conn:
            sql_table = _table(name, schema_name, contract, text_columns)
            sql_table.drop(conn, checkfirst=True)
            sql_table.create(conn)
            _insert(conn, sql_table, frame)

    try:
        with_retries(
            write, url=target, retries=settings.data.retries, backoff=settings.data.retry_backoff
        )
    finally:
        engine.dispose()
    shown = redact_url(target)
    qualified = f"{schema_name}.{name}" if schema_name else name
    logger.info("seeded %s with %d rows of %s in %s", qualified, len(frame), dataset, shown)
    return DemoDbResult(
        url=shown,
        dataset=info.name,
        table=qualified,
        rows=len(frame),
        messy=messy,
        defects=defects,
        seconds=time.perf_counter() - started,
    )


def make_messy(
    frame: pd.DataFrame, contract: DatasetContract, *, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, int], set[str]]:
    """Inject realistic defects into about 1% of the rows per kind; return what was done.

    Kinds: ``nulls`` (a numeric and a categorical feature left empty), ``out_of_range`` (a
    number far beyond its contract's bounds), ``unknown_categories`` (a category in capitals),
    ``numbers_as_text`` (a float column stored as text, some values unparseable), and
    ``duplicate_rows`` / ``conflicting_duplicates`` (rows repeated with the same key, the
    second kind with a different target).

    Returns
    -------
    frame : DataFrame
        The defective copy (object dtype where text was injected).
    defects : dict
        Number of rows per kind.
    text_columns : set of str
        Columns to store as text.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    k = max(1, round(DEFECT_SHARE * n))
    picks = iter(np.split(rng.choice(n, size=min(n, 5 * k), replace=False), 5))
    numeric = [
        c.name
        for c in contract.columns
        if c.dtype in ("int", "float") and c.name in contract.features
    ]
    text_col = next((c for c in numeric if contract.column(c).dtype == "float"), numeric[0])  # type: ignore[union-attr]
    others = [c for c in numeric if c != text_col] or [contract.target]
    null_col, range_col = others[0], (others[1:] or [contract.target])[0]
    defects: dict[str, int] = {}

    rows = next(picks)
    out[null_col] = out[null_col].astype(object)
    out.loc[out.index[rows], null_col] = None
    defects["nulls"] = len(rows)
    rows = next(picks)
    if contract.categorical:
        out[contract.categorical[-1]] = out[contract.categorical[-1]].astype(object)
        out.loc[out.index[rows], contract.categorical[-1]] = None
        defects["nulls"] += len(rows)
    rule = contract.column(range_col)
    assert rule is not None
    high = (rule.max if rule.max is not None else 0.0) + abs(rule.max or 1.0) + 1.0
    rows = next(picks)
    out[range_col] = out[range_col].astype(object)
    out.loc[out.index[rows], range_col] = int(high) if rule.dtype == "int" else float(high)
    defects["out_of_range"] = len(rows)
    rows = next(picks)
    if contract.categorical:
        col = contract.categorical[0]
        out.loc[out.index[rows], col] = out[col].iloc[rows].astype(str).str.upper().to_numpy()
        defects["unknown_categories"] = len(rows)
    rows = next(picks)
    text = [repr(float(v)) for v in out[text_col].to_numpy(dtype=np.float64)]
    for i, r in enumerate(rows):
        text[r] = JUNK_NUMBERS[i % len(JUNK_NUMBERS)]
    out[text_col] = pd.Series(text, index=out.index, dtype=object)
    defects["numbers_as_text"] = len(rows)
    dup = rng.choice(n, size=2 * k, replace=False)
    exact = out.iloc[dup[:k]].copy()
    conflicting = out.iloc[dup[k:]].copy()
    conflicting[contract.target] = conflicting[contract.target].astype(np.float64) * 1.1
    out = pd.concat([out, exact, conflicting], ignore_index=True)
    defects["duplicate_rows"] = k
    defects["conflicting_duplicates"] = k
    return out, defects, {text_col}


# ---------------------------------------------------------------------- helpers
def _resize(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    reps = -(-rows // len(frame))
    out = frame.iloc[np.tile(np.arange(len(frame)), reps)[:rows]].reset_index(drop=True)
    out["id"] = np.arange(1, rows + 1, dtype=np.int64)
    return out


def _table(
    name: str, schema: str | None, contract: DatasetContract, text_columns: set[str]
) -> Table:
    from sqlalchemy import BigInteger, Boolean, Column, Double, MetaData, Table, Text

    kinds: dict[str, Any] = {"int": BigInteger, "float": Double, "str": Text, "bool": Boolean}
    columns: list[Column[Any]] = [
        Column(c.name, Text if c.name in text_columns else kinds.get(c.dtype, Text))
        for c in contract.columns
    ]
    return Table(name, MetaData(), *columns, schema=schema)


def _insert(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Insert every row: COPY on PostgreSQL, executemany elsewhere, in chunks."""
    names = [c.name for c in table.columns]
    backend = conn.dialect.name
    prep = conn.dialect.identifier_preparer
    for start in range(0, len(frame), _INSERT_CHUNK):
        part = frame.iloc[start : start + _INSERT_CHUNK][names]
        values = part.astype(object).where(part.notna(), None)
        rows = list(values.itertuples(index=False, name=None))
        if backend == "postgresql":
            columns = ", ".join(prep.quote(n) for n in names)
            sql = f"COPY {prep.format_table(table)} ({columns}) FROM STDIN"
            with conn.connection.driver_connection.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)
        elif backend == "sqlite":
            placeholders = ", ".join("?" for _ in names)
            columns = ", ".join(prep.quote(n) for n in names)
            conn.exec_driver_sql(
                f"INSERT INTO {prep.format_table(table)} ({columns}) VALUES ({placeholders})",  # noqa: S608 - quoted identifiers, bound values
                rows,
            )
        else:
            conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in rows])
