"""Extract from SQLite into the raw Delta table: chunks, dedup, queries and every bad input."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from helpers.data import lake_files, sqlite_url
from regressops.config import Settings
from regressops.data.demo_db import DemoDbResult
from regressops.data.extract import extract
from regressops.data.lake import ROW_HASH, ROW_SEQ, Lake
from regressops.datasets import load_dataset
from regressops.errors import ConfigError, DataError, SourceError


def _db(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(settings.home / "demo.db")


def test_extract_writes_every_row_as_raw_v0(settings: Settings, insurance_db: DemoDbResult) -> None:
    seen: list[int] = []
    result = extract("insurance", settings=settings, chunk_size=500, progress=seen.append)
    assert (result.raw_version, result.created) == (0, True)
    assert result.rows_read == result.rows_new == 1338
    assert result.chunks == 3 and seen == [500, 1000, 1338]
    raw = Lake.from_settings(settings).read("insurance", "raw").to_pandas()
    assert raw[ROW_SEQ].tolist() == list(range(1338))
    expected = load_dataset("insurance", settings)
    assert raw["id"].tolist() == list(range(1, 1339))
    for column in expected.columns:
        assert raw[column].tolist() == expected[column].tolist(), column
    assert raw[ROW_HASH].is_unique


def test_re_extracting_unchanged_rows_adds_nothing(
    settings: Settings, insurance_db: DemoDbResult
) -> None:
    extract("insurance", settings=settings, chunk_size=400)
    again = extract("insurance", settings=settings, chunk_size=97)  # other chunk boundaries
    assert (again.created, again.rows_new, again.raw_version) == (False, 0, 0)
    lake = Lake.from_settings(settings)
    assert lake.latest_version("insurance", "raw") == 0


def test_new_source_rows_append_only_those(settings: Settings, insurance_db: DemoDbResult) -> None:
    extract("insurance", settings=settings)
    with _db(settings) as db:
        db.execute(
            "INSERT INTO insurance SELECT id + 10000, age, sex, bmi, children, smoker, region, "
            "charges FROM insurance WHERE id <= 5"
        )
        db.execute("UPDATE insurance SET charges = charges + 1 WHERE id = 7")
    result = extract("insurance", settings=settings)
    assert (result.raw_version, result.rows_read, result.rows_new) == (1, 1343, 6)
    lake = Lake.from_settings(settings)
    raw = lake.read("insurance", "raw").to_pandas()
    assert raw[ROW_SEQ].tolist() == list(range(1344))
    assert sorted(raw["id"].iloc[1338:].tolist()) == [7, 10001, 10002, 10003, 10004, 10005]
    assert lake.count("insurance", "raw", 0) == 1338  # time travel


def test_query_with_bound_parameters(settings: Settings, insurance_db: DemoDbResult) -> None:
    result = extract(
        "insurance",
        settings=settings,
        query="SELECT * FROM insurance WHERE age >= :min_age AND region = :region",
        params={"min_age": 60, "region": "southeast"},
    )
    expected = load_dataset("insurance", settings)
    n = int(((expected["age"] >= 60) & (expected["region"] == "southeast")).sum())
    assert result.rows_new == n > 0 and result.table is None
    history = Lake.from_settings(settings).history("insurance", "raw")
    assert history[0].info["params"] == {"min_age": 60, "region": "southeast"}


def test_query_parameters_must_match(settings: Settings, insurance_db: DemoDbResult) -> None:
    with pytest.raises(ConfigError, match="--param min_age=VALUE"):
        extract(
            "insurance", settings=settings, query="SELECT * FROM insurance WHERE age > :min_age"
        )
    with pytest.raises(ConfigError, match="names no parameter"):
        extract("insurance", settings=settings, query="SELECT * FROM insurance", params={"x": 1})
    assert lake_files(settings) == set()


# ---------------------------------------------------------------------- bad input: nothing written
def test_unreachable_database(settings: Settings) -> None:
    with pytest.raises(SourceError) as info:
        extract("insurance", settings=settings, source_url="sqlite:////no/such/dir/source.db")
    assert "not found" in info.value.message and info.value.exit_code == 5
    assert lake_files(settings) == set()


def test_missing_table(settings: Settings, insurance_db: DemoDbResult) -> None:
    with pytest.raises(DataError) as info:
        extract("insurance", settings=settings, table="sales")
    assert info.value.reason == "missing_table"
    assert "'sales' not found" in info.value.message and "insurance" in info.value.message
    assert lake_files(settings) == set()


def test_empty_result(settings: Settings, insurance_db: DemoDbResult) -> None:
    with pytest.raises(DataError) as info:
        extract("insurance", settings=settings, query="SELECT * FROM insurance WHERE 1 = 0")
    assert info.value.reason == "empty_result"
    assert lake_files(settings) == set()


def test_a_query_that_is_not_a_select(settings: Settings, insurance_db: DemoDbResult) -> None:
    with pytest.raises(ConfigError) as info:
        extract("insurance", settings=settings, query="DELETE FROM insurance")
    assert info.value.reason == "not_select"
    with _db(settings) as db:
        assert db.execute("SELECT COUNT(*) FROM insurance").fetchone()[0] == 1338
    assert lake_files(settings) == set()


def test_missing_required_column(settings: Settings, insurance_db: DemoDbResult) -> None:
    with pytest.raises(DataError) as info:
        extract("insurance", settings=settings, query="SELECT id, age, sex FROM insurance")
    assert info.value.reason == "missing_column"
    assert "['bmi', 'children', 'smoker', 'region', 'charges']" in info.value.message
    assert lake_files(settings) == set()


def test_a_value_that_cannot_be_coerced(settings: Settings, insurance_db: DemoDbResult) -> None:
    with _db(settings) as db:  # SQLite lets text into a REAL column
        db.execute("UPDATE insurance SET bmi = 'n/a' WHERE id = 1200")
    with pytest.raises(DataError) as info:
        extract("insurance", settings=settings, chunk_size=100)
    assert info.value.reason == "uncoercible_type"
    assert "'bmi'" in info.value.message and "'n/a'" in info.value.message
    assert lake_files(settings) == set()


def test_a_column_type_that_cannot_be_coerced(
    settings: Settings, insurance_db: DemoDbResult
) -> None:
    query = "SELECT id, age, sex, bmi, children, smoker, region, X'00ff' AS charges FROM insurance"
    with pytest.raises(DataError) as info:
        extract("insurance", settings=settings, query=query)
    assert info.value.reason == "uncoercible_type" and "binary" in info.value.message
    assert lake_files(settings) == set()


def test_failure_mid_stream_leaves_the_previous_version_intact(
    settings: Settings, insurance_db: DemoDbResult
) -> None:
    extract("insurance", settings=settings, chunk_size=200)
    with _db(settings) as db:
        db.execute(
            "INSERT INTO insurance SELECT id + 5000, age, sex, bmi, children, smoker, "
            "region, charges FROM insurance"
        )
        db.execute("UPDATE insurance SET age = 'old' WHERE id = 6300")  # in a late chunk
    before = lake_files(settings)
    with pytest.raises(DataError, match="'old'"):
        extract("insurance", settings=settings, chunk_size=200)
    lake = Lake.from_settings(settings)
    assert lake.latest_version("insurance", "raw") == 0
    assert lake.count("insurance", "raw") == 1338
    assert lake_files(settings) == before


def test_source_schema_change_is_refused(settings: Settings, insurance_db: DemoDbResult) -> None:
    extract("insurance", settings=settings)
    with _db(settings) as db:
        db.execute("ALTER TABLE insurance ADD COLUMN note TEXT")
        db.execute("UPDATE insurance SET note = 'x'")
    with pytest.raises(DataError) as info:
        extract("insurance", settings=settings)
    assert info.value.reason == "schema_mismatch" and "new columns ['note']" in info.value.message
    assert Lake.from_settings(settings).latest_version("insurance", "raw") == 0


def test_both_table_and_query_is_an_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="not both"):
        extract("insurance", settings=settings, table="t", query="SELECT 1")


def test_unknown_dataset(settings: Settings) -> None:
    with pytest.raises(ConfigError) as info:
        extract("sales", settings=settings)
    assert info.value.reason == "unknown_dataset"


def test_hashes_are_the_same_whatever_the_chunk_size(
    settings: Settings, insurance_db: DemoDbResult, home
) -> None:
    extract("insurance", settings=settings, chunk_size=1000)
    first = Lake.from_settings(settings).read("insurance", "raw").column(ROW_HASH).to_numpy()
    other = Settings(home=home / "other")
    other.home.mkdir(parents=True)
    extract("insurance", settings=other, source_url=sqlite_url(settings), chunk_size=13)
    second = Lake.from_settings(other).read("insurance", "raw").column(ROW_HASH).to_numpy()
    assert np.array_equal(first, second)


def test_concurrent_extracts_do_not_duplicate_rows(
    settings: Settings, insurance_db: DemoDbResult
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: extract("insurance", settings=settings), range(2)))
    assert sorted(r.created for r in runs) == [False, True]
    assert Lake.from_settings(settings).count("insurance", "raw") == 1338
