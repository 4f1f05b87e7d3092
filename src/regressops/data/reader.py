"""Read a table or a SELECT from a SQL database as typed Arrow record batches, in chunks.

:func:`open_read` runs the statement with a streaming cursor (a server-side cursor on
PostgreSQL) and converts each chunk of ``chunk_size`` rows to one
:class:`pyarrow.RecordBatch`, so memory holds one chunk however large the result. Column types
come, in order of preference, from the lake's raw table (so a new extract matches it), from the
table's declared SQL types, from the values of the first chunk (queries), or from the dataset's
contract. A value that cannot be stored as its column's type stops the read with one clear line.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from regressops.data.source import split_table_name
from regressops.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import Connection
    from sqlalchemy.types import TypeEngine

_EXAMPLE_CHARS = 40


@dataclass
class SourceRead:
    """An open read of a table or query.

    Attributes
    ----------
    schema : pyarrow.Schema
        Names and types of the result's columns.
    batches : iterator of RecordBatch
        The rows, ``chunk_size`` at a time (the first chunk is already fetched).
    what : str
        ``table NAME`` or ``query``, for messages.
    """

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    what: str


def open_read(
    conn: Connection,
    *,
    table: str | None,
    query: str | None,
    params: Mapping[str, Any] | None,
    chunk_size: int,
    hints: Mapping[str, pa.DataType] | None = None,
    defaults: Mapping[str, pa.DataType] | None = None,
) -> SourceRead:
    """Start reading ``table`` or ``query`` (exactly one) through ``conn``.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        An open (read-only) connection.
    table : str or None
        ``TABLE`` or ``SCHEMA.TABLE``; reflected, so a name that does not exist is reported.
    query : str or None
        A checked SELECT; ``:name`` parameters are bound from ``params``.
    params : mapping or None
        Values of the query's parameters.
    chunk_size : int
        Rows per batch.
    hints : mapping or None
        Arrow type per column that wins over the source's (the lake's raw schema).
    defaults : mapping or None
        Arrow type per column when the source tells none (a query column that is all null in
        the first chunk): the contract's types.

    Raises
    ------
    DataError
        The table does not exist; a value cannot be stored as its column's type.
    ConfigError
        A query parameter has no value, or a value names no parameter.
    """
    from sqlalchemy import MetaData, Table, inspect, select, text
    from sqlalchemy.exc import NoSuchTableError

    declared: dict[str, pa.DataType | None] = {}
    if table is not None:
        schema_name, name = split_table_name(table)
        try:
            reflected = Table(name, MetaData(), schema=schema_name, autoload_with=conn)
        except NoSuchTableError:
            available = sorted(inspect(conn).get_table_names(schema=schema_name))
            raise DataError(
                f"table {table!r} not found in the source; it has {available or 'no tables'}",
                reason="missing_table",
            ) from None
        declared = {c.name: _arrow_type_of(c.type) for c in reflected.columns}
        statement: Any = select(reflected)
        what = f"table {table}"
    else:
        assert query is not None
        statement = _bind(text(query), params or {})
        what = "query"
    result = conn.execution_options(stream_results=True, max_row_buffer=chunk_size).execute(
        statement
    )
    names = [str(k) for k in result.keys()]  # noqa: SIM118 - a Result, not a dict
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"the {what} returns column(s) {dupes} twice", reason="duplicate_column")
    chunks = result.partitions(chunk_size)
    first = next(chunks, None)
    first_rows = list(first) if first is not None else []
    schema = _schema(names, first_rows, declared, hints or {}, defaults or {}, what)
    return SourceRead(schema=schema, batches=_batches(first_rows, chunks, schema, what), what=what)


def arrow_type_for(dtype: str) -> pa.DataType:
    """The Arrow type a contract dtype (``int``, ``float``, ...) is stored as."""
    import pyarrow as pa

    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }[dtype]


# ---------------------------------------------------------------------- helpers
def _bind(statement: Any, params: Mapping[str, Any]) -> Any:
    wanted = set(statement._bindparams)
    missing = sorted(wanted - set(params))
    if missing:
        raise ConfigError(
            f"the query's parameter(s) {[':' + m for m in missing]} have no value; pass "
            f"--param {missing[0]}=VALUE",
            reason="missing_parameter",
        )
    unused = sorted(set(params) - wanted)
    if unused:
        raise ConfigError(
            f"--param {unused[0]} names no parameter of the query (it uses "
            f"{sorted(':' + w for w in wanted) or 'none'})",
            reason="unknown_parameter",
        )
    return statement.bindparams(**{k: params[k] for k in wanted}) if wanted else statement


def _schema(
    names: list[str],
    rows: list[Any],
    declared: Mapping[str, pa.DataType | None],
    hints: Mapping[str, pa.DataType],
    defaults: Mapping[str, pa.DataType],
    what: str,
) -> pa.Schema:
    import pyarrow as pa

    fields = []
    for j, name in enumerate(names):
        type_ = hints.get(name) or declared.get(name) or _infer(rows, j, name, what)
        fields.append(pa.field(name, type_ or defaults.get(name) or pa.string()))
    return pa.schema(fields)


def _arrow_type_of(sql_type: TypeEngine[Any]) -> pa.DataType | None:
    import pyarrow as pa

    try:
        python_type = sql_type.python_type
    except NotImplementedError:
        return None
    mapping: list[tuple[type, pa.DataType]] = [
        (bool, pa.bool_()),
        (int, pa.int64()),
        (float, pa.float64()),
        (decimal.Decimal, pa.float64()),
        (str, pa.string()),
        (dt.datetime, pa.timestamp("us", tz="UTC")),
        (dt.date, pa.date32()),
        (bytes, pa.binary()),
    ]
    return next((t for py, t in mapping if python_type is py), None)


def _infer(rows: list[Any], j: int, name: str, what: str) -> pa.DataType | None:
    """The type of column ``j`` from the Python values of the first chunk."""
    import pyarrow as pa

    kinds = {type(r[j]) for r in rows if r[j] is not None}
    if not kinds:
        return None
    numeric = {int, float, decimal.Decimal}
    if kinds <= {bool}:
        return pa.bool_()
    if kinds <= {int}:
        return pa.int64()
    if kinds <= numeric:
        return pa.float64()
    if kinds <= {str}:
        return pa.string()
    if kinds <= {dt.datetime}:
        return pa.timestamp("us", tz="UTC")
    if kinds <= {dt.date}:
        return pa.date32()
    if kinds <= {bytes, bytearray, memoryview}:
        return pa.binary()
    present = [r[j] for r in rows if r[j] is not None]
    example = next((v for v in present if isinstance(v, str)), present[0])
    raise DataError(
        f"column {name!r} of the {what} mixes {sorted(k.__name__ for k in kinds)} values (e.g. "
        f"{_example(example)}); cast it to one type in the query, e.g. CAST({name} AS TEXT)",
        reason="uncoercible_type",
    )


def _batches(
    first: list[Any], chunks: Iterator[Any], schema: pa.Schema, what: str
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    offset = 0
    rows: list[Any] | None = first
    while rows:
        arrays = [
            _column(list(map(itemgetter(j), rows)), f.type, f.name, offset, what)
            for j, f in enumerate(schema)
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        offset += len(rows)
        nxt = next(chunks, None)
        rows = list(nxt) if nxt is not None else None


def _column(values: list[Any], type_: pa.DataType, name: str, offset: int, what: str) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        pass
    convert = _converter(type_)
    out = []
    for i, value in enumerate(values):
        try:
            out.append(None if value is None else convert(value))
        except (TypeError, ValueError, ArithmeticError):
            raise DataError(
                f"column {name!r} of the {what} holds {_example(value)} (row {offset + i + 1}), "
                f"which cannot be stored as {type_}, the column's type; fix the source or cast "
                f"it in a query, e.g. CAST({name} AS TEXT)",
                reason="uncoercible_type",
            ) from None
    try:
        return pa.array(out, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise DataError(
            f"column {name!r} of the {what} cannot be stored as {type_}: {exc}",
            reason="uncoercible_type",
        ) from None


def _converter(type_: pa.DataType) -> Callable[[Any], Any]:
    import pyarrow as pa

    def to_float(v: Any) -> float:
        if isinstance(v, str | bytes | bool):
            raise TypeError(v)
        return float(v)

    def to_int(v: Any) -> int:
        if isinstance(v, str | bytes | bool):
            raise TypeError(v)
        if isinstance(v, float | decimal.Decimal) and v != int(v):
            raise ValueError(v)
        return int(v)

    def to_bool(v: Any) -> bool:
        if isinstance(v, bool) or v in (0, 1):
            return bool(v)
        raise ValueError(v)

    def strict(v: Any) -> Any:
        raise TypeError(v)

    if pa.types.is_floating(type_):
        return to_float
    if pa.types.is_integer(type_):
        return to_int
    if pa.types.is_boolean(type_):
        return to_bool
    return strict


def _example(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "..."
