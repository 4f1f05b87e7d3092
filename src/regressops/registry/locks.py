"""Mutual exclusion for registry changes (promote, rollback, archive) across processes.

MLflow moves an alias with one write, so the registry is never without ``@champion`` on its own;
what can go wrong with two concurrent promotions is the bookkeeping around that write (which
version was replaced, what rollback restores, which champion the gates compared against). Every
change therefore runs under a per-model lock:

- **SQLite store** (the embedded default): an ``fcntl`` lock on a file beside the database —
  exact, and released by the kernel if the process dies.
- **Any other store** (an MLflow server, PostgreSQL): a lease written as the registered model's
  tag ``regressops.lock`` = ``owner|expiry``. A taker writes its lease only when none is live,
  waits :data:`SETTLE_S` and re-reads: only the writer whose lease survived holds the lock, so
  two takers that both saw the lock free cannot both proceed unless one's read-to-write gap
  exceeds the settle time (one HTTP round trip against half a second). A crashed holder's
  lease expires after ``ttl``. Changes made under the lock are also verified after writing
  (:func:`regressops.registry.lifecycle.promote` re-reads the alias and a change counter).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from regressops.errors import RegistryError
from regressops.reasons import Reason
from regressops.registry.connection import mlflow_errors, sqlite_path

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

LOCK_TAG = "regressops.lock"
SETTLE_S = 0.5
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_TTL_S = 120.0


@contextlib.contextmanager
def registry_lock(
    client: MlflowClient,
    uri: str,
    name: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    ttl: float = DEFAULT_TTL_S,
) -> Iterator[str]:
    """Hold the change lock of registered model ``name`` for the duration of the block.

    Parameters
    ----------
    client : MlflowClient
        Client of the store at ``uri``.
    uri : str
        Tracking URI (chooses the file lock for SQLite, the tag lease otherwise).
    name : str
        Registered model name.
    timeout : float
        Seconds to wait for the lock.
    ttl : float
        Lifetime of a tag lease (a crashed holder's lock frees itself after this).

    Yields
    ------
    str
        The owner id of this lock holder.

    Raises
    ------
    RegistryError
        ``reason="registry_busy"`` when the lock is not obtained within ``timeout``.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    db = sqlite_path(uri)
    if db is not None:
        with _file_lock(db.with_name(db.name + ".regressops-lock"), name, timeout):
            yield owner
    else:
        with _tag_lease(client, name, owner, timeout, ttl):
            yield owner


@contextlib.contextmanager
def _file_lock(path: Path, name: str, timeout: float) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with path.open("a+b") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"registered model {name!r} is being changed by another process "
                        f"(lock {path} held for over {timeout:g}s); try again",
                        reason="registry_busy",
                    ) from None
                time.sleep(0.02 + random.random() * 0.03)  # noqa: S311 - jitter, not crypto
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _tag_lease(
    client: MlflowClient, name: str, owner: str, timeout: float, ttl: float
) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    what = f"lock of registered model {name!r}"
    while True:
        with mlflow_errors(what):
            holder = _live_holder(client, name)
        if holder is None:
            try:
                with mlflow_errors(what):
                    client.set_registered_model_tag(name, LOCK_TAG, f"{owner}|{time.time() + ttl}")
            except RegistryError as exc:
                # Two first writes of the tag can collide in the store (a unique-key error):
                # that is losing the race, not a failure; look again.
                if exc.reason == Reason.TRACKING_UNAVAILABLE:
                    raise
                logger.debug("lease write collided: %s", exc.message)
            else:
                time.sleep(SETTLE_S)
                with mlflow_errors(what):
                    if _live_holder(client, name) == owner:
                        break
        if time.monotonic() > deadline:
            raise RegistryError(
                f"registered model {name!r} is being changed by another process (lease held by "
                f"{holder or 'another taker'}); try again",
                reason="registry_busy",
            )
        time.sleep(0.05 + random.random() * 0.2)  # noqa: S311 - jitter, not crypto
    try:
        yield
    finally:
        with contextlib.suppress(Exception), mlflow_errors(what):
            if _live_holder(client, name) == owner:
                client.delete_registered_model_tag(name, LOCK_TAG)


def _live_holder(client: MlflowClient, name: str) -> str | None:
    value = client.get_registered_model(name).tags.get(LOCK_TAG)
    if not value:
        return None
    holder, _, expiry = value.rpartition("|")
    try:
        if float(expiry) < time.time():
            return None
    except ValueError:
        return None
    return holder
