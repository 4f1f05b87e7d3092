"""Validation: lazy reports, stop / quarantine / warn, meta-validation, nothing half-written."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from helpers.data import lake_files, make_settings
from regressops.config import Settings
from regressops.data.coerce import batch_to_frame, coerce
from regressops.data.declarations import get_contract
from regressops.data.demo_db import DemoDbResult
from regressops.data.extract import extract
from regressops.data.lake import ROW_SEQ, Lake
from regressops.data.validate import validate
from regressops.errors import ConfigError, DataError, ValidationFailed


def _expected_failures(db: DemoDbResult) -> int:
    """Five disjoint sets of defective rows, plus the two kinds of repeated keys."""
    k = db.defects["duplicate_rows"]
    return 7 * k


def test_clean_data_passes_every_check(settings: Settings, insurance_db: DemoDbResult) -> None:
    extract("insurance", settings=settings)
    result = validate("insurance", settings=settings)
    assert result.status == "passed" and result.clean_version == 0
    assert result.rows == {"total": 1338, "failed": 0, "clean": 1338, "quarantined": 0}
    checks = result.report["checks"]
    assert checks and all(c["status"] == "passed" for c in checks)
    assert {c["column"] for c in checks} >= set(get_contract("insurance").column_names)
    assert result.report["meta"]["status"] == "passed"
    assert result.quarantine_version is None
    assert json.loads(result.report_json.read_text())["outcome"]["clean_version"] == 0
    with result.report_csv.open() as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == len(checks) and lines[0].keys() >= {"check", "status", "failures"}


def test_stop_writes_nothing_clean_and_reports_everything(
    settings: Settings, messy_db: DemoDbResult
) -> None:
    extract("insurance", settings=settings)
    before = lake_files(settings)
    with pytest.raises(ValidationFailed) as info:
        validate("insurance", settings=settings, on_fail="stop")
    assert info.value.exit_code == 3 and "\n" not in info.value.message
    assert f"{_expected_failures(messy_db)} of 1364 rows failed" in info.value.message
    assert lake_files(settings) == before
    assert not Lake.from_settings(settings).exists("insurance", "clean")
    report_path = Path(info.value.message.rsplit("report: ", 1)[1])
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed" and report["outcome"]["clean_version"] is None
    failed = {(c["column"], c["check"]): c for c in report["checks"] if c["status"] == "failed"}
    # lazy: every kind of defect is reported in the same run, with examples
    assert ("sex", "isin(['female', 'male'])") in failed
    assert ("bmi", "coerce_dtype('float64')") in failed
    assert ("age", "not_nullable") in failed and ("region", "not_nullable") in failed
    assert ("children", "in_range(0, 20)") in failed
    assert failed[("id", "field_uniqueness")]["failures"] == 2 * messy_db.defects["duplicate_rows"]
    assert all(c["examples"] for c in failed.values())


def test_quarantine_sets_failing_rows_aside_with_reasons(
    settings: Settings, messy_db: DemoDbResult
) -> None:
    extract("insurance", settings=settings, chunk_size=300)
    result = validate("insurance", settings=settings, on_fail="quarantine", chunk_size=250)
    n_bad = _expected_failures(messy_db)
    assert result.status == "quarantined"
    assert result.rows == {
        "total": 1364,
        "failed": n_bad,
        "clean": 1364 - n_bad,
        "quarantined": n_bad,
    }
    lake = Lake.from_settings(settings)
    quarantine = lake.read("insurance", "quarantine").to_pandas()
    assert len(quarantine) == n_bad and quarantine["_reasons"].str.len().min() > 0
    assert set(quarantine["_raw_version"]) == {0}
    assert (
        quarantine["_reasons"].str.contains("field_uniqueness").sum()
        == 2 * messy_db.defects["duplicate_rows"]
    )
    clean = lake.read("insurance", "clean")
    assert clean.num_rows == 1364 - n_bad
    frame = clean.to_pandas()
    assert frame["id"].is_unique and frame[ROW_SEQ].is_monotonic_increasing
    assert set(frame[ROW_SEQ]).isdisjoint(set(quarantine[ROW_SEQ]))
    contract = get_contract("insurance")
    coerced, failures = coerce(batch_to_frame(clean, ROW_SEQ), contract)
    assert failures == {}
    contract.pandera_schema().validate(coerced, lazy=True)  # the clean rows pass every check
    info = lake.version_info("insurance", "clean", result.clean_version or 0).info
    assert info["raw_version"] == 0 and info["quarantine_version"] == result.quarantine_version
    assert Path(info["report"]) == result.report_json.resolve()


def test_warn_keeps_every_row_and_records_failures(
    settings: Settings, messy_db: DemoDbResult
) -> None:
    extract("insurance", settings=settings)
    result = validate("insurance", settings=settings, on_fail="warn")
    assert result.status == "warned"
    assert result.rows["clean"] == 1364 and result.rows["failed"] == _expected_failures(messy_db)
    clean = Lake.from_settings(settings).read("insurance", "clean").to_pandas()
    assert len(clean) == 1364
    assert clean["bmi"].isna().sum() == messy_db.defects["numbers_as_text"] + 1  # + 1 copy


def test_meta_validation_bounds_the_failure_rate(home: Path, messy_db: DemoDbResult) -> None:
    strict = make_settings(home, datasets={"insurance": {"max_failure_rate": 0.01}})
    extract("insurance", settings=strict)
    before = lake_files(strict)
    with pytest.raises(ValidationFailed, match=r"meta-validation failed \(6\.7% of rows failed"):
        validate("insurance", settings=strict, on_fail="quarantine")
    assert lake_files(strict) == before


def test_meta_validation_requires_every_column_checked(
    settings: Settings, insurance_db: DemoDbResult
) -> None:
    extract("insurance", settings=settings, query="SELECT *, 'n' AS note FROM insurance")
    with pytest.raises(
        ValidationFailed, match=r"every_column_checked: columns without any check: \['note'\]"
    ):
        validate("insurance", settings=settings, on_fail="warn")
    assert not Lake.from_settings(settings).exists("insurance", "clean")


def test_meta_validation_requires_a_complete_report(
    home: Path, insurance_db: DemoDbResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "crashing_checks.py").write_text(
        "import pandera.pandas as pa\n"
        "schema = pa.DataFrameSchema({'bmi': pa.Column(checks=pa.Check(\n"
        "    lambda s: s.str.len() > 0, name='bmi_is_text'))})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    custom = make_settings(home, datasets={"insurance": {"schema": "crashing_checks:schema"}})
    extract("insurance", settings=custom)
    with pytest.raises(
        ValidationFailed, match="report_complete: check bmi: bmi_is_text could not run"
    ):
        validate("insurance", settings=custom, on_fail="quarantine")


def test_row_count_bounds_are_a_table_check(home: Path, insurance_db: DemoDbResult) -> None:
    bounded = make_settings(home, datasets={"insurance": {"min_rows": 5000}})
    extract("insurance", settings=bounded)
    with pytest.raises(ValidationFailed, match=r"row_count_in_range\(5000, None\)"):
        validate("insurance", settings=bounded, on_fail="quarantine")
    warned = validate("insurance", settings=bounded, on_fail="warn")
    assert warned.status == "warned" and warned.rows["failed"] == 0


def test_validating_an_older_raw_version(settings: Settings, insurance_db: DemoDbResult) -> None:
    extract("insurance", settings=settings)
    with sqlite3.connect(settings.home / "demo.db") as db:
        db.execute("UPDATE insurance SET age = 200 WHERE id = 1")
    extract("insurance", settings=settings)
    old = validate("insurance", settings=settings, version=0)
    assert (old.raw_version, old.status, old.rows["total"]) == (0, "passed", 1338)
    new = validate("insurance", settings=settings, on_fail="quarantine")
    assert (new.raw_version, new.rows["failed"]) == (1, 1)  # the updated row, appended
    reasons = Lake.from_settings(settings).read("insurance", "quarantine").column("_reasons")
    assert "age: in_range(18, 100)" in reasons[0].as_py()
    assert "id: field_uniqueness" in reasons[0].as_py()
    with pytest.raises(DataError, match="no version 7"):
        validate("insurance", settings=settings, version=7)


def test_validate_before_extract(settings: Settings) -> None:
    with pytest.raises(DataError) as info:
        validate("insurance", settings=settings)
    assert info.value.reason == "not_extracted" and "regressops extract" in info.value.message


def test_unknown_mode(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="--on-fail must be one of stop, quarantine, warn"):
        validate("insurance", settings=settings, on_fail="ignore")


# ---------------------------------------------------------------------- a user's own dataset
SALES_COLUMNS = {
    "order_id": {"dtype": "int"},
    "region": {"dtype": "str", "allowed": ["north", "south"]},
    "units": {"dtype": "int", "min": 0},
    "price": {"dtype": "float", "min": 0},
    "amount": {"dtype": "float", "min": 0},
}


def _sales_db(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE sales (order_id INTEGER, region TEXT, units INTEGER, price REAL, "
            "amount REAL)"
        )
        rows = [
            (i, "north" if i % 3 else "south", i % 7, 1.5 + i % 5, (i % 7) * (1.5 + i % 5) + 3)
            for i in range(1, 201)
        ]
        rows[10] = (11, "east", 2, 1.0, 5.0)  # unknown region
        rows[20] = (21, "north", 9, 2.0, 1.0)  # breaks the custom check amount >= units
        db.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", rows)
    return f"sqlite:///{path}"


def test_a_dataset_declared_without_python(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sales_checks.py").write_text(
        "import pandera.pandas as pa\n"
        "schema = pa.DataFrameSchema(checks=[pa.Check(lambda df: df['amount'] >= df['units'],\n"
        "    name='amount_covers_units')])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = {
        "source": _sales_db(tmp_path / "shop.db"),
        "table": "sales",
        "target": "amount",
        "features": ["region", "units", "price"],
        "key": "order_id",
        "columns": SALES_COLUMNS,
        "min_rows": 100,
        "schema": "sales_checks:schema",
    }
    settings = make_settings(home, datasets={"sales": declared})
    extract("sales", settings=settings)
    result = validate("sales", settings=settings, on_fail="quarantine")
    assert result.rows["failed"] == 2
    checks = {(c["column"], c["check"]): c for c in result.report["checks"]}
    assert checks[("region", "isin(['north', 'south'])")]["failures"] == 1
    assert checks[(None, "amount_covers_units")]["failures"] == 1

    declared["columns"] = {**SALES_COLUMNS, "discount": {"dtype": "float"}}
    changed = make_settings(home, datasets={"sales": declared})
    before = lake_files(changed)
    with pytest.raises(ValidationFailed) as info:
        validate("sales", settings=changed)
    assert info.value.reason == "missing_column" and "['discount']" in info.value.message
    assert lake_files(changed) == before


def test_uniqueness_spilled_to_partitions_finds_the_same_rows(
    settings: Settings, messy_db: DemoDbResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    from regressops.data import uniqueness

    extract("insurance", settings=settings)
    whole = validate("insurance", settings=settings, on_fail="warn").report["checks"]
    monkeypatch.setattr(uniqueness, "UNIQUE_BUCKET_ROWS", 50)  # 32 partitions on disk
    spilled = validate("insurance", settings=settings, on_fail="warn").report["checks"]
    pick = [c for c in whole if c["check"] == "field_uniqueness"]
    assert pick == [c for c in spilled if c["check"] == "field_uniqueness"]
    assert pick[0]["failures"] == 2 * messy_db.defects["duplicate_rows"]
