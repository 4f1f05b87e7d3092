"""Live drift on ``/metrics``: the served rows judged against the model's reference, off the
request path.

Each answered request hands its already-validated feature block to :meth:`DriftWatch.submit`
(one ``deque.append``; no copy, no per-row object, no thread woken). A background thread wakes
every :data:`DRAIN_SECONDS`, moves the queued blocks into a
:class:`~regressops.monitoring.live.RollingWindow` (the newest ``serve.drift_window_rows`` rows)
and, every ``serve.drift_interval_seconds`` when at least ``monitor.min_rows`` new rows arrived,
judges the window with a :class:`~regressops.monitoring.live.LiveDrift` fitted once on the
bundle's stored reference. The result is exported as gauges labelled ``model``, ``version``,
``feature`` and ``method`` (:class:`DriftCollector`).

With several workers (``serve --workers N``) each worker keeps the window of the rows it
answered — the kernel spreads connections over the workers, so each window is a sample of the
same traffic — and writes each result to ``drift-<pid>.json`` in the metrics folder shared by
the workers; ``/metrics``, whichever worker answers it, shows the newest result of a live worker
serving the same model version as itself: one value per label set, never one per worker. A
reload starts a new window and a new fit; the old version's gauges disappear at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from regressops.config import Settings
from regressops.errors import RegressopsError
from regressops.reasons import Reason

if TYPE_CHECKING:
    import numpy as np

    from regressops.monitoring.live import LiveDrift, LiveResult, RollingWindow
    from regressops.serving.predictor import Predictor

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 0.25  # how often queued blocks move into the window
RESULT_PREFIX = "drift-"
_FEATURE_LABELS = ("model", "version", "feature", "method")
_MODEL_LABELS = ("model", "version")


@dataclass(eq=False)
class _Watched:
    """The served model's drift state (replaced as one object on a reload)."""

    name: str
    version: str
    drift: LiveDrift
    window: RollingWindow
    computed_rows: int = 0  # window.added at the last computation
    computed_at: float = 0.0  # monotonic time of the last computation (or of the install)


