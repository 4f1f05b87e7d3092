"""The checks of one validation run: declared up front, run chunk by chunk.

:func:`declare_checks` registers every check of a contract in the report (so checks that pass
are reported too) and checks the row count; :func:`check_batch` coerces one chunk of raw rows
(:mod:`regressops.data.coerce`), runs the contract's pandera schema and the user's extra schema
lazily, records each failure in the report and returns the reasons of every failing row.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.data.coerce import batch_to_frame, coerce, coerce_label
from regressops.data.lake import ROW_HASH, ROW_SEQ
from regressops.data.reports import ReportBuilder, plain
from regressops.data.schemas import DatasetContract

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa_
    import pyarrow as pa


def declare_checks(
    builder: ReportBuilder,
    contract: DatasetContract,
    extra: pa_.DataFrameSchema | None,
    total: int,
) -> None:
    """Register every check so passing ones are reported too; check the row count."""
    for rule in contract.columns:
        builder.declare(rule.name, coerce_label(rule.pandas_dtype))
        if not rule.nullable:
            builder.declare(rule.name, "not_nullable")
        for check in rule.checks():
            builder.declare(rule.name, _label(check))
    for name in contract.unique_columns():
        builder.declare(name, "field_uniqueness")
    if extra is not None:
        for name, column in extra.columns.items():
            if column.dtype is not None:
                builder.declare(name, f"dtype('{column.dtype}')", level="schema")
            if not column.nullable:
                builder.declare(name, "not_nullable")
            for check in column.checks:
                builder.declare(name, _label(check))
        for check in extra.checks:
            builder.declare(None, _label(check), level="dataset")
    label = f"row_count_in_range({contract.min_rows}, {contract.max_rows})"
    builder.declare(None, label, level="dataset")
    high = contract.max_rows if contract.max_rows is not None else float("inf")
    if not contract.min_rows <= total <= high:
        builder.fail(None, label, level="dataset", value=total)


def check_batch(
    batch: pa.RecordBatch,
    contract: DatasetContract,
    extra: pa_.DataFrameSchema | None,
    builder: ReportBuilder,
) -> dict[int, list[str]]:
    """Coerce and check one chunk; return the reasons of each failing row."""
    frame = batch_to_frame(batch.drop_columns([ROW_HASH]), ROW_SEQ)
    coerced, failures = coerce(frame, contract)
    reasons: dict[int, list[str]] = defaultdict(list)
    unreadable: dict[str, set[int]] = {}
    for name, values in failures.items():
        label = coerce_label(contract.column(name).pandas_dtype)  # type: ignore[union-attr]
        unreadable[name] = set(values.index.tolist())
        for seq, value in zip(values.index.tolist(), values.tolist(), strict=True):
            builder.fail(name, label, row=seq, value=value)
            reasons[seq].append(_reason(name, label, value))
    run_pandera(contract.pandera_schema(), coerced, builder, reasons, unreadable)
    if extra is not None:
        others = frame.drop(columns=list(coerced.columns), errors="ignore")
        run_pandera(extra, coerced.join(others), builder, reasons, unreadable)
    return dict(reasons)


def run_pandera(
    schema: pa_.DataFrameSchema,
    frame: pd.DataFrame,
    builder: ReportBuilder,
    reasons: dict[int, list[str]],
    unreadable: dict[str, set[int]],
) -> None:
    import pandera.pandas as pa_
    from pandera.errors import SchemaErrorReason

    try:
        schema.validate(frame, lazy=True)
    except pa_.errors.SchemaErrors as exc:
        crashed = {
            (e.schema.name if isinstance(e.schema, pa_.Column) else None, _label(e.check))
            for e in exc.schema_errors
            if e.reason_code == SchemaErrorReason.CHECK_ERROR
        }
        seen: set[tuple[str, int]] = set()
        cases = exc.failure_cases
        for context, column, check, value, index in zip(
            cases["schema_context"],
            cases["column"],
            cases["check"],
            cases["failure_case"],
            cases["index"],
            strict=True,
        ):
            column = None if context == "DataFrameSchema" else column
            if (column, check) in crashed:
                builder.error(column, check, str(value))
            elif index is None or (isinstance(index, float) and np.isnan(index)):
                level = "dataset" if column is None else "schema"
                builder.fail(column, check, level=level, value=value)
            else:
                seq = int(index)
                if check == "not_nullable" and seq in unreadable.get(column or "", ()):
                    continue  # already reported as unreadable
                if column is None and (check, seq) in seen:
                    continue  # a row-wise table check is listed once per column
                seen.add((check, seq))
                builder.fail(column, check, row=seq, value=value)
                reasons[seq].append(_reason(column, check, value))


def _reason(column: str | None, check: str, value: Any) -> str:
    return f"{column or '*'}: {check} (got {json.dumps(plain(value))})"[:160]


def _label(check: Any) -> str:
    return str(getattr(check, "error", None) or getattr(check, "name", None) or check)
