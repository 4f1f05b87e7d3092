"""Webhook alerts: events signed as Standard Webhooks says, delivered with retries and logged.

Jobs call :func:`emit` with an event type and its details; every webhook configured in
``[[webhooks]]`` that subscribed to the type receives ``{"type", "timestamp", "data"}`` signed
with its secret (``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` headers). A failed
delivery never fails the job: it is logged (``<home>/webhooks/deliveries.jsonl``) and warned
about.

Examples
--------
>>> from regressops.config import Settings
>>> from regressops.alerts import emit
>>> emit(Settings(webhooks=[]), "gate.failed", {"model": "diabetes", "candidate": "4"})
[]
"""

from regressops.alerts.delivery import DeliveryResult
from regressops.alerts.delivery_log import delivery_log_path, read_deliveries
from regressops.alerts.dispatch import emit, ping
from regressops.alerts.endpoints import build_endpoints, webhook_status
from regressops.alerts.events import EVENT_TYPES, PING
from regressops.alerts.signing import generate_secret

__all__ = [
    "EVENT_TYPES",
    "PING",
    "DeliveryResult",
    "build_endpoints",
    "delivery_log_path",
    "emit",
    "generate_secret",
    "ping",
    "read_deliveries",
    "webhook_status",
]
