"""Read and write tabular files (CSV, Parquet, JSON) with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from regressops.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

READABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".json", ".jsonl")


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV, Parquet, JSON (list of records) or JSON-lines file into a DataFrame.

    Parameters
    ----------
    path : path-like
        The file; its suffix chooses the reader.

    Returns
    -------
    DataFrame

    Raises
    ------
    DataError
        The file is missing, has an unsupported suffix, cannot be parsed or has no rows.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}", reason="file_not_found")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(p)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        elif suffix == ".json":
            frame = pd.read_json(p, orient="records")
        elif suffix == ".jsonl":
            frame = pd.read_json(p, orient="records", lines=True)
        else:
            raise DataError(
                f"unsupported file type {suffix or '(none)'!r} for {p}; expected one of "
                f"{', '.join(READABLE_SUFFIXES)}",
                reason="unsupported_file",
            )
    except DataError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {p}: {first}", reason="unreadable_file") from None
    if frame.empty:
        raise DataError(f"{p} holds no rows", reason="empty")
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to CSV, Parquet or JSON by the suffix of ``path``, atomically.

    Raises
    ------
    DataError
        The suffix is not supported.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise DataError(
            f"unsupported output type {suffix or '(none)'!r} for {p}; expected one of "
            f"{', '.join(READABLE_SUFFIXES)}",
            reason="unsupported_file",
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        elif suffix in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        elif suffix == ".json":
            frame.to_json(tmp, orient="records")
        else:
            frame.to_json(tmp, orient="records", lines=True)
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
