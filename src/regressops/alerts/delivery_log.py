"""The delivery log: one JSON line per attempt under ``<home>/webhooks/deliveries.jsonl``.

Each line holds the time, the event's id and type, the webhook's label, the attempt number, the
outcome (``delivered``, ``retry``, ``failed``, ``blocked``, ``not_sent``), the HTTP status, the
latency in milliseconds, the address connected to and a short error. Never a secret, a
signature or the payload. Lines are appended with one ``write`` on a file opened for appending,
so several processes can share the log; a line torn by a crash is skipped when read.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from regressops.alerts.events import Event
from regressops.config import Settings

logger = logging.getLogger(__name__)

OUTCOMES = ("delivered", "retry", "failed", "blocked", "not_sent")


def delivery_log_path(settings: Settings) -> Path:
    """Where the delivery log of ``settings.home`` lives."""
    return settings.home / "webhooks" / "deliveries.jsonl"


class DeliveryLog:
    """Append attempts to a JSON-lines file.

    Parameters
    ----------
    path : Path
        The log file; its folder is created on the first append.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def attempt(
        self,
        event: Event,
        webhook: str,
        *,
        attempt: int,
        outcome: str,
        status: int | None = None,
        latency_ms: float = 0.0,
        address: str | None = None,
        error: str | None = None,
    ) -> None:
        """Log one attempt (``attempt=0``: the event was not sent) in the module's schema."""
        self.append(
            {
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "event": event.id,
                "type": event.type,
                "webhook": webhook,
                "attempt": attempt,
                "outcome": outcome,
                "status": status,
                "latency_ms": latency_ms,
                "address": address,
                "error": error,
            }
        )

    def append(self, record: dict[str, Any]) -> None:
        """Write one attempt; a failure to write is logged, never raised."""
        line = orjson.dumps(record, default=str) + b"\n"
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as f:
                    f.write(line)
        except OSError as exc:
            logger.warning("cannot write the webhook delivery log %s: %s", self.path, exc)


def read_deliveries(
    path: Path, *, last: int | None = None, event_id: str | None = None
) -> list[dict[str, Any]]:
    """Read attempts from a delivery log, oldest first.

    Parameters
    ----------
    path : Path
        The log file (missing: no attempts).
    last : int, optional
        Keep only the last ``last`` attempts (after filtering).
    event_id : str, optional
        Keep only the attempts of this event.

    Returns
    -------
    list of dict
        One dict per attempt.
    """
    if not path.exists():
        return []
    kept: deque[dict[str, Any]] = deque(maxlen=last if last and last > 0 else None)
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                logger.warning("skipping unreadable line %d of %s", n, path)
                continue
            if isinstance(record, dict) and (event_id is None or record.get("event") == event_id):
                kept.append(record)
    return list(kept)
