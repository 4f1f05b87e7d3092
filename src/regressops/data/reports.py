"""Validation reports: every check's status, failure count and examples; and their meta-validation.

A :class:`ReportBuilder` collects the checks a validation run declares and the failures it
finds, chunk by chunk, and renders one JSON-able report: each check with its column, level
(``row``, ``dataset`` or ``schema``), status (``passed``, ``failed`` or ``error`` when the check
itself crashed), number of failing rows and a few failing examples. :func:`write_report` saves
it as JSON plus a CSV summary (one line per check).

:func:`meta_validate` checks the report itself ("validations about validations"): every column
of the data is covered by at least one check, the share of failing rows is under the configured
bound, and the report is complete and consistent (every check ran and has a count, failed
checks have examples, the row counts add up).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_EXAMPLES = 5
REPORT_KEYS = ("dataset", "raw_version", "on_fail", "status", "columns", "rows", "checks")
_MAX_TEXT = 80


@dataclass
class CheckRecord:
    """One check of a report.

    Attributes
    ----------
    column : str or None
        The column checked, or ``None`` for a check of the whole table.
    check : str
        The check's label, as pandera names it (``in_range(18, 100)``, ``not_nullable``).
    level : {"row", "dataset", "schema"}
        Row checks fail rows (which can be quarantined); the others fail the table.
    failures : int
        Failing rows (or 1 for a failed table-level check).
    examples : list of dict
        Up to :data:`MAX_EXAMPLES` failures: ``{"row": _row_seq, "value": ...}``.
    error : str or None
        Why the check could not run.
    """

    column: str | None
    check: str
    level: str
    failures: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        """``error``, ``failed`` or ``passed``."""
        if self.error is not None:
            return "error"
        return "failed" if self.failures else "passed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        out = {
            "column": self.column,
            "check": self.check,
            "level": self.level,
            "status": self.status,
            "failures": self.failures,
            "examples": self.examples,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


class ReportBuilder:
    """Collects declared checks and their failures into one report.

    Parameters
    ----------
    dataset : str
        Dataset name.
    raw_version : int
        The raw version validated.
    on_fail : str
        ``stop``, ``quarantine`` or ``warn``.
    columns : list of str
        The data's columns (technical ones excluded).
    """

    def __init__(self, dataset: str, raw_version: int, on_fail: str, columns: list[str]) -> None:
        self.dataset = dataset
        self.raw_version = raw_version
        self.on_fail = on_fail
        self.columns = list(columns)
        self._checks: dict[tuple[str | None, str], CheckRecord] = {}

    @property
    def checks(self) -> list[CheckRecord]:
        """The checks, in declaration order."""
        return list(self._checks.values())

    def declare(self, column: str | None, check: str, level: str = "row") -> CheckRecord:
        """Register a check (idempotent) so that it is reported even when it passes."""
        key = (column, check)
        if key not in self._checks:
            self._checks[key] = CheckRecord(column=column, check=check, level=level)
        return self._checks[key]

    def fail(
        self,
        column: str | None,
        check: str,
        *,
        level: str = "row",
        row: int | None = None,
        value: Any = None,
        count: int = 1,
    ) -> None:
        """Record ``count`` failures of a check, keeping the first few as examples."""
        record = self.declare(column, check, level)
        if row is not None:
            record.level = "row"  # a table check that names rows (pandera row-wise checks)
        record.failures += count
        if len(record.examples) < MAX_EXAMPLES:
            example: dict[str, Any] = {"value": plain(value)}
            if row is not None:
                example = {"row": int(row), **example}
            record.examples.append(example)

    def error(self, column: str | None, check: str, message: str) -> None:
        """Record that a check crashed instead of running."""
        record = self.declare(column, check)
        record.error = record.error or _text(message)

    def has_failures(self, level: str) -> bool:
        """Whether a check of ``level`` failed or errored."""
        return any(c.level == level and c.status != "passed" for c in self._checks.values())

    def to_dict(self, **fields: Any) -> dict[str, Any]:
        """The report: identity, columns, checks, plus ``fields`` (rows, status, outcome)."""
        return {
            "dataset": self.dataset,
            "raw_version": self.raw_version,
            "on_fail": self.on_fail,
            "columns": self.columns,
            **fields,
            "checks": [c.to_dict() for c in self._checks.values()],
        }


def meta_validate(report: dict[str, Any], *, max_failure_rate: float) -> dict[str, Any]:
    """Check a validation report; return ``{"status": "passed"|"failed", "checks": [...]}``.

    Parameters
    ----------
    report : dict
        As built by :meth:`ReportBuilder.to_dict` with ``rows`` (``total``, ``failed``).
    max_failure_rate : float
        Largest allowed share of failing rows.
    """
    checks = report.get("checks") or []
    covered = {c.get("column") for c in checks}
    uncovered = [c for c in report.get("columns") or [] if c not in covered]
    rows = report.get("rows") or {}
    total, failed = rows.get("total"), rows.get("failed")
    rate = (
        (failed / total) if isinstance(total, int) and total > 0 and isinstance(failed, int) else 0
    )
    problems = _completeness_problems(report)
    results: list[dict[str, Any]] = [
        {
            "name": "every_column_checked",
            "status": "failed" if uncovered else "passed",
            "detail": f"columns without any check: {uncovered}" if uncovered else "",
        },
        {
            "name": "failure_rate_within_bound",
            "status": "failed" if rate > max_failure_rate else "passed",
            "value": round(float(rate), 6),
            "bound": max_failure_rate,
        },
        {
            "name": "report_complete",
            "status": "failed" if problems else "passed",
            "detail": "; ".join(problems),
        },
    ]
    status = "failed" if any(r["status"] == "failed" for r in results) else "passed"
    return {"status": status, "checks": results}


def write_report(report: dict[str, Any], json_path: Path) -> tuple[Path, Path]:
    """Write the report as JSON and its CSV summary next to it (atomically); return both."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path = json_path.with_suffix(".csv")
    _atomic_write(json_path, json.dumps(report, indent=2, default=str) + "\n")
    lines = [["column", "check", "level", "status", "failures", "failure_rate", "examples"]]
    total = (report.get("rows") or {}).get("total") or 0
    for c in report.get("checks", []):
        rate = c["failures"] / total if total and c["level"] == "row" else ""
        examples = "; ".join(json.dumps(e.get("value"), default=str) for e in c["examples"])
        lines.append(
            [
                c["column"] or "",
                c["check"],
                c["level"],
                c["status"],
                c["failures"],
                f"{rate:.6f}" if rate != "" else "",
                examples,
            ]
        )
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(lines)
    os.replace(tmp, csv_path)
    return json_path, csv_path


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """A short summary of a report for the lake's commit record and ``data show``."""
    checks = report.get("checks", [])
    failed = [
        f"{c['column'] or '*'}: {c['check']} ({c['failures']})"
        for c in checks
        if c["status"] != "passed"
    ]
    return {
        "status": report.get("status"),
        "checks": len(checks),
        "checks_failed": len(failed),
        "failed": failed[:20],
        "meta": (report.get("meta") or {}).get("status"),
    }


