"""Validate a raw Delta version against its dataset's contract; write clean, quarantine, report.

:func:`validate` streams the raw version chunk by chunk: coerces each column to its contract
type (:mod:`regressops.data.coerce`), runs the contract's pandera schema (and the user's extra
schema, if declared) lazily so that every failure is found, and checks what spans the whole
table (key uniqueness, row-count bounds). It writes a report (JSON + CSV summary, under
``<reports_dir>/validation/``), meta-validates it (:func:`regressops.data.reports.meta_validate`),
then acts on ``on_fail``:

- ``stop``: any failure writes nothing to the lake and raises
  :class:`~regressops.errors.ValidationFailed`;
- ``quarantine``: failing rows go to the quarantine table with their reasons, the rest to a new
  clean version;
- ``warn``: every row goes to the clean version (values that cannot be read become missing),
  and the report records the failures.

Failures of the table as a whole (a missing column, the row count, a failed meta-validation)
stop the run whatever ``on_fail`` says (``warn`` lets table-level checks through).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.data.checks import check_batch, declare_checks
from regressops.data.coerce import batch_to_frame, coerce
from regressops.data.declarations import get_contract
from regressops.data.lake import ROW_HASH, ROW_SEQ, TECHNICAL_COLUMNS, Lake
from regressops.data.reader import arrow_type_for
from regressops.data.reports import ReportBuilder, meta_validate, summarize, write_report
from regressops.data.schemas import DatasetContract
from regressops.data.uniqueness import repeated_keys
from regressops.errors import ConfigError, DataError, ValidationFailed

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

ON_FAIL = ("stop", "quarantine", "warn")
REASONS = "_reasons"
RAW_VERSION = "_raw_version"


@dataclass
class ValidationResult:
    """What :func:`validate` did.

    Attributes
    ----------
    dataset : str
        The dataset.
    raw_version : int
        The raw version validated.
    on_fail : str
        The mode used.
    status : {"passed", "quarantined", "warned"}
        ``passed``: no failure; otherwise what was done with the failing rows.
    rows : dict
        ``total``, ``failed``, ``clean`` and ``quarantined`` row counts.
    clean_version, quarantine_version : int or None
        The versions written.
    report_json, report_csv : Path
        The report files.
    report : dict
        The report itself.
    seconds : float
        Wall time.
    """

    dataset: str
    raw_version: int
    on_fail: str
    status: str
    rows: dict[str, int]
    clean_version: int | None
    quarantine_version: int | None
    report_json: Path
    report_csv: Path
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (the report's checks included)."""
        return {
            **{k: v for k, v in self.__dict__.items() if k != "report"},
            "report_json": str(self.report_json),
            "report_csv": str(self.report_csv),
            "seconds": round(self.seconds, 3),
            "checks": self.report.get("checks", []),
            "meta": self.report.get("meta", {}),
        }


