"""Live drift: a rolling window of served rows judged against the bundle's reference, numpy only.

The prediction server (:mod:`regressops.serving.drift_watch`) keeps the newest served rows in a
:class:`RollingWindow` (a ring buffer per feature, filled from the already-decoded blocks the
requests produced) and judges it with a :class:`LiveDrift` every few seconds. Both run in the
server's background thread, never on the request path.

The methods are the ones that need numpy only, so the ``serve`` image (no SciPy) computes the
same numbers as the full one: Wasserstein distance over the reference standard deviation for
continuous numeric features, Jensen–Shannon distance for categorical and discrete ones (the
defaults ``regressops monitor`` uses for a reference of more than 1,000 rows), or PSI when it is
configured. A configured (or default) p-value test — KS, chi-square, Z — falls back to the
distance of the column's kind, with that distance's default threshold: a p-value needs SciPy,
and over a window of thousands of rows recomputed every interval a test flags shifts too small
to matter (the reason Evidently, and ``monitor``, switch to distances on large data).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from regressops.config import MonitorSettings
from regressops.monitoring.drift import DriftDetector, DriftResult
from regressops.monitoring.fitted import CurrentColumn, FittedColumn
from regressops.monitoring.reference import ReferenceProfile

logger = logging.getLogger(__name__)

#: methods computed with numpy only (the others need SciPy for their p-value)
LIVE_METHODS = frozenset({"wasserstein", "jensenshannon", "psi"})


class RollingWindow:
    """The newest ``capacity`` rows of the served features: one ring buffer per feature.

    Parameters
    ----------
    kinds : dict of str to {"numeric", "categorical"}
        The features in model order (the column order of a numeric feature matrix).
    capacity : int
        Rows kept; older ones are overwritten.
    """

    def __init__(self, kinds: dict[str, str], capacity: int) -> None:
        self.kinds = dict(kinds)
        self.capacity = int(capacity)
        self._columns: dict[str, np.ndarray] = {
            name: np.empty(self.capacity, dtype=np.float64 if kind == "numeric" else object)
            for name, kind in self.kinds.items()
        }
        self._end = 0  # next slot to write
        self.size = 0  # rows held (at most capacity)
        self.added = 0  # rows ever added

    def extend(self, blocks: Sequence[np.ndarray | dict[str, Any]]) -> None:
        """Add request blocks, oldest first: float matrices in feature order (numeric models)
        or dicts of one sequence per feature (as the predictor validated them)."""
        if not blocks:
            return
        try:  # a numeric model's blocks are all float matrices: one concatenation
            matrix: np.ndarray = np.concatenate(blocks)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            pass  # column blocks among them
        else:
            if matrix.ndim == 2 and matrix.shape[1] == len(self._columns):
                self._add_matrix(matrix)
                return
        run: list[np.ndarray] = []
        for block in blocks:
            if isinstance(block, np.ndarray):
                run.append(block)
                continue
            if run:
                self._add_matrix(np.concatenate(run) if len(run) > 1 else run[0])
                run = []
            self._add_columns([block])
        if run:
            self._add_matrix(np.concatenate(run) if len(run) > 1 else run[0])

    def _add_matrix(self, matrix: np.ndarray) -> None:
        n = int(matrix.shape[0])
        tail = matrix[-self.capacity :]
        slots = self._slots(n)
        for j, column in enumerate(self._columns.values()):
            column[slots] = tail[:, j]

    def _add_columns(self, blocks: list[dict[str, Any]]) -> None:
        n = len(next(iter(blocks[0].values()))) if blocks[0] else 0
        slots = self._slots(n)
        for name, column in self._columns.items():
            values = list(chain.from_iterable(b[name] for b in blocks))[-self.capacity :]
            column[slots] = np.asarray(values, dtype=column.dtype)

    def _slots(self, n: int) -> np.ndarray:
        """Ring positions for the last ``min(n, capacity)`` of ``n`` new rows; advances."""
        kept = min(n, self.capacity)
        slots = (self._end + (n - kept) + np.arange(kept)) % self.capacity
        self._end = (self._end + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.added += n
        return slots

    def values(self, name: str) -> np.ndarray:
        """A copy of a feature's rows, oldest first."""
        column = self._columns[name]
        if self.size < self.capacity:
            return column[: self.size].copy()
        return np.concatenate([column[self._end :], column[: self._end]])

    def snapshot(self) -> WindowSnapshot:
        """The window as :meth:`DriftDetector.calculate` reads it (copies: the ring moves on)."""
        return WindowSnapshot({name: self.values(name) for name in self.kinds}, self.size)


