"""Listing registered models and their versions, as rows for a table or JSON.

Metrics (``r2``, ``rmse``) are numbers; versions are strings (MLflow's own type for them),
``latest`` a number. :func:`models_at` and :func:`versions_at` read the store directly (no
MLflow import, see :mod:`regressops.registry.store_listing`) and fall back to ``MlflowClient``
(:func:`list_models`, :func:`list_versions`) for stores they cannot read; both give the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from regressops.registry import store_listing
from regressops.registry.connection import mlflow_errors
from regressops.registry.lifecycle import CHALLENGER, CHAMPION, GATES, STATUS

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient

MODEL_COLUMNS = ("name", "latest", "champion", "challenger", "updated")
VERSION_COLUMNS = ("version", "aliases", "status", "kind", "r2", "rmse", "gates", "by", "at", "why")


def models_at(uri: str, client: Callable[[], MlflowClient]) -> list[dict[str, Any]]:
    """The rows of :func:`list_models`, read directly from the store at ``uri`` when it can be.

    ``client`` makes an ``MlflowClient`` for the stores that cannot be read directly.
    """
    reader = store_listing.reader_for(uri)
    if reader is not None:
        try:
            raw = reader[0]()
        except store_listing.FallBack as exc:
            logger.debug("reading the registry through MLflow: %s", exc)
        else:
            rows = [model_row(m["name"], m["latest"], m["aliases"], m["updated_ms"]) for m in raw]
            return sorted(rows, key=lambda r: r["name"])
    return list_models(client())


def versions_at(uri: str, name: str, client: Callable[[], MlflowClient]) -> list[dict[str, Any]]:
    """The rows of :func:`list_versions`, read directly from the store when it can be."""
    _check_name(name)
    reader = store_listing.reader_for(uri)
    if reader is not None:
        try:
            raw = reader[1](name)
        except store_listing.FallBack as exc:
            logger.debug("reading the registry through MLflow: %s", exc)
        else:
            by_version: dict[str, list[str]] = {}
            for alias, version in raw["aliases"].items():
                by_version.setdefault(version, []).append(alias)
            rows = [
                version_row(
                    v["version"],
                    by_version.get(v["version"], []),
                    v["tags"],
                    v["run_id"],
                    v["created_ms"],
                )
                for v in raw["versions"]
            ]
            return sorted(rows, key=lambda r: -int(r["version"]))
    return list_versions(client(), name)


def model_row(
    name: str, latest: int | None, aliases: dict[str, str], updated_ms: int | None
) -> dict[str, Any]:
    """One registered model's row (shared by every way of reading the registry)."""
    return {
        "name": name,
        "latest": None if latest is None else int(latest),
        "champion": _str_or_none(aliases.get(CHAMPION)),
        "challenger": _str_or_none(aliases.get(CHALLENGER)),
        "updated": iso(updated_ms),
    }


def list_models(client: MlflowClient) -> list[dict[str, Any]]:
    """One row per registered model: name, versions, champion, challenger, last change."""
    with mlflow_errors("listing registered models"):
        models = list(client.search_registered_models(max_results=1000))
    rows = []
    for m in sorted(models, key=lambda m: m.name):
        aliases = m.aliases if isinstance(m.aliases, dict) else {}
        latest = max((int(v.version) for v in (m.latest_versions or [])), default=None)
        aliases = {str(k): str(v) for k, v in aliases.items()}
        rows.append(model_row(m.name, latest, aliases, m.last_updated_timestamp))
    return rows


def list_versions(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """One row per version of ``name``, newest first, with aliases, status and metrics."""
    _check_name(name)
    with mlflow_errors(f"registered model {name!r}"):
        model = client.get_registered_model(name)
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    with mlflow_errors(f"listing versions of {name!r}"):
        versions = list(client.search_model_versions(f"name = '{_quote(name)}'", max_results=1000))
    rows = []
    for v in sorted(versions, key=lambda v: -int(v.version)):
        rows.append(
            version_row(
                str(v.version),
                aliases.get(str(v.version), []),
                dict(v.tags or {}),
                v.run_id,
                v.creation_timestamp,
            )
        )
    return rows


def version_row(
    version: str, aliases: list[str], tags: dict[str, str], run_id: str | None, created: int | None
) -> dict[str, Any]:
    """One version's row from its tags (shared by every way of reading the registry)."""
    return {
        "version": str(version),
        "aliases": sorted(aliases),
        "status": tags.get(STATUS, ""),
        "kind": tags.get("regressops.kind", ""),
        "r2": number(tags.get("regressops.r2")),
        "rmse": number(tags.get("regressops.rmse")),
        "gates": tags.get(GATES, ""),
        "by": tags.get(f"{STATUS}.by", ""),
        "at": tags.get(f"{STATUS}.at", ""),
        "why": tags.get(f"{STATUS}.why", ""),
        "run_id": run_id or None,
        "created": iso(created),
    }


def number(text: str | None) -> float | None:
    """A metric tag as a number (None when absent or not a number)."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def iso(ms: int | None) -> str:
    """Milliseconds since the epoch as an ISO time in UTC ("" when unknown)."""
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).isoformat(timespec="seconds")


def _check_name(name: str) -> None:
    from regressops.errors import RegistryError

    if not name or "/" in name or "@" in name:
        raise RegistryError(
            f"invalid registered model name {name!r}; expected a name without '/' or '@'",
            reason="invalid_name",
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
