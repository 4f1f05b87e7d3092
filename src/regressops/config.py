"""Settings: one typed object from ``regressops.toml`` and ``REGRESSOPS_*`` environment variables.

Settings are built by :func:`get_settings`, which is cached; nothing is read or created at import.
Precedence (highest first): keyword arguments, environment variables (``REGRESSOPS_HOME``,
``REGRESSOPS_TRACKING_URI``, nested values with ``__``: ``REGRESSOPS_SERVE__PORT=9000``), the TOML
file (``regressops.toml`` in the working directory or ``REGRESSOPS_CONFIG``), then defaults.
Secrets (API keys, database passwords) come only from the environment and are
:class:`~pydantic.SecretStr`, so they never appear in ``repr`` or logs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "REGRESSOPS_CONFIG"
DEFAULT_CONFIG_FILE = "regressops.toml"


class TrainSettings(BaseModel):
    """Defaults for training."""

    test_size: float = Field(0.2, gt=0)
    random_state: int = 42
    solver: str = "exact"


class ServeSettings(BaseModel):
    """Defaults for the prediction service."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_rows: int = Field(100_000, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    prediction_log: str | None = None
    reload_poll_seconds: float = Field(0.0, ge=0)


class Settings(BaseSettings):
    """Every path, URI and threshold regressops uses.

    Attributes
    ----------
    home : Path
        The working folder for embedded defaults (lake, models, MLflow store, logs).
        ``.regressops`` in the working directory unless ``REGRESSOPS_HOME`` says otherwise.
    tracking_uri : str or None
        MLflow tracking URI; ``None`` means ``sqlite:///<home>/mlflow.db``.
    api_keys : SecretStr or None
        Comma-separated API keys for the service (``REGRESSOPS_API_KEYS``); never logged.
    """

    model_config = SettingsConfigDict(
        env_prefix="REGRESSOPS_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Path(".regressops")
    tracking_uri: str | None = None
    api_keys: SecretStr | None = None
    train: TrainSettings = Field(default_factory=TrainSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    datasets: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read keyword arguments, then the environment, then the TOML file."""
        toml_file = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @property
    def models_dir(self) -> Path:
        """Folder that trained bundles are written to by default."""
        return self.home / "models"

    @property
    def lake_dir(self) -> Path:
        """Root of the Delta lake."""
        return self.home / "lake"

    @property
    def reports_dir(self) -> Path:
        """Folder for validation, evaluation and drift reports."""
        return self.home / "reports"

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI, defaulting to SQLite under :attr:`home`."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    def api_key_list(self) -> list[str]:
        """Return the configured API keys (empty when auth is off)."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process; ``get_settings.cache_clear()`` rebuilds them."""
    return Settings()
