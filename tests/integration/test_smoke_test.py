"""deploy/smoke_test.py (the CD pipeline's check after each deployment) against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.servers import ServerProcess

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "smoke_test.py"
KEY = "smoke-key"


@pytest.fixture(scope="module")
def server(diabetes_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = ServerProcess(
        diabetes_bundle,
        tmp_path_factory.mktemp("smoke"),
        prediction_log="off",
        env={"REGRESSOPS_API_KEYS": KEY},
    ).wait_ready()
    try:
        yield proc.url
    finally:
        proc.stop()


def _smoke(*args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "API_KEY": key}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_passes_against_a_serving_deployment(server: str) -> None:
    out = _smoke("--url", server, "--wait", "10")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("smoke test passed:") and '"prediction"' in out.stdout


def test_fails_on_the_wrong_version_a_bad_key_and_no_server(server: str) -> None:
    wrong = _smoke("--url", server, "--expect-version", "999", "--wait", "10")
    assert wrong.returncode == 1 and "expected v999" in wrong.stderr
    denied = _smoke("--url", server, "--wait", "10", key="not-the-key")
    assert denied.returncode == 1 and "/model-check answered HTTP 401" in denied.stderr
    nobody = _smoke("--url", "http://127.0.0.1:9", "--wait", "0")
    assert nobody.returncode == 1 and "/readyz not ready" in nobody.stderr
