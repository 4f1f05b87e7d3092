"""Source databases: URLs without secrets, SELECT-only queries, error lines, retries."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from regressops.config import Settings
from regressops.data.source import (
    check_select_only,
    create_source_engine,
    describe_db_error,
    is_transient,
    read_only,
    resolve_source_url,
    split_table_name,
    with_retries,
)
from regressops.errors import ConfigError, DataError, SourceError
from regressops.redact import redact_text, redact_url


def test_redact_url_drops_password_and_secret_parameters() -> None:
    url = (
        "postgresql+psycopg://etl:s3cr3t@db.example:5432/shop?sslmode=require&password=x2&api_key=k"
    )
    shown = redact_url(url)
    assert "s3cr3t" not in shown and "x2" not in shown and "api_key" not in shown
    assert shown == "postgresql+psycopg://etl@db.example:5432/shop?sslmode=require"


def test_redact_text_masks_credentials_inside_messages() -> None:
    text = "cannot connect to postgresql://bob:hunter2@host/db: refused"
    assert redact_text(text) == "cannot connect to postgresql://bob:***@host/db: refused"


def test_resolve_source_url_reads_env_and_password_env(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_URL", "postgresql+psycopg://etl@db/shop")
    monkeypatch.setenv("SHOP_PASSWORD", "pa:ss@word")
    url = resolve_source_url("env:SHOP_URL", password_env="SHOP_PASSWORD", settings=settings)
    assert url.password == "pa:ss@word"
    assert "pa:ss" not in redact_url(url)


def test_resolve_source_url_defaults_to_the_demo_db(settings: Settings) -> None:
    url = resolve_source_url(None, settings=settings)
    assert url.get_backend_name() == "sqlite"
    assert url.database == str((settings.home / "demo.db").resolve())


@pytest.mark.parametrize(
    ("text", "reason"),
    [("env:NOT_SET_ANYWHERE_123", "missing_env"), ("not a url", "invalid_url")],
)
def test_resolve_source_url_errors(settings: Settings, text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_source_url(text, settings=settings)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM sales WHERE day >= :since",
        "with recent as (select * from sales) select region, sum(amount) from recent group by 1",
        "select replace(name, 'a', 'b') as name from t -- trailing comment",
        "  SELECT 1 ;  ",
        "select 'DROP TABLE x' as text_that_looks_dangerous",
    ],
)
def test_check_select_only_accepts_reads(query: str) -> None:
    assert check_select_only(query).lower().lstrip().startswith(("select", "with"))


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ("DELETE FROM sales", "DELETE"),
        ("update sales set amount = 0", "UPDATE"),
        ("drop table sales", "DROP"),
        ("select 1; drop table sales", "2 statements"),
        ("SELECT * INTO copy FROM sales", "INTO"),
        ("WITH d AS (DELETE FROM sales RETURNING *) SELECT * FROM d", "DELETE"),
        ("", "0 statements"),
        ("insert into sales values (1)", "INSERT"),
    ],
)
def test_check_select_only_refuses_everything_else(query: str, word: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_select_only(query)
    assert info.value.reason == "not_select"
    assert word in info.value.message


def test_split_table_name() -> None:
    assert split_table_name("sales") == (None, "sales")
    assert split_table_name("shop.sales") == ("shop", "sales")
    with pytest.raises(ConfigError):
        split_table_name("a.b.c")


def _wrapped(message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("database is locked", True),
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', True),
        ("server closed the connection unexpectedly", True),
        ('password authentication failed for user "etl"', False),
        ('role "nobody" does not exist', False),
        ("no such table: sales", False),
    ],
)
def test_is_transient(message: str, transient: bool) -> None:
    assert is_transient(_wrapped(message)) is transient


def test_describe_db_error_gives_one_clear_line_without_password() -> None:
    url = make_url("postgresql+psycopg://etl:hunter2@db/shop")
    auth = describe_db_error(_wrapped('password authentication failed for "etl" hunter2'), url)
    assert isinstance(auth, SourceError) and auth.reason == "source_auth_failed"
    assert "hunter2" not in auth.message and "\n" not in auth.message
    missing = describe_db_error(
        ProgrammingError("SELECT", {}, sqlite3.OperationalError("no such table: x")), url
    )
    assert isinstance(missing, DataError) and missing.reason == "missing_table"


def test_with_retries_backs_off_then_gives_up() -> None:
    url = make_url("sqlite:///x.db")
    waits: list[float] = []
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise _wrapped("database is locked")

    with pytest.raises(SourceError) as info:
        with_retries(flaky, url=url, retries=3, backoff=0.5, sleep=waits.append)
    assert len(calls) == 4 and waits == [0.5, 1.0, 2.0]
    assert "gave up after 4 attempts" in info.value.message


def test_with_retries_does_not_retry_permanent_errors() -> None:
    calls = []

    def refused() -> None:
        calls.append(1)
        raise _wrapped('role "nobody" does not exist')

    with pytest.raises(SourceError):
        with_retries(refused, url=make_url("sqlite:///x.db"), retries=3, backoff=0, sleep=print)
    assert len(calls) == 1


def test_retry_survives_a_real_sqlite_lock(settings: Settings, tmp_path) -> None:
    """Another process holds an exclusive lock for a moment; the read retries and succeeds."""
    path = tmp_path / "locked.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
        setup.execute("INSERT INTO t VALUES (1)")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.3, holder.rollback).start()
    fast = Settings(home=settings.home, data={"connect_timeout": 0.05})
    url = make_url(f"sqlite:///{path}")
    engine = create_source_engine(url, fast)
    attempts = []

    def read() -> int:
        attempts.append(time.perf_counter())
        with read_only(engine) as conn:
            return int(conn.exec_driver_sql("SELECT x FROM t").scalar_one())

    try:
        assert with_retries(read, url=url, retries=6, backoff=0.1) == 1
    finally:
        engine.dispose()
        holder.close()
    assert len(attempts) >= 2


def test_read_only_connection_refuses_writes_on_sqlite(settings: Settings, tmp_path) -> None:
    path = tmp_path / "ro.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
    engine = create_source_engine(make_url(f"sqlite:///{path}"), settings)
    with read_only(engine) as conn, pytest.raises(OperationalError, match=r"readonly|read-only"):
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    engine.dispose()


def test_missing_sqlite_file_is_not_created(settings: Settings, tmp_path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(SourceError) as info:
        create_source_engine(make_url(f"sqlite:///{path}"), settings)
    assert info.value.reason == "source_not_found"
    assert not path.exists()