def validate(
    dataset: str,
    *,
    version: int | None = None,
    on_fail: str | None = None,
    chunk_size: int | None = None,
    settings: Settings | None = None,
) -> ValidationResult:
    """Validate raw version ``version`` (default: the newest) of ``dataset``.

    Parameters
    ----------
    dataset : str
        A built-in or declared dataset that has been extracted.
    version : int, optional
        Raw version to validate.
    on_fail : {"stop", "quarantine", "warn"}, optional
        What to do with failing rows; default: the dataset's ``on_fail`` (``stop``).
    chunk_size : int, optional
        Rows validated at a time; default ``settings.data.chunk_size``.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.

    Returns
    -------
    ValidationResult

    Raises
    ------
    ConfigError
        Unknown dataset or mode.
    DataError
        The dataset has no raw version (or not that one).
    ValidationFailed
        Failures that ``on_fail`` does not allow, a column the contract requires is missing,
        or the meta-validation failed. Nothing is written to the lake; the report is.
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    contract = get_contract(dataset, settings)
    mode = on_fail or contract.on_fail
    if mode not in ON_FAIL:
        raise ConfigError(
            f"--on-fail must be one of {', '.join(ON_FAIL)}, got {mode!r}", reason="invalid_on_fail"
        )
    bound = (
        contract.max_failure_rate
        if contract.max_failure_rate is not None
        else settings.data.max_failure_rate
    )
    size = chunk_size or settings.data.chunk_size
    lake = Lake.from_settings(settings)
    if not lake.exists(dataset, "raw"):
        raise DataError(
            f"dataset {dataset!r} has no raw data in the lake; run 'regressops extract "
            f"--dataset {dataset}' first",
            reason="not_extracted",
        )
    with lake.lock(dataset):
        return _validate_locked(
            lake,
            contract,
            version=version,
            mode=mode,
            bound=bound,
            size=size,
            started=started,
            settings=settings,
        )


def _validate_locked(
    lake: Lake,
    contract: DatasetContract,
    *,
    version: int | None,
    mode: str,
    bound: float,
    size: int,
    started: float,
    settings: Settings,
) -> ValidationResult:
    """The validation itself, under the dataset's writer lock."""
    dataset = contract.name
    raw = lake.open(dataset, "raw", version)
    version = raw.version()
    raw_schema = raw.to_pyarrow_dataset().schema
    columns = [n for n in raw_schema.names if n not in TECHNICAL_COLUMNS]
    total = int(raw.count())
    builder = ReportBuilder(dataset, version, mode, columns)
    stamp = dt.datetime.now(dt.UTC)
    report_path = (
        settings.reports_dir
        / "validation"
        / f"{dataset}-raw-v{version}-{stamp.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    )
    base = {"created_at": stamp.isoformat(timespec="seconds"), "max_failure_rate": bound}

    missing = [c for c in contract.column_names if c not in columns]
    if missing:
        for name in missing:
            builder.fail(name, "column_in_dataframe", level="schema", value=name)
        rows = {"total": total, "failed": 0, "clean": 0, "quarantined": 0}
        report = builder.to_dict(**base, status="failed", rows=rows)
        report["meta"] = meta_validate(report, max_failure_rate=bound)
        path, _ = write_report(report, report_path)
        raise ValidationFailed(
            f"raw v{version} of {dataset} lacks column(s) {missing} that its schema requires; "
            f"report: {path}",
            reason="missing_column",
        )

    extra = contract.extra_schema()
    declare_checks(builder, contract, extra, total)
    failing = repeated_keys(lake, dataset, version, contract, builder)
    failed = len(failing)
    cap = int(bound * total) + 1  # beyond it the run fails: stop keeping rows and reasons
    quarantined: list[pa.Table] = []
    for batch in lake.scan(dataset, "raw", version, batch_size=size):
        for seq, found in check_batch(batch, contract, extra, builder).items():
            if seq in failing:
                failing[seq].extend(found)
            else:
                failed += 1
                if len(failing) <= cap:
                    failing[seq] = found
        if mode == "quarantine" and failed <= cap:
            in_batch = {s: failing[s] for s in _seqs(batch) if s in failing}
            if in_batch:
                quarantined.append(_quarantine_rows(batch, in_batch, version))

    rows = {"total": total, "failed": failed, "clean": total, "quarantined": 0}
    if mode == "quarantine":
        rows.update(clean=total - failed, quarantined=failed)
    table_failed = builder.has_failures("dataset") or builder.has_failures("schema")
    if not failed and not table_failed:
        status = "passed"
    else:
        status = {"quarantine": "quarantined", "warn": "warned"}.get(mode, "failed")
    report = builder.to_dict(**base, status=status, rows=rows)
    report["meta"] = meta_validate(report, max_failure_rate=bound)
    why = _blocking(report, mode, failed, table_failed)
    if why:
        report["status"] = "failed"
        report["outcome"] = {"clean_version": None, "quarantine_version": None}
        path, _ = write_report(report, report_path)
        raise ValidationFailed(
            f"validation of {dataset} raw v{version} failed: {why}; nothing was written to "
            f"the lake; report: {path}",
            reason="validation_failed",
        )

    info = {
        "kind": "validate",
        "raw_version": version,
        "report": str(report_path.resolve()),
        "on_fail": mode,
        "rows": rows,
        **summarize(report),
    }
    q_version = None
    if quarantined:
        q_schema = quarantined[0].schema
        q_batches = (b for t in quarantined for b in t.to_batches())
        q_version = lake.write(
            dataset, "quarantine", q_schema, q_batches, mode="overwrite", info=info
        )
    info["quarantine_version"] = q_version
    drop = set(failing) if mode == "quarantine" else set()
    clean_version = lake.write(
        dataset,
        "clean",
        clean_schema(contract),
        _clean_batches(lake.scan(dataset, "raw", version, batch_size=size), contract, drop),
        mode="overwrite",
        info=info,
    )
    report["outcome"] = {"clean_version": clean_version, "quarantine_version": q_version}
    json_path, csv_path = write_report(report, report_path)
    logger.info(
        "validated %s raw v%d: %s, %d of %d rows failed; clean v%d",
        dataset,
        version,
        status,
        failed,
        total,
        clean_version,
    )
    return ValidationResult(
        dataset=dataset,
        raw_version=version,
        on_fail=mode,
        status=status,
        rows=rows,
        clean_version=clean_version,
        quarantine_version=q_version,
        report_json=json_path,
        report_csv=csv_path,
        report=report,
        seconds=time.perf_counter() - started,
    )


def clean_schema(contract: DatasetContract) -> pa.Schema:
    """The clean table's schema: the contract's columns with their types, then ``_row_seq``
    and ``_row_hash``."""
    import pyarrow as pa

    fields = [pa.field(c.name, arrow_type_for(c.dtype)) for c in contract.columns]
    return pa.schema([*fields, pa.field(ROW_SEQ, pa.int64()), pa.field(ROW_HASH, pa.int64())])


def _blocking(report: dict[str, Any], mode: str, failed: int, table_failed: bool) -> str:
    """Why the run must stop, or ``""``."""
    meta = report["meta"]
    if meta["status"] != "passed":
        bad = [m for m in meta["checks"] if m["status"] != "passed"]
        parts = []
        for m in bad:
            if m["name"] == "failure_rate_within_bound":
                parts.append(f"{m['value']:.1%} of rows failed, above the bound {m['bound']:.1%}")
            else:
                parts.append(f"{m['name']}: {m.get('detail', '')}")
        return "meta-validation failed (" + "; ".join(parts) + ")"
    if table_failed and mode != "warn":
        bad = [c for c in report["checks"] if c["level"] != "row" and c["status"] != "passed"]
        return "table check(s) failed: " + ", ".join(f"{c['check']}" for c in bad)
    if failed and mode == "stop":
        bad = [c for c in report["checks"] if c["status"] != "passed"]
        listed = ", ".join(f"{c['column'] or '*'} {c['check']} ({c['failures']})" for c in bad[:4])
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        return f"{failed} of {report['rows']['total']} rows failed {listed}{more}"
    return ""


# ---------------------------------------------------------------------- writing
def _quarantine_rows(
    batch: pa.RecordBatch, reasons: dict[int, list[str]], version: int
) -> pa.Table:
    import pyarrow as pa

    seqs = _seqs(batch)
    mask = np.fromiter((s in reasons for s in seqs), dtype=bool, count=len(seqs))
    rows = pa.Table.from_batches([batch]).filter(pa.array(mask))
    text = ["; ".join(reasons[s]) for s in rows.column(ROW_SEQ).to_pylist()]
    rows = rows.append_column(REASONS, pa.array(text, pa.string()))
    return rows.append_column(RAW_VERSION, pa.array([version] * rows.num_rows, pa.int64()))


def _clean_batches(
    batches: Iterator[pa.RecordBatch], contract: DatasetContract, drop: set[int]
) -> Iterator[pa.RecordBatch]:
    """Coerced rows not in ``drop``; ``batches`` must not touch delta-rs (see Lake.scan)."""
    import pyarrow as pa

    schema = clean_schema(contract)
    dropped = np.fromiter(drop, dtype=np.int64, count=len(drop))
    for batch in batches:
        hashes = batch.column(ROW_HASH).to_numpy()
        frame = batch_to_frame(batch.drop_columns([ROW_HASH]), ROW_SEQ)
        coerced, _ = coerce(frame, contract)
        coerced[ROW_SEQ] = coerced.index.to_numpy()
        coerced[ROW_HASH] = hashes
        if drop:
            keep = ~np.isin(coerced[ROW_SEQ].to_numpy(), dropped)
            coerced = coerced[keep]
        if len(coerced):
            yield pa.RecordBatch.from_pandas(coerced, schema=schema, preserve_index=False)


def _seqs(batch: pa.RecordBatch) -> list[int]:
    return batch.column(ROW_SEQ).to_pylist()