# ---------------------------------------------------------------------- helpers
def _completeness_problems(report: dict[str, Any]) -> list[str]:
    problems = [f"missing field {k!r}" for k in REPORT_KEYS if k not in report]
    rows = report.get("rows") or {}
    total, failed = rows.get("total"), rows.get("failed")
    if not isinstance(total, int) or not isinstance(failed, int) or not 0 <= failed <= total:
        problems.append(f"row counts are inconsistent (total={total}, failed={failed})")
    checks = report.get("checks") or []
    if not checks:
        problems.append("no check ran")
    for c in checks:
        name = f"{c.get('column') or '*'}: {c.get('check')}"
        if c.get("status") == "error":
            problems.append(f"check {name} could not run ({c.get('error')})")
        elif c.get("status") not in ("passed", "failed"):
            problems.append(f"check {name} has no status")
        if not isinstance(c.get("failures"), int) or c["failures"] < 0:
            problems.append(f"check {name} has no failure count")
        elif c["failures"] and not c.get("examples"):
            problems.append(f"check {name} failed without examples")
    row_failures = sum(c.get("failures", 0) for c in checks if c.get("level") == "row")
    if isinstance(failed, int) and failed and row_failures < failed:
        problems.append(f"{failed} rows failed but the row checks count only {row_failures}")
    return problems


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def plain(value: Any) -> Any:
    """A JSON-able version of a failing value (numpy and pandas scalars, NaN as None)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            value = str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, bool | int | float):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return _text(str(value))


def _text(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."
