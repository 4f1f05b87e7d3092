"""Listing registered models and their versions, as rows for a table or JSON.

Metrics (``r2``, ``rmse``) are numbers; versions are strings (MLflow's own type for them).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from regressops.registry.connection import mlflow_errors
from regressops.registry.lifecycle import CHALLENGER, CHAMPION, GATES, STATUS, _require_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

MODEL_COLUMNS = ("name", "latest", "champion", "challenger", "updated")
VERSION_COLUMNS = ("version", "aliases", "status", "kind", "r2", "rmse", "gates", "by", "at", "why")


def list_models(client: MlflowClient) -> list[dict[str, Any]]:
    """One row per registered model: name, versions, champion, challenger, last change."""
    with mlflow_errors("listing registered models"):
        models = list(client.search_registered_models(max_results=1000))
    rows = []
    for m in sorted(models, key=lambda m: m.name):
        aliases = m.aliases if isinstance(m.aliases, dict) else {}
        latest = max((int(v.version) for v in (m.latest_versions or [])), default=None)
        rows.append(
            {
                "name": m.name,
                "latest": latest,
                "champion": _str_or_none(aliases.get(CHAMPION)),
                "challenger": _str_or_none(aliases.get(CHALLENGER)),
                "updated": iso(m.last_updated_timestamp),
            }
        )
    return rows


def list_versions(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """One row per version of ``name``, newest first, with aliases, status and metrics."""
    model = _require_model(client, name)
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


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
