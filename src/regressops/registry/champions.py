"""The champion history of a registered model: a stack of who held ``@champion``, newest last.

Each promotion to ``@champion`` pushes an entry ``{"version", "by", "at", "why", "gates"}``
onto the registered model's ``regressops.champions`` tag (JSON, oldest entries dropped once it
nears the 5,000 characters every MLflow store accepts). A rollback pops the current champion
and walks down the stack to the newest earlier champion that may serve again, so repeated
rollbacks walk back through real history and end when it is exhausted — they never cycle.

A version that was archived after it left ``@champion`` is skipped unless the rollback is forced
with a reason; a version that no longer exists is always skipped. :func:`pick_previous` says
what it skipped and why, for the operator and the version's history.

Registries written before this tag existed have only ``regressops.replaced`` on the champion;
:func:`read_stack` turns that into a two-entry stack, so one rollback still works there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHAMPIONS = "regressops.champions"
#: What the longest stack may take, below the 5,000 characters of a registered-model tag.
MAX_CHARS = 4800
_WHY_CHARS = 120


@dataclass(frozen=True)
class Pick:
    """The outcome of walking the stack for a rollback.

    Attributes
    ----------
    version : str or None
        The version to restore; None when the history holds no eligible one.
    stack : list of dict
        The stack to write once ``version`` holds ``@champion`` (its entry on top).
    skipped : list of str
        One ``"vN (why)"`` per entry passed over, newest first.
    """

    version: str | None
    stack: list[dict[str, Any]]
    skipped: list[str]


def read_stack(tags: dict[str, Any], champion: str | None, replaced: str | None) -> list[dict]:
    """The champion stack stored in a registered model's ``tags``, oldest first.

    Parameters
    ----------
    tags : dict
        The registered model's tags.
    champion, replaced : str or None
        The current ``@champion`` version and its ``regressops.replaced`` tag, used only when the
        model has no stack yet (a registry written by an earlier regressops).
    """
    raw = tags.get(CHAMPIONS)
    if raw:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if isinstance(doc, list) and all(isinstance(e, dict) and "version" in e for e in doc):
            return [dict(e, version=str(e["version"])) for e in doc]
    legacy = [{"version": str(v), "why": "before the champion history"} for v in (replaced,) if v]
    return legacy + ([{"version": str(champion), "why": "current"}] if champion else [])


def push(stack: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """``stack`` with ``entry`` on top (its reason shortened)."""
    top = dict(entry, version=str(entry["version"]), why=str(entry.get("why", ""))[:_WHY_CHARS])
    return [*stack, top]


def encode(stack: list[dict[str, Any]]) -> str:
    """The tag value for ``stack``: JSON, the oldest entries dropped to fit :data:`MAX_CHARS`."""
    kept = list(stack)
    text = json.dumps(kept, separators=(",", ":"))
    while len(text) > MAX_CHARS and len(kept) > 1:
        kept.pop(0)
        text = json.dumps(kept, separators=(",", ":"))
    return text


def pick_previous(
    stack: list[dict[str, Any]],
    current: str,
    status_of: Callable[[str], str | None],
    *,
    force: bool = False,
) -> Pick:
    """Walk ``stack`` down from the current champion to the version a rollback restores.

    Parameters
    ----------
    stack : list of dict
        The champion stack, oldest first; its top is normally ``current``.
    current : str
        The version holding ``@champion`` now.
    status_of : callable
        ``status_of(version)``: the version's ``regressops.status``, or None when the version
        no longer exists.
    force : bool
        Allow an archived version (the caller requires a reason).

    Returns
    -------
    Pick
        The version to restore (or None), the stack to store and what was skipped.
    """
    rest = list(stack)
    while rest and rest[-1]["version"] == current:
        rest.pop()  # the current champion (possibly promoted several times in a row)
    skipped: list[str] = []
    while rest:
        entry = rest[-1]
        version = entry["version"]
        status = status_of(version)
        if version == current:
            why = "it is the current champion"
        elif status is None:
            why = "no longer exists"
        elif status == "archived" and not force:
            why = "archived; restore it with --force --reason"
        else:
            return Pick(version, rest, skipped)
        skipped.append(f"v{version} ({why})")
        rest.pop()
    return Pick(None, [], skipped)
