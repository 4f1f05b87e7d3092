"""Configured webhooks, checked once: URL, address guard, event names and secrets.

An :class:`Endpoint` is a ``[[webhooks]]`` entry whose secret was read from the environment and
decoded, whose event names are known and whose host (when written as a number or ``localhost``)
passed the address guard. Problems are one-line :class:`~regressops.errors.ConfigError` s
naming the webhook by its label, never by its secret.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from regressops.alerts.addresses import check_host
from regressops.alerts.events import ALL, PING, check_event_type
from regressops.alerts.signing import parse_secrets
from regressops.config import Settings, WebhookSettings
from regressops.errors import ConfigError
from regressops.reasons import Reason


@dataclass(frozen=True, repr=False)
class Endpoint:
    """A webhook ready to receive events.

    Attributes
    ----------
    label : str
        The webhook's name, or its URL without credentials, query or fragment.
    url : httpx.URL
        Where events are POSTed.
    keys : tuple of bytes
        HMAC keys (one per secret during a rotation); not shown by ``repr``.
    config : WebhookSettings
        Its settings (timeout, attempts, backoff, events, allow_private).
    verify : ssl.SSLContext or bool
        What HTTPS trusts (True: the bundled public certificate authorities).
    """

    label: str
    url: httpx.URL
    keys: tuple[bytes, ...]
    config: WebhookSettings
    verify: ssl.SSLContext | bool = True

    def __repr__(self) -> str:
        return f"Endpoint({self.label!r}, {len(self.keys)} key(s))"

    def wants(self, event_type: str) -> bool:
        """True when this webhook subscribed to ``event_type`` (a ping goes to every webhook)."""
        return subscribed(self.config, event_type)


def subscribed(config: WebhookSettings, event_type: str) -> bool:
    """True when ``config`` wants ``event_type`` (a ping goes to every webhook)."""
    return event_type == PING or ALL in config.events or event_type in config.events


def label_of(config: WebhookSettings) -> str:
    """A webhook's name, or its URL without user, password, query or fragment."""
    if config.name:
        return config.name
    try:
        url = httpx.URL(config.url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "(malformed URL)"
    port = f":{url.port}" if url.port is not None else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}{url.path}"


def build_endpoint(config: WebhookSettings, environ: Mapping[str, str] | None = None) -> Endpoint:
    """Check one ``[[webhooks]]`` entry and read its secret.

    Parameters
    ----------
    config : WebhookSettings
        The entry.
    environ : mapping, optional
        Where the secret variable is looked up (default: ``os.environ``).

    Returns
    -------
    Endpoint

    Raises
    ------
    ConfigError
        Malformed URL, a refused (loopback, private, ...) numeric host or ``localhost`` without
        ``allow_private``, an unknown event name, a missing or malformed secret.
    """
    env = os.environ if environ is None else environ
    label = label_of(config)
    try:
        url = httpx.URL(config.url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ConfigError(
            "webhook URL is malformed; expected http(s)://HOST[:PORT]/PATH",
            reason=Reason.INVALID_URL,
        ) from None
    where = f"webhook {label}"
    try:
        check_host(url.host, allow_private=config.allow_private)
    except ConfigError as exc:
        raise ConfigError(
            f"{where}: {exc.message}; set allow_private = true to send events to this machine "
            "or a private network",
            reason=exc.reason,
        ) from None
    for event in config.events:
        if event != ALL:
            try:
                check_event_type(event)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc.message}", reason=exc.reason) from None
    verify = _tls(config, where)
    value = env.get(config.secret_env)
    if not value:
        raise ConfigError(
            f"{where}: the secret variable {config.secret_env} is not set (it holds whsec_... "
            "; `regressops webhooks secret` makes one)",
            reason=Reason.MISSING_SECRET,
        )
    try:
        keys = parse_secrets(value, variable=config.secret_env)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", reason=exc.reason) from None
    return Endpoint(label=label, url=url, keys=keys, config=config, verify=verify)


def _tls(config: WebhookSettings, where: str) -> ssl.SSLContext | bool:
    """What HTTPS trusts: the bundled public authorities, or those of ``ca_file``."""
    if config.ca_file is None:
        return True
    if not Path(config.ca_file).is_file():
        raise ConfigError(
            f"{where}: ca_file {config.ca_file} is not a file (expected PEM certificates)",
            reason=Reason.INVALID_CA_FILE,
        )
    try:
        return ssl.create_default_context(cafile=config.ca_file)
    except (ssl.SSLError, OSError, ValueError):
        raise ConfigError(
            f"{where}: ca_file {config.ca_file} holds no readable PEM certificate",
            reason=Reason.INVALID_CA_FILE,
        ) from None


def build_endpoints(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Endpoint]:
    """Check every configured webhook.

    Raises
    ------
    ConfigError
        The first webhook with a problem (see :func:`build_endpoint`).
    """
    return [build_endpoint(config, environ) for config in settings.webhooks]


def webhook_status(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per configured webhook: label, events, secret variable, whether it is ready.

    Returns
    -------
    list of dict
        ``{"webhook", "events", "secret_env", "allow_private", "ready", "problem"}``; ``problem``
        is the one-line reason a webhook cannot send (None when ready).
    """
    rows = []
    for config in settings.webhooks:
        try:
            build_endpoint(config, environ)
            problem = None
        except ConfigError as exc:
            problem = exc.message
        rows.append(
            {
                "webhook": label_of(config),
                "events": ", ".join(config.events),
                "secret_env": config.secret_env,
                "allow_private": config.allow_private,
                "ready": problem is None,
                "problem": problem,
            }
        )
    return rows