class DriftWatch:
    """Keep a rolling window of the served rows and judge it in a background thread.

    Parameters
    ----------
    settings : Settings
        ``serve.drift_window_rows``, ``serve.drift_interval_seconds`` and ``monitor``.
    shared_dir : str, optional
        The workers' shared metrics folder (multiprocess mode): results are exchanged there.
    """

    def __init__(self, settings: Settings, *, shared_dir: str | None = None) -> None:
        self.settings = settings
        self.window_rows = settings.serve.drift_window_rows
        self.interval = settings.serve.drift_interval_seconds
        self.min_rows = settings.monitor.min_rows
        self.shared_dir = Path(shared_dir) if shared_dir else None
        self.watched: _Watched | None = None
        self.latest: LiveResult | None = None
        self._prepared: _Watched | None = None
        self._blocks: deque[tuple[_Watched, Any, int]] = deque()
        self._submitted = 0  # rows; written by the request side only
        self._taken = 0  # rows; written by the thread only
        self.skipped = 0  # rows not queued because the thread was a whole window behind
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-watch", daemon=True)
        self.collector = DriftCollector(self)

    # ------------------------------------------------------------------ model
    def prepare(self, predictor: Predictor, bundle_dir: Path | None) -> None:
        """Fit the drift detector on the bundle's reference; :meth:`install` swaps it in.

        Runs in the model-loading thread. Never raises: a bundle without a usable reference
        gets no gauges and one log line.
        """
        from regressops.monitoring.live import LiveDrift, RollingWindow
        from regressops.monitoring.reference import load_reference

        self._prepared = None
        where = f"{predictor.name} version {predictor.version}"
        if bundle_dir is None:
            logger.info("live drift off for %s: its bundle directory is unknown", where)
            return
        try:
            reference = load_reference(bundle_dir)
            missing = [n for n in predictor.names if n not in reference.features]
            if missing:
                logger.warning(
                    "live drift off for %s: its reference lacks feature(s) %s", where, missing
                )
                return
            drift = LiveDrift(reference, self.settings.monitor)
        except RegressopsError as exc:
            if exc.reason == Reason.NO_REFERENCE:  # monitor's --reference-data fits no server
                logger.warning(
                    "live drift off for %s: its bundle holds no drift reference (trained before "
                    "reference.json was stored); retrain it to get the drift gauges on /metrics",
                    where,
                )
            else:
                logger.warning("live drift off for %s: %s", where, exc.message)
            return
        if drift.replaced:
            logger.info(
                "live drift of %s uses numpy-only distances instead of p-value tests for %s",
                where,
                ", ".join(f"{n} ({m})" for n, m in drift.replaced.items()),
            )
        kinds = {n: drift.kinds[n] for n in predictor.names}
        window = RollingWindow(kinds, self.window_rows)
        self._prepared = _Watched(predictor.name, predictor.version, drift, window)

    def install(self) -> None:
        """Swap in what :meth:`prepare` fitted (or nothing): a new, empty window; the previous
        model's queued rows and gauges are dropped."""
        watched, self._prepared = self._prepared, None
        if watched is not None:
            watched.computed_at = time.monotonic()  # the first result after one interval
        self.watched = watched  # one assignment: the request side tags blocks with it
        self.latest = None
        self._remove_shared()

    # ------------------------------------------------------------------ request side
    def submit(self, features: np.ndarray | dict[str, Any], n: int) -> None:
        """Queue a served request's validated features (O(1); never blocks or raises)."""
        watched = self.watched
        if watched is None:
            return
        if self._submitted - self._taken >= self.window_rows:  # a whole window is queued
            self.skipped += n
            return
        self._submitted += n
        self._blocks.append((watched, features, n))

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and withdraw this worker's shared result."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._remove_shared()

    def _run(self) -> None:
        failures: set[str] = set()
        while not self._stop.wait(DRAIN_SECONDS):
            try:
                self.tick()
            except Exception as exc:  # the gauges must never take the server down
                why = f"{exc.__class__.__name__}: {exc}"
                if why not in failures:  # once per distinct failure, not every interval
                    failures.add(why)
                    logger.exception("live drift computation failed")

    def tick(self, now: float | None = None) -> LiveResult | None:
        """Move queued rows into the window; judge it when it is time (returns the result)."""
        watched = self.watched
        popleft = self._blocks.popleft
        items = [popleft() for _ in range(len(self._blocks))]  # appends go on meanwhile
        blocks = [features for owner, features, _ in items if owner is watched]
        self._taken += sum([n for _, _, n in items])
        if watched is None:
            return None
        if blocks:
            watched.window.extend(blocks)
        now = time.monotonic() if now is None else now
        new_rows = watched.window.added - watched.computed_rows
        if new_rows < self.min_rows or now - watched.computed_at < self.interval:
            return None
        # counted before: a computation that fails is tried again at the next interval
        watched.computed_rows, watched.computed_at = watched.window.added, now
        result = watched.drift.calculate(
            watched.window, model=watched.name, version=watched.version
        )
        if watched is not self.watched:  # reloaded meanwhile: the result is of the old model
            return None
        self.latest = result
        self._write_shared(result)
        return result

    # ------------------------------------------------------------------ sharing (workers)
    def _shared_path(self) -> Path | None:
        if self.shared_dir is None:
            return None
        return self.shared_dir / f"{RESULT_PREFIX}{os.getpid()}.json"

    def _write_shared(self, result: LiveResult) -> None:
        path = self._shared_path()
        if path is None:
            return
        try:
            fd, tmp = tempfile.mkstemp(prefix=".drift.", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(result.to_dict()))
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("cannot share the live drift result in %s: %s", path.parent, exc)

    def _remove_shared(self) -> None:
        path = self._shared_path()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def shown(self) -> LiveResult | None:
        """The result ``/metrics`` shows: this worker's, or with several workers the newest of
        a live worker serving the same model version as this one."""
        if self.shared_dir is None:
            return self.latest
        watched = self.watched
        if watched is None:
            return None
        from regressops.monitoring.live import LiveResult

        best: LiveResult | None = None
        for path in self.shared_dir.glob(f"{RESULT_PREFIX}*.json"):
            pid = path.stem[len(RESULT_PREFIX) :]
            if not pid.isdigit() or not _alive(int(pid)):
                continue
            try:
                result = LiveResult.from_dict(orjson.loads(path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # replaced or removed while read: the others still count
            if (result.model, result.version) != (watched.name, watched.version):
                continue
            if best is None or result.computed_at > best.computed_at:
                best = result
        return best


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DriftCollector(Collector):
    """The live drift gauges, read from the :class:`DriftWatch` at each scrape."""

    def __init__(self, watch: DriftWatch) -> None:
        self.watch = watch

    def describe(self) -> list[Any]:
        """No fixed series (keeps the registry from collecting at registration)."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """``regressops_feature_drift_score`` and the rest (none before the first result)."""
        result = self.watch.shown()
        if result is None:
            return
        score = GaugeMetricFamily(
            "regressops_feature_drift_score",
            "Live drift score of a feature over the rolling window (the method's distance)",
            labels=_FEATURE_LABELS,
        )
        drifted = GaugeMetricFamily(
            "regressops_feature_drifted",
            "1 when the feature's live drift score reaches its threshold",
            labels=_FEATURE_LABELS,
        )
        threshold = GaugeMetricFamily(
            "regressops_feature_drift_threshold",
            "Threshold of the feature's live drift method",
            labels=_FEATURE_LABELS,
        )
        for f in result.features:
            labels = [result.model, result.version, f.name, f.method]
            score.add_metric(labels, f.score)
            drifted.add_metric(labels, 1.0 if f.drifted else 0.0)
            threshold.add_metric(labels, f.threshold)
        model = [result.model, result.version]
        dataset = GaugeMetricFamily(
            "regressops_dataset_drift",
            "1 when at least monitor.drift_share of the features drifted in the rolling window",
            labels=_MODEL_LABELS,
        )
        dataset.add_metric(model, 1.0 if result.dataset_drift else 0.0)
        share = GaugeMetricFamily(
            "regressops_drift_share_drifted",
            "Share of the features drifted in the rolling window",
            labels=_MODEL_LABELS,
        )
        share.add_metric(model, result.share_drifted)
        rows = GaugeMetricFamily(
            "regressops_drift_window_rows",
            "Rows of the rolling window the live drift was computed over",
            labels=_MODEL_LABELS,
        )
        rows.add_metric(model, float(result.window_rows))
        when = GaugeMetricFamily(
            "regressops_drift_last_computed_timestamp_seconds",
            "Unix time of the last live drift computation",
            labels=_MODEL_LABELS,
        )
        when.add_metric(model, result.computed_at)
        yield from (score, drifted, threshold, dataset, share, rows, when)
