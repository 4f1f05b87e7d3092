"""Run the prediction service under uvicorn (uvloop, httptools), one worker or several.

:func:`serve` is what ``regressops serve`` calls. It loads the model once before starting, so
a wrong ``--model`` fails with one clear line instead of a worker traceback, warns when binding
beyond loopback without API keys, and then:

- with one worker, runs the app in this process; SIGHUP reloads the model in place;
- with several, hands the settings to the workers through ``REGRESSOPS_*`` environment
  variables, shares metrics through a fresh ``PROMETHEUS_MULTIPROC_DIR``, and runs uvicorn's
  supervisor with one change: SIGHUP is forwarded to every worker, which reloads its model in
  place (atomic swap, requests in flight finish on the old model, a failed load keeps the old
  one). uvicorn's own SIGHUP handling restarts the worker processes instead, and a request sent
  on a keep-alive connection just as its worker closes it is lost; forwarding avoids that.

SIGTERM stops gracefully: requests in flight finish, then every worker flushes its prediction
log before exiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from typing import Any

from regressops.config import Settings, get_settings
from regressops.serving.loader import load_model
from regressops.serving.metrics import MULTIPROC_ENV
from regressops.serving.routes_ops import SUPERVISOR_ENV
from regressops.serving.security import bind_warning

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 30
WORKER_READY_SECONDS = 60


def uvicorn_options(*, host: str, port: int, access_log: bool, log_level: str) -> dict[str, Any]:
    """The uvicorn settings regressops serves with (no ``Server`` banner)."""
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "server_header": False,
        "date_header": True,
        "access_log": access_log,
        "log_level": log_level,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        # a new worker imports numpy/FastAPI and loads the model before it is ready; on a busy
        # machine that takes longer than uvicorn's default 5 s, which would abort a SIGHUP roll
        "timeout_worker_healthcheck": WORKER_READY_SECONDS,
        "proxy_headers": False,
    }


def serve(
    settings: Settings | None = None,
    *,
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    prediction_log: str | None = None,
    shadow: str | None = None,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Serve a model until SIGTERM or Ctrl-C.

    Parameters
    ----------
    settings : Settings, optional
        Default :func:`get_settings`; ``serve.*`` supplies every option not given here.
    model : str, optional
        Bundle directory or ``models:/NAME@ALIAS``.
    host, port, workers : optional
        Bind address (default 127.0.0.1:8000) and number of worker processes.
    prediction_log : str, optional
        JSON-lines path, SQLAlchemy URL, or ``"off"``.
    shadow : str, optional
        A challenger scoring every served row off the request path (its predictions are
        logged beside the served model's); default ``serve.shadow``.
    access_log : bool, default=False
        Log every request line (uvicorn's access log).
    log_level : str, default="info"
        uvicorn's log level.

    Raises
    ------
    ConfigError, BundleError
        No model named, or it cannot be loaded (checked before the server starts).
    """
    import uvicorn

    settings = settings or get_settings()
    serve_cfg = settings.serve
    ref = model or serve_cfg.model or ""
    host = host or serve_cfg.host
    port = serve_cfg.port if port is None else port
    workers = workers or serve_cfg.workers
    log_target = prediction_log if prediction_log is not None else serve_cfg.prediction_log
    bundle = load_model(ref)  # fail fast with a clear message
    shadow = shadow or serve_cfg.shadow
    if shadow:
        from regressops.serving.shadow import check_shadow

        check_shadow(bundle, load_model(shadow))
    logger.info(
        "model %s version %s loads; starting %d worker(s)", bundle.name, bundle.version, workers
    )
    if (warning := bind_warning(host, settings.api_key_list())) is not None:
        logger.warning(warning)
    options = uvicorn_options(host=host, port=port, access_log=access_log, log_level=log_level)
    if workers == 1:
        from regressops.serving.app import create_app

        app = create_app(settings, model=ref, prediction_log=log_target, shadow=shadow)
        uvicorn.run(app, **options)
        return
    overrides = {"REGRESSOPS_SERVE__MODEL": ref, "REGRESSOPS_SERVE__WORKERS": str(workers)}
    if log_target is not None:
        overrides["REGRESSOPS_SERVE__PREDICTION_LOG"] = log_target
    if shadow:
        overrides["REGRESSOPS_SERVE__SHADOW"] = shadow
    overrides["REGRESSOPS_HOME"] = str(settings.home)
    overrides[SUPERVISOR_ENV] = str(os.getpid())
    own_metrics_dir = MULTIPROC_ENV not in os.environ
    metrics_dir = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="regressops-metrics-")
    overrides[MULTIPROC_ENV] = metrics_dir
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        _run_workers(
            uvicorn.Config(
                "regressops.serving.app:app_from_settings",
                factory=True,
                workers=workers,
                **options,
            )
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(config: Any) -> None:
    """Run uvicorn's multi-process supervisor with SIGHUP forwarded to the workers."""
    import signal

    from uvicorn.supervisors import Multiprocess

    class ForwardingSupervisor(Multiprocess):
        def handle_hup(self) -> None:
            logger.info("SIGHUP: every worker reloads its model in place")
            for process in self.processes:
                if process.pid is not None and process.process.is_alive():
                    os.kill(process.pid, signal.SIGHUP)

    with contextlib.suppress(KeyboardInterrupt):  # an interactive Ctrl-C ends quietly
        ForwardingSupervisor(config, sockets=[config.bind_socket()]).run()
