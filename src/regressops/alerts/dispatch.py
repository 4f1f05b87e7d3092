"""Raising an event: build it once, send it to every subscribed webhook at the same time.

:func:`emit` is what jobs call (monitoring, retraining, promotion). It never raises for a
delivery problem (an unreachable receiver, a refused address, a missing secret): each becomes a
:class:`~regressops.alerts.delivery.DeliveryResult` with ``delivered=False``, a line in the
delivery log and a warning. Webhooks are served concurrently, so ``emit`` returns within the
slowest webhook's bound (see :mod:`regressops.alerts.delivery`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from regressops.alerts.delivery import DeliveryResult, deliver
from regressops.alerts.delivery_log import DeliveryLog, delivery_log_path
from regressops.alerts.endpoints import (
    Endpoint,
    build_endpoint,
    build_endpoints,
    label_of,
    subscribed,
)
from regressops.alerts.events import PING, Event, make_event
from regressops.config import Settings
from regressops.errors import ConfigError
from regressops.reasons import Reason

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1, thread_name_prefix="regressops-webhooks") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _send_all(endpoints: list[Endpoint], event: Event, log: DeliveryLog) -> list[Any]:
    return list(
        await asyncio.gather(*(deliver(e, event, log) for e in endpoints), return_exceptions=True)
    )


def _not_sent(label: str, event: Event, why: str, log: DeliveryLog) -> DeliveryResult:
    logger.warning("%s event %s not sent: %s", event.type, event.id, why)
    log.attempt(event, label, attempt=0, outcome="not_sent", error=why)
    return DeliveryResult(label, event.id, event.type, delivered=False, attempts=0, error=why)


def send(settings: Settings, endpoints: list[Endpoint], event: Event) -> list[DeliveryResult]:
    """Deliver ``event`` to ``endpoints`` concurrently; never raises for a delivery problem."""
    log = DeliveryLog(delivery_log_path(settings))
    results = _run(_send_all(endpoints, event, log))
    out: list[DeliveryResult] = []
    for endpoint, result in zip(endpoints, results, strict=True):
        if isinstance(result, BaseException):  # a bug, not a delivery problem: keep the job going
            logger.error("webhook %s: delivery crashed", endpoint.label, exc_info=result)
            result = DeliveryResult(
                endpoint.label, event.id, event.type, delivered=False, attempts=0,
                error=type(result).__name__,
            )  # fmt: skip
        out.append(result)
    return out


def emit(
    settings: Settings,
    event_type: str,
    data: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
) -> list[DeliveryResult]:
    """Send an event to every webhook that subscribed to its type.

    Parameters
    ----------
    settings : Settings
        Its ``webhooks`` say where events go; the delivery log lives under its ``home``.
    event_type : str
        One of :data:`regressops.alerts.EVENT_TYPES` (``drift.detected``, ``gate.failed``,
        ``model.promoted``, ...).
    data : mapping
        The event's details: model name, versions, drift summary or gate report, report paths.
    environ : mapping, optional
        Where secret variables are read (default: ``os.environ``).

    Returns
    -------
    list of DeliveryResult
        One per subscribed webhook (empty when none is configured or subscribed).

    Raises
    ------
    ConfigError
        Only for an unknown ``event_type`` (a programming error). A misconfigured or
        unreachable webhook is a failed result, a line in the delivery log and a warning.

    Examples
    --------
    >>> from regressops.config import Settings
    >>> emit(Settings(webhooks=[]), "model.promoted", {"model": "diabetes", "version": "3"})
    []
    """
    event = make_event(event_type, dict(data))
    log = DeliveryLog(delivery_log_path(settings))
    refused: dict[int, DeliveryResult] = {}
    endpoints: list[Endpoint] = []
    for i, config in enumerate(settings.webhooks):
        if not subscribed(config, event_type):
            continue
        try:
            endpoints.append(build_endpoint(config, environ))
        except ConfigError as exc:
            refused[i] = _not_sent(label_of(config), event, exc.message, log)
    sent = iter(send(settings, endpoints, event) if endpoints else [])
    order = [i for i, c in enumerate(settings.webhooks) if subscribed(c, event_type)]
    return [refused[i] if i in refused else next(sent) for i in order]


def ping(
    settings: Settings,
    *,
    webhook: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[DeliveryResult]:
    """Send a ``ping`` event to every webhook (or the one labelled ``webhook``).

    Raises
    ------
    ConfigError
        No webhook is configured or matches ``webhook``, or one is misconfigured (malformed
        URL, refused address, missing or malformed secret): one line naming it.
    """
    endpoints = build_endpoints(settings, environ)
    if webhook is not None:
        endpoints = [e for e in endpoints if webhook in (e.label, e.config.url)]
    if not endpoints:
        what = f"no webhook named {webhook!r}" if webhook else "no webhook is configured"
        raise ConfigError(
            f"{what}; add a [[webhooks]] entry (url, secret_env) to regressops.toml",
            reason=Reason.NO_WEBHOOK,
        )
    event = make_event(PING, {"message": "regressops webhook test", "webhook": webhook})
    return send(settings, endpoints, event)
