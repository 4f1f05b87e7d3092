"""Configured webhooks: bad input is one readable line; retries wait with bounded jitter."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regressops.alerts import emit, generate_secret, ping
from regressops.alerts.delivery import backoff_delay
from regressops.alerts.endpoints import build_endpoint, build_endpoints
from regressops.config import Settings, WebhookSettings, get_settings
from regressops.errors import ConfigError

ENV = {"HOOK_SECRET": generate_secret()}


def hook(
    url: str = "https://hooks.example.com/regressops?token=abc", **kw: object
) -> WebhookSettings:
    return WebhookSettings.model_validate({"url": url, "secret_env": "HOOK_SECRET", **kw})


def test_a_good_webhook_hides_its_key_and_query() -> None:
    endpoint = build_endpoint(hook(events=["drift.detected"]), ENV)
    assert endpoint.label == "https://hooks.example.com/regressops"
    assert ENV["HOOK_SECRET"] not in repr(endpoint) and "token" not in repr(endpoint)
    assert endpoint.wants("drift.detected") and endpoint.wants("ping")
    assert not endpoint.wants("model.promoted")
    assert build_endpoint(hook(name="ops-channel"), ENV).label == "ops-channel"


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        (
            hook("http://10.0.0.7:8080/x"),
            ENV,
            "webhook http://10.0.0.7:8080/x: 10.0.0.7 is a private address; set allow_private",
        ),
        (
            hook("http://[::1]:9000/x"),
            ENV,
            r"webhook http://\[::1\]:9000/x: ::1 is a loopback address",
        ),
        (
            hook("http://169.254.169.254/latest/meta-data"),
            ENV,
            "169.254.169.254 is a link-local address",
        ),
        (
            hook(),
            {},
            "webhook https://hooks.example.com/regressops: the secret variable HOOK_SECRET is "
            "not set",
        ),
        (hook(events=["drift"]), ENV, "unknown event type 'drift'; expected one of"),
    ],
)
def test_bad_webhooks_are_one_line(
    config: WebhookSettings, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build_endpoint(config, env)
    assert "\n" not in info.value.message and info.value.exit_code == 2


def test_a_ca_file_must_hold_certificates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ca_file \S+nowhere.pem is not a file"):
        build_endpoint(hook(ca_file=str(tmp_path / "nowhere.pem")), ENV)
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"junk.pem holds no readable PEM certificate"):
        build_endpoint(hook(ca_file=str(tmp_path / "junk.pem")), ENV)


def test_private_addresses_pass_with_allow_private() -> None:
    assert build_endpoint(hook("http://10.0.0.7/x", allow_private=True), ENV).url.host == (
        "10.0.0.7"
    )


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "hooks.example.com/x", "http:///x", "http://h:port/x"]
)
def test_a_malformed_url_is_an_invalid_setting(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "regressops.toml"
    toml.write_text(f'[[webhooks]]\nurl = "{url}"\n')
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(toml))
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"invalid setting webhooks\.0\.url") as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert "http:// or https:// URL" in info.value.message and "\n" not in info.value.message


def test_webhooks_from_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "regressops.toml"
    toml.write_text(
        '[[webhooks]]\nurl = "https://a.example/h"\nsecret_env = "HOOK_SECRET"\n'
        'events = ["gate.failed", "model.promoted"]\ntimeout = 2.5\n\n'
        '[[webhooks]]\nurl = "http://127.0.0.1:9/h"\nallow_private = true\n'
    )
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(toml))
    settings = Settings()
    first, second = settings.webhooks
    assert first.events == ["gate.failed", "model.promoted"] and first.timeout == 2.5
    assert second.secret_env == "REGRESSOPS_WEBHOOK_SECRET" and second.allow_private
    assert [
        e.label for e in build_endpoints(settings, {**ENV, second.secret_env: ENV["HOOK_SECRET"]})
    ] == [
        "https://a.example/h",
        "http://127.0.0.1:9/h",
    ]


def test_ping_without_webhooks_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no webhook is configured; add a \\[\\[webhooks\\]\\]"):
        ping(Settings(home=tmp_path))


def test_emit_refuses_only_an_unknown_event_type(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, webhooks=[hook()])
    with pytest.raises(ConfigError, match="unknown event type"):
        emit(settings, "model.promotd", {})
    [result] = emit(settings, "model.promoted", {}, environ={})  # missing secret: not raised
    assert not result.delivered and result.attempts == 0 and "HOOK_SECRET" in str(result.error)


@given(
    attempt=st.integers(1, 12),
    base=st.floats(0, 5),
    cap=st.floats(0, 60),
    retry_after=st.none() | st.floats(0, 120),
)
def test_backoff_grows_with_jitter_and_stays_under_its_cap(
    attempt: int, base: float, cap: float, retry_after: float | None
) -> None:
    delay = backoff_delay(attempt, base=base, cap=cap, retry_after=retry_after)
    assert 0 <= delay <= cap
    nominal = base * 2 ** (attempt - 1)
    floor = max(0.5 * nominal, retry_after or 0.0)
    assert delay >= min(floor, cap)
    if retry_after is None:
        assert delay <= 1.5 * nominal
