"""List the model registry without importing MLflow, for ``regressops models list``.

Importing MLflow takes seconds (4 s of the 7–12 s ``models list`` took), while listing needs a
handful of rows. Two stores are read directly, read-only, with the same rows as
:mod:`regressops.registry.listing` gives through ``MlflowClient``:

- a **database store** (the embedded ``sqlite:///…/mlflow.db``, or ``postgresql://…`` /
  ``mysql://…`` behind ``mlflow server --backend-store-uri``): SQLAlchemy ``SELECT``\\ s on
  MLflow's registry tables (``registered_models``, ``model_versions``,
  ``registered_model_aliases``, ``model_version_tags``), SQLite opened in read-only mode. These
  tables are MLflow's storage format, pinned with MLflow 3.17; if a query fails (another schema)
  the caller falls back to ``MlflowClient``. Reading never creates or migrates a database: a home
  without ``mlflow.db`` simply has no models;
- an **HTTP tracking server** (``http(s)://…``): MLflow's REST API 2.0 (``registered-models/
  search``, ``registered-models/get``, ``model-versions/search``) with httpx — the documented,
  stable interface of the server, with the same credentials MLflow's client takes from
  ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``.

Any other store (``databricks``, ``file:``) returns None: the caller uses ``MlflowClient``.
:mod:`regressops.registry.store_reader` reads single aliases the same way for serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regressops.errors import RegistryError
from regressops.redact import redact_url
from regressops.registry.store_reader import is_sql_store, rest_get

logger = logging.getLogger(__name__)

DELETED_STAGE = "Deleted_Internal"  # MLflow keeps deleted versions' rows with this stage
WORKSPACE = "default"
HTTP_TIMEOUT_S = 15.0

#: ``(models, versions)`` readers; each returns raw rows (see :func:`sql_reader`).
Reader = tuple[Callable[[], list[dict[str, Any]]], Callable[[str], dict[str, Any]]]


class FallBack(Exception):
    """The store cannot be read directly; use ``MlflowClient``."""


def reader_for(uri: str) -> Reader | None:
    """The direct reader of ``uri``, or None when only ``MlflowClient`` can read it."""
    if is_sql_store(uri):
        return (lambda: _sql_models(uri), lambda name: _sql_model(uri, name))
    if uri.startswith(("http://", "https://")):
        return (lambda: _http_models(uri), lambda name: _http_model(uri, name))
    return None


# ---------------------------------------------------------------------- database store
Query = Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]


def _query(uri: str, run: Callable[[Query], Any], empty: Any) -> Any:
    """``run(query)`` on the database of ``uri`` through SQLAlchemy with bound parameters,
    read-only (SQLite opened with ``mode=ro``); ``empty`` when the embedded file does not exist
    yet (reading never creates the store)."""
    import sqlalchemy as sa

    url = uri
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            return empty
        url = f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return run(lambda sql, args: [tuple(r) for r in conn.execute(sa.text(sql), args)])
    except sa.exc.OperationalError as exc:
        raise _unavailable_or_fallback(uri, exc, getattr(exc, "orig", exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise FallBack(str(exc)) from None
    finally:
        engine.dispose()


def _unavailable_or_fallback(uri: str, exc: Exception, cause: Any) -> Exception:
    text = str(cause).strip()
    lowered = text.lower()
    if "no such table" in lowered or "no such column" in lowered or "does not exist" in lowered:
        return FallBack(text)  # not the schema this reader knows: MLflow's client reads it
    first = text.splitlines()[0] if text else type(exc).__name__
    return RegistryError(
        f"the tracking store {redact_url(uri)} is unavailable: {first}",
        reason="tracking_unavailable",
    )


def _sql_models(uri: str) -> list[dict[str, Any]]:
    def run(query: Query) -> list[dict[str, Any]]:
        ws = {"ws": WORKSPACE, "deleted": DELETED_STAGE}
        models = query(
            "SELECT name, last_updated_time FROM registered_models WHERE workspace = :ws", ws
        )
        latest: dict[str, int] = dict(
            query(
                "SELECT name, MAX(version) FROM model_versions WHERE workspace = :ws "
                "AND (current_stage IS NULL OR current_stage != :deleted) GROUP BY name",
                ws,
            )
        )
        by_model: dict[str, dict[str, str]] = {}
        for name, alias, version in query(
            "SELECT name, alias, version FROM registered_model_aliases WHERE workspace = :ws", ws
        ):
            by_model.setdefault(name, {})[alias] = str(version)
        return [
            {
                "name": name,
                "latest": latest.get(name),
                "aliases": by_model.get(name, {}),
                "updated_ms": updated,
            }
            for name, updated in models
        ]

    return list(_query(uri, run, []))


def _sql_model(uri: str, name: str) -> dict[str, Any]:
    def run(query: Query) -> dict[str, Any]:
        args = {"ws": WORKSPACE, "name": name, "deleted": DELETED_STAGE}
        if not query(
            "SELECT name FROM registered_models WHERE workspace = :ws AND name = :name", args
        ):
            raise _not_found(name)
        aliases = query(
            "SELECT alias, version FROM registered_model_aliases "
            "WHERE workspace = :ws AND name = :name",
            args,
        )
        versions = query(
            "SELECT version, run_id, creation_time FROM model_versions "
            "WHERE workspace = :ws AND name = :name "
            "AND (current_stage IS NULL OR current_stage != :deleted)",
            args,
        )
        tags: dict[str, dict[str, str]] = {}
        for version, key, value in query(
            "SELECT version, key, value FROM model_version_tags "
            "WHERE workspace = :ws AND name = :name",
            args,
        ):
            tags.setdefault(str(version), {})[key] = value
        return {
            "aliases": {alias: str(version) for alias, version in aliases},
            "versions": [
                {
                    "version": str(version),
                    "run_id": run_id,
                    "created_ms": created,
                    "tags": tags.get(str(version), {}),
                }
                for version, run_id, created in versions
            ],
        }

    no_store = {"missing": True}
    result = _query(uri, run, no_store)
    if result is no_store:
        raise _not_found(name)
    return dict(result)


def _not_found(name: str) -> RegistryError:
    # the words MlflowClient's error gives, so both paths read the same
    return RegistryError(
        f"registered model {name!r}: Registered Model with name={name} not found",
        reason="not_found",
    )


# ---------------------------------------------------------------------- HTTP server
def _http_get(uri: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    import httpx

    try:
        response = rest_get(uri, path, params, timeout=HTTP_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"tracking server {redact_url(uri)} is unavailable: {type(exc).__name__}",
            reason="tracking_unavailable",
        ) from None
    try:
        doc = response.json()
    except ValueError:
        doc = {}
    if response.status_code == 404 and doc.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
        raise FallBack("not found")  # the caller words it (a model, or an old server)
    if response.status_code >= 400:
        message = doc.get("message") or response.reason_phrase
        raise RegistryError(
            f"tracking server {redact_url(uri)} refused the request: {message}",
            reason="registry_error",
        )
    return dict(doc)


def _http_models(uri: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        params: dict[str, Any] = {"max_results": 1000}
        if token:
            params["page_token"] = token
        doc = _http_get(uri, "registered-models/search", params)
        for m in doc.get("registered_models", []):
            versions = [int(v["version"]) for v in m.get("latest_versions", [])]
            rows.append(
                {
                    "name": m["name"],
                    "latest": max(versions, default=None),
                    "aliases": {a["alias"]: str(a["version"]) for a in m.get("aliases", [])},
                    "updated_ms": m.get("last_updated_timestamp"),
                }
            )
        token = doc.get("next_page_token")
        if not token:
            return rows


def _http_model(uri: str, name: str) -> dict[str, Any]:
    try:
        model = _http_get(uri, "registered-models/get", {"name": name})["registered_model"]
    except FallBack:
        raise _not_found(name) from None
    versions: list[dict[str, Any]] = []
    token = None
    quoted = name.replace("'", "\\'")
    while True:
        params: dict[str, Any] = {"filter": f"name = '{quoted}'", "max_results": 1000}
        if token:
            params["page_token"] = token
        doc = _http_get(uri, "model-versions/search", params)
        for v in doc.get("model_versions", []):
            versions.append(
                {
                    "version": str(v["version"]),
                    "run_id": v.get("run_id"),
                    "created_ms": v.get("creation_timestamp"),
                    "tags": {t["key"]: t.get("value", "") for t in v.get("tags", [])},
                }
            )
        token = doc.get("next_page_token")
        if not token:
            break
    aliases = {a["alias"]: str(a["version"]) for a in model.get("aliases", [])}
    return {"aliases": aliases, "versions": versions}
