"""A challenger in shadow: a second model scores the served rows off the request path.

The served model (the champion) answers every request. With ``serve --shadow REF`` each
answered request also hands its validated features to :meth:`ShadowScorer.submit` — one
``deque.append``, no thread woken. A thread wakes every ``interval`` seconds, stacks what has
queued into one matrix where it can, scores it with the challenger in one call and:

- logs the challenger's predictions to the prediction log beside the champion's: the same
  ``request_id`` and ``row``, the challenger's ``model_name`` / ``model_version`` and the
  endpoint ``shadow:<endpoint>`` (so readers that want the served rows skip ``shadow:``);
- counts rows scored, dropped and failed (``regressops_shadow_rows_total{result}``) and the
  distribution of ``|challenger − champion|`` (``regressops_shadow_abs_difference``).

The challenger never delays or fails a request: when it falls more than ``max_pending_rows``
behind, new rows are dropped (and counted); a row it cannot score is counted and logged once
per distinct reason. It must take a subset of the champion's features (checked when loaded).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from regressops.errors import ConfigError, RegressopsError
from regressops.models.bundle import ModelBundle
from regressops.reasons import Reason
from regressops.serving import loader
from regressops.serving.log.batch import SHADOW_PREFIX, LogBatch
from regressops.serving.log.queue import PredictionLogger
from regressops.serving.predictor import Predictor, Scored

logger = logging.getLogger(__name__)

_DIFF_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1e3, 1e4)


def check_shadow(served: ModelBundle, shadow: ModelBundle) -> None:
    """Refuse a shadow model that is the served model (same name and version: its log rows
    could not be told apart) or needs a feature the served model does not take.

    Raises
    ------
    ConfigError
        One line naming both models (and the missing features).
    """
    if (shadow.name, shadow.version) == (served.name, served.version):
        raise ConfigError(
            f"the shadow model is the served model ({served.name} version {served.version}); "
            "shadow another version",
            reason=Reason.SHADOW_IS_SERVED,
        )
    missing = [n for n in shadow.spec.names if n not in served.spec.names]
    if missing:
        raise ConfigError(
            f"the shadow model {shadow.name} version {shadow.version} needs feature(s) "
            f"{missing} that the served model {served.name} version {served.version} does not "
            "take",
            reason=Reason.SHADOW_INCOMPATIBLE,
        )


@dataclass(frozen=True)
class _Model:
    """The challenger and where its features sit among the champion's (swapped as one)."""

    predictor: Predictor
    columns: np.ndarray | None  # champion columns it takes; None: all, in the same order
    fingerprint: str | None

    def select(self, features: np.ndarray | dict[str, Any]) -> np.ndarray | dict[str, Any]:
        """The challenger's features out of a champion request's features."""
        if isinstance(features, np.ndarray):
            return features if self.columns is None else features[:, self.columns]
        return {n: features[n] for n in self.predictor.names}

    def predict(self, features: np.ndarray | dict[str, Any]) -> np.ndarray:
        """Score a champion request's features (raises RegressopsError for a bad row)."""
        mine = self.select(features)
        if isinstance(mine, np.ndarray):
            mine = dict(zip(self.predictor.names, mine.T, strict=True))
        return self.predictor.predict_columns(mine).predictions


@dataclass(slots=True)
class _Job:
    ts: float
    request_id: str
    endpoint: str
    features: np.ndarray | dict[str, Any]
    champion: np.ndarray
    model: _Model  # the challenger when the request was answered


