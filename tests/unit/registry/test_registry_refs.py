"""Registry references and credentials: parsing, redaction, fail-fast settings (no server)."""

from __future__ import annotations

import os

import pytest

from regressops.errors import ConfigError, RegistryError
from regressops.redact import redact_text
from regressops.registry import is_model_uri, parse_model_uri
from regressops.registry.connection import connect


@pytest.mark.parametrize(
    ("uri", "name", "alias", "version"),
    [
        ("models:/diabetes@champion", "diabetes", "champion", None),
        ("models:/my-model_2@challenger", "my-model_2", "challenger", None),
        ("models:/diabetes/12", "diabetes", None, "12"),
    ],
)
def test_parse_model_uri(uri: str, name: str, alias: str | None, version: str | None) -> None:
    ref = parse_model_uri(uri)
    assert (ref.name, ref.alias, ref.version) == (name, alias, version)
    assert str(ref) == uri and is_model_uri(uri)


@pytest.mark.parametrize(
    "bad", ["models:/", "models:/x", "models:/x@", "models:/x/latest", "models:/a/b/c", "runs:/x"]
)
def test_bad_model_uri_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="expected models:/NAME@ALIAS"):
        parse_model_uri(bad)


def test_passwords_never_appear() -> None:
    assert redact_text("postgresql://u:s3cret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_text("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert "s3cret" not in redact_text("failed: postgresql+psycopg://me:s3cret@host/db refused")


def test_unreachable_server_fails_fast_and_clearly() -> None:
    import time

    import mlflow  # noqa: F401 - its first import is not what this test times

    start = time.monotonic()
    with pytest.raises(
        RegistryError, match=r"tracking server http://127.0.0.1:9 is unreachable"
    ) as e:
        connect("http://127.0.0.1:9")
    assert e.value.reason == "tracking_unavailable" and e.value.exit_code == 6
    # no retries with backoff (MLflow's default would take minutes); loose for a loaded machine
    assert time.monotonic() - start < 30


def test_fail_fast_respects_the_users_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from regressops.registry.connection import fail_fast

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    fail_fast()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"