class WindowSnapshot:
    """A copy of a :class:`RollingWindow` (the :class:`~regressops.monitoring.drift.Window`
    protocol); no predictions: the live gauges judge the features."""

    def __init__(self, columns: dict[str, np.ndarray], rows: int) -> None:
        self._columns = columns
        self.rows = rows

    def column(self, name: str) -> CurrentColumn:
        """One feature (its copy handed over to the column, which sorts it in place)."""
        values = self._columns.pop(name)
        if values.dtype == object:
            return CurrentColumn(dict(Counter(str(v) for v in values.tolist())))
        return CurrentColumn(values, owned=True)

    def prediction(self) -> CurrentColumn | None:
        """Not judged live."""
        return None


@dataclass(frozen=True)
class LiveFeature:
    """One feature's live verdict (what the gauges show)."""

    name: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class LiveResult:
    """One live computation: per-feature verdicts and the table's."""

    model: str
    version: str
    features: tuple[LiveFeature, ...]
    dataset_drift: bool
    share_drifted: float
    window_rows: int
    computed_at: float  # Unix time

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (shared between the workers of one server)."""
        return {
            "model": self.model,
            "version": self.version,
            "features": [
                [f.name, f.method, f.score, f.threshold, f.drifted] for f in self.features
            ],
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "window_rows": self.window_rows,
            "computed_at": self.computed_at,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LiveResult:
        """Read :meth:`to_dict`'s form back."""
        return cls(
            model=str(doc["model"]),
            version=str(doc["version"]),
            features=tuple(
                LiveFeature(str(n), str(m), float(s), float(t), bool(d))
                for n, m, s, t, d in doc["features"]
            ),
            dataset_drift=bool(doc["dataset_drift"]),
            share_drifted=float(doc["share_drifted"]),
            window_rows=int(doc["window_rows"]),
            computed_at=float(doc["computed_at"]),
        )


class LiveDrift:
    """A :class:`DriftDetector` fitted once on a bundle's reference with numpy-only methods.

    Parameters
    ----------
    reference : ReferenceProfile
        The reference stored in the bundle.
    settings : MonitorSettings, optional
        Thresholds, per-feature methods, ``min_rows``, ``drift_share`` (as ``monitor`` reads
        them); a method outside :data:`LIVE_METHODS` falls back as the module says.

    Raises
    ------
    ConfigError
        A configured method is unknown or does not take the column's kind.
    """

    def __init__(self, reference: ReferenceProfile, settings: MonitorSettings | None = None):
        s = settings or MonitorSettings()
        self.settings = s
        self.detector = DriftDetector(settings=s, workers=1).fit(reference)
        self.kinds = {name: p.kind for name, p in reference.features.items()}
        #: features whose configured or default method needs SciPy -> the method used instead
        self.replaced: dict[str, str] = {}
        for name, col in self.detector.columns_.items():
            if col.method.name in LIVE_METHODS:
                continue
            live = "jensenshannon" if col.discrete else "wasserstein"
            self.replaced[name] = live
            self.detector.columns_[name] = FittedColumn.fit(
                name,
                reference.features[name],
                reference_rows=reference.rows,
                method=live,
                min_expected=s.min_expected,
            )

    def calculate(self, window: RollingWindow, *, model: str, version: str) -> LiveResult:
        """Judge the window's current rows.

        Raises
        ------
        DataError
            A feature's kind differs between the reference and the window.
        """
        import time

        result: DriftResult = self.detector.calculate(window.snapshot())
        features = tuple(
            LiveFeature(f.name, f.method, float(f.score), f.threshold, f.drifted)
            for f in result.features.values()
            if f.score is not None
        )
        return LiveResult(
            model=model,
            version=version,
            features=features,
            dataset_drift=result.dataset_drift,
            share_drifted=result.share_drifted,
            window_rows=window.size,
            computed_at=time.time(),
        )