class ShadowScorer:
    """Score served rows with a challenger model from a background thread.

    Parameters
    ----------
    ref : str
        The challenger: bundle directory or ``models:/NAME@ALIAS``.
    registry : CollectorRegistry
        Where the shadow metrics are registered (the server's).
    max_rows : int
        Largest batch the challenger scores at once.
    max_pending_rows : int
        Rows queued beyond which new rows are dropped instead of queued.
    interval : float
        Seconds between the thread's wake-ups.
    """

    def __init__(
        self,
        ref: str,
        *,
        registry: CollectorRegistry,
        max_rows: int = 100_000,
        max_pending_rows: int = 100_000,
        interval: float = 0.02,
    ) -> None:
        self.ref = ref
        self.max_rows = max_rows
        self.max_pending_rows = max_pending_rows
        self.interval = interval
        self.model: _Model | None = None
        self._prepared: _Model | None = None
        self.plog: PredictionLogger | None = None
        self._queue: deque[_Job] = deque()
        self._submitted = 0  # rows; written by the request side only
        self._done = 0  # rows; written by the shadow thread only
        self._dropped = 0  # rows; request side only, moved to the counter by the thread
        self._dropped_counted = 0
        self._reasons: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self.rows = Counter(
            "regressops_shadow_rows", "Rows the shadow model scored, dropped or failed",
            ["result"], registry=registry,
        )  # fmt: skip
        self.difference = Histogram(
            "regressops_shadow_abs_difference", "|shadow prediction - served prediction|",
            buckets=_DIFF_BUCKETS, registry=registry,
        )  # fmt: skip
        self.info = Gauge(
            "regressops_shadow_model_info", "The shadow model (1) and shadow models before (0)",
            ["name", "version"], registry=registry, multiprocess_mode="livemax",
        )  # fmt: skip

    # ------------------------------------------------------------------ models
    def prepare(self, champion: Predictor) -> None:
        """Load the challenger (again) for ``champion``; :meth:`install` swaps it in.

        Runs in a worker thread beside the champion's own load, so a reload swaps both models
        or neither.

        Raises
        ------
        ConfigError
            The challenger needs a feature the served model does not take.
        BundleError, ConfigError
            It cannot be loaded.
        """
        fingerprint = loader.fingerprint(self.ref)
        predictor = Predictor(loader.load_model(self.ref), max_rows=self.max_rows)
        check_shadow(champion.bundle, predictor.bundle)
        index = {n: i for i, n in enumerate(champion.names)}
        columns = None
        if predictor.names != champion.names:
            columns = np.array([index[n] for n in predictor.names], dtype=np.intp)
        self._prepared = _Model(predictor, columns, fingerprint)

    def install(self) -> Predictor | None:
        """Swap in the model :meth:`prepare` loaded (one assignment: the thread sees the old
        mapping or the new one, never a mix); return it, or None when nothing was prepared."""
        model, self._prepared = self._prepared, None
        if model is None:
            return None
        previous, self.model = self.model, model
        if previous is not None:
            self.info.labels(previous.predictor.name, previous.predictor.version).set(0)
        self.info.labels(model.predictor.name, model.predictor.version).set(1)
        return model.predictor

    def identity(self) -> dict[str, str] | None:
        """``{"name", "version"}`` of the shadow model, or None before it is loaded."""
        model = self.model
        if model is None:
            return None
        return {"name": model.predictor.name, "version": model.predictor.version}

    def changed(self) -> bool:
        """True when the challenger's reference now points at another model (for polling)."""
        model = self.model
        current = loader.fingerprint(self.ref)
        return model is not None and current is not None and current != model.fingerprint

    # ------------------------------------------------------------------ request side
    @property
    def pending_rows(self) -> int:
        """Rows submitted but not yet scored."""
        return self._submitted - self._done

    def submit(self, request_id: str, endpoint: str, scored: Scored) -> None:
        """Queue a served request's rows for the challenger (O(1); never blocks or raises)."""
        n = len(scored)
        model = self.model
        if model is None:
            return
        if self._submitted - self._done + n > self.max_pending_rows:
            self._dropped += n
            return
        self._submitted += n
        self._queue.append(
            _Job(time.time(), request_id, endpoint, scored.features, scored.predictions, model)
        )

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Start the scoring thread."""
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Score what is queued, then stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval)
            self._drain()
            if stopping:
                self._drain()
                return

    def _drain(self) -> None:
        dropped = self._dropped
        if dropped != self._dropped_counted:
            self.rows.labels("dropped").inc(dropped - self._dropped_counted)
            self._dropped_counted = dropped
        jobs: list[_Job] = []
        rows = 0
        while self._queue and rows < self.max_rows:
            job = self._queue.popleft()
            jobs.append(job)
            rows += len(job.champion)
        try:
            for _, group in groupby(jobs, key=lambda job: id(job.model)):
                same_model = list(group)
                self._score(same_model, same_model[0].model)
        finally:
            self._done += rows

    def _score(self, jobs: list[_Job], model: _Model) -> None:
        started = time.perf_counter()
        if len(jobs) > 1 and all(isinstance(j.features, np.ndarray) for j in jobs):
            stacked = np.concatenate([j.features for j in jobs])
            try:  # one call for every queued request
                preds = model.predict(stacked)
            except RegressopsError:
                preds = None  # a bad row: score request by request to keep the others
            if preds is not None:
                self._record(jobs, preds, model, started, stacked)
                return
        for job in jobs:
            try:
                preds = model.predict(job.features)
            except RegressopsError as exc:
                self._failed(len(job.champion), exc)
                continue
            self._record([job], preds, model, started, job.features)

    def _record(
        self,
        jobs: list[_Job],
        preds: np.ndarray,
        model: _Model,
        started: float,
        features: np.ndarray | dict[str, Any],
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1e3
        champion = np.concatenate([j.champion for j in jobs]) if len(jobs) > 1 else jobs[0].champion
        diff = np.abs(preds - champion)
        counts = np.bincount(np.searchsorted(_DIFF_BUCKETS, diff), minlength=len(_DIFF_BUCKETS) + 1)
        for bucket, c in zip(self.difference._buckets, counts.tolist(), strict=True):
            if c:
                bucket.inc(c)
        self.difference._sum.inc(float(diff.sum()))
        self.rows.labels("scored").inc(len(preds))
        if self.plog is None:
            return
        # one batch per run of requests to the same endpoint: one log line, not one per request
        predictor, mine, start = model.predictor, model.select(features), 0
        for endpoint, group in groupby(jobs, key=lambda job: job.endpoint):
            same = list(group)
            n = sum(len(j.champion) for j in same)
            ids: list[str] | None = None
            rows: list[int] | None = None
            if len(same) > 1:
                ids = [j.request_id for j in same for _ in range(len(j.champion))]
                rows = [r for j in same for r in range(len(j.champion))]
            part = mine[start : start + n] if isinstance(mine, np.ndarray) else mine
            self.plog.log(
                LogBatch(
                    same[0].ts, same[0].request_id, SHADOW_PREFIX + endpoint, predictor.name,
                    predictor.version, predictor.names, part, preds[start : start + n],
                    latency_ms, request_ids=ids, request_rows=rows,
                )
            )  # fmt: skip
            start += n

    def _failed(self, n: int, exc: RegressopsError) -> None:
        self.rows.labels("failed").inc(n)
        if exc.reason not in self._reasons:  # once per distinct reason, not per request
            self._reasons.add(exc.reason)
            logger.warning("the shadow model could not score %d row(s): %s", n, exc.message)
