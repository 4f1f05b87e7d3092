"""Source databases: engines, credentials kept out of sight, SELECT-only queries, retries.

Everything that touches a source database goes through here:

- :func:`resolve_source_url` finds the URL (an argument, the dataset's declaration, the
  settings, or the embedded demo file) and adds a password from the environment;
  :func:`redact_url` is the only form of it that is ever logged, stored or shown.
- :func:`create_source_engine` builds a SQLAlchemy engine without a pool and with a connect
  timeout; :func:`read_only` opens a connection that cannot write (a read-only transaction on
  PostgreSQL, ``PRAGMA query_only`` on SQLite).
- :func:`check_select_only` refuses a query that is not one ``SELECT`` (or ``WITH ... SELECT``).
- :func:`with_retries` retries transient connection errors with exponential backoff and turns
  every database error into one clear :class:`~regressops.errors.RegressopsError` line.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from regressops.config import Settings
from regressops.errors import ConfigError, DataError, RegressopsError, SourceError
from regressops.redact import redact_text, redact_url

if TYPE_CHECKING:
    from sqlalchemy import URL, Connection, Engine

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEMO_DB_FILE = "demo.db"
ENV_PREFIX = "env:"
_FORBIDDEN = frozenset(
    {
        *("INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "TRUNCATE", "DROP"),
        *("CREATE", "ALTER", "GRANT", "REVOKE", "INTO", "COPY", "CALL", "EXEC", "EXECUTE"),
        *("ATTACH", "DETACH", "PRAGMA", "VACUUM", "LOCK", "SET"),
    }
)
_AUTH = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "access denied",
    'role "',
    "permission denied",
    "pg_hba.conf",
)
_TRANSIENT = (
    "could not connect",
    "connection refused",
    "connection reset",
    "connection timed out",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "terminating connection",
    "connection to server",
    "could not receive data",
    "could not send data",
    "broken pipe",
    "database is locked",
    "the database system is starting up",
    "the database system is shutting down",
    "too many connections",
    "ssl syscall error",
)


# ---------------------------------------------------------------------- URLs and secrets
def resolve_source_url(
    explicit: str | None,
    *,
    declared: str | None = None,
    password_env: str | None = None,
    settings: Settings,
) -> URL:
    """Return the source URL to read from, with its password when one is needed.

    Parameters
    ----------
    explicit : str or None
        ``--source-url``; wins over everything else.
    declared : str or None
        The dataset's ``source`` in ``regressops.toml``.
    password_env : str or None
        Environment variable holding the password, added when the URL has none.
    settings : Settings
        ``data.source_url``, else the demo database ``<home>/demo.db``.

    Any of the URLs may be written ``env:VAR`` to read it from the environment variable
    ``VAR``, so a password never has to be on a command line or in a file.

    Raises
    ------
    ConfigError
        The URL cannot be parsed or names an environment variable that is not set.
    """
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    configured = settings.data.source_url
    text = (
        explicit
        or declared
        or (configured.get_secret_value() if configured else None)
        or f"sqlite:///{(settings.home / DEMO_DB_FILE).resolve()}"
    )
    if text.startswith(ENV_PREFIX):
        var = text[len(ENV_PREFIX) :]
        value = os.environ.get(var)
        if not value:
            raise ConfigError(
                f"environment variable {var} (the source URL) is not set", reason="missing_env"
            )
        text = value
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"invalid source URL {redact_text(text)!r}; expected a SQLAlchemy URL such as "
            "sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/db",
            reason="invalid_url",
        ) from None
    if password_env and url.password is None and os.environ.get(password_env):
        url = url.set(password=os.environ[password_env])
    return url


def _scrub(text: str, url: URL) -> str:
    text = redact_text(text)
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


# ---------------------------------------------------------------------- engines
def create_source_engine(url: URL, settings: Settings) -> Engine:
    """Create an engine for ``url``: no connection pool, a connect timeout.

    Raises
    ------
    SourceError
        A SQLite URL names a file that does not exist (connecting would create an empty one),
        or the URL's driver is not installed.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    timeout = settings.data.connect_timeout
    connect_args: dict[str, object] = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        is_file = bool(database) and database != ":memory:" and not database.startswith("file:")
        if is_file and not Path(database).is_file():
            raise SourceError(
                f"SQLite database file not found: {database}; run 'regressops demo-db' or "
                "pass --source-url",
                reason="source_not_found",
            )
        connect_args["timeout"] = timeout
    elif backend == "postgresql":
        connect_args["connect_timeout"] = max(1, math.ceil(timeout))
    try:
        return create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except Exception as exc:  # missing DBAPI driver, bad dialect options
        raise SourceError(
            f"cannot use source {redact_url(url)}: {type(exc).__name__}: "
            f"{_scrub(_first_line(exc), url)}",
            reason="source_unavailable",
        ) from None


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection whose transaction cannot write (where the database supports it)."""
    backend = engine.url.get_backend_name()
    with engine.connect() as conn:
        if backend == "postgresql":
            conn = conn.execution_options(postgresql_readonly=True)
        elif backend == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
        yield conn


# ---------------------------------------------------------------------- queries
def check_select_only(sql: str) -> str:
    """Return ``sql`` stripped if it is a single ``SELECT`` or ``WITH ... SELECT`` statement.

    Raises
    ------
    ConfigError
        Empty, more than one statement, not a SELECT, or a SELECT that writes
        (``SELECT ... INTO``, a data-modifying ``WITH``).
    """
    import sqlparse
    from sqlparse import tokens

    statements = [s for s in sqlparse.parse(sql or "") if s.token_first(skip_cm=True, skip_ws=True)]
    if len(statements) != 1:
        raise ConfigError(
            f"--query must be exactly one SELECT statement, got {len(statements)} statements",
            reason="not_select",
        )
    statement = statements[0]
    kind = statement.get_type()
    if kind != "SELECT":
        first = statement.token_first(skip_cm=True, skip_ws=True)
        word = first.normalized.upper() if first is not None else kind
        raise ConfigError(
            f"--query must be a SELECT (or WITH ... SELECT) statement, got {word}; "  # noqa: S608
            "regressops only reads from a source",
            reason="not_select",
        )
    for token in statement.flatten():
        if token.ttype in tokens.Keyword and token.normalized.upper() in _FORBIDDEN:
            raise ConfigError(
                f"--query must only read, but it contains {token.normalized.upper()}; write a "
                "plain SELECT",
                reason="not_select",
            )
    return str(statement).strip().rstrip(";").strip()


def split_table_name(name: str) -> tuple[str | None, str]:
    """Split ``"schema.table"`` into ``("schema", "table")``; ``"table"`` into ``(None, ...)``.

    Raises
    ------
    ConfigError
        The name is empty or has more than one dot.
    """
    parts = [p.strip() for p in (name or "").split(".")]
    if not all(parts) or len(parts) > 2:
        raise ConfigError(
            f"invalid table name {name!r}; expected TABLE or SCHEMA.TABLE", reason="invalid_table"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


# ---------------------------------------------------------------------- errors and retries
def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying (connection lost, refused, timed out)."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    text = str(getattr(exc, "orig", exc) or exc).lower()
    if any(marker in text for marker in _AUTH) or "does not exist" in text:
        return False
    return any(marker in text for marker in _TRANSIENT)


def describe_db_error(exc: BaseException, url: URL) -> RegressopsError:
    """Turn a SQLAlchemy/DBAPI error into one clear line, without credentials."""
    from sqlalchemy.exc import DBAPIError, NoSuchTableError, ProgrammingError

    where = redact_url(url)
    if isinstance(exc, NoSuchTableError):
        return DataError(f"table {exc} not found in {where}", reason="missing_table")
    detail = _scrub(_first_line(getattr(exc, "orig", None) or exc), url)
    lower = detail.lower()
    if any(marker in lower for marker in _AUTH):
        return SourceError(
            f"the source database {where} refused the credentials: {detail}",
            reason="source_auth_failed",
        )
    if "database" in lower and "does not exist" in lower:
        return SourceError(f"{detail} (source {where})", reason="source_not_found")
    if "no such table" in lower or ("relation" in lower and "does not exist" in lower):
        return DataError(f"the query failed on {where}: {detail}", reason="missing_table")
    if isinstance(exc, ProgrammingError) or "syntax" in lower or "no such column" in lower:
        return DataError(f"the query failed on {where}: {detail}", reason="query_failed")
    if isinstance(exc, DBAPIError) and not is_transient(exc):
        return DataError(f"the source database {where} failed: {detail}", reason="query_failed")
    return SourceError(
        f"cannot reach the source database {where}: {detail}", reason="source_unreachable"
    )


def with_retries(
    fn: Callable[[], T],
    *,
    url: URL,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; retry it after a transient database error, waiting ``backoff * 2**i``.

    ``fn`` must be safe to repeat: an extract attempt that fails writes nothing, so the next
    attempt starts over. Errors that are not transient, and the last transient one, are raised
    as one-line :class:`~regressops.errors.RegressopsError` s without credentials.
    """
    from sqlalchemy.exc import SQLAlchemyError

    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except RegressopsError:
            raise
        except SQLAlchemyError as exc:
            if not is_transient(exc):
                raise describe_db_error(exc, url) from None
            error = describe_db_error(exc, url)
            if attempt == attempts:
                raise type(error)(
                    f"{error.message} (gave up after {attempts} attempts)", reason=error.reason
                ) from None
            delay = backoff * 2 ** (attempt - 1)
            logger.warning(
                "attempt %d of %d failed (%s); retrying in %.2fs",
                attempt,
                attempts,
                error.message,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
