"""The model lifecycle on MLflow's registry: register, promote, rollback, archive, list.

Aliases (MLflow's replacement for stages) carry the roles: ``@champion`` is what serves,
``@challenger`` a candidate kept aside. Each version also carries tags:

- ``regressops.status``: ``candidate``, ``champion``, ``challenger``, ``previous`` (a champion
  that was replaced) or ``archived``; with ``regressops.status.by`` / ``.at`` / ``.why`` (who,
  when in UTC, why) and an append-only ``regressops.history`` (JSON lines, newest last);
- ``regressops.replaced``: on a champion, the version it replaced (for reading; ``rollback``
  walks the registered model's champion history, :mod:`regressops.registry.champions`);
- ``regressops.gates``: ``passed``, ``failed`` or ``forced`` (a forced promotion also marks
  its history entry ``"forced": true``), and the metrics ``regressops.r2``, ``regressops.rmse``;
- ``regressops.evidence``: on a version promoted on live evidence (``promote --evidence``, the
  challenger in shadow against the champion on labelled rows), that evidence as JSON; its
  history entry carries it too under ``"evidence"``.

``@challenger`` needs the absolute gates only; beating the champion is what ``@champion`` needs.

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

from regressops.errors import ConfigError, GateFailed, RegistryError
from regressops.registry import champions
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
EVIDENCE = "regressops.evidence"
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
    evidence: dict[str, Any] | None = None,
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
    evidence : dict, optional
        Live evidence the check judged (``promote --evidence``); recorded on the version
        (``regressops.evidence``) and in its history entry once promoted.

    Raises
    ------
    GateFailed
        The version failed its gates; the champion did not move.
    ConfigError
        A bad alias, or ``force`` without a reason (exit code 2).
    RegistryError
        Unknown model or version, a busy registry, or a concurrent change detected.
    """
    if alias not in ALIASES:
        raise ConfigError(
            f"--alias must be one of {', '.join(ALIASES)}, got {alias!r}", reason="bad_alias"
        )
    if force and not why.strip():
        raise ConfigError("--force needs a reason (--reason TEXT)", reason="reason_required")
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
        # @challenger needs the absolute gates only; beating the champion is what @champion needs
        champion = current if alias == CHAMPION else None
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
        if force:
            _set_tag(client, name, str(version), GATES, "forced")
        _write_alias(client, uri, name, alias, str(version), epoch, owner)
        previous = str(current.version) if current is not None else None
        reason = why or f"gates {gates}"
        if alias == CHAMPION:
            _set_tag(client, name, str(version), REPLACED, previous or "")
            _push_champion(client, name, str(version), reason, gates, current)
            if previous is not None:
                _record(client, name, previous, "previous", f"replaced by v{version}", status=True)
            if _holds(client, name, CHALLENGER, str(version)):
                client.delete_registered_model_alias(name, CHALLENGER)
        elif previous is not None:
            _record(client, name, previous, "candidate", f"@challenger given to v{version}", True)
        if evidence is not None:
            _set_tag(client, name, str(version), EVIDENCE, tag_value(json.dumps(evidence), 4800))
        _record(
            client, name, str(version), alias, reason, status=True, gates=gates, evidence=evidence
        )
    logger.info("%s v%s is now @%s (was %s)", name, version, alias, previous)
    return Change(name, str(version), f"@{alias}", previous, gates, summary, report)


def rollback(
    client: MlflowClient, uri: str, name: str, *, why: str = "", force: bool = False
) -> Change:
    """Give ``@champion`` back to the newest earlier champion that may serve again.

    Walks the champion history (:mod:`regressops.registry.champions`) down from the current
    champion: each rollback goes one step further back and the walk ends when the history is
    exhausted. Versions archived since they served are skipped unless ``force`` (which needs
    ``why``); versions that no longer exist are skipped. The current champion is archived.

    Returns
    -------
    Change
        ``detail`` names the reason and every version skipped (``report["skipped"]``).

    Raises
    ------
    ConfigError
        ``force`` without a reason.
    RegistryError
        No champion, or no earlier champion left.
    """
    if force and not why.strip():
        raise ConfigError("--force needs a reason (--reason TEXT)", reason="reason_required")
    with registry_lock(client, uri, name) as owner:
        current = alias_version(client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"model {name!r} has no @champion to roll back", reason="no_alias")
        model = _require_model(client, name)
        stack = champions.read_stack(
            model.tags or {}, str(current.version), current.tags.get(REPLACED) or None
        )
        pick = champions.pick_previous(
            stack, str(current.version), lambda v: _status(client, name, v), force=force
        )
        skipped = f"; skipped {', '.join(pick.skipped)}" if pick.skipped else ""
        if pick.version is None:
            raise RegistryError(
                f"{name} v{current.version}: no earlier champion to roll back to{skipped}",
                reason="no_previous",
            )
        epoch = _epoch(client, name)
        _write_alias(client, uri, name, CHAMPION, pick.version, epoch, owner)
        _set_tag_model(client, name, champions.CHAMPIONS, champions.encode(pick.stack))
        reason = why or "rollback"
        if force and _status(client, name, pick.version) == "archived":
            reason = f"forced: {reason}"
        _record(client, name, str(current.version), "archived", f"rolled back: {reason}", True)
        _record(
            client, name, pick.version, CHAMPION, f"restored by rollback: {reason}{skipped}", True
        )
    logger.info(
        "%s: @champion back on v%s (was v%s)%s", name, pick.version, current.version, skipped
    )
    return Change(
        name,
        pick.version,
        "rollback",
        str(current.version),
        detail=reason + skipped,
        report={"skipped": pick.skipped},
    )


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
    client: MlflowClient,
    name: str,
    version: str,
    event: str,
    why: str,
    status: bool = False,
    gates: str | None = None,
    evidence: dict[str, Any] | None = None,
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
        event_doc: dict[str, Any] = {"event": event, "by": who, "at": when, "why": why[:300]}
        if gates == "forced":
            event_doc["forced"] = True
        if evidence is not None:
            event_doc["evidence"] = evidence
        entry = json.dumps(event_doc)
        lines.append(entry)
        while len("\n".join(lines)) > 4800 and len(lines) > 1:
            lines.pop(0)
        client.set_model_version_tag(name, version, HISTORY, "\n".join(lines))
        last = tag_value(json.dumps({"version": version, **event_doc}))
        client.set_registered_model_tag(name, "regressops.last_change", last)


def _push_champion(
    client: MlflowClient, name: str, version: str, why: str, gates: str, current: Any
) -> None:
    """Put ``version`` on top of the champion history (who, when, why, gates)."""
    model = _require_model(client, name)
    held = str(current.version) if current is not None else None
    before = (current.tags or {}).get(REPLACED) or None if current is not None else None
    stack = champions.read_stack(model.tags or {}, held, before)
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry = {"version": version, "by": actor(), "at": when, "why": why, "gates": gates}
    stack = champions.push(stack, entry)
    _set_tag_model(client, name, champions.CHAMPIONS, champions.encode(stack))


def _status(client: MlflowClient, name: str, version: str) -> str | None:
    """A version's ``regressops.status`` (``""`` when untagged), None when it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return str((mv.tags or {}).get(STATUS, ""))


def _set_tag_model(client: MlflowClient, name: str, key: str, value: str) -> None:
    with mlflow_errors(f"tagging registered model {name!r}"):
        client.set_registered_model_tag(name, key, value)


def _set_tag(client: MlflowClient, name: str, version: str, key: str, value: str) -> None:
    with mlflow_errors(f"tagging {name!r} v{version}"):
        client.set_model_version_tag(name, version, key, value)
