"""What the lake holds: datasets, their tables' versions, row counts and validation summaries.

:func:`describe` is the library behind ``regressops data show``: without a dataset it lists the
datasets in the lake; with one, every version of its raw, clean and quarantine tables (time,
rows, what made it); with a clean version number too, that version's lineage (raw version,
source, report) and its validation report's checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.config import Settings, get_settings
from regressops.data.declarations import check_dataset_name
from regressops.data.lake import TABLES, TECHNICAL_COLUMNS, Lake, TableVersion
from regressops.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

MAX_VERSIONS = 50


def describe(
    dataset: str | None = None, *, version: int | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Describe the lake, one dataset, or one clean version of it.

    Parameters
    ----------
    dataset : str, optional
        A dataset; without it, the datasets in the lake are listed.
    version : int, optional
        A clean version of ``dataset`` to describe in detail.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.

    Returns
    -------
    dict
        ``{"lake": ..., "datasets": [...]}``, or ``{"dataset", "lake", "tables": {table:
        [versions]}, "detail": {...} or None}``.

    Raises
    ------
    DataError
        The dataset has nothing in the lake, or the clean version does not exist.
    """
    settings = settings or get_settings()
    lake = Lake.from_settings(settings)
    if dataset is None:
        return {
            "lake": str(lake.root.resolve()),
            "datasets": [_overview(lake, d) for d in lake.datasets()],
        }
    check_dataset_name(dataset)
    if not any(lake.exists(dataset, t) for t in TABLES):
        raise DataError(
            f"dataset {dataset!r} has nothing in the lake ({lake.root}); run 'regressops "
            f"extract --dataset {dataset}' first",
            reason="not_in_lake",
        )
    tables = {t: _versions(lake, dataset, t) for t in TABLES}
    detail = _detail(lake, dataset, version) if version is not None else None
    return {
        "dataset": dataset,
        "lake": str((lake.root / dataset).resolve()),
        "tables": tables,
        "detail": detail,
    }


def clean_lineage(lake: Lake, dataset: str, version: int | None = None) -> dict[str, Any]:
    """Where a clean version came from: its raw version, the extract and the report.

    Returns a JSON-able dict with ``clean_version``, ``raw_version``, ``validated_at``,
    ``validation_report``, ``validation_status``, ``on_fail``, the row counts (``raw_rows``,
    ``clean_rows``, ``quarantined_rows``), and the extract of the raw version: ``source_url``
    (without credentials), ``source_table`` or ``source_query`` (and ``source_params``),
    ``extracted_at``.
    """
    delta = lake.open(dataset, "clean", version)
    clean = lake.version_info(dataset, "clean", delta.version())
    info = clean.info
    raw_version = info.get("raw_version")
    rows = info.get("rows") or {}
    out: dict[str, Any] = {
        "clean_version": clean.version,
        "clean_table": str(lake.path(dataset, "clean")),
        "validated_at": clean.timestamp,
        "raw_version": raw_version,
        "raw_table": str(lake.path(dataset, "raw")),
        "validation_report": info.get("report"),
        "validation_status": info.get("status"),
        "on_fail": info.get("on_fail"),
        "raw_rows": rows.get("total"),
        "clean_rows": int(delta.count()),
        "quarantined_rows": rows.get("quarantined"),
        "quarantine_version": info.get("quarantine_version"),
    }
    if isinstance(raw_version, int):
        extract = _last_extract(lake, dataset, raw_version)
        out.update(
            {
                "source_url": extract.get("source"),
                "source_table": extract.get("table"),
                "source_query": extract.get("query"),
                "source_params": extract.get("params") or {},
                "extracted_at": extract.get("extracted_at"),
            }
        )
    return out


def has_clean(dataset: str, settings: Settings | None = None) -> bool:
    """Whether ``dataset`` has a clean version in the lake (a safe name is required)."""
    check_dataset_name(dataset)
    return Lake.from_settings(settings).exists(dataset, "clean")


def read_clean(
    dataset: str, version: int | None = None, *, settings: Settings | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a clean version (default: the newest) and its lineage.

    Returns
    -------
    frame : DataFrame
        The contract's columns, rows in ``_row_seq`` order (the same for every read of the
        version), technical columns dropped.
    lineage : dict
        See :func:`clean_lineage`.

    Raises
    ------
    DataError
        No clean table, or no such version.
    """
    lake = Lake.from_settings(settings)
    if not lake.exists(dataset, "clean"):
        raise DataError(
            f"dataset {dataset!r} has no clean version in the lake; run 'regressops extract "
            f"--dataset {dataset}' then 'regressops validate --dataset {dataset}'",
            reason="not_validated",
        )
    exact = lake.open(dataset, "clean", version).version()
    data = lake.read(dataset, "clean", exact)
    frame = data.drop_columns([c for c in TECHNICAL_COLUMNS if c in data.column_names]).to_pandas()
    return frame, clean_lineage(lake, dataset, exact)


# ---------------------------------------------------------------------- helpers
def _overview(lake: Lake, dataset: str) -> dict[str, Any]:
    out: dict[str, Any] = {"dataset": dataset}
    for table in TABLES:
        latest = lake.latest_version(dataset, table)
        out[table] = (
            None if latest is None else {"version": latest, "rows": lake.count(dataset, table)}
        )
    return out


def _versions(lake: Lake, dataset: str, table: str) -> list[dict[str, Any]]:
    history = lake.history(dataset, table)[-MAX_VERSIONS:]
    return [
        {
            "version": v.version,
            "timestamp": v.timestamp,
            "rows": lake.count(dataset, table, v.version),
            "rows_added": v.rows_added,
            "summary": _summary(v),
        }
        for v in history
    ]


def _summary(version: TableVersion) -> str:
    info = version.info
    if info.get("kind") == "extract":
        what = f"table {info['table']}" if info.get("table") else "query"
        return f"extract of {what} from {info.get('source')}"
    if info.get("kind") == "validate":
        rows = info.get("rows") or {}
        return (
            f"raw v{info.get('raw_version')}: {info.get('status')}, "
            f"{rows.get('failed', 0)}/{rows.get('total', 0)} rows failed"
        )
    return version.operation


def _detail(lake: Lake, dataset: str, version: int) -> dict[str, Any]:
    if not lake.exists(dataset, "clean"):
        raise DataError(
            f"dataset {dataset!r} has no clean version yet; run 'regressops validate "
            f"--dataset {dataset}'",
            reason="not_validated",
        )
    detail = clean_lineage(lake, dataset, version)
    report_path = detail.get("validation_report")
    checks: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    if report_path and Path(report_path).is_file():
        report = json.loads(Path(report_path).read_text(encoding="utf-8"))
        checks = report.get("checks", [])
        meta = report.get("meta", {})
    detail["checks"] = checks
    detail["meta"] = meta
    return detail


def _last_extract(lake: Lake, dataset: str, raw_version: int) -> dict[str, Any]:
    """The extract record of ``raw_version`` (the commit that made it)."""
    for entry in reversed(lake.history(dataset, "raw")):
        if entry.version <= raw_version and entry.info.get("kind") == "extract":
            return entry.info
    return {}
