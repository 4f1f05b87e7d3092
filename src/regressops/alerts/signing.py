"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.

Secrets are ``whsec_`` followed by base64 (as the specification and its reference libraries
write them). During a key rotation the environment variable holds several secrets separated by
spaces; every message then carries one signature per secret, space-separated, so receivers on
the old secret and on the new one both verify it. A secret's value never appears in an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from regressops.errors import ConfigError
from regressops.reasons import Reason

PREFIX = "whsec_"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64


def generate_secret(n_bytes: int = 32) -> str:
    """Return a new random secret, ``whsec_`` + base64 of ``n_bytes`` bytes."""
    return PREFIX + base64.b64encode(os.urandom(n_bytes)).decode("ascii")


def parse_secrets(value: str, *, variable: str) -> tuple[bytes, ...]:
    """Decode the secrets held by an environment variable.

    Parameters
    ----------
    value : str
        The variable's value: one or more ``whsec_<base64>`` separated by spaces or commas.
    variable : str
        The variable's name, for messages.

    Returns
    -------
    tuple of bytes
        The HMAC keys, in the order given.

    Raises
    ------
    ConfigError
        No secret, or one that is not ``whsec_`` + base64 of 16 to 64 bytes. The message names
        the variable and the secret's position, never its value.
    """
    tokens = value.replace(",", " ").split()
    if not tokens:
        raise ConfigError(
            f"webhook secret variable {variable} is empty", reason=Reason.INVALID_SECRET
        )
    keys = []
    for i, token in enumerate(tokens, 1):
        where = f"secret {i} in {variable}" if len(tokens) > 1 else f"the secret in {variable}"
        if not token.startswith(PREFIX):
            raise ConfigError(
                f"{where} must start with {PREFIX} (then base64); "
                "make one with `regressops webhooks secret`",
                reason=Reason.INVALID_SECRET,
            )
        try:
            key = base64.b64decode(token[len(PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"{where} is not valid base64 after {PREFIX}", reason=Reason.INVALID_SECRET
            ) from None
        if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            raise ConfigError(
                f"{where} decodes to {len(key)} bytes; expected {MIN_KEY_BYTES} to {MAX_KEY_BYTES}",
                reason=Reason.INVALID_SECRET,
            )
        keys.append(key)
    return tuple(keys)


def signature(keys: tuple[bytes, ...], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per key, space-separated.

    Parameters
    ----------
    keys : tuple of bytes
        HMAC keys (from :func:`parse_secrets`).
    msg_id : str
        The ``webhook-id`` header.
    timestamp : int
        The ``webhook-timestamp`` header (seconds since the epoch).
    body : bytes
        The exact request body.
    """
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )
