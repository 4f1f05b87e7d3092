"""Drift of a large window from statistics computed per partition (``monitor --engine dask``).

The current data (Parquet files or folders, a lake dataset's clean Delta version, CSV) is read
by the workers of an engine; each partition gives the mergeable statistics of
:mod:`regressops.compute.window`, combined in a tree. The same :class:`DriftDetector`, fitted on
the same reference, then judges a :class:`SketchWindow` whose columns answer the drift methods
from those statistics, and the report is the in-process monitor's ``drift.json`` and
``report.html``, with an ``approximation`` per judged column:

- exact (the same score as the in-process monitor, to rounding): chi-square, Z, Jensen-Shannon
  and PSI (exact counts per category, per distinct value, per reference bin), the std score
  (exact standard deviations), row and missing counts, and the performance metrics;
- from the quantile summary, whose cumulative distribution ``F̂`` is within
  ``ε = rank_error / n`` of the window's ``F`` at every point (``n`` values):

  - Kolmogorov-Smirnov statistic ``D̂ = sup |F_ref − F̂|``: ``|D̂ − D| ≤ ε``; its p-value (the
    asymptotic distribution scipy uses for a window of more than 10,000 values) lies between
    the p-values of ``D̂ + ε`` and ``D̂ − ε``;
  - Wasserstein distance ``Ŵ = ∫ |F_ref − F̂|``: ``|Ŵ − W| ≤ ε · (max − min)`` of the window
    (``F̂`` and ``F`` agree outside the window's range), divided by the reference's standard
    deviation as the score is.

  A summary that was never compressed (a small window) is exact, and so are these scores.

The verdict of each column is marked ``verdict_certain`` when every score in its bound gives
the same verdict. The report's histograms of numeric columns are drawn from the summary.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.compute.engines import ComputeRequest, open_engine
from regressops.compute.inputs import InputSelection, resolve_input
from regressops.compute.window import ColumnSketch, WindowPlan, WindowSketch, sketch_window
from regressops.config import Settings, get_settings
from regressops.errors import DataError
from regressops.monitoring import stats
from regressops.monitoring.drift import DriftDetector, DriftResult, FeatureDrift
from regressops.monitoring.fitted import CurrentColumn, FittedColumn, number_key
from regressops.monitoring.monitor import MonitorReport, MonitorRequest, resolve_reference
from regressops.monitoring.performance import Performance, judge_metrics
from regressops.monitoring.tables import check_kinds

if TYPE_CHECKING:
    from regressops.models.bundle import ModelBundle

logger = logging.getLogger(__name__)

REPORT_SAMPLE = 20_000  # values drawn from a summary for the report's histogram
WASSERSTEIN_STD_FLOOR = 1e-3  # as the wasserstein method divides by max(reference std, 1e-3)


class SketchColumn(CurrentColumn):
    """A current column known by its combined partition statistics.

    It answers what the drift methods ask of a :class:`CurrentColumn` — counts, bin counts,
    standard deviation exactly; the KS and Wasserstein statistics from the quantile summary
    (exactly when the summary was never compressed).

    Parameters
    ----------
    sketch : ColumnSketch
        The column's combined statistics.
    """

    def __init__(self, sketch: ColumnSketch) -> None:
        self.sketch = sketch
        counts = sketch.counts.counts if sketch.counts is not None else {}
        super().__init__(np.empty(0) if sketch.is_numeric else dict(counts))
        summary = sketch.summary
        self.exact = summary is None or summary.rank_error == 0
        self._full: np.ndarray | None = None
        if summary is not None and self.exact:  # every value is in the summary, once
            self._full = np.repeat(summary.values, summary.weights.astype(np.int64))

    @property
    def cdf_error(self) -> float:
        """Bound on ``|F̂(x) − F(x)|`` at any ``x`` (0 when exact)."""
        summary = self.sketch.summary
        if self.exact or summary is None or summary.total == 0:
            return 0.0
        return summary.rank_error / summary.total

    @property
    def sorted(self) -> np.ndarray:
        """All values when exact; else values drawn from the summary (the report's histogram)."""
        if self._full is not None:
            return self._full
        summary = self.sketch.summary
        if summary is None or not summary.values.size:
            return np.empty(0)
        scale = min(1.0, REPORT_SAMPLE / summary.total)
        return np.repeat(summary.values, np.rint(summary.weights * scale).astype(np.int64))

    @property
    def rows(self) -> int:
        """Non-missing values (exact)."""
        if not self.is_numeric:
            return super().rows
        return self.sketch.moments.count

    @property
    def missing(self) -> int:
        """Missing values (exact)."""
        return self.sketch.moments.missing + self.sketch.missing

    @property
    def std(self) -> float:
        """Population standard deviation (exact to rounding)."""
        return self.sketch.moments.std

    def ecdf(self, ref: FittedColumn) -> tuple[float, float]:
        """KS statistic and Wasserstein distance against ``ref`` (from the summary)."""
        if self._ecdf is None:
            if self._full is not None:
                self._ecdf = stats.ks_wasserstein(ref.sorted, self._full)
            else:
                assert self.sketch.summary is not None
                self._ecdf = _summary_ks_wasserstein(ref.sorted, self.sketch.summary)
        return self._ecdf

    def ks_p_value(self, ref: FittedColumn) -> float:
        """The KS p-value (scipy's, when exact; else its asymptotic distribution)."""
        if self._full is not None:
            return super().ks_p_value(ref)
        return stats.ks_asymptotic_p_value(self.ecdf(ref)[0], ref.sorted.size, self.rows)

    def binned(self, edges: np.ndarray) -> np.ndarray:
        """Counts per reference bin (exact, counted on the workers)."""
        bins = self.sketch.bins
        if bins is None or bins.size != edges.size + 1:
            raise DataError("the window has no counts in the reference's bins", reason="empty")
        return bins.astype(np.float64)

    def counts(self, ref: FittedColumn) -> dict[str, int]:
        """Count of each category or distinct value (exact)."""
        if self.sketch.values is not None:
            return {number_key(v): int(c) for v, c in sorted(self.sketch.values.items())}
        return super().counts(ref)

    def approximation(self, ref: FittedColumn, judged: FeatureDrift) -> dict[str, Any]:
        """How the column's score was computed and its bound (``drift.json``)."""
        if judged.score is None or self.exact or ref.method.name not in ("ks", "wasserstein"):
            return {"exact": True}
        eps = self.cdf_error
        summary = self.sketch.summary
        assert summary is not None
        d, _ = self.ecdf(ref)
        doc: dict[str, Any] = {
            "exact": False,
            "basis": "quantile summary",
            "summary_size": int(summary.values.size),
            "rank_error": summary.rank_error,
            "cdf_error": eps,
        }
        if ref.method.name == "ks":
            n1, n2 = ref.sorted.size, self.rows
            low = stats.ks_asymptotic_p_value(min(d + eps, 1.0), n1, n2)
            high = stats.ks_asymptotic_p_value(max(d - eps, 0.0), n1, n2)
            doc |= {"ks_statistic": d, "ks_statistic_bound": eps, "score_range": [low, high]}
        else:
            m = self.sketch.moments
            bound = eps * (m.max - m.min) / max(ref.std, WASSERSTEIN_STD_FLOOR)
            doc["score_range"] = [judged.score - bound, judged.score + bound]
        low, high = doc["score_range"]
        doc["score_bound"] = max(judged.score - low, high - judged.score)
        doc["verdict_certain"] = ref.method.drifted(low, ref.threshold) == ref.method.drifted(
            high, ref.threshold
        )
        return doc


class SketchWindow:
    """A current window known by its combined partition statistics (the :class:`Window` of
    :meth:`DriftDetector.calculate`)."""

    def __init__(self, sketch: WindowSketch) -> None:
        self.sketch = sketch
        self.rows = sketch.rows
        self.columns: dict[str, SketchColumn] = {}

    def column(self, name: str) -> SketchColumn:
        """One feature."""
        if name not in self.columns:
            self.columns[name] = SketchColumn(self.sketch.columns[name])
        return self.columns[name]

    def prediction(self) -> SketchColumn | None:
        """The model's predictions on the window."""
        if self.sketch.prediction is None:
            return None
        return self.columns.setdefault("\0prediction", SketchColumn(self.sketch.prediction))


def run_monitor_partitioned(
    request: MonitorRequest,
    current: InputSelection,
    *,
    compute: ComputeRequest,
    settings: Settings | None = None,
) -> MonitorReport:
    """Judge a large current window, read over partitions on ``compute``'s engine.

    Parameters
    ----------
    request : MonitorRequest
        The model and the reference (as for :func:`~regressops.monitoring.monitor.run_monitor`);
        its ``current_data`` and log selection are not read.
    current : InputSelection
        The current window: files, or a lake dataset's clean version.
    compute : ComputeRequest
        The engine and its scheduler.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.

    Returns
    -------
    MonitorReport
        With the ``approximation`` of each judged column.

    Raises
    ------
    ConfigError, BundleError, RegistryError
        As :func:`~regressops.monitoring.monitor.run_monitor`.
    DataError
        An empty window, a column of another kind than the reference's;
        :class:`~regressops.errors.SchemaError` for a partition lacking a column or holding
        another kind of values than the others.
    ComputeError
        The scheduler cannot be reached, or a worker died.
    """
    settings = settings or get_settings()
    bundle, reference = resolve_reference(request, settings=settings, has_current=True)
    detector = DriftDetector(settings=settings.monitor).fit(reference)
    data = resolve_input(current, settings=settings, compute=compute)
    if not data.partitions:
        raise DataError("the current data has no rows", reason="empty_window")
    target = request.target if current.path is not None else (request.target or data.target)
    plan = _plan(detector, bundle, target, data, settings.compute.summary_size)
    with open_engine(compute) as engine:
        sketch = sketch_window(engine, data.partitions, plan)
    if sketch.rows == 0:
        raise DataError("the current data has no rows", reason="empty_window")
    if bundle is None:
        kinds = {n: p.kind for n, p in reference.features.items()}
        found = {
            n: "numeric" if k == "number" else "categorical"
            for n, k in sketch.kinds.items()
            if n in kinds and k != "null"
        }
        check_kinds(kinds, found)
    window = SketchWindow(sketch)
    target_col = (
        SketchColumn(sketch.columns[plan.target])
        if plan.target and sketch.columns[plan.target].is_numeric
        else None
    )
    result = detector.calculate(window, target=target_col)
    performance = _performance(bundle, sketch, settings)
    approximation = _approximation(detector, result, window, target_col)
    source = data.lineage.get("path") or f"dataset {data.name}"
    version = data.lineage.get("clean_version")
    return MonitorReport(
        drift=result,
        performance=performance,
        reference={"source": reference.source, "rows": reference.rows},
        current={
            "source": str(source) + (f" version {version}" if version is not None else ""),
            "rows": sketch.rows,
            "from": None,
            "to": None,
            "model_version": None,
            "engine": {
                "name": compute.engine,
                "scheduler": compute.scheduler,
                "partitions": len(data.partitions),
            },
        },
        model=None
        if bundle is None
        else {"name": bundle.name, "version": bundle.version, "source": request.model},
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        approximation=approximation,
    )


def _plan(
    detector: DriftDetector,
    bundle: ModelBundle | None,
    target: str | None,
    data: Any,
    k: int,
) -> WindowPlan:
    numeric: dict[str, np.ndarray] = {}
    discrete: list[str] = []
    categorical: list[str] = []
    for name, col in detector.columns_.items():
        if col.kind == "categorical":
            categorical.append(name)
        elif col.discrete:
            discrete.append(name)
        else:
            numeric[name] = col.psi_edges
    pred = detector.prediction_
    return WindowPlan(
        numeric=numeric,
        discrete=tuple(discrete),
        categorical=tuple(categorical),
        target=target if target and target not in detector.columns_ else None,
        bundle=bundle,
        prediction_edges=pred.psi_edges if pred is not None else np.empty(0),
        k=k,
    )


def _performance(
    bundle: ModelBundle | None, sketch: WindowSketch, settings: Settings
) -> Performance | None:
    if bundle is None or sketch.errors is None:
        return None
    errors = sketch.errors
    return judge_metrics(
        errors.n,
        errors.metrics() if errors.n else None,
        reference=bundle.metrics,
        settings=settings.monitor,
    )


def _approximation(
    detector: DriftDetector,
    result: DriftResult,
    window: SketchWindow,
    target: SketchColumn | None,
) -> dict[str, Any]:
    features = {
        name: window.column(name).approximation(detector.columns_[name], judged)
        for name, judged in result.features.items()
        if judged.score is not None
    }
    doc: dict[str, Any] = {"features": features}
    prediction = window.prediction()
    if result.prediction is not None and prediction is not None and detector.prediction_:
        doc["prediction"] = prediction.approximation(detector.prediction_, result.prediction)
    if result.target is not None and target is not None and detector.target_:
        doc["target"] = target.approximation(detector.target_, result.target)
    return doc


def _summary_ks_wasserstein(ref: np.ndarray, summary: Any) -> tuple[float, float]:
    """``sup |F_ref − F̂|`` and ``∫ |F_ref − F̂|`` of a sorted sample and a quantile summary.

    Both are step functions, right-continuous: between consecutive points of either support
    they are constant, so the supremum is at one of those points and the integral a sum.
    """
    points = np.union1d(ref, summary.values)
    f_ref = np.searchsorted(ref, points, side="right") / ref.size
    diff = np.abs(f_ref - summary.cdf(points))
    d = float(diff.max()) if diff.size else math.nan
    w = float(diff[:-1] @ np.diff(points)) if diff.size > 1 else 0.0
    return d, w
