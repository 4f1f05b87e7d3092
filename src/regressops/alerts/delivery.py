"""Sending one event to one webhook: signed, to a checked address, retried with backoff.

Every attempt resolves the host, checks every address (:mod:`regressops.alerts.addresses`) and
POSTs to the first one with the original ``Host`` header (and, for HTTPS, the original name for
SNI and certificate checks), all within the webhook's ``timeout``. Connection errors, timeouts,
429 and 5xx are retried after ``backoff × 2^(n-1)`` seconds (× a random factor in [0.5, 1.5),
at most ``max_backoff``; a 429's or 503's ``Retry-After`` lengthens the wait up to that bound),
with the same id, timestamp, body and signature. Other answers (redirects, which are never
followed, and other 4xx) end the delivery. Each attempt is one line of the delivery log.

A delivery never takes longer than ``max_attempts × timeout`` in all, waits included: each
attempt gets what is left of that budget (at most ``timeout``), and no retry starts when the
wait before it would leave less than ``min(timeout, 0.5 s)``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from regressops import __version__
from regressops.alerts.addresses import BlockedAddress, literal_address, resolve
from regressops.alerts.delivery_log import DeliveryLog
from regressops.alerts.endpoints import Endpoint
from regressops.alerts.events import Event
from regressops.alerts.signing import signature
from regressops.redact import redact_text

logger = logging.getLogger(__name__)

USER_AGENT = f"regressops-webhooks/{__version__}"
MIN_ATTEMPT_SECONDS = 0.5  # no retry with less time than this left in the delivery's budget
_MAX_ERROR = 200


@dataclass(frozen=True)
class DeliveryResult:
    """How an event's delivery to one webhook ended.

    Attributes
    ----------
    webhook : str
        The webhook's label (name, or URL without credentials and query).
    event_id, event_type : str
        The event.
    delivered : bool
        True when the receiver answered 2xx.
    attempts : int
        Attempts made (0: not sent, e.g. a missing secret).
    status : int or None
        The last HTTP status, None when no answer came.
    error : str or None
        Why the last attempt failed.
    """

    webhook: str
    event_id: str
    event_type: str
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None


@dataclass
class _Attempt:
    status: int | None = None
    address: str | None = None
    error: str | None = None
    retry_after: float | None = None
    blocked: bool = False


def _describe(exc: BaseException) -> str:
    text = redact_text(" ".join(str(exc).split()))
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:_MAX_ERROR]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the computed backoff applies


def backoff_delay(attempt: int, *, base: float, cap: float, retry_after: float | None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based), with jitter, at most ``cap``."""
    delay = base * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not crypto)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


def _retryable(attempt: _Attempt) -> bool:
    if attempt.blocked:
        return False
    if attempt.status is None:
        return True  # connection error, timeout, name not resolved
    return attempt.status == 429 or attempt.status >= 500


def _outcome(attempt: _Attempt, *, again: bool) -> str:
    if attempt.error is None:
        return "delivered"
    if again:
        return "retry"
    return "blocked" if attempt.blocked else "failed"


def request_headers(endpoint: Endpoint, event: Event) -> dict[str, str]:
    """The signed headers of ``event`` for ``endpoint`` (the same on every attempt)."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event.id,
        "webhook-timestamp": str(event.timestamp),
        "webhook-signature": signature(endpoint.keys, event.id, event.timestamp, event.body),
    }


async def _post(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    body: bytes,
    headers: dict[str, str],
    address: str,
) -> tuple[int, float | None]:
    """POST to ``address`` with the webhook's own host name in ``Host`` (and SNI for HTTPS)."""
    url = endpoint.url
    extensions: dict[str, Any] = {}
    if url.scheme == "https" and literal_address(url.host) is None:
        extensions["sni_hostname"] = url.host  # the certificate is checked against the name
    request = client.build_request(
        "POST",
        url.copy_with(host=address),
        content=body,
        headers={**headers, "host": url.netloc.decode("ascii")},
        extensions=extensions,
    )
    response = await client.send(request, stream=True)
    try:
        return response.status_code, _retry_after(response.headers.get("retry-after"))
    finally:
        await response.aclose()


async def _attempt_once(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    event: Event,
    headers: dict[str, str],
    timeout: float,
) -> _Attempt:
    result = _Attempt()
    url = endpoint.url
    config = endpoint.config
    try:
        async with asyncio.timeout(timeout):
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses = await resolve(url.host, port, allow_private=config.allow_private)
            for i, address in enumerate(addresses):  # the next checked address if one refuses
                result.address = address
                try:
                    result.status, result.retry_after = await _post(
                        client, endpoint, event.body, headers, address
                    )
                    break
                except httpx.ConnectError:
                    if i == len(addresses) - 1:
                        raise
    except BlockedAddress as exc:
        result.blocked, result.error = True, exc.message
    except TimeoutError:
        result.error = f"no answer within {timeout:.3g} s"
    except (httpx.HTTPError, OSError) as exc:
        result.error = _describe(exc)
    if result.status is not None and not 200 <= result.status < 300:
        result.error = f"HTTP {result.status}" + (
            " (redirects are not followed)" if 300 <= result.status < 400 else ""
        )
    return result


async def deliver(endpoint: Endpoint, event: Event, log: DeliveryLog) -> DeliveryResult:
    """Send ``event`` to ``endpoint``, retrying as the module describes; never raises.

    Parameters
    ----------
    endpoint : Endpoint
        The checked webhook.
    event : Event
        The event (its id, timestamp and body are reused on every attempt).
    log : DeliveryLog
        Receives one line per attempt.

    Returns
    -------
    DeliveryResult
    """
    config = endpoint.config
    headers = request_headers(endpoint, event)
    attempt = _Attempt()
    n = 0
    deadline = time.monotonic() + config.max_attempts * config.timeout  # the whole delivery's
    async with httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=config.timeout, verify=endpoint.verify
    ) as client:
        for n in range(1, config.max_attempts + 1):
            started = time.perf_counter()
            budget = min(config.timeout, deadline - time.monotonic())
            attempt = await _attempt_once(client, endpoint, event, headers, budget)
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            delay = backoff_delay(
                n, base=config.backoff, cap=config.max_backoff, retry_after=attempt.retry_after
            )
            left = deadline - time.monotonic() - delay  # for the next attempt, after the wait
            again = (
                attempt.error is not None
                and _retryable(attempt)
                and n < config.max_attempts
                and left >= min(config.timeout, MIN_ATTEMPT_SECONDS)
            )
            outcome = _outcome(attempt, again=again)
            log.attempt(
                event, endpoint.label, attempt=n, outcome=outcome, status=attempt.status,
                latency_ms=latency_ms, address=attempt.address, error=attempt.error,
            )  # fmt: skip
            if not again:
                break
            logger.info(
                "webhook %s: %s attempt %d failed (%s); retrying in %.2f s",
                endpoint.label, event.type, n, attempt.error, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
    if attempt.error is not None:
        logger.warning(
            "webhook %s: %s event %s not delivered after %d attempt(s): %s",
            endpoint.label, event.type, event.id, n, attempt.error,
        )  # fmt: skip
    return DeliveryResult(
        webhook=endpoint.label,
        event_id=event.id,
        event_type=event.type,
        delivered=attempt.error is None,
        attempts=n,
        status=attempt.status,
        error=attempt.error,
    )
