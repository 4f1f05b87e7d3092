"""Extract from a real PostgreSQL server (127.0.0.1:5432, database ``test``).

Each test module run creates its own schema and drops it at the end. The tests skip with the
reason when the server cannot be reached, and fail instead under CI (``CI=true``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from helpers.postgres import PG_URL, temporary_schema
from regressops.config import Settings
from regressops.data.demo_db import seed_demo_db
from regressops.data.extract import extract
from regressops.data.lake import Lake
from regressops.data.validate import validate
from regressops.errors import ConfigError, DataError, SourceError
from regressops.training.sources import load_training_data

pytestmark = pytest.mark.postgres

SECRET = "s3cret-Pw"


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    with temporary_schema() as schema:
        yield schema


@pytest.fixture
def pg_settings(home: Path) -> Settings:
    return Settings(home=home, data={"retries": 2, "retry_backoff": 0.01, "connect_timeout": 3})


def _execute(sql: str) -> None:
    engine = create_engine(PG_URL, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _lake_is_empty(settings: Settings) -> bool:
    root = settings.lake_dir
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_extract_validate_train_from_postgres_equals_the_builtin_copy(
    pg_schema: str, pg_settings: Settings
) -> None:
    table = f"{pg_schema}.insurance_clean"
    seed_demo_db(url=PG_URL, dataset="insurance", table=table, settings=pg_settings)
    result = extract(
        "insurance", source_url=PG_URL, table=table, chunk_size=300, settings=pg_settings
    )
    assert (result.rows_new, result.chunks, result.raw_version) == (1338, 5, 0)
    again = extract("insurance", source_url=PG_URL, table=table, settings=pg_settings)
    assert not again.created and again.rows_new == 0
    validate("insurance", settings=pg_settings)
    lake = load_training_data("insurance", settings=pg_settings)
    builtin = load_training_data("insurance", settings=Settings(home=pg_settings.home / "x"))
    assert lake.lineage["source"] == "lake" and builtin.lineage["source"] == "dataset"
    assert lake.lineage["content_hash"] == builtin.lineage["content_hash"]
    assert lake.lineage["source_table"] == table

    _execute(
        f"INSERT INTO {table} SELECT id + 5000, age, sex, bmi, children, smoker, region, charges "
        f"FROM {table} WHERE id <= 10"
    )
    grown = extract("insurance", source_url=PG_URL, table=table, settings=pg_settings)
    assert (grown.raw_version, grown.rows_read, grown.rows_new) == (1, 1348, 10)


def test_a_parameterised_query(pg_schema: str, pg_settings: Settings) -> None:
    table = f"{pg_schema}.insurance_q"
    seed_demo_db(url=PG_URL, dataset="insurance", table=table, settings=pg_settings)
    result = extract(
        "insurance",
        source_url=PG_URL,
        query=f"SELECT * FROM {table} WHERE age >= :min_age AND smoker = :smoker",
        params={"min_age": 50, "smoker": "yes"},
        settings=pg_settings,
    )
    frame = load_training_data("insurance", settings=Settings(home=pg_settings.home / "b")).frame
    assert result.rows_new == int(((frame.age >= 50) & (frame.smoker == "yes")).sum()) > 0


def test_messy_postgres_source_is_quarantined(pg_schema: str, pg_settings: Settings) -> None:
    table = f"{pg_schema}.insurance_messy"
    seeded = seed_demo_db(
        url=PG_URL, dataset="insurance", table=table, messy=True, settings=pg_settings
    )
    extract("insurance", source_url=PG_URL, table=table, settings=pg_settings)
    result = validate("insurance", on_fail="quarantine", settings=pg_settings)
    assert result.rows["quarantined"] == 7 * seeded.defects["duplicate_rows"]


def test_credentials_never_reach_lake_lineage_or_logs(
    pg_schema: str,
    pg_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = f"{pg_schema}.insurance_secret"
    with_password = PG_URL.replace("postgres@", f"postgres:{SECRET}@")
    monkeypatch.setenv("SOURCE_WITH_PASSWORD", with_password)  # trust auth ignores it
    caplog.set_level(logging.DEBUG)
    seed_demo_db(
        url="env:SOURCE_WITH_PASSWORD", dataset="insurance", table=table, settings=pg_settings
    )
    result = extract(
        "insurance", source_url="env:SOURCE_WITH_PASSWORD", table=table, settings=pg_settings
    )
    validate("insurance", settings=pg_settings)
    lineage = load_training_data("insurance", settings=pg_settings).lineage
    assert SECRET not in result.source and "postgres@127.0.0.1" in result.source
    assert SECRET not in str(lineage) and lineage["source_url"] == result.source
    assert SECRET not in caplog.text
    stored = [p.read_text() for p in pg_settings.lake_dir.rglob("*.json")]
    assert stored and not any(SECRET in s for s in stored)


def test_wrong_credentials(pg_schema: str, pg_settings: Settings) -> None:
    url = PG_URL.replace("postgres@", f"nobody_regressops:{SECRET}@")
    with pytest.raises(SourceError) as info:
        extract("insurance", source_url=url, table=f"{pg_schema}.x", settings=pg_settings)
    assert info.value.reason == "source_auth_failed" and SECRET not in info.value.message
    assert "nobody_regressops" in info.value.message and "attempts" not in info.value.message
    assert _lake_is_empty(pg_settings)


def test_unreachable_server_is_retried_then_reported(pg_settings: Settings) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    with pytest.raises(SourceError) as info:
        extract("insurance", source_url=url, settings=pg_settings)
    assert info.value.reason == "source_unreachable"
    assert "gave up after 3 attempts" in info.value.message and "\n" not in info.value.message
    assert _lake_is_empty(pg_settings)


def test_missing_database(pg_settings: Settings) -> None:
    url = PG_URL.rsplit("/", 1)[0] + "/regressops_no_such_db"
    with pytest.raises(SourceError, match="does not exist"):
        extract("insurance", source_url=url, settings=pg_settings)
    assert _lake_is_empty(pg_settings)


def test_missing_table_and_empty_result(pg_schema: str, pg_settings: Settings) -> None:
    with pytest.raises(DataError) as info:
        extract("insurance", source_url=PG_URL, table=f"{pg_schema}.nope", settings=pg_settings)
    assert info.value.reason == "missing_table"
    table = f"{pg_schema}.insurance_empty"
    seed_demo_db(url=PG_URL, dataset="insurance", table=table, settings=pg_settings)
    _execute(f"DELETE FROM {table}")
    with pytest.raises(DataError) as info:
        extract("insurance", source_url=PG_URL, table=table, settings=pg_settings)
    assert info.value.reason == "empty_result"
    assert _lake_is_empty(pg_settings)


def test_queries_cannot_write(pg_schema: str, pg_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="got DELETE"):
        extract(
            "insurance",
            source_url=PG_URL,
            query=f"DELETE FROM {pg_schema}.anything",
            settings=pg_settings,
        )
    _execute(f"CREATE SEQUENCE {pg_schema}.counter")
    with pytest.raises(DataError, match="read-only transaction"):
        extract(
            "insurance",
            source_url=PG_URL,
            query=f"SELECT nextval('{pg_schema}.counter') AS id",
            settings=pg_settings,
        )
    engine = create_engine(PG_URL, poolclass=NullPool)
    with engine.connect() as conn:
        called = conn.execute(text(f"SELECT is_called FROM {pg_schema}.counter")).scalar_one()
    engine.dispose()
    assert called is False  # the sequence was never advanced
    assert _lake_is_empty(pg_settings)
    assert not Lake.from_settings(pg_settings).exists("insurance", "raw")
