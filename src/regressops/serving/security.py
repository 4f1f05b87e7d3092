"""API keys, request ids, response headers and bind-address checks.

Keys come only from ``REGRESSOPS_API_KEYS`` (via :meth:`Settings.api_key_list`); when any is
configured every endpoint except health, readiness, metrics and the documentation needs
``X-API-Key: KEY`` or ``Authorization: Bearer KEY``. Operator keys (``REGRESSOPS_ADMIN_KEYS``)
are kept apart: once any is configured, the ``/admin/`` endpoints take only them, and a
prediction key there is refused with 403. Keys are compared in constant time against every
configured key and are never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from collections.abc import Iterable

# Endpoints that stay open when keys are configured: liveness/readiness probes, Prometheus
# scraping and the API documentation (which describes the schema, never data).
OPEN_PATHS = frozenset(
    {
        "/healthz", "/readyz", "/ping", "/health", "/v2/health/live", "/v2/health/ready",
        "/metrics", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect",
    }
)  # fmt: skip
OPEN_PREFIXES = ("/docs-assets/",)
ADMIN_PREFIX = "/admin/"

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class ApiKeyGuard:
    """Check a request's credentials against the configured keys.

    Parameters
    ----------
    keys : iterable of str
        The accepted keys; empty turns authentication off.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys if k)

    @property
    def enabled(self) -> bool:
        """True when at least one key is configured."""
        return bool(self._keys)

    @staticmethod
    def is_open(path: str) -> bool:
        """True for paths that never need a key."""
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    def check(self, api_key: bytes | None, authorization: bytes | None) -> bool:
        """Return True when the presented key matches a configured one (constant time)."""
        candidate = api_key
        if candidate is None and authorization is not None:
            scheme, _, token = authorization.partition(b" ")
            if scheme.lower() == b"bearer":
                candidate = token.strip()
        if not candidate:
            return False
        ok = False
        for key in self._keys:  # compare with every key: timing does not reveal which matched
            ok |= hmac.compare_digest(candidate, key)
        return ok


def is_admin(path: str) -> bool:
    """True for the operator endpoints (``/admin/...``)."""
    return path.startswith(ADMIN_PREFIX)


def admin_refusal(
    admin: ApiKeyGuard, api: ApiKeyGuard, api_key: bytes | None, authorization: bytes | None
) -> tuple[int, str] | None:
    """Why an operator endpoint refuses a caller once admin keys are set, else None.

    Returns
    -------
    tuple of (int, str) or None
        ``(401, message)`` without a valid key, ``(403, message)`` for a prediction key, None
        for an admin key.
    """
    if admin.check(api_key, authorization):
        return None
    if api.enabled and api.check(api_key, authorization):
        return 403, "a prediction key cannot do this; send an admin key (REGRESSOPS_ADMIN_KEYS)"
    return 401, "missing or invalid admin key; send X-API-Key: KEY or Authorization: Bearer KEY"


def request_id(header: bytes | None) -> str:
    """Return the caller's ``X-Request-ID`` when it is a safe token, else a new random id."""
    if header is not None and _REQUEST_ID.match(header):
        return header.decode("ascii")
    return os.urandom(16).hex()


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, keys: list[str]) -> str | None:
    """The warning to log when binding beyond loopback without API keys, else None."""
    if keys or is_loopback(host):
        return None
    return (
        f"serving on {host} without API keys: anyone who can reach this address can use the "
        "model; set REGRESSOPS_API_KEYS or bind 127.0.0.1"
    )
