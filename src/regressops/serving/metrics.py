"""Prometheus metrics of the prediction service, correct with one worker or several.

With several uvicorn workers, :func:`regressops.serving.server.serve` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start; prometheus-client then
keeps every worker's values in memory-mapped files there, and ``/metrics`` (answered by any
worker) aggregates them with a :class:`~prometheus_client.multiprocess.MultiProcessCollector`.
Without the variable the metrics live in a registry of the app's own.

Metrics (prefix ``regressops_``):

- ``requests_total{endpoint,method,status}`` and ``request_duration_seconds{endpoint}``;
- ``requests_in_flight``;
- ``rows_predicted_total{endpoint}`` and ``prediction_value`` (distribution of predictions);
- ``model_info{name,version,kind}`` = 1 for the model being served;
- ``model_reloads_total{result}``, ``prediction_log_pending_rows``,
  ``prediction_log_dropped_rows`` and ``prediction_log_failing``;
- the live drift gauges of :mod:`regressops.serving.drift_watch` (``feature_drift_score``,
  ``feature_drifted``, ``dataset_drift``, ``drift_window_rows``, ...), added as a collector.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_POS = (0.1, 1, 10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 1e3, 1e4, 1e5, 1e6)
_VALUE_BUCKETS = tuple(sorted({-v for v in _POS} | {0.0} | set(_POS)))

CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    """The multiprocess folder when metrics are shared between workers, else None."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class ServingMetrics:
    """The service's metric objects, registered in a registry of their own.

    Requests are recorded into plain counters and moved into the prometheus objects by
    :meth:`flush` (every second, from the app's lifespan, and before every scrape), so
    recording costs a few dict operations instead of several locked metric updates.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "regressops_requests", "HTTP requests answered", ["endpoint", "method", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "regressops_request_duration_seconds", "Time to answer a request", ["endpoint"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "regressops_requests_in_flight", "Requests being answered", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.rows = Counter("regressops_rows_predicted", "Rows predicted", ["endpoint"], registry=r)
        self.values = Histogram(
            "regressops_prediction_value", "Distribution of predicted values",
            buckets=_VALUE_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_info = Gauge(
            "regressops_model_info", "The model being served (1) and models served before (0)",
            ["name", "version", "kind"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.reloads = Counter(
            "regressops_model_reloads", "Model reloads by result", ["result"], registry=r
        )
        self.log_pending = Gauge(
            "regressops_prediction_log_pending_rows", "Logged rows not yet written", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.log_dropped = Gauge(
            "regressops_prediction_log_dropped_rows",
            "Answered rows not logged because the sink was unwritable (serve.log_when_unwritable)",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.log_failing = Gauge(
            "regressops_prediction_log_failing", "1 while the prediction log sink refuses writes",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        # Per-request recording only touches these plain counters (a few dict operations);
        # flush() moves them into the prometheus objects every second and before a scrape.
        self.in_flight_now = 0
        self._model: tuple[str, str, str] | None = None
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # endpoint -> bucket counts + [sum]
        self._rows: dict[str, int] = {}
        self._values = [0.0] * (len(_VALUE_BUCKETS) + 2)  # bucket counts + [sum]
        self._collectors: list[Any] = []  # computed at scrape time (live drift)

    def add_collector(self, collector: Any) -> None:
        """Export a collector's metrics too (read at each scrape, in either mode)."""
        self._collectors.append(collector)
        self.registry.register(collector)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (buffered until :meth:`flush`)."""
        key = (endpoint, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        lat = self._latency.get(endpoint)
        if lat is None:
            lat = self._latency[endpoint] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        lat[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        lat[-1] += seconds

    def observe_predictions(self, endpoint: str, predictions: Any) -> None:
        """Count predicted rows and add their values to the distribution (buffered)."""
        n = len(predictions)
        self._rows[endpoint] = self._rows.get(endpoint, 0) + n
        values = self._values
        if n <= 16:
            for v in predictions.tolist():
                values[bisect_left(_VALUE_BUCKETS, v)] += 1
                values[-1] += v
        else:  # large batches: bucket with numpy
            import numpy as np

            idx = np.searchsorted(np.asarray(_VALUE_BUCKETS), predictions, side="left")
            counts = np.bincount(idx, minlength=len(_VALUE_BUCKETS) + 1)
            for i, c in enumerate(counts.tolist()):
                values[i] += c
            values[-1] += float(np.sum(predictions))

    def flush(self) -> None:
        """Move the buffered observations into the prometheus metrics."""
        self.in_flight.set(self.in_flight_now)
        requests, self._requests = self._requests, {}
        for (endpoint, method, status), count in requests.items():
            self.requests.labels(endpoint, method, str(status)).inc(count)
        for endpoint, lat in self._latency.items():
            if lat[-1] or any(lat[:-1]):
                _add_to_histogram(self.latency.labels(endpoint), lat)
        rows, self._rows = self._rows, {}
        for endpoint, n in rows.items():
            self.rows.labels(endpoint).inc(n)
        _add_to_histogram(self.values, self._values)

    def set_log(self, plog: Any) -> None:
        """Copy the prediction log's backlog, dropped rows and failing state into the gauges."""
        self.log_pending.set(plog.pending_rows)
        self.log_dropped.set(plog.rows_dropped)
        self.log_failing.set(1 if plog.failing else 0)

    def set_model(self, name: str, version: str, kind: str) -> None:
        """Mark the served model (the previous one drops to 0)."""
        if self._model is not None:
            self.model_info.labels(*self._model).set(0)
        self._model = (name, version, kind)
        self.model_info.labels(name, version, kind).set(1)

    def render(self) -> bytes:
        """Return the exposition text (aggregated over workers in multiprocess mode)."""
        self.flush()
        if multiprocess_dir():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            for collector in self._collectors:
                registry.register(collector)
            return generate_latest(registry)
        return generate_latest(self.registry)


def _add_to_histogram(histogram: Any, counts: list[float]) -> None:
    """Add buffered ``counts`` (one per bucket incl. +Inf, then the sum) and zero them.

    prometheus-client stores one non-cumulative counter per bucket and the sum, which is what
    :meth:`~prometheus_client.Histogram.observe` increments one observation at a time.
    """
    for i, c in enumerate(counts[:-1]):
        if c:
            histogram._buckets[i].inc(c)
            counts[i] = 0.0
    if counts[-1]:
        histogram._sum.inc(counts[-1])
        counts[-1] = 0.0


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker's live gauges (multiprocess mode only)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
