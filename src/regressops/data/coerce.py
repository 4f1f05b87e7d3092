"""Coerce raw columns to their contract types, reporting the values that cannot be read.

Raw tables keep what the source held (numbers stored as text stay text). Validation first
coerces each column to its contract type: text is parsed (``" 27.9"`` → 27.9), integers must be
whole, booleans accept ``true/false/yes/no/1/0``. A value that cannot be read becomes missing
and is reported as a failure of the column's ``coerce_dtype`` check, so one bad cell fails its
row (which can be quarantined) rather than the whole run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from regressops.data.schemas import DatasetContract

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def coerce_label(dtype: str) -> str:
    """The report label of a column's coercion check, as pandera names it."""
    return f"coerce_dtype('{dtype}')"


def batch_to_frame(batch: pa.RecordBatch | pa.Table, index: str) -> pd.DataFrame:
    """A record batch as a DataFrame indexed by column ``index`` (ints and bools nullable)."""
    import pandas as pd

    seqs = batch.column(index).to_numpy()
    rest = batch.drop_columns([index])
    frame = rest.to_pandas(types_mapper=_nullable)
    frame.index = pd.Index(seqs, name=index)
    return frame


def coerce(
    frame: pd.DataFrame, contract: DatasetContract
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Coerce the contract's columns of ``frame`` to their types.

    Returns
    -------
    coerced : DataFrame
        The contract's columns, in order, with their pandas dtypes (same index).
    failures : dict
        Per column, the original values that could not be read (indexed like ``frame``).
    """
    import pandas as pd

    out: dict[str, pd.Series] = {}
    failures: dict[str, pd.Series] = {}
    for rule in contract.columns:
        original = frame[rule.name]
        converted = _coerce(original, rule.dtype)
        bad = converted.isna().to_numpy(dtype=bool) & original.notna().to_numpy(dtype=bool)
        if bad.any():
            failures[rule.name] = original[bad]
        out[rule.name] = converted
    return pd.DataFrame(out, index=frame.index), failures


def _coerce(series: pd.Series, dtype: str) -> pd.Series:
    import pandas as pd

    kind = _kind(series)
    if dtype == "int" and pd.api.types.is_integer_dtype(series.dtype):
        return series.astype("Int64")
    if dtype in ("float", "int"):
        if kind == "number":
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        elif kind == "bool":
            values = series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            text = series.map(lambda v: v.strip() if isinstance(v, str) else v)
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        if dtype == "float":
            return pd.Series(values, index=series.index, dtype="float64")
        whole = np.isfinite(values) & (values == np.round(values))
        ints = pd.array(np.where(whole, values, 0).astype(np.int64), dtype="Int64")
        ints[~whole] = pd.NA
        return pd.Series(ints, index=series.index)
    if dtype == "str":
        if kind == "text":
            return series.astype("str")
        return series.map(lambda v: None if _missing(v) else str(v)).astype("str")
    if dtype == "bool":
        if kind == "bool":
            return series.astype("boolean")
        mapped = series.map(_to_bool)
        return mapped.astype("boolean")
    if dtype == "datetime":
        converted = pd.to_datetime(series, errors="coerce", utc=True)
        return converted.dt.as_unit("us")
    raise ValueError(f"unknown contract dtype {dtype!r}")


def _kind(series: pd.Series) -> str:
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "text"
    return "other"


def _to_bool(value: object) -> object:
    if _missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _nullable(type_: pa.DataType) -> object:
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_integer(type_):
        return pd.Int64Dtype()
    if pa.types.is_boolean(type_):
        return pd.BooleanDtype()
    return None
