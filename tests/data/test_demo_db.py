"""The demo database: clean and messy seeds of the built-in datasets."""

from __future__ import annotations

import sqlite3

import pytest

from regressops.config import Settings
from regressops.data.demo_db import JUNK_NUMBERS, seed_demo_db
from regressops.datasets import load_dataset
from regressops.errors import ConfigError


def test_clean_seed_is_the_builtin_data_with_an_id(settings: Settings) -> None:
    result = seed_demo_db(dataset="diabetes", settings=settings)
    assert (result.rows, result.table, result.defects) == (442, "diabetes", {})
    with sqlite3.connect(settings.home / "demo.db") as db:
        rows = db.execute("SELECT * FROM diabetes ORDER BY id").fetchall()
        names = [d[0] for d in db.execute("SELECT * FROM diabetes").description]
    expected = load_dataset("diabetes", settings)
    assert names == ["id", *expected.columns]
    assert [r[1:] for r in rows] == [tuple(r) for r in expected.itertuples(index=False)]


def test_messy_seed_injects_each_kind_of_defect(settings: Settings) -> None:
    result = seed_demo_db(dataset="insurance", messy=True, settings=settings)
    k = result.defects["duplicate_rows"]
    assert k == 13 and result.rows == 1338 + 2 * k
    assert set(result.defects) == {
        "nulls",
        "out_of_range",
        "unknown_categories",
        "numbers_as_text",
        "duplicate_rows",
        "conflicting_duplicates",
    }
    with sqlite3.connect(settings.home / "demo.db") as db:
        bmi_types = {t for (t,) in db.execute("SELECT DISTINCT typeof(bmi) FROM insurance")}
        junk = db.execute(
            f"SELECT COUNT(*) FROM insurance WHERE bmi IN ({','.join('?' * len(JUNK_NUMBERS))})",
            JUNK_NUMBERS,
        ).fetchone()[0]
        dupes = db.execute(
            "SELECT COUNT(*) FROM (SELECT id FROM insurance GROUP BY id HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        upper = db.execute("SELECT COUNT(*) FROM insurance WHERE sex IN ('MALE', 'FEMALE')")
        null_age = db.execute("SELECT COUNT(*) FROM insurance WHERE age IS NULL").fetchone()[0]
        assert upper.fetchone()[0] >= k
    assert bmi_types == {"text"}  # numbers stored as text
    assert junk >= k and dupes == 2 * k and null_age >= k


def test_seed_is_deterministic_and_replaces_the_table(settings: Settings) -> None:
    seed_demo_db(dataset="insurance", messy=True, settings=settings, seed=3)
    with sqlite3.connect(settings.home / "demo.db") as db:
        first = db.execute("SELECT * FROM insurance").fetchall()
    seed_demo_db(dataset="insurance", messy=True, settings=settings, seed=3)
    with sqlite3.connect(settings.home / "demo.db") as db:
        assert db.execute("SELECT * FROM insurance").fetchall() == first


def test_rows_option_repeats_with_fresh_ids(settings: Settings) -> None:
    result = seed_demo_db(dataset="diabetes", rows=1000, settings=settings, table="big")
    assert result.rows == 1000
    with sqlite3.connect(settings.home / "demo.db") as db:
        assert db.execute("SELECT COUNT(DISTINCT id), MAX(id) FROM big").fetchone() == (1000, 1000)


def test_only_builtin_datasets(settings: Settings) -> None:
    with pytest.raises(ConfigError):
        seed_demo_db(dataset="sales", settings=settings)
