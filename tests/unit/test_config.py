"""Settings: precedence of keyword, environment and TOML; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from regressops.config import Settings, get_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("REGRESSOPS_HOME", "REGRESSOPS_API_KEYS", "REGRESSOPS_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REGRESSOPS_CONFIG", "none")
    get_settings.cache_clear()


def test_defaults_live_under_dot_regressops() -> None:
    s = Settings()
    assert s.home == Path(".regressops")
    assert s.models_dir == Path(".regressops/models")
    assert s.resolved_tracking_uri.startswith("sqlite:///")
    assert s.resolved_tracking_uri.endswith(".regressops/mlflow.db")
    assert s.serve.host == "127.0.0.1"
    assert s.api_key_list() == []


def test_environment_overrides_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "regressops.toml"
    toml.write_text('home = "from-toml"\n[serve]\nport = 9100\nmax_rows = 5\n')
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(toml))
    assert Settings().home == Path("from-toml")
    assert Settings().serve.port == 9100
    monkeypatch.setenv("REGRESSOPS_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("REGRESSOPS_SERVE__PORT", "9200")
    s = Settings()
    assert s.home == tmp_path / "env-home"
    assert s.serve.port == 9200
    assert s.serve.max_rows == 5


def test_api_keys_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESSOPS_API_KEYS", "k-one, k-two ,")
    s = Settings()
    assert s.api_key_list() == ["k-one", "k-two"]
    assert "k-one" not in repr(s)
    assert "k-one" not in str(s.model_dump())


def test_get_settings_is_cached_and_resettable(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("REGRESSOPS_HOME", "elsewhere")
    assert get_settings().home == Path(".regressops")
    get_settings.cache_clear()
    assert get_settings().home == Path("elsewhere")


def test_invalid_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESSOPS_SERVE__PORT", "70000")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_an_invalid_setting_is_a_config_error_naming_it_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from regressops.errors import ConfigError

    monkeypatch.setenv("REGRESSOPS_SERVE__LOG_WRITER", "s3cret-fork")
    get_settings.cache_clear()
    try:
        expected = r"serve\.log_writer \(from REGRESSOPS_SERVE__LOG_WRITER"
        with pytest.raises(ConfigError, match=expected) as info:
            get_settings()
        assert "s3cret" not in str(info.value) and info.value.exit_code == 2
    finally:
        get_settings.cache_clear()
