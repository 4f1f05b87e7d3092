"""The lake: versioned Delta tables per dataset, through ``deltalake`` (delta-rs).

Layout: ``<lake_dir>/<dataset>/raw`` (every distinct row extracted, appended per extract),
``<lake_dir>/<dataset>/clean`` (the rows that passed validation; one full version per validate
run) and ``<lake_dir>/<dataset>/quarantine`` (the rows that failed, with their reasons).

Every table carries two technical columns: ``_row_seq`` (the order rows were first extracted
in; :meth:`Lake.read` sorts by it, so every read of a version gives the same rows in the same
order) and ``_row_hash`` (a
64-bit hash of a row's source values, so re-extracting an unchanged row adds nothing). Each
commit records what made it (source, report, counts) as JSON in its commit metadata.

Writes are transactional: :meth:`Lake.write` streams record batches into one commit, checks
them against the table's schema first (no silent casts: a value that does not fit fails the
write), and when anything fails before the commit no version is added and the data files it
had started are removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from regressops.config import Settings, get_settings
from regressops.data.storage import (
    delete_files,
    delta_options,
    filesystem,
    is_remote,
    list_files,
    location,
    subfolders,
)
from regressops.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from deltalake import DeltaTable

logger = logging.getLogger(__name__)

ROW_SEQ = "_row_seq"
ROW_HASH = "_row_hash"
TECHNICAL_COLUMNS = (ROW_SEQ, ROW_HASH)
TABLES = ("raw", "clean", "quarantine")
METADATA_KEY = "regressops"
# delta-rs holds a data file's current row group and the file itself in memory while writing:
# capping both keeps a write's memory flat however many rows stream through it.
TARGET_FILE_BYTES = 32 * 1024 * 1024
ROW_GROUP_ROWS = 262_144
WriteMode = Literal["append", "overwrite"]


@dataclass(frozen=True)
class TableVersion:
    """One version of a lake table, from its commit.

    Attributes
    ----------
    table : str
        ``raw``, ``clean`` or ``quarantine``.
    version : int
        Delta version number.
    timestamp : str
        Commit time, ISO 8601 UTC.
    operation : str
        Delta operation (``WRITE``).
    rows_added : int or None
        Rows the commit added.
    info : dict
        What regressops recorded with the commit (source, report, counts).
    """

    table: str
    version: int
    timestamp: str
    operation: str
    rows_added: int | None
    info: dict[str, Any] = field(default_factory=dict)


class Lake:
    """The Delta tables of every dataset under one root folder.

    Parameters
    ----------
    root : path-like
        The lake folder (``settings.lake_dir``), or an object-storage URI (``s3://bucket/lake``,
        ``[data] lake_uri``).
    storage_options : mapping, optional
        Object-storage options (endpoint, region) of a remote root.
    """

    def __init__(self, root: Path | str, storage_options: Mapping[str, str] | None = None) -> None:
        self.root = location(root)
        self.remote = is_remote(self.root)
        self.storage_options = dict(storage_options or {})
        self._pinned: dict[str, dict[str, int | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Lake:
        """The lake at ``settings.data.lake_uri``, or under ``settings.lake_dir``."""
        settings = settings or get_settings()
        root = settings.data.lake_uri or settings.lake_dir
        return cls(root, settings.data.storage_options)

    def path(self, dataset: str, table: str) -> Path:
        """Folder of a dataset's table (an :class:`~regressops.data.storage.ObjectPath` URI
        on object storage)."""
        if table not in TABLES:
            raise ValueError(f"unknown lake table {table!r}; expected one of {TABLES}")
        return (self.root / dataset / table).resolve()

    def _delta(self, dataset: str, table: str, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        options = delta_options(self.root, self.storage_options) or None
        return DeltaTable(str(self.path(dataset, table)), version=version, storage_options=options)

    def exists(self, dataset: str, table: str) -> bool:
        """Whether the table has at least one committed version."""
        from deltalake import DeltaTable

        path = self.path(dataset, table)
        if self.remote:
            options = delta_options(self.root, self.storage_options)
            return bool(DeltaTable.is_deltatable(str(path), storage_options=options))
        return path.is_dir() and DeltaTable.is_deltatable(str(path))

    @contextlib.contextmanager
    def lock(self, dataset: str) -> Iterator[None]:
        """Hold the dataset's writer lock: one extract or validate of a dataset at a time.

        Local lake: an exclusive ``flock`` on ``<lake>.locks/<dataset>.lock`` (outside the
        lake, released by the kernel if the process dies); waits for the holder. Without
        ``fcntl`` (Windows) it does nothing.

        Object storage: no lock service. The versions of the dataset's tables are pinned when
        the lock is taken, and every write under it commits against its pinned version with a
        conditional put and no retry: if another writer committed to the table meanwhile, the
        write fails (:class:`DataError`, reason ``concurrent_write``) and its files are
        removed, rather than interleaving with the other run.
        """
        if self.remote:
            self._pinned[dataset] = {t: self.latest_version(dataset, t) for t in TABLES}
            try:
                yield
            finally:
                self._pinned.pop(dataset, None)
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            yield
            return
        folder = self.root.with_name(f"{self.root.name}.locks")
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{dataset}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def datasets(self) -> list[str]:
        """Datasets with at least one table in the lake."""
        names = subfolders(self.root, self.storage_options)
        return [d for d in names if any(self.exists(d, t) for t in TABLES)]

    def latest_version(self, dataset: str, table: str) -> int | None:
        """The table's newest version, or ``None`` when it has none."""
        return self.open(dataset, table).version() if self.exists(dataset, table) else None

    def open(self, dataset: str, table: str, version: int | None = None) -> DeltaTable:
        """Open a table at ``version`` (default: the newest).

        Raises
        ------
        DataError
            The table does not exist or has no such version.
        """
        if not self.exists(dataset, table):
            raise DataError(
                f"the lake has no {table} table for dataset {dataset!r} (under {self.root})",
                reason="not_in_lake",
            )
        table_ = self._delta(dataset, table)
        if version is None:
            return table_
        latest = table_.version()
        if not 0 <= version <= latest:
            raise DataError(
                f"{dataset} {table} has no version {version}; its versions are 0 to {latest}",
                reason="unknown_version",
            )
        return self._delta(dataset, table, version)

    def history(self, dataset: str, table: str) -> list[TableVersion]:
        """Every version of the table, oldest first (empty when the table does not exist)."""
        if not self.exists(dataset, table):
            return []
        out = []
        for entry in self.open(dataset, table).history():
            metrics = entry.get("operationMetrics") or {}
            stamp = dt.datetime.fromtimestamp(entry.get("timestamp", 0) / 1000, tz=dt.UTC)
            raw_info = entry.get(METADATA_KEY)
            out.append(
                TableVersion(
                    table=table,
                    version=int(entry["version"]),
                    timestamp=stamp.isoformat(timespec="seconds"),
                    operation=str(entry.get("operation", "")),
                    rows_added=metrics.get("num_added_rows"),
                    info=json.loads(raw_info) if isinstance(raw_info, str) else {},
                )
            )
        return sorted(out, key=lambda v: v.version)

    def version_info(self, dataset: str, table: str, version: int) -> TableVersion:
        """The commit record of one version (see :meth:`history`)."""
        for entry in self.history(dataset, table):
            if entry.version == version:
                return entry
        self.open(dataset, table, version)  # raises the clear error
        raise DataError(f"{dataset} {table} v{version} has no history", reason="unknown_version")

    def count(self, dataset: str, table: str, version: int | None = None) -> int:
        """Number of rows of a version, from the Delta log's statistics."""
        return int(self.open(dataset, table, version).count())

    def schema(self, dataset: str, table: str) -> pa.Schema | None:
        """The table's Arrow schema, or ``None`` when it does not exist."""
        if not self.exists(dataset, table):
            return None
        return self.open(dataset, table).to_pyarrow_dataset().schema

    def scan(
        self,
        dataset: str,
        table: str,
        version: int | None = None,
        *,
        columns: list[str] | None = None,
        batch_size: int = 100_000,
    ) -> Iterator[pa.RecordBatch]:
        """Stream a version's rows, ``batch_size`` at a time, files ordered by first ``_row_seq``.

        Rows within a file are in the order delta-rs wrote them, which need not be ``_row_seq``
        order; use :meth:`read` for rows in ``_row_seq`` order.

        The version's files are listed now, through delta-rs; the returned iterator reads them
        with pyarrow alone, so it may feed :meth:`write` (delta-rs cannot be re-entered from the
        iterator it is consuming). Tables written by regressops have no partitions and no
        deletion vectors, so their files are the version's rows.
        """
        files = self.files(dataset, table, version)
        return _read_files(files, columns, batch_size, self.storage_options)

    def files(self, dataset: str, table: str, version: int | None = None) -> list[str]:
        """URIs of a version's data files, by first ``_row_seq`` (see :meth:`scan`)."""
        import pyarrow as pa

        delta = self.open(dataset, table, version)
        actions = pa.table(delta.get_add_actions(flatten=True))
        first_seq: dict[str, int] = {}
        if f"min.{ROW_SEQ}" in actions.column_names:
            for path, seq in zip(
                actions.column("path").to_pylist(),
                actions.column(f"min.{ROW_SEQ}").to_pylist(),
                strict=True,
            ):
                first_seq[Path(path).name] = seq if seq is not None else -1
        return sorted(delta.file_uris(), key=lambda f: first_seq.get(Path(f).name, -1))

    def read(
        self,
        dataset: str,
        table: str,
        version: int | None = None,
        *,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Read a whole version as an Arrow table, sorted by ``_row_seq``."""
        delta = self.open(dataset, table, version)
        wanted = columns if columns is None or ROW_SEQ in columns else [*columns, ROW_SEQ]
        data = delta.to_pyarrow_table(columns=wanted)
        if ROW_SEQ in data.column_names:
            data = data.sort_by(ROW_SEQ)
        return data.select(columns) if columns is not None else data

    def write(
        self,
        dataset: str,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        *,
        mode: WriteMode,
        info: dict[str, Any],
    ) -> int:
        """Write ``batches`` as one new version of the table and return its number.

        Parameters
        ----------
        dataset, table : str
            Which table.
        schema : pyarrow.Schema
            The batches' schema; must equal the table's when the table exists.
        batches : iterable of RecordBatch
            Streamed into the commit, so memory holds one batch at a time.
        mode : {"append", "overwrite"}
            Add rows to the current version, or replace them (earlier versions stay readable).
        info : dict
            JSON-able record stored in the commit's metadata.

        Raises
        ------
        DataError
            The schema differs from the table's, or a value cannot be stored in its column.
            Any exception raised while producing the batches is re-raised as it was. In every
            failure no version is added and the files written so far are deleted.
        """
        from deltalake import CommitProperties, WriterProperties, write_deltalake

        path = self.path(dataset, table)
        existed = self.exists(dataset, table)
        if existed:
            _check_same_schema(self.schema(dataset, table), schema, f"{dataset} {table}")
        target, retries = self._write_target(dataset, table, existed)
        before_remote = list_files(path, self.storage_options) if self.remote else set()
        before = set() if self.remote else _files(path)
        failure: list[BaseException] = []

        def conformed() -> Iterator[pa.RecordBatch]:
            try:
                for batch in batches:
                    yield conform(batch, schema)
            except BaseException as exc:
                failure.append(exc)
                raise

        import pyarrow as pa

        reader = pa.RecordBatchReader.from_batches(schema, conformed())
        try:
            write_deltalake(
                target,
                reader,
                mode=mode,
                target_file_size=TARGET_FILE_BYTES,
                writer_properties=WriterProperties(max_row_group_size=ROW_GROUP_ROWS),
                commit_properties=CommitProperties(
                    custom_metadata={METADATA_KEY: json.dumps(info, default=str)},
                    max_commit_retries=retries,
                ),
                storage_options=delta_options(path, self.storage_options) or None
                if isinstance(target, str)
                else None,
            )
        except BaseException as exc:
            if self.remote:
                self._discard_remote(dataset, table, before_remote)
            else:
                _discard(path, existed, before)
            if failure:
                raise failure[0] from None
            if type(exc).__name__ == "CommitFailedError" and dataset in self._pinned:
                raise DataError(
                    f"another writer committed to {dataset} {table} while this run held its "
                    "lock; nothing was written: run again",
                    reason="concurrent_write",
                ) from None
            raise DataError(
                f"cannot write the {table} table of {dataset}: {type(exc).__name__}: "
                f"{_first_line(exc)}",
                reason="lake_write_failed",
            ) from exc
        version = self.open(dataset, table).version()
        if dataset in self._pinned:
            self._pinned[dataset][table] = version
        logger.info("wrote %s %s v%d (%s)", dataset, table, version, mode)
        return version

    def _write_target(self, dataset: str, table: str, existed: bool) -> tuple[Any, int | None]:
        """What a write commits against: the URI, or (object storage, under the lock) the
        pinned version with no commit retry, so a concurrent writer's commit makes it fail."""
        uri = str(self.path(dataset, table))
        pinned = self._pinned.get(dataset)
        if not self.remote or pinned is None:
            return uri, None
        version = pinned.get(table)
        latest = self.latest_version(dataset, table) if existed else None
        if latest != version:
            raise DataError(
                f"another writer committed to {dataset} {table} while this run held its lock "
                f"(v{version} -> v{latest}); nothing was written: run again",
                reason="concurrent_write",
            )
        return (uri if version is None else self._delta(dataset, table, version)), 0

    def _discard_remote(self, dataset: str, table: str, before: set[str]) -> None:
        """Delete the data files a failed write added (never a file a version refers to)."""
        path = self.path(dataset, table)
        added = list_files(path, self.storage_options) - before
        added = {f for f in added if "/_delta_log/" not in f}
        if added and self.exists(dataset, table):
            referenced = {
                uri.split("://", 1)[-1] for uri in self._delta(dataset, table).file_uris()
            }
            added -= referenced
        delete_files(path, self.storage_options, added)


# ---------------------------------------------------------------------- rows and schemas
def _read_files(
    files: list[str],
    columns: list[str] | None,
    batch_size: int,
    storage_options: Mapping[str, str] | None = None,
) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    for uri in files:
        fs, path = filesystem(uri, storage_options or {})
        with pq.ParquetFile(path if fs is None else fs.open_input_file(path)) as parquet:
            yield from parquet.iter_batches(batch_size=batch_size, columns=columns)


def row_hashes(data: pa.RecordBatch | pa.Table) -> np.ndarray:
    """A 64-bit hash of each row's values (technical columns excluded), as int64.

    Equal rows of the same column types hash equal whatever batch they come in: integers and
    booleans are hashed as nullable pandas types so a batch with nulls hashes like one without.
    """
    import pandas as pd

    columns = [c for c in data.schema.names if c not in TECHNICAL_COLUMNS]
    frame = data.select(columns).to_pandas(types_mapper=_hash_dtype)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64).view(np.int64)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Return ``batch`` with ``schema``'s columns and types, casting only without loss.

    Raises
    ------
    DataError
        A column is missing, or a value cannot be represented in its column's type.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if batch.schema.equals(schema):
        return batch
    missing = [n for n in schema.names if n not in batch.schema.names]
    if missing:
        raise DataError(f"batch lacks column(s) {missing}", reason="schema_mismatch")
    arrays = []
    for target in schema:
        column = batch.column(target.name)
        if column.type.equals(target.type):
            arrays.append(column)
            continue
        try:
            arrays.append(pc.cast(column, target.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise DataError(
                f"column {target.name!r} holds {column.type} values that cannot be stored as "
                f"{target.type} (the lake's type for it) without loss",
                reason="uncoercible_type",
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def delta_kind(type_: pa.DataType) -> str:
    """The Delta type an Arrow type is stored as (``string`` for every string flavour)."""
    import pyarrow as pa

    checks = (
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_integer, "long"),
        (pa.types.is_floating, "double"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
    )
    return next((name for check, name in checks if check(type_)), str(type_))


def _check_same_schema(existing: pa.Schema | None, new: pa.Schema, what: str) -> None:
    if existing is None:
        return
    old = {f.name: delta_kind(f.type) for f in existing}
    now = {f.name: delta_kind(f.type) for f in new}
    if old == now:
        return
    added = sorted(set(now) - set(old))
    dropped = sorted(set(old) - set(now))
    changed = sorted(f"{n}: {old[n]} -> {now[n]}" for n in set(old) & set(now) if old[n] != now[n])
    parts = [
        f"new columns {added}" if added else "",
        f"missing columns {dropped}" if dropped else "",
        f"changed types {changed}" if changed else "",
    ]
    raise DataError(
        f"the data does not match the schema of {what} ({'; '.join(p for p in parts if p)}); "
        "the lake enforces a table's schema: fix the source or start a new dataset",
        reason="schema_mismatch",
    )


def _hash_dtype(type_: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_integer(type_):
        return pd.Int64Dtype()
    if pa.types.is_boolean(type_):
        return pd.BooleanDtype()
    return None


def _files(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()} if path.is_dir() else set()


def _discard(path: Path, existed: bool, before: set[Path]) -> None:
    """Remove what a failed write left: the new table folder, or the files it added."""
    import shutil

    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    log_dir = path / "_delta_log"
    for leftover in _files(path) - before:
        if log_dir not in leftover.parents:
            leftover.unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
