"""Partitioned inputs: Parquet files or folders, a lake table's Delta version, CSV files.

An input is listed once, on the client, into :class:`Partition` objects: small, picklable
descriptions of which rows a task reads (a Parquet file's run of row groups of about
``partition_rows`` rows, or a whole CSV file). Workers read their partition themselves with
pyarrow, so no data passes through the client, and a worker holds one partition at a time.

A partition is checked against the columns the work needs when it is read: a missing column or
a column whose kind (number, text, boolean) differs from the other partitions' is a
:class:`~regressops.errors.SchemaError` naming the file, not a silent cast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from regressops.data.storage import filesystem
from regressops.errors import DataError, SchemaError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

logger = logging.getLogger(__name__)

Format = Literal["parquet", "csv"]
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class Partition:
    """One task's share of an input.

    Attributes
    ----------
    uri : str
        File path or object-storage URI.
    fmt : {"parquet", "csv"}
        File format.
    row_groups : tuple of int or None
        Parquet row groups of this partition (``None``: the whole file).
    index : int
        Position in the input's listing (the order of rows across partitions).
    rows : int or None
        Rows, when the file's metadata says (Parquet).
    file_index : int
        Position of the partition's file in the input's sorted listing.
    first_row : int
        Row number, within its file, of the partition's first row. A row is identified by
        ``(file_index, first_row + position)`` whatever the partition size (the train/test
        split hashes it).
    storage_options : dict
        Object-storage options for ``s3://`` URIs.
    """

    uri: str
    fmt: Format
    row_groups: tuple[int, ...] | None = None
    index: int = 0
    rows: int | None = None
    file_index: int = 0
    first_row: int = 0
    storage_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short readable name for messages."""
        groups = "" if self.row_groups is None else f" row groups {self.row_groups[0]}-"
        groups += "" if self.row_groups is None else f"{self.row_groups[-1]}"
        return f"partition {self.index} ({Path(self.uri).name}{groups})"


@dataclass(frozen=True)
class Input:
    """A listed input: its partitions and a description for lineage."""

    partitions: tuple[Partition, ...]
    lineage: dict[str, Any]


def list_files(
    path: str | Path, *, partition_rows: int, storage_options: Mapping[str, str] | None = None
) -> Input:
    """List a Parquet or CSV file, or a folder of them, into partitions.

    Parameters
    ----------
    path : path-like
        A ``.parquet``/``.csv`` file, or a folder holding such files (searched recursively,
        taken in sorted path order; hidden files and ``_``-prefixed ones are skipped).
    partition_rows : int
        Target rows per Parquet partition (whole row groups).
    storage_options : mapping, optional
        Passed on to object-storage reads.

    Raises
    ------
    DataError
        The path does not exist, holds no Parquet or CSV file, or mixes the two.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES
            and not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
        )
    elif root.is_file():
        files = [root]
    else:
        raise DataError(f"input {path} does not exist", reason="not_found")
    kinds = {_format(p) for p in files}
    if not files or None in kinds:
        raise DataError(
            f"input {path} holds no Parquet (.parquet) or CSV (.csv) file", reason="no_input"
        )
    if len(kinds) > 1:
        raise DataError(f"input {path} mixes Parquet and CSV files", reason="mixed_input")
    uris = [str(p.resolve()) for p in files]
    parts = _partitions(uris, kinds.pop() or "parquet", partition_rows, storage_options or {})
    return Input(parts, {"source": "files", "path": str(root.resolve()), "files": len(files)})


def list_delta(
    uris: Sequence[str], *, partition_rows: int, storage_options: Mapping[str, str] | None = None
) -> tuple[Partition, ...]:
    """Partitions of a Delta version's data files (in the order the lake lists them)."""
    return _partitions(list(uris), "parquet", partition_rows, storage_options or {})


def _format(path: Path) -> Format | None:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return "csv" if suffix in CSV_SUFFIXES else None


def _partitions(
    uris: list[str], fmt: Format, partition_rows: int, storage_options: Mapping[str, str]
) -> tuple[Partition, ...]:
    out: list[Partition] = []
    options = dict(storage_options)
    for file_index, uri in enumerate(uris):
        if fmt == "csv":
            out.append(Partition(uri, "csv", None, len(out), None, file_index, 0, options))
            continue
        meta = _parquet_file(uri, storage_options).metadata
        run: list[int] = []
        rows = first = 0
        for g in range(meta.num_row_groups):
            run.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= partition_rows:
                out.append(
                    Partition(uri, fmt, tuple(run), len(out), rows, file_index, first, options)
                )
                run, first, rows = [], first + rows, 0
        if run or meta.num_row_groups == 0:
            out.append(Partition(uri, fmt, (*run,), len(out), rows, file_index, first, options))
    return tuple(out)


def _parquet_file(uri: str, storage_options: Mapping[str, str]) -> Any:
    import pyarrow.parquet as pq

    fs, path = filesystem(uri, storage_options)
    try:
        return pq.ParquetFile(path if fs is None else fs.open_input_file(path))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read {uri} as Parquet: {_first_line(exc)}", reason="unreadable_file"
        ) from None


