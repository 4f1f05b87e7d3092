"""Judge drift: a reference fitted once, compared with as many windows as there are.

:class:`DriftDetector` follows NannyML's shape: :meth:`~DriftDetector.fit` takes a
:class:`~regressops.monitoring.reference.ReferenceProfile` and prepares each column once (method,
threshold, sorted sample, bins); :meth:`~DriftDetector.calculate` takes a window — anything with
``column(name)``, ``prediction()`` and ``rows`` — and returns a :class:`DriftResult`, the one
object ``drift.json``, the table and ``report.html`` are rendered from.

The p-values of one table's features are adjusted together (Benjamini–Hochberg): with 20
features and no correction, a window of the training distribution itself raises at least one
false alarm two times in three at p < 0.05.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from regressops.config import MonitorSettings
from regressops.errors import DataError
from regressops.monitoring import stats
from regressops.monitoring.fitted import CurrentColumn, FittedColumn
from regressops.monitoring.reference import ReferenceProfile

HIST_BINS = 30
TOP_CATEGORIES = 12


class Window(Protocol):
    """The current data as :meth:`DriftDetector.calculate` reads it."""

    rows: int

    def column(self, name: str) -> CurrentColumn:
        """One feature (may free the window's copy of it)."""
        ...

    def prediction(self) -> CurrentColumn | None:
        """The logged predictions, if any."""
        ...


@dataclass
class FeatureDrift:
    """The verdict on one column.

    Attributes
    ----------
    status : {"ok", "watch", "drift", "not_enough_data"}
        ``not_enough_data`` below ``monitor.min_rows`` current values; ``watch`` when the raw
        p-value is below the threshold but the FDR-adjusted one is not (no alarm).
    score : float or None
        The method's statistic (a p-value or a distance); None without enough data.
    p_adjusted : float or None
        The Benjamini–Hochberg adjusted p-value the verdict used (p-value methods with FDR on).
    std_score : float or None
        ``|σ_ref − σ_cur| / (σ_ref + σ_cur)`` for numeric columns.
    """

    name: str
    kind: str
    method: str
    threshold: float
    status: str
    score: float | None
    drifted: bool
    std_score: float | None
    reference_rows: int
    current_rows: int
    missing: int
    p_value_method: bool
    p_adjusted: float | None = None
    distribution: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``drift.json``)."""
        return {
            "type": self.kind,
            "method": self.method,
            "status": self.status,
            "score": _num(self.score),
            "p_adjusted": _num(self.p_adjusted),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "std_score": _num(self.std_score),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "current_missing": self.missing,
        }


@dataclass
class DriftResult:
    """The verdict on a window: per feature, on the predictions and on the whole table."""

    status: str
    dataset_drift: bool
    share_drifted: float
    drift_share: float
    features: dict[str, FeatureDrift]
    prediction: FeatureDrift | None
    target: FeatureDrift | None
    fdr: bool

    @property
    def drifted_features(self) -> list[str]:
        """Names of the drifted features, in model order."""
        return [n for n, f in self.features.items() if f.drifted]

    @property
    def watch_features(self) -> list[str]:
        """Features whose raw p-value is below the threshold but not their adjusted one."""
        return [n for n, f in self.features.items() if f.status == "watch"]

    def to_dict(self) -> dict[str, Any]:
        """The drift part of ``drift.json``."""
        return {
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "fdr": "benjamini-hochberg" if self.fdr else None,
            "drifted_features": self.drifted_features,
            "watch_features": self.watch_features,
            "features": {n: f.to_dict() for n, f in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
        }


class DriftDetector:
    """Fit a reference once, then judge windows against it.

    Parameters
    ----------
    settings : MonitorSettings, optional
        Thresholds, overrides and the FDR switch (default: the defaults).
    workers : int, optional
        Threads that judge features side by side (numpy sorts release the GIL); default
        ``settings.worker_count()``.

    Attributes
    ----------
    columns_ : dict of str to FittedColumn
        The fitted features.
    prediction_ : FittedColumn or None
        The fitted predictions.
    """

    def __init__(self, *, settings: MonitorSettings | None = None, workers: int | None = None):
        self.settings = settings
        self.workers = workers

    def fit(self, reference: ReferenceProfile) -> DriftDetector:
        """Prepare every reference column once.

        Raises
        ------
        ConfigError
            A configured method is unknown or does not take the column's kind.
        """
        s = self.settings or MonitorSettings()
        self.reference_ = reference
        self.columns_: dict[str, FittedColumn] = {}
        for name, profile in reference.features.items():
            override = s.features.get(name)
            self.columns_[name] = FittedColumn.fit(
                name,
                profile,
                reference_rows=reference.rows,
                method=(override.method if override and override.method else None) or s.method,
                threshold=override.threshold
                if override and override.threshold is not None
                else s.threshold,
                min_expected=s.min_expected,
            )
        self.prediction_ = self._fit_extra("prediction", reference.prediction, reference.rows)
        self.target_ = self._fit_extra("target", reference.target, reference.rows)
        return self

    def _fit_extra(self, name: str, profile: Any, rows: int) -> FittedColumn | None:
        if profile is None or profile.rows == 0:
            return None
        return FittedColumn.fit(name, profile, reference_rows=rows)

    def calculate(self, window: Window, *, target: CurrentColumn | None = None) -> DriftResult:
        """Judge one window.

        Raises
        ------
        DataError
            A feature's kind differs between the reference and the window.
        """
        s = self.settings or MonitorSettings()
        names = list(self.columns_)
        workers = self.workers or s.worker_count()

        def judge(name: str) -> FeatureDrift:
            return _judge(self.columns_[name], window.column(name), s.min_rows)

        if workers > 1 and len(names) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                judged = list(pool.map(judge, names))
        else:
            judged = [judge(n) for n in names]
        features = dict(zip(names, judged, strict=True))
        if s.fdr:
            _adjust(features)
        judged_now = [f for f in features.values() if f.status != "not_enough_data"]
        share = sum(f.drifted for f in judged_now) / len(judged_now) if judged_now else 0.0
        dataset = bool(judged_now) and share >= s.drift_share
        status = "not_enough_data" if not judged_now else ("drift" if dataset else "ok")
        pred_col = window.prediction()
        prediction = (
            _judge(self.prediction_, pred_col, s.min_rows)
            if self.prediction_ is not None and pred_col is not None
            else None
        )
        tgt = (
            _judge(self.target_, target, s.min_rows)
            if self.target_ is not None and target is not None
            else None
        )
        return DriftResult(status, dataset, share, s.drift_share, features, prediction, tgt, s.fdr)


def _judge(ref: FittedColumn, cur: CurrentColumn, min_rows: int) -> FeatureDrift:
    if ref.kind == "categorical" and cur.is_numeric and cur.rows:
        raise DataError(
            f"feature {ref.name!r} is categorical in the reference but numeric in the current data",
            reason="type_mismatch",
        )
    if ref.kind == "numeric" and not cur.is_numeric:
        raise DataError(
            f"feature {ref.name!r} is numeric in the reference but holds text in the current data",
            reason="type_mismatch",
        )
    rows = cur.rows
    score: float | None = None
    drifted, std, status = False, None, "not_enough_data"
    if rows >= min_rows and ref.rows > 0:
        score = float(ref.method.score(ref, cur))
        drifted = ref.method.drifted(score, ref.threshold)
        std = stats.std_score(ref.std, cur.std) if ref.kind == "numeric" else None
        status = "drift" if drifted else "ok"
    return FeatureDrift(
        name=ref.name,
        kind=ref.kind,
        method=ref.method.name,
        threshold=ref.threshold,
        status=status,
        score=score,
        drifted=drifted,
        std_score=std,
        reference_rows=ref.rows,
        current_rows=rows,
        missing=cur.missing,
        p_value_method=ref.method.p_value,
        distribution=_distribution(ref, cur),
    )


def _adjust(features: dict[str, FeatureDrift]) -> None:
    """Benjamini–Hochberg across the p-value tests; verdicts on the adjusted values."""
    tested = [f for f in features.values() if f.p_value_method and f.score is not None]
    if not tested:
        return
    adjusted = stats.benjamini_hochberg(np.array([f.score for f in tested], dtype=np.float64))
    for f, q in zip(tested, adjusted, strict=True):
        f.p_adjusted = float(q)
        raw = f.drifted
        f.drifted = bool(q < f.threshold)
        # below the threshold on its own but not after the adjustment: shown, not alarmed
        f.status = "drift" if f.drifted else ("watch" if raw else "ok")


def _distribution(ref: FittedColumn, cur: CurrentColumn) -> dict[str, Any]:
    """Reference and current shares for the report: a histogram or the top categories."""
    if ref.discrete:
        rc, cc = ref.counts, cur.counts(ref) if (cur.rows or not cur.is_numeric) else {}
        keys = sorted(set(rc) | set(cc), key=lambda k: -(rc.get(k, 0) + cc.get(k, 0)))
        shown, rest = keys[:TOP_CATEGORIES], keys[TOP_CATEGORIES:]
        r = [rc.get(k, 0) for k in shown] + ([sum(rc.get(k, 0) for k in rest)] if rest else [])
        c = [cc.get(k, 0) for k in shown] + ([sum(cc.get(k, 0) for k in rest)] if rest else [])
        labels = shown + (["(other)"] if rest else [])
        return {"kind": "bars", "labels": labels, "reference": _shares(r), "current": _shares(c)}
    rs, cs = ref.sorted, cur.sorted
    if not rs.size:
        return {}
    lo, hi = _range(rs), _range(cs) if cs.size else _range(rs)
    low, high = min(lo[0], hi[0]), max(lo[1], hi[1])
    if not high > low:
        high = low + 1.0
    edges = np.linspace(low, high, HIST_BINS + 1)
    return {
        "kind": "hist",
        "edges": [float(e) for e in edges],
        "reference": _shares(_clipped_hist(rs, edges)),
        "current": _shares(_clipped_hist(cs, edges)),
    }


def _range(sorted_values: np.ndarray) -> tuple[float, float]:
    """The 0.5%–99.5% range of a sorted sample (long tails would flatten the histogram)."""
    n = sorted_values.size
    return float(sorted_values[int(0.005 * (n - 1))]), float(sorted_values[int(0.995 * (n - 1))])


def _clipped_hist(sorted_values: np.ndarray, edges: np.ndarray) -> list[int]:
    """Counts per bin of a sorted sample; values outside the edges go to the end bins."""
    cuts = np.searchsorted(sorted_values, edges[1:-1], side="left")
    return np.diff(np.concatenate([[0], cuts, [sorted_values.size]])).astype(int).tolist()


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _num(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def read_drifted_features(path: str | os.PathLike[str]) -> list[str]:
    """The drifted features a ``drift.json`` written by ``regressops monitor`` names.

    Raises
    ------
    DataError
        The file cannot be read or is not a drift report.
    """
    import json
    from pathlib import Path

    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        names = doc["drifted_features"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError
    except OSError as exc:
        raise DataError(
            f"cannot read drift report {p}: {exc.strerror}", reason="bad_drift"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise DataError(
            f"{p} is not a drift report of regressops monitor (no drifted_features list)",
            reason="bad_drift",
        ) from None
    return names
