"""The PostgreSQL server of the integration tests and a fresh schema per test run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from helpers.env import in_ci

PG_URL = os.environ.get(
    "REGRESSOPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _require(engine: Any) -> None:
    """Skip (fail under CI) when the server behind ``engine`` is not reachable."""
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: the PostgreSQL tests must run)")
        pytest.skip(message)


@contextmanager
def temporary_schema(prefix: str = "regressops_test") -> Iterator[str]:
    """A new schema, dropped afterwards; skip (fail under CI) when PostgreSQL is not reachable."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 3})
    _require(engine)
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def temporary_database(prefix: str = "regressops_test") -> Iterator[str]:
    """A new database (its SQLAlchemy URL), dropped afterwards with every session still on it;
    skip (fail under CI) when PostgreSQL is not reachable."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(
        PG_URL,
        poolclass=NullPool,
        connect_args={"connect_timeout": 3},
        isolation_level="AUTOCOMMIT",
    )
    _require(engine)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()
