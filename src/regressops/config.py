"""Settings: one typed object from ``regressops.toml`` and ``REGRESSOPS_*`` environment variables.

Settings are built by :func:`get_settings`, which is cached; nothing is read or created at import.
Precedence (highest first): keyword arguments, environment variables (``REGRESSOPS_HOME``,
``REGRESSOPS_TRACKING_URI``, nested values with ``__``: ``REGRESSOPS_SERVE__PORT=9000``), the TOML
file (``regressops.toml`` in the working directory or ``REGRESSOPS_CONFIG``; ``none``: no
file), then defaults. Unknown names and malformed files are refused (:mod:`.config_check`).
Secrets (API keys, database passwords) come only from the environment and are
:class:`~pydantic.SecretStr`, so they never appear in ``repr`` or logs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from regressops import config_check
from regressops.errors import ConfigError

CONFIG_FILE_ENV = "REGRESSOPS_CONFIG"
DEFAULT_CONFIG_FILE = "regressops.toml"


class TrainSettings(BaseModel):
    """Defaults for training."""

    test_size: float = Field(0.2, gt=0)
    random_state: int = 42
    solver: str = "exact"
    track: bool = True  # log every training run to MLflow (``--no-track`` for one run)
    # write runs straight into a SQL tracking store of MLflow 3.17's schema with local artefacts
    # (no MLflow import); false: always through MLflow
    direct_tracking: bool = True
    cv: int = Field(5, ge=0)  # folds of the cross-validated metrics (0: none)


class ServeSettings(BaseModel):
    """Defaults for the prediction service."""

    model: str | None = None  # bundle directory or models:/NAME@ALIAS; --model overrides it
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_rows: int = Field(100_000, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    prediction_log: str | None = None
    log_max_pending_rows: int = Field(1_000_000, ge=1)
    # "process": a JSON-lines log writes requests of 64+ rows from a child process
    log_writer: Literal["process", "thread"] = "process"
    # when the backlog is full and the sink keeps failing: "refuse" answers 503, "drop" serves
    # on and counts the rows it could not log (on /metrics and /readyz)
    log_when_unwritable: Literal["refuse", "drop"] = "refuse"
    log_rotate_bytes: int = Field(256 * 1024 * 1024, ge=1024)  # JSON-lines segment size
    log_rotate_seconds: float = Field(86_400.0, gt=0)  # and age before a new segment starts
    log_retention_bytes: int | None = Field(None, ge=1024)  # oldest segments removed beyond it
    log_retention_seconds: float | None = Field(None, gt=0)  # segments older than this removed
    reload_poll_seconds: float = Field(0.0, ge=0)
    shadow: str | None = None  # a challenger scoring the served rows off the request path
    shadow_max_pending_rows: int = Field(100_000, ge=1)  # beyond: shadow rows are dropped
    # "impute": a null feature value gets the impute value learned at training (as training
    # does), counted in the X-Imputed-Values header and the prediction log; "refuse": 422
    missing_values: Literal["impute", "refuse"] = "impute"
    # live drift on /metrics: the last drift_window_rows served rows against the bundle's stored
    # reference, recomputed off the request path every drift_interval_seconds (when at least
    # monitor.min_rows new rows arrived)
    drift: bool = True
    drift_window_rows: int = Field(10_000, ge=1)
    drift_interval_seconds: float = Field(30.0, gt=0)


class GateThresholds(BaseModel):
    """Absolute bounds a candidate's held-out metrics must meet (``None``: not checked)."""

    min_r2: float | None = None
    max_rmse: float | None = Field(None, gt=0)
    max_mae: float | None = Field(None, gt=0)


