"""Event types and the payload every webhook receives.

A payload is ``{"type": ..., "timestamp": ..., "data": {...}}`` serialised once; the same bytes,
id and timestamp go to every webhook and on every attempt, so a receiver can drop duplicates by
the ``webhook-id`` header.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from regressops.errors import ConfigError
from regressops.reasons import Reason

PING = "ping"
EVENT_TYPES: dict[str, str] = {
    "drift.detected": "the monitor found drift between recent requests and the training data",
    "performance.degraded": "the model's metrics on labelled recent rows crossed their bound",
    "validation.failed": "a fresh extract failed validation beyond its failure-rate bound",
    "gate.failed": "a candidate failed its quality gates; the champion stays",
    "model.promoted": "a new version became the champion",
    "model.rolled_back": "the champion alias went back to an earlier version",
    "retrain.finished": "a retraining run finished (promoted or not)",
    "retrain.failed": "a retraining run stopped on an error; nothing was promoted",
    PING: "a test event sent by `regressops webhooks test`",
}
ALL = "*"


@dataclass(frozen=True)
class Event:
    """One event, ready to send.

    Attributes
    ----------
    id : str
        Unique message id (``msg_`` + 32 hex digits), the ``webhook-id`` header.
    type : str
        One of :data:`EVENT_TYPES`.
    timestamp : int
        Seconds since the epoch, the ``webhook-timestamp`` header.
    body : bytes
        The JSON payload ``{"type", "timestamp", "data"}``.
    """

    id: str
    type: str
    timestamp: int
    body: bytes


def check_event_type(event_type: str) -> str:
    """Return ``event_type`` if known.

    Raises
    ------
    ConfigError
        Unknown type; the message lists the known ones.
    """
    if event_type not in EVENT_TYPES:
        known = ", ".join(EVENT_TYPES)
        raise ConfigError(
            f"unknown event type {event_type!r}; expected one of {known}",
            reason=Reason.UNKNOWN_EVENT,
        )
    return event_type


def make_event(event_type: str, data: dict[str, Any], *, now: float | None = None) -> Event:
    """Build an event with a new id and the current time.

    Parameters
    ----------
    event_type : str
        One of :data:`EVENT_TYPES`.
    data : dict
        Event details (model name, versions, drift summary, gate report, report paths).
        Values that JSON cannot hold (paths, dates, numpy numbers) are written as strings or
        numbers.
    now : float, optional
        Seconds since the epoch (default: now).

    Returns
    -------
    Event
    """
    check_event_type(event_type)
    at = time.time() if now is None else now
    payload = {
        "type": event_type,
        "timestamp": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
        "data": data,
    }
    body = orjson.dumps(
        payload, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    )
    return Event(id=f"msg_{os.urandom(16).hex()}", type=event_type, timestamp=int(at), body=body)
