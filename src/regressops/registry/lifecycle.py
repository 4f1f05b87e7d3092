"""The model lifecycle on MLflow's registry: register, promote, rollback, archive, list.

Aliases (MLflow's replacement for stages) carry the roles: ``@champion`` is what serves,
``@challenger`` a candidate kept aside. Each version also carries tags:

- ``regressops.status``: ``candidate``, ``champion``, ``challenger``, ``previous`` (a champion
  that was replaced) or ``archived``; with ``regressops.status.by`` / ``.at`` / ``.why`` (who,
  when in UTC, why) and an append-only ``regressops.history`` (JSON lines, newest last);
- ``regressops.replaced``: on a champion, the version it replaced — what ``rollback`` restores;
- ``regressops.gates``: ``passed``, ``failed`` or ``forced``, and the metrics ``regressops.r2``,
  ``regressops.rmse`` for listing.

Every change runs under :func:`~regressops.registry.locks.registry_lock` and is verified after
writing; the champion alias is only ever moved (one write), never deleted, and the champion
cannot be archived, so the registry is never without a champion once it had one.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regressops.errors import GateFailed, RegistryError
from regressops.registry.connection import active_tracking, mlflow_errors, sqlite_path, tag_value
from regressops.registry.locks import SETTLE_S, registry_lock

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
STATUS = "regressops.status"
REPLACED = "regressops.replaced"
GATES = "regressops.gates"
HISTORY = "regressops.history"
EPOCH = "regressops.champion_epoch"
ACTOR_ENV = "REGRESSOPS_ACTOR"

#: ``check(candidate, champion_or_None) -> (passed, summary, report_dict)``, run under the lock.
GateCheckFn = Callable[["ModelVersion", "ModelVersion | None"], tuple[bool, str, dict[str, Any]]]


@dataclass(frozen=True)
class Change:
    """The outcome of a lifecycle change."""

    name: str
    version: str
    action: str
    previous: str | None = None
    gates: str | None = None
    detail: str = ""
    report: dict[str, Any] = field(default_factory=dict)


def actor() -> str:
    """Who makes a change: ``REGRESSOPS_ACTOR``, else ``user@host``."""
    configured = os.environ.get(ACTOR_ENV)
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def register_version(
    client: MlflowClient,
    uri: str,
    name: str,
    *,
    model_uri: str,
    run_id: str,
    model_id: str | None = None,
    metrics: dict[str, float] | None = None,
    kind: str | None = None,
    why: str = "trained",
) -> str:
    """Register a logged model as a new version of ``name`` (created when missing).

    Returns
    -------
    str
        The new version number.
    """
    from mlflow.exceptions import MlflowException

    with mlflow_errors(f"registering model {name!r}"), active_tracking(uri):
        try:
            client.create_registered_model(name, tags={"regressops.managed": "true"})
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        tags = {STATUS: "candidate"}
        if kind:
            tags["regressops.kind"] = kind
        for key, value in (metrics or {}).items():
            tags[f"regressops.{key}"] = f"{value:.6g}"
        mv = client.create_model_version(
            name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
        )
    version = str(mv.version)
    _record(client, name, version, "candidate", why, status=True)
    return version


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """Return version ``version`` of ``name``; a clear error when either does not exist."""
    if not str(version).isdigit():
        raise RegistryError(
            f"model version must be a positive integer, got {version!r}", reason="invalid_version"
        )
    _require_model(client, name)
    with mlflow_errors(f"model {name!r} version {version}"):
        return client.get_model_version(name, str(version))


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """Return the version holding ``alias`` on ``name``, or None when no version holds it."""
    model = _require_model(client, name)
    version = model.aliases.get(alias) if isinstance(model.aliases, dict) else None
    if version is None:
        return None
    with mlflow_errors(f"model {name!r} alias @{alias}"):
        return client.get_model_version(name, str(version))


def promote(
    client: MlflowClient,
    uri: str,
    name: str,
    version: str,
    *,
    alias: str = CHAMPION,
    why: str = "",
    check: GateCheckFn | None = None,
    force: bool = False,
) -> Change:
    """Give ``alias`` to ``name`` version ``version``, after its gates pass.

    Parameters
    ----------
    client, uri
        Registry client and its tracking URI (for the lock).
    name, version : str
        The registered model and the version to promote.
    alias : {"champion", "challenger"}
        The role to give.
    why : str
        Reason recorded in the tags; required with ``force``.
    check : callable, optional
        Gate check run under the lock against the current champion (see :data:`GateCheckFn`).
    force : bool
        Skip the gates (a reason is required and recorded).

    Raises
    ------
    GateFailed
        The version failed its gates; the champion did not move.
    RegistryError
        Unknown model or version, a bad alias, a busy registry, or a concurrent change detected.
    """
    if alias not in ALIASES:
        raise RegistryError(f"alias must be one of {ALIASES}, got {alias!r}", reason="bad_alias")
    if force and not why.strip():
        raise RegistryError("--force needs a reason (--reason TEXT)", reason="reason_required")
    get_version(client, name, version)
    with registry_lock(client, uri, name) as owner:
        mv = get_version(client, name, version)
        current = alias_version(client, name, alias)
        epoch = _epoch(client, name)
        if current is not None and str(current.version) == str(version):
            return Change(name, str(version), "unchanged", detail=f"already @{alias}")
        if alias == CHALLENGER and _holds(client, name, CHAMPION, str(version)):
            raise RegistryError(
                f"{name} v{version} is @champion; it cannot also be @challenger",
                reason="is_champion",
            )
        champion = current if alias == CHAMPION else alias_version(client, name, CHAMPION)
        report: dict[str, Any] = {}
        gates, summary = "forced", f"forced: {why}"
        if check is None and not force:
            gates, summary = "unchecked", "no gate check given"
        elif check is not None and not force:
            passed, summary, report = check(mv, champion)
            gates = "passed" if passed else "failed"
            _set_tag(client, name, str(version), GATES, gates)
            if not passed:
                _record(client, name, str(version), f"gates failed for @{alias}", summary)
                raise GateFailed(
                    f"{name} v{version} was not promoted to @{alias}: {summary}",
                    report=report,
                    summary=summary,
                )
        _write_alias(client, uri, name, alias, str(version), epoch, owner)
        previous = str(current.version) if current is not None else None
        reason = why or f"gates {gates}"
        if alias == CHAMPION:
            _set_tag(client, name, str(version), REPLACED, previous or "")
            if previous is not None:
                _record(client, name, previous, "previous", f"replaced by v{version}", status=True)
            if _holds(client, name, CHALLENGER, str(version)):
                client.delete_registered_model_alias(name, CHALLENGER)
        elif previous is not None:
            _record(client, name, previous, "candidate", f"@challenger given to v{version}", True)
        _record(client, name, str(version), alias, reason, status=True)
    logger.info("%s v%s is now @%s (was %s)", name, version, alias, previous)
    return Change(name, str(version), f"@{alias}", previous, gates, summary, report)


def rollback(client: MlflowClient, uri: str, name: str, *, why: str = "") -> Change:
    """Give ``@champion`` back to the version the current champion replaced.

    Raises
    ------
    RegistryError
        No champion, or no previous champion recorded.
    """
    with registry_lock(client, uri, name) as owner:
        current = alias_version(client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"model {name!r} has no @champion to roll back", reason="no_alias")
        previous = current.tags.get(REPLACED) or ""
        if not previous:
            raise RegistryError(
                f"{name} v{current.version} replaced no earlier champion; nothing to roll back to",
                reason="no_previous",
            )
        get_version(client, name, previous)
        epoch = _epoch(client, name)
        _write_alias(client, uri, name, CHAMPION, previous, epoch, owner)
        reason = why or "rollback"
        _record(client, name, str(current.version), "archived", f"rolled back: {reason}", True)
        _record(client, name, previous, CHAMPION, f"restored by rollback: {reason}", status=True)
    return Change(name, previous, "rollback", str(current.version), detail=reason)


def archive(client: MlflowClient, uri: str, name: str, version: str, *, why: str = "") -> Change:
    """Mark ``name`` version ``version`` archived (and drop its ``@challenger``).

    Raises
    ------
    RegistryError
        The version is the champion (promote another or roll back first), or does not exist.
    """
    with registry_lock(client, uri, name):
        get_version(client, name, version)
        if _holds(client, name, CHAMPION, str(version)):
            raise RegistryError(
                f"{name} v{version} is @champion and cannot be archived; promote another version "
                "or roll back first",
                reason="is_champion",
            )
        if _holds(client, name, CHALLENGER, str(version)):
            with mlflow_errors(f"model {name!r}"):
                client.delete_registered_model_alias(name, CHALLENGER)
        _record(client, name, str(version), "archived", why or "archived", status=True)
    return Change(name, str(version), "archived", detail=why)


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
                "updated": _iso(m.last_updated_timestamp),
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
        t = v.tags or {}
        rows.append(
            {
                "version": str(v.version),
                "aliases": sorted(aliases.get(str(v.version), [])),
                "status": t.get(STATUS, ""),
                "kind": t.get("regressops.kind", ""),
                "r2": t.get("regressops.r2"),
                "rmse": t.get("regressops.rmse"),
                "gates": t.get(GATES, ""),
                "by": t.get(f"{STATUS}.by", ""),
                "at": t.get(f"{STATUS}.at", ""),
                "why": t.get(f"{STATUS}.why", ""),
                "run_id": v.run_id,
                "created": _iso(v.creation_timestamp),
            }
        )
    return rows


# ---------------------------------------------------------------------------- internals
def _require_model(client: MlflowClient, name: str) -> Any:
    if not name or "/" in name or "@" in name:
        raise RegistryError(
            f"invalid registered model name {name!r}; expected a name without '/' or '@'",
            reason="invalid_name",
        )
    with mlflow_errors(f"registered model {name!r}"):
        return client.get_registered_model(name)


def _holds(client: MlflowClient, name: str, alias: str, version: str) -> bool:
    with mlflow_errors(f"registered model {name!r}"):
        aliases = client.get_registered_model(name).aliases or {}
    return str(aliases.get(alias)) == str(version)


def _epoch(client: MlflowClient, name: str) -> int:
    with mlflow_errors(f"registered model {name!r}"):
        value = str(client.get_registered_model(name).tags.get(EPOCH, "0"))
    number = value.partition(":")[0]
    return int(number) if number.isdigit() else 0


def _write_alias(
    client: MlflowClient, uri: str, name: str, alias: str, version: str, epoch: int, owner: str
) -> None:
    """Move ``alias`` with a compare-and-set on the change counter, then verify the write.

    The counter tag holds ``N:owner``. Off SQLite (where the file lock is exact) the check
    waits :data:`~regressops.registry.locks.SETTLE_S` after writing, so a racing writer's
    alias or counter shows up before this one declares success.
    """
    what = f"moving @{alias} of {name!r} to v{version}"
    stamp = f"{epoch + 1}:{owner}"
    with mlflow_errors(what):
        if _epoch(client, name) != epoch:
            raise RegistryError(
                f"{what}: the registry changed concurrently; nothing was moved, try again",
                reason="concurrent_change",
            )
        client.set_registered_model_alias(name, alias, version)
        client.set_registered_model_tag(name, EPOCH, stamp)
        if sqlite_path(uri) is None:
            time.sleep(SETTLE_S)
        after = client.get_registered_model(name)
    if str((after.aliases or {}).get(alias)) != version or after.tags.get(EPOCH) != stamp:
        raise RegistryError(
            f"{what}: another process changed the registry at the same time; @{alias} is now "
            f"v{(after.aliases or {}).get(alias)}; check with `regressops models list {name}`",
            reason="concurrent_change",
        )


def _record(
    client: MlflowClient, name: str, version: str, event: str, why: str, status: bool = False
) -> None:
    """Tag who/when/why on a version and append the event to its history."""
    who, when = actor(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with mlflow_errors(f"tagging {name!r} v{version}"):
        if status:
            for key, value in ((STATUS, event), (f"{STATUS}.by", who)):
                client.set_model_version_tag(name, version, key, value)
            client.set_model_version_tag(name, version, f"{STATUS}.at", when)
            client.set_model_version_tag(name, version, f"{STATUS}.why", tag_value(why, 500))
        mv = client.get_model_version(name, version)
        lines = (mv.tags or {}).get(HISTORY, "").splitlines()
        event_doc = {"event": event, "by": who, "at": when, "why": why[:300]}
        entry = json.dumps(event_doc)
        lines.append(entry)
        while len("\n".join(lines)) > 4800 and len(lines) > 1:
            lines.pop(0)
        client.set_model_version_tag(name, version, HISTORY, "\n".join(lines))
        last = tag_value(json.dumps({"version": version, **event_doc}))
        client.set_registered_model_tag(name, "regressops.last_change", last)


def _set_tag(client: MlflowClient, name: str, version: str, key: str, value: str) -> None:
    with mlflow_errors(f"tagging {name!r} v{version}"):
        client.set_model_version_tag(name, version, key, value)


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