def read_partition(part: Partition, columns: Sequence[str] | None) -> pd.DataFrame:
    """Read a partition's ``columns`` (``None``: all) as a DataFrame.

    Raises
    ------
    SchemaError
        The partition lacks one of ``columns``.
    DataError
        The file cannot be read.
    """
    if columns is None:
        return _read_arrow(part, None).to_pandas()
    return read_table(part, columns).select(list(columns)).to_pandas()


def _with_columns(part: Partition, table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``table``, after checking it has every one of ``columns``."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise SchemaError(
            f"{part.label} of the input lacks column(s) {missing}; every partition needs the "
            "same columns",
            reason="partition_schema",
        )
    return table


def _read_arrow(part: Partition, columns: Sequence[str] | None) -> pa.Table:
    import pyarrow as pa

    try:
        if part.fmt == "csv":
            from pyarrow import csv

            fs, path = filesystem(part.uri, part.storage_options)
            source = path if fs is None else fs.open_input_stream(path)
            return csv.read_csv(source)
        parquet = _parquet_file(part.uri, part.storage_options)
        names = parquet.schema_arrow.names
        present = names if columns is None else [c for c in columns if c in names]
        if part.row_groups is None:
            return parquet.read(columns=present)
        return parquet.read_row_groups(list(part.row_groups), columns=present)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(
            f"cannot read {part.label} ({part.uri}): {_first_line(exc)}", reason="unreadable_file"
        ) from None


def read_table(part: Partition, columns: Sequence[str]) -> pa.Table:
    """Read a partition's ``columns`` as an Arrow table (checked to hold every one of them).

    Raises
    ------
    SchemaError
        The partition lacks one of ``columns``.
    DataError
        The file cannot be read.
    """
    return _with_columns(part, _read_arrow(part, columns), columns)


def read_columns(part: Partition, columns: Sequence[str]) -> Columns:
    """Read a partition's ``columns`` as numpy arrays, without a DataFrame in between.

    Floating-point numbers (and integers with a missing value) become float64 with NaN for a
    missing value, integers int64, text and booleans object arrays with None for a missing
    value: what pandas would hold, as :meth:`FeatureSpec.transform` takes it.

    Raises
    ------
    SchemaError
        The partition lacks one of ``columns``.
    DataError
        The file cannot be read.
    """
    return table_columns(read_table(part, columns), columns)


def table_columns(table: pa.Table, columns: Sequence[str]) -> Columns:
    """A table's ``columns`` as numpy arrays (see :func:`read_columns`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for name in columns:
        column = table.column(name)
        # as pandas reads them: integers stay integers unless a value is missing
        floating = pa.types.is_integer(column.type) and column.null_count > 0
        if floating or pa.types.is_floating(column.type):
            column = pc.cast(column, pa.float64())
        out[name] = column.to_numpy(zero_copy_only=False)
    return Columns(out, column_kinds(table, columns))


def table_matrix(table: pa.Table, columns: Sequence[str]) -> NDArray[np.float64] | None:
    """A table's ``columns`` as one float64 matrix (Fortran order, a column per name), or None.

    None when a column is not an integer or floating-point column, or holds a null: the
    caller then takes the general path (:func:`table_columns`). Each Arrow chunk is copied
    once, straight into its place in the matrix. NaN and infinities are kept as they are.
    """
    import pyarrow as pa

    out = np.empty((table.num_rows, len(columns)), dtype=np.float64, order="F")
    for j, name in enumerate(columns):
        column = table.column(name)
        kind = column.type
        if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None
        start = 0
        for chunk in column.chunks:
            values = chunk.to_numpy(zero_copy_only=False)
            out[start : start + len(values), j] = values
            start += len(values)
    return out


class Columns(dict[str, Any]):
    """A partition's columns (name to numpy array) and each one's kind (:func:`column_kinds`)."""

    def __init__(self, data: dict[str, Any], kinds: dict[str, str]) -> None:
        super().__init__(data)
        self.kinds = kinds

    def __len__(self) -> int:  # rows, like a DataFrame
        return len(next(iter(self.values()))) if dict.__len__(self) else 0

    def take(self, mask: Any) -> Columns:
        """The rows where ``mask`` is true."""
        return Columns({k: v[mask] for k, v in self.items()}, self.kinds)


def column_kinds(table: pa.Table, columns: Sequence[str]) -> dict[str, str]:
    """Each column's kind: ``number``, ``text``, ``bool`` or ``null`` (no value at all)."""
    import pyarrow as pa

    kinds = {}
    for name in columns:
        column = table.column(name)
        if column.null_count == len(column) or pa.types.is_null(column.type):
            kinds[name] = "null"
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            kinds[name] = "number"
        elif pa.types.is_boolean(column.type):
            kinds[name] = "bool"
        else:
            kinds[name] = "text"
    return kinds


def check_same_kinds(
    first: Mapping[str, str], first_label: str, other: Mapping[str, str], other_label: str
) -> dict[str, str]:
    """Combine two partitions' column kinds; raise when a column's kind differs.

    ``null`` (a column with no value in that partition) agrees with every kind.
    """
    out = dict(first)
    for name, kind in other.items():
        mine = out.get(name, "null")
        if kind == "null" or mine == kind:
            continue
        if mine == "null":
            out[name] = kind
            continue
        raise SchemaError(
            f"column {name!r} holds {kind} values in {other_label} but {mine} values in "
            f"{first_label}; every partition needs the same schema",
            reason="partition_schema",
        )
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
