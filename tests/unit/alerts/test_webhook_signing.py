"""Signatures agree with the ``standardwebhooks`` reference library, also during a rotation."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from regressops.alerts.events import EVENT_TYPES, make_event
from regressops.alerts.signing import generate_secret, parse_secrets, signature
from regressops.errors import ConfigError

secrets = st.binary(min_size=16, max_size=64).map(
    lambda key: "whsec_" + base64.b64encode(key).decode()
)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(secret=secrets, msg_id=ids, body=st.text(max_size=300), offset=st.integers(-200, 200))
def test_signature_is_the_reference_librarys(
    secret: str, msg_id: str, body: str, offset: int
) -> None:
    ts = int(time.time()) + offset
    keys = parse_secrets(secret, variable="S")
    ours = signature(keys, msg_id, ts, body.encode())
    theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body)
    assert ours == theirs


@settings(max_examples=30, deadline=None)
@given(rotation=st.lists(secrets, min_size=1, max_size=3, unique=True), other=secrets)
def test_every_secret_of_a_rotation_verifies_and_no_other(rotation: list[str], other: str) -> None:
    event = make_event("model.promoted", {"model": "diabetes", "version": "7"})
    keys = parse_secrets(" ".join(rotation), variable="S")
    headers = {
        "webhook-id": event.id,
        "webhook-timestamp": str(event.timestamp),
        "webhook-signature": signature(keys, event.id, event.timestamp, event.body),
    }
    for secret in rotation:
        payload = Webhook(secret).verify(event.body, headers)
        assert payload["type"] == "model.promoted" and payload["data"]["version"] == "7"
    if other not in rotation:
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(event.body, headers)
    tampered = event.body.replace(b'"7"', b'"8"')
    with pytest.raises(WebhookVerificationError):
        Webhook(rotation[0]).verify(tampered, headers)


def test_payload_has_type_timestamp_and_data() -> None:
    event = make_event("drift.detected", {"share": 0.4}, now=1_800_000_000.25)
    assert event.timestamp == 1_800_000_000
    assert event.body == (
        b'{"type":"drift.detected","timestamp":"2027-01-15T08:00:00.250+00:00",'
        b'"data":{"share":0.4}}'
    )
    assert event.id.startswith("msg_") and event.id != make_event("ping", {}).id
    assert set(EVENT_TYPES) >= {
        "drift.detected", "performance.degraded", "validation.failed", "gate.failed",
        "model.promoted", "model.rolled_back", "retrain.finished", "retrain.failed", "ping",
    }  # fmt: skip


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown event type 'drift\.detectd'"):
        make_event("drift.detectd", {})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "S is empty"),
        ("c2VjcmV0c2VjcmV0c2VjcmV0", "the secret in S must start with whsec_"),
        ("whsec_!!notbase64!!", "the secret in S is not valid base64"),
        ("whsec_c2hvcnQ=", "decodes to 5 bytes; expected 16 to 64"),
    ],
)
def test_malformed_secrets_are_one_line_without_the_value(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_secrets(value, variable="S")
    assert "\n" not in info.value.message
    if value:
        assert value not in info.value.message


def test_second_secret_of_a_rotation_is_named_by_position() -> None:
    with pytest.raises(ConfigError, match="secret 2 in S must start with whsec_"):
        parse_secrets(f"{generate_secret()} oops", variable="S")
    assert len(parse_secrets(f"{generate_secret()},{generate_secret(24)}", variable="S")) == 2
