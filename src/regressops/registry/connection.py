"""Connecting to MLflow: fail fast, never leak credentials, map MLflow's errors to ours.

:func:`connect` returns an :class:`mlflow.MlflowClient` for a tracking URI after checking that the
store answers (a ``/health`` probe for an MLflow server, a trivial query otherwise), with MLflow's
HTTP retries and timeout lowered unless the user set them, so an unreachable server costs
seconds, not minutes. :func:`mlflow_errors` turns MLflow exceptions into
:class:`~regressops.errors.RegistryError` with one readable line.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.config import Settings, get_settings
from regressops.errors import RegistryError
from regressops.redact import redact_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

#: MLflow client settings applied unless the environment already sets them.
FAIL_FAST_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # we pass explicit pip requirements; do not copy the working directory's uv project files
    "MLFLOW_UV_AUTO_DETECT": "false",
    "MLFLOW_LOG_UV_FILES": "false",
}
PROBE_TIMEOUT_S = 3.0
_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST"}


def tracking_uri(settings: Settings | None = None, override: str | None = None) -> str:
    """The tracking URI to use: ``override``, else the settings' (SQLite under home)."""
    if override:
        return override
    return (settings or get_settings()).resolved_tracking_uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def is_http(uri: str) -> bool:
    """True for an MLflow server (``http://`` or ``https://``) URI."""
    return uri.startswith(("http://", "https://"))


def fail_fast() -> None:
    """Apply :data:`FAIL_FAST_ENV` (fewer HTTP retries, a shorter timeout, no progress bars,
    no uv project files) for every variable the environment does not set itself."""
    for key, value in FAIL_FAST_ENV.items():
        os.environ.setdefault(key, value)


def connect(uri: str, *, probe: bool = True) -> MlflowClient:
    """Return a client for the tracking store at ``uri``, checked to answer.

    Parameters
    ----------
    uri : str
        Tracking URI (``sqlite:///...``, ``postgresql://...``, ``http://host:port``).
    probe : bool, default=True
        Check that the store answers before returning.

    Raises
    ------
    RegistryError
        ``reason="tracking_unavailable"``: the server or database cannot be reached.
    """
    fail_fast()
    if probe and is_http(uri):
        _probe_http(uri)
    elif probe and sqlite_path(uri) is None and "://" in uri and not uri.startswith("file:"):
        _probe_database(uri)
    from mlflow import MlflowClient

    # A database store connects (and migrates its schema) when the client is made: an
    # unreachable database is "unavailable" like an unreachable server, not an unexpected error.
    with mlflow_errors(f"tracking store {redact_text(uri)}", unavailable=True):
        db = sqlite_path(uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if probe and not is_http(uri):
            client.search_experiments(max_results=1)
    return client


@contextlib.contextmanager
def active_tracking(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for the block.

    A tracking URI the process had set explicitly is restored afterwards; when none was set,
    ``uri`` stays (restoring MLflow's default would make later fluent calls create a stray
    ``./mlflow.db``). The ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` environment
    variables MLflow sets are put back as they were.
    """
    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    previous = mlflow.get_tracking_uri() if is_tracking_uri_set() else None
    previous_registry = mlflow.get_registry_uri() if previous is not None else None
    saved_env = {k: os.environ.get(k) for k in _URI_ENV}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        if previous is not None and previous_registry is not None:
            mlflow.set_tracking_uri(previous)
            mlflow.set_registry_uri(previous_registry)
        # MLflow also exports the URIs to the environment (for child processes): undo that,
        # so a later subprocess does not silently talk to this store.
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _probe_http(uri: str) -> None:
    import httpx

    url = uri.rstrip("/") + "/health"
    try:
        response = httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"tracking server {redact_text(uri)} is unreachable ({type(exc).__name__}); start it "
            "or point --tracking-uri / REGRESSOPS_TRACKING_URI at a running one",
            reason="tracking_unavailable",
        ) from None
    if response.status_code >= 500:
        raise RegistryError(
            f"tracking server {redact_text(uri)} is not healthy (HTTP {response.status_code})",
            reason="tracking_unavailable",
        )


def _probe_database(uri: str) -> None:
    """One connection attempt with a short timeout: MLflow's own engine retries an unreachable
    database for about 100 s before it gives up."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    timeout = {"connect_timeout": int(PROBE_TIMEOUT_S)} if uri.startswith("postgresql") else {}
    try:
        engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args=timeout)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any driver's connection error: the store cannot be used
        raise RegistryError(
            f"tracking store {redact_text(uri)} is unreachable ({type(exc).__name__}); start it "
            "or point --tracking-uri / REGRESSOPS_TRACKING_URI at a running one",
            reason="tracking_unavailable",
        ) from None


@contextlib.contextmanager
def mlflow_errors(what: str, *, unavailable: bool = False) -> Iterator[None]:
    """Turn MLflow and connection exceptions inside the block into :class:`RegistryError`.

    Parameters
    ----------
    what : str
        What was being done, for the message (``"model diabetes version 3"``).
    unavailable : bool, default=False
        Treat any failure as the store being unavailable.
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except RegistryError:
        raise
    except MlflowException as exc:
        code = str(getattr(exc, "error_code", ""))
        message = exc.message if hasattr(exc, "message") else str(exc)
        raise _store_error(what, message, code=code, unavailable=unavailable) from None
    except Exception as exc:
        _raise_transport_error(what, exc)
        raise


@contextlib.contextmanager
def store_errors(what: str) -> Iterator[None]:
    """:func:`mlflow_errors` for code that writes MLflow's store without MLflow.

    A database error gets the line MLflow's store gives it (MLflow wraps the SQLAlchemy error in
    an ``MlflowException`` with the same text); file-system and connection errors get the same
    lines as under :func:`mlflow_errors`. Nothing here imports MLflow.
    """
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy") and not isinstance(exc, OSError):
            raise _store_error(what, str(exc)) from None
        _raise_transport_error(what, exc)
        raise


def _store_error(
    what: str, message: str, *, code: str = "", unavailable: bool = False
) -> RegistryError:
    line = _first_line(message)
    if unavailable or _looks_unreachable(line):
        return RegistryError(f"{what} is unavailable: {line}", reason="tracking_unavailable")
    reason = "not_found" if code in _NOT_FOUND or "not found" in line else "registry_error"
    return RegistryError(f"{what}: {line}", reason=reason)


def _raise_transport_error(what: str, exc: Exception) -> None:
    """Raise the "unavailable" error of a file-system or connection failure (else return)."""
    transport = type(exc).__module__.startswith(("requests", "urllib3", "sqlalchemy"))
    if isinstance(exc, (OSError, ConnectionError)) or transport:
        raise RegistryError(
            f"{what} is unavailable: {type(exc).__name__}: {_first_line(str(exc))}",
            reason="tracking_unavailable",
        ) from None


def _looks_unreachable(message: str) -> bool:
    text = message.lower()
    return any(
        s in text
        for s in ("max retries exceeded", "connection refused", "failed to establish", "timed out")
    )


def _first_line(text: str, limit: int = 300) -> str:
    line = redact_text(text.strip().splitlines()[0] if text.strip() else "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def tag_value(value: Any, limit: int = 5000) -> str:
    """A tag value: text, truncated to what every MLflow store accepts."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
