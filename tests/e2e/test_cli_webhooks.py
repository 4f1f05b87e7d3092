"""`regressops webhooks ...` as a user runs it: the console script, a TOML file, a receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.webhooks import Receiver
from regressops.alerts import generate_secret

REGRESSOPS = Path(sys.executable).parent / "regressops"


def regressops(
    tmp_path: Path, toml: str, *args: str, secret: str | None = None
) -> tuple[int, str, str]:
    config = tmp_path / "regressops.toml"
    config.write_text(toml)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    env |= {"REGRESSOPS_HOME": str(tmp_path / "home"), "REGRESSOPS_CONFIG": str(config)}
    env["COLUMNS"] = "200"
    if secret is not None:
        env["HOOK_SECRET"] = secret
    done = subprocess.run(
        [str(REGRESSOPS), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout, done.stderr


def hook_toml(url: str, **extra: str) -> str:
    lines = ["[[webhooks]]", f'url = "{url}"', 'secret_env = "HOOK_SECRET"', "backoff = 0.01"]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_test_sends_a_verified_ping_and_deliveries_shows_its_attempts(tmp_path: Path) -> None:
    secret = generate_secret()
    with Receiver(tmp_path, secret, fail=2) as rx:
        toml = hook_toml(rx.url, allow_private="true", name='"ops"')
        code, stdout, stderr = regressops(tmp_path, toml, "webhooks", "test", secret=secret)
        assert code == 0, stderr
        assert "ops" in stdout and "True" in stdout
        [*_, delivered] = rx.requests()
    assert delivered["verified"] and delivered["payload"]["type"] == "ping"
    code, stdout, _ = regressops(tmp_path, toml, "webhooks", "deliveries", "--json")
    attempts = json.loads(stdout)
    assert [(a["attempt"], a["outcome"], a["status"]) for a in attempts] == [
        (1, "retry", 503), (2, "retry", 503), (3, "delivered", 204),
    ]  # fmt: skip
    assert {a["event"] for a in attempts} == {delivered["headers"]["webhook-id"]}
    code, stdout, _ = regressops(tmp_path, toml, "webhooks", "deliveries", "--last", "1")
    assert code == 0 and "delivered" in stdout and "retry" not in stdout
    code, stdout, _ = regressops(tmp_path, toml, "webhooks", "list", "--json", secret=secret)
    assert json.loads(stdout)[0] | {"events": "*"} == {
        "webhook": "ops", "events": "*", "secret_env": "HOOK_SECRET", "allow_private": True,
        "ready": True, "problem": None,
    }  # fmt: skip
    assert secret not in (tmp_path / "home/webhooks/deliveries.jsonl").read_text()


def test_a_ping_nobody_accepts_exits_8(tmp_path: Path) -> None:
    secret = generate_secret()
    with Receiver(tmp_path, secret, fail=9, fail_status=500) as rx:
        toml = hook_toml(rx.url, allow_private="true", max_attempts="2")
        code, _, stderr = regressops(tmp_path, toml, "webhooks", "test", secret=secret)
    assert code == 8
    assert stderr.strip().splitlines() == [
        f"error: webhook {rx.url} did not accept the ping after 2 attempt(s): HTTP 500"
    ]


@pytest.mark.parametrize(
    ("toml", "secret", "message"),
    [
        (
            hook_toml("htp://hooks.example.com/x"),
            "ok",
            "error: invalid setting webhooks.0.url (REGRESSOPS_WEBHOOKS__0__URL or "
            "regressops.toml): Value error, must be an http:// or https:// URL",
        ),
        (
            hook_toml("http://192.168.1.20:8080/x"),
            "ok",
            "error: webhook http://192.168.1.20:8080/x: 192.168.1.20 is a private address; set "
            "allow_private = true",
        ),
        (
            hook_toml("https://hooks.example.com/x"),
            None,
            "error: webhook https://hooks.example.com/x: the secret variable HOOK_SECRET is not "
            "set",
        ),
        (
            "",
            None,
            "error: no webhook is configured; add a [[webhooks]] entry",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, toml: str, secret: str | None, message: str
) -> None:
    value = generate_secret() if secret else None
    code, stdout, stderr = regressops(tmp_path, toml, "webhooks", "test", secret=value)
    assert code == 2, stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith(message), line
    assert "Traceback" not in stderr and (value is None or value not in stderr + stdout)
