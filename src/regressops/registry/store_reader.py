"""Read which version an alias names straight from the tracking store, without importing MLflow.

Importing MLflow costs 4–6 s on a small machine; a server resolving ``models:/NAME@champion`` at
start-up, and every reload poll after it, needs only one fact: the version the alias names (and
that version's run). This module reads it

- from a SQL tracking store (``sqlite:///…``, ``postgresql://…``, ``mysql://…``): one read-only
  query over MLflow's ``registered_model_aliases`` and ``model_versions`` tables, through
  SQLAlchemy with bound parameters;
- from an MLflow tracking server (``http(s)://…``): ``GET
  /api/2.0/mlflow/registered-models/alias`` with httpx, with the credentials MLflow itself reads
  (``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``).

It answers ``None`` whenever it cannot be sure (another store kind, a schema it does not know, an
unknown alias): the caller then asks MLflow, which gives the precise error. It never guesses.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regressops.redact import redact_text
from regressops.registry.cards import CARD_TAG

logger = logging.getLogger(__name__)

_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_TIMEOUT_S = 5.0
#: The ``alembic_version`` of a store MLflow 3.17 created or migrated (the schema read and written
#: without MLflow; a test creates a store with MLflow and checks it).
SCHEMA_REVISION = "dc11669786a5"


@dataclass(frozen=True)
class AliasTarget:
    """The model version an alias names."""

    name: str
    alias: str
    version: str
    run_id: str | None
    card: str | None = None  # the version's model card tag (regressops.card), if any
    storage_location: str | None = None  # where the version's files are (SQL stores)


def read_version(uri: str, name: str, version: str) -> AliasTarget | None:
    """Version ``version`` of ``name`` when the store at ``uri`` holds it READY, else ``None``.

    The returned target's ``alias`` is empty. ``None`` means "ask MLflow", as for
    :func:`read_alias`.
    """
    try:
        if is_sql_store(uri):
            return _read_sql(uri, name, None, version)
        if uri.startswith(("http://", "https://")):
            return _read_http(uri, name, None, version)
    except Exception as exc:
        logger.debug("light version read of %s failed: %s", redact_text(uri), redact_text(str(exc)))
    return None


def is_sql_store(uri: str) -> bool:
    """True when ``uri`` is a SQL tracking store (sqlite, PostgreSQL, MySQL, MSSQL)."""
    return uri.split(":", 1)[0].split("+", 1)[0] in _SQL_SCHEMES


def read_alias(uri: str, name: str, alias: str) -> AliasTarget | None:
    """The version ``alias`` of registered model ``name`` names in the store at ``uri``.

    Parameters
    ----------
    uri : str
        The tracking URI (SQLAlchemy URL of the store, or an MLflow server's http(s) URL).
    name, alias : str
        Registered model name and alias (without ``@``).

    Returns
    -------
    AliasTarget or None
        ``None`` when the store kind is not read here, the store cannot be read, or the alias
        is unknown: ask MLflow instead.
    """
    try:
        if is_sql_store(uri):
            return _read_sql(uri, name, alias, None)
        if uri.startswith(("http://", "https://")):
            return _read_http(uri, name, alias, None)
    except Exception as exc:  # any failure means "ask MLflow", which explains it properly
        logger.debug("light alias read of %s failed: %s", redact_text(uri), redact_text(str(exc)))
    return None


def store_engine(uri: str) -> Any:
    """A SQLAlchemy engine on the store at ``uri`` without a pool, a PostgreSQL connection
    attempt bounded to :data:`_TIMEOUT_S` (an unreachable server fails in seconds)."""
    import sqlalchemy as sa

    url = sa.make_url(uri)
    args = {"connect_timeout": int(_TIMEOUT_S)} if url.get_backend_name() == "postgresql" else {}
    return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=args)


def sqlite_missing(uri: str) -> bool:
    """True for a ``sqlite`` URL whose database file does not exist (connecting would create
    an empty one)."""
    import sqlalchemy as sa

    url = sa.make_url(uri)
    return url.get_backend_name() == "sqlite" and not (
        url.database and os.path.isfile(url.database)
    )


def file_uri_path(uri: str | None) -> Path | None:
    """The local path of a plain ``file:`` URI (an artefact root, a version's storage
    location); None for any other kind, or one with a host, query or fragment."""
    parts = urllib.parse.urlparse(uri or "")
    if parts.scheme != "file" or parts.netloc or parts.query or parts.params or parts.fragment:
        return None
    return Path(urllib.request.url2pathname(parts.path))


def alias_unset(uri: str, name: str, alias: str) -> bool:
    """True when the SQL store at ``uri`` surely has no alias ``alias`` on model ``name``.

    Sure means: the database exists, its schema is MLflow 3.17's (:data:`SCHEMA_REVISION`) and
    ``registered_model_aliases`` holds no such row. Anything else (another store kind, no
    database yet, another schema, an error) is False: ask MLflow.
    """
    if not is_sql_store(uri):
        return False
    try:
        import sqlalchemy as sa

        if sqlite_missing(uri):
            return False
        engine = store_engine(uri)
        try:
            with engine.connect() as conn:
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                found = conn.execute(
                    sa.text(
                        "SELECT 1 FROM registered_model_aliases WHERE name = :name "
                        "AND alias = :alias AND workspace = :workspace"
                    ),
                    {"name": name, "alias": alias, "workspace": "default"},
                ).first()
        finally:
            engine.dispose()
    except Exception as exc:
        logger.debug("light alias check of %s failed: %s", redact_text(uri), redact_text(str(exc)))
        return False
    return revision == SCHEMA_REVISION and found is None


def _read_sql(uri: str, name: str, alias: str | None, version: str | None) -> AliasTarget | None:
    import sqlalchemy as sa

    if sqlite_missing(uri):
        return None  # connecting would create an empty database file
    if alias is not None:
        query = sa.text(
            "SELECT a.version, v.run_id, v.status, t.value, v.storage_location "
            "FROM registered_model_aliases a "
            "JOIN model_versions v ON v.name = a.name AND v.version = a.version "
            "AND v.workspace = a.workspace "
            "LEFT JOIN model_version_tags t ON t.workspace = v.workspace AND t.name = v.name "
            "AND t.version = v.version AND t.key = :card_key "
            "WHERE a.name = :name AND a.alias = :alias AND a.workspace = :workspace"
        )
        params: dict[str, Any] = {"name": name, "alias": alias, "workspace": "default"}
    else:
        query = sa.text(
            "SELECT v.version, v.run_id, v.status, t.value, v.storage_location "
            "FROM model_versions v "
            "LEFT JOIN model_version_tags t ON t.workspace = v.workspace AND t.name = v.name "
            "AND t.version = v.version AND t.key = :card_key "
            "WHERE v.name = :name AND v.version = :version AND v.workspace = :workspace"
        )
        params = {"name": name, "version": int(str(version)), "workspace": "default"}
    params["card_key"] = CARD_TAG  # the version's model card, read with it (it may have none)
    engine = store_engine(uri)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, params).fetchall()
    finally:
        engine.dispose()
    if len(rows) != 1 or rows[0][2] != "READY":
        return None
    found, run_id, _, card, location = rows[0]
    return AliasTarget(
        name, alias or "", str(int(found)), run_id or None, card or None, location or None
    )


def _auth_headers() -> dict[str, str]:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {}


def _auth() -> Any:
    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    return (user, password) if user and password else None


def rest_get(uri: str, path: str, params: dict[str, Any], *, timeout: float = _TIMEOUT_S) -> Any:
    """``GET <uri>/api/2.0/mlflow/<path>`` with the credentials and TLS setting MLflow's own
    client reads from the environment; the httpx response (httpx errors propagate)."""
    import httpx

    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true")
    return httpx.get(
        f"{uri.rstrip('/')}/api/2.0/mlflow/{path}",
        params=params,
        headers=_auth_headers(),
        auth=_auth(),
        timeout=timeout,
        verify=not insecure,
    )


def _read_http(uri: str, name: str, alias: str | None, version: str | None) -> AliasTarget | None:
    if alias is not None:
        path, params = "registered-models/alias", {"name": name, "alias": alias}
    else:
        path, params = "model-versions/get", {"name": name, "version": str(version)}
    response = rest_get(uri, path, params)
    if response.status_code != 200:
        return None
    mv = response.json().get("model_version") or {}
    if mv.get("status", "READY") != "READY" or "version" not in mv:
        return None
    tags = {t.get("key"): t.get("value") for t in mv.get("tags") or [] if isinstance(t, dict)}
    card = tags.get(CARD_TAG)
    return AliasTarget(
        name, alias or "", str(int(mv["version"])), mv.get("run_id") or None, card or None
    )