class GateSettings(GateThresholds):
    """Quality gates a model passes before it may become ``@champion``.

    Attributes
    ----------
    min_r2, max_rmse, max_mae : float or None
        Absolute bounds on the held-out metrics (``min_r2`` defaults to 0.0: better than
        predicting the mean).
    min_improvement : float
        Relative RMSE improvement over the current champion on the same held-out rows
        (0.0: at least as good; 0.01: 1% better; -0.01 tolerates 1% worse).
    max_latency_ms : float
        Budget for the 99th percentile of single-record prediction time, in milliseconds.
    min_directional_share : float
        Share of edge records that must move the expected way in directional checks.
    max_quantization_r2_drop : float
        Largest test R² an int8-quantised model may lose against its float model
        (``regressops quantize``, ``train --quantize int8``).
    directional : dict
        Per dataset, expected effects: ``{"insurance": {"age": "increasing", "smoker":
        "no<yes"}}``; merged over the built-in expectations.
    datasets : dict
        Per-dataset overrides of the absolute bounds.
    """

    min_r2: float | None = 0.0
    min_improvement: float = Field(0.0, gt=-1.0, lt=1.0)
    max_latency_ms: float = Field(50.0, gt=0)
    min_directional_share: float = Field(0.7, ge=0.0, le=1.0)
    max_quantization_r2_drop: float = Field(0.001, ge=0.0)
    directional: dict[str, dict[str, str]] = Field(default_factory=dict)
    datasets: dict[str, GateThresholds] = Field(default_factory=dict)


class DataSettings(BaseModel):
    """Defaults of the data platform (extract, validate, lake).

    Attributes
    ----------
    source_url : SecretStr or None
        SQLAlchemy URL ``extract`` reads from when neither ``--source-url`` nor the dataset's
        declaration names one (``REGRESSOPS_DATA__SOURCE_URL``); ``None``: the SQLite file
        ``<home>/demo.db`` that ``demo-db`` seeds. A secret: it may hold a password.
    chunk_size : int
        Rows per chunk read from the source and validated at a time (memory is bounded by it).
    max_failure_rate : float
        Meta-validation bound: share of rows that may fail checks before a run is refused.
    retries : int
        Extra attempts after a transient connection error.
    retry_backoff : float
        Seconds before the first retry; doubled at each further one.
    connect_timeout : float
        Seconds to wait for a connection (SQLite: for a lock).
    lake_uri : str or None
        Root of the lake on object storage (``s3://bucket/prefix``); ``None``: ``<home>/lake``.
    storage_options : dict
        Object-storage options of the lake and of ``s3://`` inputs (``aws_endpoint_url``,
        ``aws_region``); keys and secrets come from the environment (``AWS_ACCESS_KEY_ID``...).
    """

    source_url: SecretStr | None = None
    lake_uri: str | None = None
    storage_options: dict[str, str] = Field(default_factory=dict)
    chunk_size: int = Field(100_000, ge=1)
    max_failure_rate: float = Field(0.2, ge=0.0, le=1.0)
    retries: int = Field(3, ge=0)
    retry_backoff: float = Field(0.5, ge=0.0)
    connect_timeout: float = Field(10.0, gt=0.0)


class MonitorFeature(BaseModel):
    """A per-feature override of the drift method (``[monitor.features.NAME]``)."""

    method: str | None = None
    threshold: float | None = Field(None, ge=0)


class MonitorSettings(BaseModel):
    """Drift and performance monitoring (``regressops monitor``).

    Attributes
    ----------
    min_rows : int
        Fewer current values than this: a feature is ``not_enough_data``, not a verdict.
    drift_share : float
        Dataset drift when at least this share of the features drifted.
    fdr : bool
        Adjust a table's p-values together (Benjamini–Hochberg) before comparing them with
        their thresholds; ``false`` compares each raw p-value, as Evidently does.
    min_expected : float
        Categories whose expected count is below this are pooled before chi-square.
    reference_sample : int
        Largest sorted sample kept per numeric feature in the reference.
    max_rmse_increase : float
        Performance is ``degraded`` when RMSE on labelled rows exceeds the model's test RMSE by
        more than this share (0.1: 10%).
    min_labelled_rows : int
        Labelled rows needed before performance is judged.
    method, threshold : str or None
        One method / threshold for every feature (None: the per-kind default).
    features : dict
        Per feature: ``{"bmi": {"method": "psi", "threshold": 0.2}}``.
    workers : int or None
        Processes decoding a JSON-lines prediction log of 64 MB or more, and threads judging
        the features (None: 2, or 1 where this process may use one CPU only).
    """

    min_rows: int = Field(30, ge=1)
    drift_share: float = Field(0.5, gt=0.0, le=1.0)
    fdr: bool = True
    min_expected: float = Field(5.0, ge=0.0)
    reference_sample: int = Field(10_000, ge=10)
    max_rmse_increase: float = Field(0.1, ge=0.0)
    min_labelled_rows: int = Field(30, ge=1)
    method: str | None = None
    threshold: float | None = Field(None, ge=0)
    features: dict[str, MonitorFeature] = Field(default_factory=dict)
    workers: int | None = Field(None, ge=1)

    def worker_count(self) -> int:
        """``workers``, or 2 (1 where this process may use a single CPU)."""
        if self.workers is not None:
            return self.workers
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return min(2, cpus)


