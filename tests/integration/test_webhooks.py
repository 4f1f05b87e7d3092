"""Webhook delivery to real receiver processes that verify with the ``standardwebhooks`` library.

The receivers listen on 127.0.0.1, so every webhook here says ``allow_private = true`` except
in the tests of the address guard.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from helpers.webhooks import Receiver, self_signed
from regressops.alerts import emit, generate_secret, ping, read_deliveries
from regressops.alerts.delivery_log import delivery_log_path
from regressops.config import Settings

SECRET_ENV = "TEST_WEBHOOK_SECRET"


def make_settings(home: Path, *hooks: dict[str, Any]) -> Settings:
    defaults = {"secret_env": SECRET_ENV, "allow_private": True, "backoff": 0.01}
    return Settings(home=home, webhooks=[{**defaults, **hook} for hook in hooks])


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = generate_secret()
    monkeypatch.setenv(SECRET_ENV, value)
    return value


def test_receiver_failing_twice_gets_one_event_in_three_attempts(
    tmp_path: Path, secret: str
) -> None:
    with Receiver(tmp_path, secret, fail=2) as rx:
        settings = make_settings(tmp_path / "home", {"url": rx.url})
        data = {"model": "diabetes", "version": "3", "report": "reports/drift.html"}
        [result] = emit(settings, "drift.detected", data)
        received = rx.requests()
    assert result.delivered and result.attempts == 3 and result.status == 204, result
    log = read_deliveries(delivery_log_path(settings), event_id=result.event_id)
    assert [(r["attempt"], r["outcome"], r["status"]) for r in log] == [
        (1, "retry", 503),
        (2, "retry", 503),
        (3, "delivered", 204),
    ]
    assert all(r["latency_ms"] > 0 and r["address"] == "127.0.0.1" for r in log)
    # the same message every time: one event for a receiver that drops duplicates by id
    assert len(received) == 3 and all(r["verified"] for r in received), received
    assert (
        len({(r["headers"]["webhook-id"], r["headers"]["webhook-timestamp"]) for r in received})
        == 1
    )
    assert {r["headers"]["webhook-id"] for r in received} == {result.event_id}
    payload = received[-1]["payload"]
    assert payload["type"] == "drift.detected" and payload["data"] == data
    assert set(payload) == {"type", "timestamp", "data"}
    assert received[0]["headers"]["host"] == f"127.0.0.1:{rx.port}"


def test_429_is_retried_and_a_400_is_not(tmp_path: Path, secret: str) -> None:
    with (
        Receiver(tmp_path, secret, fail=1, fail_status=429) as busy,
        Receiver(tmp_path, secret, fail=5, fail_status=400) as refusing,
    ):
        settings = make_settings(tmp_path / "home", {"url": busy.url}, {"url": refusing.url})
        first, second = emit(settings, "model.promoted", {"model": "m", "version": "2"})
        assert first.delivered and first.attempts == 2
        assert not second.delivered and second.attempts == 1 and second.status == 400
        assert len(refusing.requests()) == 1


def test_a_delivery_that_finally_fails_is_logged_and_warned_about(
    tmp_path: Path, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver(tmp_path, secret, fail=99, fail_status=500) as rx:
        settings = make_settings(tmp_path / "home", {"url": rx.url, "max_attempts": 3})
        with caplog.at_level(logging.WARNING, logger="regressops.alerts"):
            [result] = emit(settings, "retrain.failed", {"error": "source unreachable"})
        assert len(rx.requests()) == 3
    assert not result.delivered and result.attempts == 3 and result.error == "HTTP 500"
    outcomes = [r["outcome"] for r in read_deliveries(delivery_log_path(settings))]
    assert outcomes == ["retry", "retry", "failed"]
    assert "not delivered after 3 attempt(s): HTTP 500" in caplog.text


def test_an_attempt_that_gets_no_answer_times_out_and_is_retried(
    tmp_path: Path, secret: str
) -> None:
    with Receiver(tmp_path, secret, hang=1) as rx:
        settings = make_settings(tmp_path / "home", {"url": rx.url, "timeout": 0.5})
        [result] = emit(settings, "gate.failed", {"model": "m", "failed": ["min_r2"]})
    assert result.delivered and result.attempts == 2
    first = read_deliveries(delivery_log_path(settings))[0]
    assert first["outcome"] == "retry" and first["error"] == "no answer within 0.5 s"


def test_a_delivery_stays_within_attempts_times_timeout(tmp_path: Path, secret: str) -> None:
    with Receiver(tmp_path, secret, hang=99) as rx:
        hook = {"url": rx.url, "timeout": 0.5, "max_attempts": 5, "backoff": 0.3}
        settings = make_settings(tmp_path / "home", hook)
        [result] = emit(settings, "retrain.finished", {})
    # five attempts that each wait the full 0.5 s leave no time for the waits between them
    assert not result.delivered and 1 < result.attempts < 5
    log = read_deliveries(delivery_log_path(settings))
    assert log[0]["error"] == "no answer within 0.5 s" and log[-1]["outcome"] == "failed"


def test_rotation_signs_with_every_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new, other = generate_secret(), generate_secret(), generate_secret()
    monkeypatch.setenv(SECRET_ENV, f"{old} {new}")
    with (
        Receiver(tmp_path, old) as on_old,
        Receiver(tmp_path, new) as on_new,
        Receiver(tmp_path, other) as on_other,
    ):
        hooks = [{"url": rx.url, "max_attempts": 2} for rx in (on_old, on_new, on_other)]
        results = emit(make_settings(tmp_path / "home", *hooks), "model.rolled_back", {})
        assert [r.delivered for r in results] == [True, True, False]
        assert results[2].status == 401  # a receiver with neither secret refuses it
        [signed] = on_old.requests()
        assert len(signed["headers"]["webhook-signature"].split(" ")) == 2
        assert on_new.requests()[0]["verified"] and not on_other.requests()[0]["verified"]


def test_private_addresses_are_refused_without_allow_private(
    tmp_path: Path, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver(tmp_path, secret) as rx:
        localhost = rx.url.replace("127.0.0.1", "localhost")
        decimal = rx.url.replace("127.0.0.1", "2130706433")  # 127.0.0.1 as one number
        hooks = [{"url": u, "allow_private": False} for u in (rx.url, localhost, decimal)]
        settings = make_settings(tmp_path / "home", *hooks)
        with caplog.at_level(logging.WARNING, logger="regressops.alerts"):
            results = emit(settings, "drift.detected", {"model": "m"})
        assert rx.requests() == []  # nothing reached the receiver
    assert [r.delivered for r in results] == [False, False, False]
    assert "loopback address" in str(results[0].error) and "allow_private" in str(results[0].error)
    assert "loopback name" in str(results[1].error)
    assert "loopback address" in str(results[2].error)
    assert [r["outcome"] for r in read_deliveries(delivery_log_path(settings))] == ["not_sent"] * 3


def test_the_secret_appears_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = generate_secret()
    bad = "whsec_" + "%%%not-base64%%%"
    monkeypatch.setenv(SECRET_ENV, good)
    monkeypatch.setenv("BAD_SECRET", bad)
    with Receiver(tmp_path, good, fail=1) as rx:
        settings = make_settings(
            tmp_path / "home", {"url": rx.url}, {"url": rx.url, "secret_env": "BAD_SECRET"}
        )
        with caplog.at_level(logging.DEBUG):
            results = emit(settings, "retrain.finished", {"promoted": True})
    assert [r.delivered for r in results] == [True, False]
    written = delivery_log_path(settings).read_text() + caplog.text + repr(results)
    for value in (good, bad, good.removeprefix("whsec_"), "not-base64"):
        assert value not in written
    assert "BAD_SECRET is not valid base64" in str(results[1].error)


def test_emit_works_from_inside_a_running_event_loop(tmp_path: Path, secret: str) -> None:
    with Receiver(tmp_path, secret) as rx:
        settings = make_settings(tmp_path / "home", {"url": rx.url, "events": ["gate.failed"]})

        async def job() -> list[Any]:
            return emit(settings, "gate.failed", {}) + emit(settings, "model.promoted", {})

        [result] = asyncio.run(job())  # model.promoted: not subscribed, not sent
        assert result.delivered and len(rx.requests()) == 1


def test_ping_reaches_every_webhook(tmp_path: Path, secret: str) -> None:
    with Receiver(tmp_path, secret) as rx:
        settings = make_settings(tmp_path / "home", {"url": rx.url, "events": ["gate.failed"]})
        [result] = ping(settings)
        [request] = rx.requests()
    assert result.delivered and result.event_type == "ping"
    assert request["verified"] and request["payload"]["type"] == "ping"


def test_a_name_is_resolved_and_its_checked_address_connected_to(
    tmp_path: Path, secret: str
) -> None:
    with Receiver(tmp_path, secret) as rx:
        by_name = rx.url.replace("127.0.0.1", "localhost")
        settings = make_settings(tmp_path / "home", {"url": by_name})
        [result] = emit(settings, "performance.degraded", {"rmse": 61.2, "bound": 55.0})
        [request] = rx.requests()
    assert result.delivered and request["verified"]
    assert request["headers"]["host"] == f"localhost:{rx.port}"  # the name, not the address
    [attempt] = read_deliveries(delivery_log_path(settings))
    assert attempt["address"] == "127.0.0.1" and attempt["webhook"] == by_name


def test_https_checks_the_certificate_against_the_name_not_the_address(
    tmp_path: Path, secret: str
) -> None:
    cert, key = self_signed(tmp_path / "tls", "localhost")
    with Receiver(tmp_path, secret, tls=(cert, key)) as rx:
        by_name = rx.url.replace("127.0.0.1", "localhost")  # connects to 127.0.0.1 all the same
        hooks = [
            {"url": by_name, "ca_file": str(cert)},
            {"url": rx.url, "ca_file": str(cert), "max_attempts": 1},  # the cert does not name it
            {"url": by_name, "max_attempts": 1},  # an authority the client does not trust
        ]
        settings = make_settings(tmp_path / "home", *hooks)
        named, by_address, untrusted = emit(settings, "model.promoted", {"version": "9"})
        [request] = rx.requests()
    assert named.delivered and request["verified"]
    assert request["headers"]["host"] == f"localhost:{rx.port}"
    assert read_deliveries(delivery_log_path(settings))[0]["address"] == "127.0.0.1"
    assert not by_address.delivered and "certificate" in str(by_address.error).lower()
    assert not untrusted.delivered and "certificate" in str(untrusted.error).lower()
