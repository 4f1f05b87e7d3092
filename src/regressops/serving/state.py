"""What one server process holds: the current predictor, the prediction log, metrics, keys.

The predictor is replaced by assigning one attribute: a request reads
:attr:`ServingState.predictor` once when it starts and finishes on that object, so requests in
flight during a reload complete on the old model while new ones get the new model. A reload
that fails leaves the old predictor in place and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import anyio

from regressops.config import Settings
from regressops.errors import ConfigError, RegressopsError
from regressops.serving import loader, supervision
from regressops.serving.drift_watch import DriftWatch
from regressops.serving.log.batch import LogBatch
from regressops.serving.log.labels import LabelSink, labels_target
from regressops.serving.log.process import open_server_sink
from regressops.serving.log.queue import PredictionLogger
from regressops.serving.log.segments import Rotation
from regressops.serving.metrics import ServingMetrics, mark_process_dead, multiprocess_dir
from regressops.serving.predictor import Predictor, Scored
from regressops.serving.problems import ApiError
from regressops.serving.security import ApiKeyGuard
from regressops.serving.shadow import ShadowScorer

logger = logging.getLogger(__name__)

METRICS_FLUSH_SECONDS = 1.0


class ServingState:
    """The mutable state of one server process.

    Parameters
    ----------
    settings : Settings
        Limits, keys, prediction-log target, reload polling.
    model_ref : str
        The model to serve (bundle directory or ``models:/NAME@ALIAS``).
    prediction_log : str or None
        Log target; ``None`` uses ``settings.serve.prediction_log`` (default JSON lines under
        ``settings.home``); ``"off"`` disables the log.
    shadow_ref : str or None
        A challenger scoring the served rows off the request path (:mod:`.shadow`).
    """

    def __init__(
        self,
        settings: Settings,
        model_ref: str,
        *,
        prediction_log: str | None = None,
        shadow_ref: str | None = None,
    ) -> None:
        self.settings = settings
        self.model_ref = model_ref
        self.log_target = (
            prediction_log if prediction_log is not None else settings.serve.prediction_log
        )
        self.metrics = ServingMetrics()
        self.guard = ApiKeyGuard(settings.api_key_list())
        self.admin_guard = ApiKeyGuard(settings.admin_key_list())
        self.max_body_bytes = settings.serve.max_body_bytes
        self.predictor: Predictor | None = None
        self.plog: PredictionLogger | None = None
        self._labels: LabelSink | None = None
        self._labels_lock = threading.Lock()
        self.last_reload: dict[str, Any] = {}
        self.on_model_change: list[Any] = []
        self._reload_lock = asyncio.Lock()
        self._fingerprint: str | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self.shadow: ShadowScorer | None = None
        if shadow_ref:
            self.shadow = ShadowScorer(
                shadow_ref,
                registry=self.metrics.registry,
                max_rows=settings.serve.max_rows,
                max_pending_rows=settings.serve.shadow_max_pending_rows,
            )
        self._watch_task: asyncio.Task[None] | None = None
        self.drift: DriftWatch | None = None  # live drift gauges (serve.drift)
        if settings.serve.drift:
            self.drift = DriftWatch(settings, shared_dir=multiprocess_dir())
            self.metrics.add_collector(self.drift.collector)
        self._echo_pending = False  # an API reload's SIGHUP round will come back to this worker

    # ------------------------------------------------------------------ lifecycle
    def _load(self) -> Predictor:
        fingerprint = loader.fingerprint(self.model_ref)
        bundle, bundle_dir = loader.load_model_dir(self.model_ref)
        serve = self.settings.serve
        predictor = Predictor(
            bundle, max_rows=serve.max_rows, impute_missing=serve.missing_values == "impute"
        )
        if self.shadow is not None:
            self.shadow.prepare(predictor)  # a reload swaps both models or neither
        if self.drift is not None:
            self.drift.prepare(predictor, bundle_dir)  # a new reference, fitted once
        self._fingerprint = fingerprint
        return predictor

    async def start(self) -> None:
        """Load the model, open the prediction log, install SIGHUP and reload polling."""
        predictor = await anyio.to_thread.run_sync(self._load)
        self._set_predictor(predictor)
        serve = self.settings.serve
        rotation = Rotation(
            max_bytes=serve.log_rotate_bytes,
            max_seconds=serve.log_rotate_seconds,
            retention_bytes=serve.log_retention_bytes,
            retention_seconds=serve.log_retention_seconds,
        )
        sink = await anyio.to_thread.run_sync(
            open_server_sink, self.log_target, self.settings.home, serve.log_writer, rotation
        )
        if sink is not None:
            self.plog = PredictionLogger(
                sink, max_pending_rows=self.settings.serve.log_max_pending_rows
            )
            self.plog.start()
        if self.shadow is not None:
            self.shadow.plog = self.plog
            self.shadow.start()
        if self.drift is not None:
            self.drift.start()
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        self._flush_task = loop.create_task(self._flush_metrics(METRICS_FLUSH_SECONDS))
        if self.settings.serve.reload_poll_seconds > 0:
            self._poll_task = loop.create_task(self._poll(self.settings.serve.reload_poll_seconds))
        if (supervisor := supervision.supervisor_pid()) is not None:
            self._watch_task = loop.create_task(supervision.watch_supervisor(supervisor))
        # Everything built so far lives as long as the process: move it out of the collector's
        # reach, so the many short-lived objects of JSON bodies do not trigger full scans of it.
        gc.collect()
        gc.freeze()
        logger.info(
            "serving %s version %s (%s)", predictor.name, predictor.version, predictor.bundle.kind
        )

    async def stop(self) -> None:
        """Write every logged row, then release resources (runs after the last request)."""
        if self._poll_task is not None:
            self._poll_task.cancel()
        if self._flush_task is not None:
            self._flush_task.cancel()
        if self._watch_task is not None:
            self._watch_task.cancel()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self.shadow is not None:  # its last rows go to the log before the log closes
            await anyio.to_thread.run_sync(self.shadow.close)
        if self.drift is not None:
            await anyio.to_thread.run_sync(self.drift.close)
        if self._labels is not None:
            self._labels.close()
        if self.plog is not None:
            await anyio.to_thread.run_sync(self.plog.close)
            logger.info("prediction log flushed: %d rows written", self.plog.rows_written)
        self.metrics.flush()
        mark_process_dead(os.getpid())

    def _set_predictor(self, predictor: Predictor) -> None:
        self.predictor = predictor
        if self.shadow is not None:
            self.shadow.install()
        if self.drift is not None:
            self.drift.install()  # a new window; the old version's gauges go
        b = predictor.bundle
        self.metrics.set_model(b.name, b.version, b.kind)
        for callback in self.on_model_change:
            callback(predictor)

    # ------------------------------------------------------------------ reload
    async def reload(self, trigger: str) -> dict[str, Any]:
        """Load the model again and swap it in; on failure keep the current one.

        Returns
        -------
        dict
            ``{"reloaded": True, "name", "version", "previous_version", "trigger", "at"}``.

        Raises
        ------
        ApiError
            409 ``reload_failed`` naming why; the old model keeps serving.
        """
        async with self._reload_lock:
            supervised = supervision.supervisor_pid() is not None
            if trigger == "SIGHUP" and self._echo_pending:
                # the round this worker's own API reload started: its model is already new
                self._echo_pending = False
                self._count_ok(trigger, supervised)
                return self.last_reload
            previous = self.predictor
            at = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                predictor = await anyio.to_thread.run_sync(self._load)
            except RegressopsError as exc:
                return self._reload_failed(trigger, at, previous, exc.message)
            except Exception as exc:  # a broken artefact must not take the server down
                logger.exception("reload failed")
                return self._reload_failed(trigger, at, previous, exc.__class__.__name__)
            self._set_predictor(predictor)
            if trigger == "api" and supervised:
                self._echo_pending = True  # counted once, by the round the supervisor starts
            else:
                self._count_ok(trigger, supervised)
            self.last_reload = {
                "reloaded": True,
                "name": predictor.name,
                "version": predictor.version,
                "previous_version": previous.version if previous else None,
                "trigger": trigger,
                "at": at,
            }
            logger.info("reloaded %s: version %s", predictor.name, predictor.version)
            return self.last_reload

    def _count_ok(self, trigger: str, supervised: bool) -> None:
        """Count a reload; a round over several workers counts once (its first claimer)."""
        if not (supervised and trigger == "SIGHUP") or supervision.claim_reload_round(
            multiprocess_dir()
        ):
            self.metrics.reloads.labels("ok").inc()

    def _reload_failed(
        self, trigger: str, at: str, previous: Predictor | None, why: str
    ) -> dict[str, Any]:
        self.metrics.reloads.labels("failed").inc()
        serving = f"{previous.name} version {previous.version}" if previous else "no model"
        self.last_reload = {"reloaded": False, "trigger": trigger, "at": at, "error": why}
        logger.warning("reload failed, still serving %s: %s", serving, why)
        raise ApiError(409, "reload_failed", f"reload failed, still serving {serving}: {why}")

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_quietly("SIGHUP"))
        task.add_done_callback(lambda t: None)

    async def _reload_quietly(self, trigger: str) -> None:
        with contextlib.suppress(ApiError):  # logged already; the old model keeps serving
            await self.reload(trigger)

    async def _flush_metrics(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            if self.plog is not None:
                self.metrics.set_log(self.plog)
            self.metrics.flush()

    async def _poll(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                current = await anyio.to_thread.run_sync(loader.fingerprint, self.model_ref)
                shadow = self.shadow
                shadow_changed = shadow is not None and await anyio.to_thread.run_sync(
                    shadow.changed
                )
            except ConfigError:
                continue
            if (current is not None and current != self._fingerprint) or shadow_changed:
                await self._reload_quietly("poll")

    # ------------------------------------------------------------------ request helpers
    def require_predictor(self) -> Predictor:
        """Return the current predictor or raise 503 when none is loaded."""
        predictor = self.predictor
        if predictor is None:
            raise ApiError(503, "not_ready", "the model is not loaded yet; retry shortly")
        return predictor

    def label_sink(self) -> LabelSink:
        """The labels sink beside the prediction log, opened on first use."""
        with self._labels_lock:
            if self._labels is None:
                self._labels = LabelSink(labels_target(self.log_target, self.settings.home))
            return self._labels

    def record(
        self,
        *,
        endpoint: str,
        request_id: str,
        predictor: Predictor,
        scored: Scored,
        started: float,
        log: bool = True,
    ) -> None:
        """Count a prediction in the metrics, queue its rows for the live drift window, the
        prediction log and the shadow model (``log=False``: count them as dropped instead; the
        shadow then skips them too, adding nothing to a log that cannot be written)."""
        self.metrics.observe_predictions(endpoint, scored.predictions)
        if self.drift is not None:
            self.drift.submit(scored.features, len(scored.predictions))
        if self.plog is not None and not log:
            self.plog.drop(len(scored.predictions))
            return
        if self.shadow is not None:
            self.shadow.submit(request_id, endpoint, scored)
        if self.plog is not None:
            self.plog.log(
                LogBatch(  # positional: this runs once per request
                    time.time(),
                    request_id,
                    endpoint,
                    predictor.name,
                    predictor.version,
                    predictor.names,
                    scored.features,
                    scored.predictions,
                    (time.perf_counter() - started) * 1e3,
                    imputed=scored.imputed,
                )
            )