class WebhookSettings(BaseModel):
    """One ``[[webhooks]]`` entry: where events go and how they are signed and sent.

    Attributes
    ----------
    url : str
        ``http://`` or ``https://`` address the events are POSTed to.
    secret_env : str
        Name of the environment variable holding the signing secret (``whsec_`` + base64);
        several secrets separated by spaces during a rotation. The secret itself is never in
        settings files.
    events : list of str
        Event types this webhook receives (``"*"``: all); see :mod:`regressops.alerts`.
    name : str or None
        A label for the delivery log and messages (default: the URL's host).
    allow_private : bool
        Allow loopback, private, link-local and reserved addresses (off: a server-side request
        forgery guard).
    timeout : float
        Seconds one attempt may take, name resolution included.
    max_attempts : int
        Attempts before a delivery is given up.
    backoff, max_backoff : float
        Seconds before the first retry (doubled each time, with jitter) and its upper bound.
    ca_file : str or None
        PEM file of the certificate authorities trusted for this webhook's HTTPS (default: the
        bundled public ones), e.g. a company's internal CA.
    """

    url: str
    secret_env: str = Field("REGRESSOPS_WEBHOOK_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    name: str | None = None
    allow_private: bool = False
    timeout: float = Field(5.0, gt=0, le=120)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff: float = Field(0.5, ge=0)
    max_backoff: float = Field(10.0, ge=0)
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port  # a port that is not a number in range raises ValueError
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("must be an http:// or https:// URL with a host and a numeric port")
        return url


class ComputeSettings(BaseModel):
    """Where partitioned work runs (``train``/``predict``/``monitor`` with ``--engine``).

    Attributes
    ----------
    engine : {"numpy", "dask"}
        ``numpy``: in this process (the default); ``dask``: on a Dask cluster.
    scheduler : str
        ``local`` or ``local:N`` (a local cluster of N worker processes, default 2), or a
        scheduler address ``tcp://HOST:PORT``.
    partition_rows : int
        Rows per partition of Parquet input (whole row groups; CSV files are one partition
        each); a worker holds one partition at a time.
    worker_memory : str
        Memory limit of each worker of a local cluster (Dask's syntax, e.g. ``2GB``).
    connect_timeout : float
        Seconds to wait for the scheduler.
    summary_size : int
        Entries of the quantile summaries ``monitor --engine dask`` combines per column (its
        KS and Wasserstein scores are within about ``partitions / summary_size`` of the exact
        ones; see ``docs/scale.md``).
    gate_rows : int
        Held-out rows ``train --engine dask`` gathers for the quality gates and the MLflow run
        (all of them when there are fewer).

    Object-storage options of inputs are ``[data] storage_options``.
    """

    engine: Literal["numpy", "dask"] = "numpy"
    scheduler: str = "local"
    partition_rows: int = Field(1_000_000, ge=1)
    worker_memory: str = "2GB"
    connect_timeout: float = Field(10.0, gt=0.0)
    summary_size: int = Field(2048, ge=64)
    gate_rows: int = Field(50_000, ge=100)


class RetrainSettings(BaseModel):
    """The closed loop (``regressops retrain``, ``pipeline run``, the Prefect flows).

    Attributes
    ----------
    models : list of str
        Candidate kinds trained on the fresh clean version; the best that passes its gates
        against the champion is promoted.
    servers : list of str
        Base URLs of running servers told to reload after a promotion (``POST /admin/reload``).
    admin_key_env : str
        Name of the environment variable holding the admin key sent to those servers.
    lock_timeout : float
        Seconds a retrain waits for another one on the same dataset to finish (0: refuse).
    stage_retries : int
        Extra attempts of a ``pipeline run`` stage after a transient error.
    """

    models: list[str] = Field(default_factory=lambda: ["linear"], min_length=1)
    servers: list[str] = Field(default_factory=list)
    admin_key_env: str = Field("REGRESSOPS_ADMIN_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    lock_timeout: float = Field(600.0, ge=0)
    stage_retries: int = Field(1, ge=0, le=10)


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
    admin_keys : SecretStr or None
        Comma-separated operator keys (``REGRESSOPS_ADMIN_KEYS``); once set, only they may call
        ``/admin/reload``. Never logged.
    retrain : RetrainSettings
        The closed loop: candidates, servers to reload, the retrain lock.
    webhooks : list of WebhookSettings
        Where events (drift, gate failures, promotions, ...) are sent (``[[webhooks]]``).
    """

    model_config = SettingsConfigDict(
        env_prefix="REGRESSOPS_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Path(".regressops")
    tracking_uri: str | None = None
    api_keys: SecretStr | None = None
    admin_keys: SecretStr | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    train: TrainSettings = Field(default_factory=TrainSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    gates: GateSettings = Field(default_factory=GateSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)

    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
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
        """Read keyword arguments, then the environment, then the TOML file.

        Unknown sections, keys and ``REGRESSOPS_SECTION__KEY`` variables are refused (see
        :mod:`regressops.config_check`), as is a ``REGRESSOPS_CONFIG`` naming a missing file.
        """
        problems = config_check.unknown_env(settings_cls, os.environ)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = config_file()
        if toml_file is not None:
            doc = config_check.read_toml(toml_file)
            text = toml_file.read_text(encoding="utf-8")
            for path, message in config_check.unknown_names(doc, settings_cls):
                line = config_check.line_of(text, path)
                problems.append(f"{toml_file}{f' line {line}' if line else ''}: {message}")
            sources.append(InitSettingsSource(settings_cls, doc))
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(problems[0] + more, reason="unknown_setting")
        return tuple(sources)

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
        return _key_list(self.api_keys)

    def admin_key_list(self) -> list[str]:
        """Return the configured operator keys (empty: reloading follows the API keys)."""
        return _key_list(self.admin_keys)


def _key_list(keys: SecretStr | None) -> list[str]:
    if keys is None:
        return []
    return [k.strip() for k in keys.get_secret_value().split(",") if k.strip()]


def config_file() -> Path | None:
    """The settings file to read: ``REGRESSOPS_CONFIG``, else ``./regressops.toml`` if present.

    ``REGRESSOPS_CONFIG=none`` reads no file.

    Raises
    ------
    ConfigError
        ``REGRESSOPS_CONFIG`` names a file that does not exist.
    """
    named = os.environ.get(CONFIG_FILE_ENV, "")
    if not named:
        default = Path(DEFAULT_CONFIG_FILE)
        return default if default.is_file() else None
    if named.lower() == "none":
        return None
    path = Path(named).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{CONFIG_FILE_ENV} names {path}, which does not exist (set it to an existing "
            "file, or to 'none' to read no settings file)",
            reason="missing_config_file",
        )
    return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process; ``get_settings.cache_clear()`` rebuilds them.

    Raises
    ------
    ConfigError
        A setting has an invalid value: the message names the setting, where the value came
        from (environment variable, or file and line) and what was expected (never the value,
        which may be a secret). Also an unknown setting, a malformed or missing settings file.
    """
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        path = config_file()
        text = path.read_text(encoding="utf-8") if path is not None else None
        message = config_check.value_error(tuple(first["loc"]), first["msg"], path, text)
        raise ConfigError(message + more, reason="invalid_setting") from None
