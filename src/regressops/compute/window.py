"""A monitoring window's statistics computed per partition and combined (``monitor --engine dask``).

Each partition of the current data gives a :class:`WindowSketch`: per feature the mergeable
pieces of :mod:`regressops.compute.sketch` that the drift methods need, and the same for the
model's predictions and the target column. Merged in a tree (:meth:`WindowSketch.merge`) they
are the statistics of every row:

- exact: row and missing counts, mean and standard deviation (to rounding), minimum and
  maximum, counts per category, counts per distinct value of a discrete numeric column, counts
  per bin of the reference's edges, and the regression error sums (performance);
- approximate with a bound: the order statistics, held in a
  :class:`~regressops.compute.sketch.QuantileSummary` whose cumulative distribution is within
  ``rank_error / count`` of the window's at every point (the Kolmogorov-Smirnov and Wasserstein
  statistics are computed from it; :mod:`regressops.monitoring.partitioned` states their bounds).

Which pieces a column needs is decided once, from the reference (:class:`WindowPlan`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from regressops.compute.engines import Engine
from regressops.compute.evaluation import ErrorSums, error_sums
from regressops.compute.partitions import Partition, check_same_kinds, read_columns
from regressops.compute.sketch import DEFAULT_SUMMARY_SIZE, Counts, Moments, QuantileSummary
from regressops.errors import DataError

if TYPE_CHECKING:
    from regressops.models.bundle import ModelBundle

PREDICTION = "__prediction__"


@dataclass(frozen=True)
class WindowPlan:
    """What to compute for each column of the window (decided from the reference).

    Attributes
    ----------
    numeric : dict of str to ndarray
        Numeric features and the inner bin edges to count them in (the reference's deciles,
        ``(-inf, e0], (e0, e1], ..., (ek, inf)`` as :func:`regressops.monitoring.stats.psi`
        bins them); an empty array for none.
    discrete : tuple of str
        Numeric features counted per distinct value (few distinct values in the reference).
    categorical : tuple of str
        Features counted per category (as text).
    target : str or None
        A numeric column profiled too (and scored against the predictions).
    bundle : ModelBundle or None
        The model whose predictions on the window are profiled.
    prediction_edges : ndarray
        Bin edges for the predictions.
    k : int
        Size of the quantile summaries.
    """

    numeric: Mapping[str, NDArray[np.float64]]
    discrete: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    target: str | None = None
    bundle: ModelBundle | None = None
    prediction_edges: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    k: int = DEFAULT_SUMMARY_SIZE

    @property
    def features(self) -> list[str]:
        """Every feature column, in plan order."""
        return [*self.numeric, *self.discrete, *self.categorical]


@dataclass(frozen=True)
class ColumnSketch:
    """One column of the window: the pieces that apply to it.

    Attributes
    ----------
    moments : Moments
        Count, mean, spread, range and missing values (numbers).
    summary : QuantileSummary or None
        Order statistics with a rank-error bound (numbers).
    bins : ndarray or None
        Counts per bin of the plan's edges (numbers).
    values : dict of float to int or None
        Counts per distinct value (discrete numbers).
    counts : Counts or None
        Counts per category (text; or numbers where the reference holds text).
    missing : int
        Missing values of a counted column.
    """

    moments: Moments = field(default_factory=Moments)
    summary: QuantileSummary | None = None
    bins: NDArray[np.int64] | None = None
    values: Mapping[float, int] | None = None
    counts: Counts | None = None
    missing: int = 0

    @property
    def is_numeric(self) -> bool:
        """Held as numbers (not as counts of text)."""
        return self.counts is None

    def merge(self, other: ColumnSketch) -> ColumnSketch:
        """The sketch of both partitions' values."""
        values = None
        if self.values is not None or other.values is not None:
            values = dict(self.values or {})
            for v, n in (other.values or {}).items():
                values[v] = values.get(v, 0) + n
        return ColumnSketch(
            self.moments.merge(other.moments),
            _merged(self.summary, other.summary),
            _merged_bins(self.bins, other.bins),
            values,
            _merged(self.counts, other.counts),
            self.missing + other.missing,
        )


@dataclass(frozen=True)
class WindowSketch:
    """The combined statistics of a window's partitions.

    Attributes
    ----------
    columns : dict of str to ColumnSketch
        The features (and the target), by name.
    prediction : ColumnSketch or None
        The model's predictions.
    errors : ErrorSums or None
        Errors of the predictions on the rows with a target value.
    kinds : dict of str to str
        Each column's kind, agreed by every partition.
    rows : int
        Rows of the window.
    first : str
        Label of the first partition (for messages).
    """

    columns: Mapping[str, ColumnSketch]
    prediction: ColumnSketch | None
    errors: ErrorSums | None
    kinds: Mapping[str, str]
    rows: int
    first: str = ""

    def merge(self, other: WindowSketch) -> WindowSketch:
        """Both partitions' statistics; raise when a column's kind differs between them."""
        kinds = check_same_kinds(self.kinds, self.first, other.kinds, other.first)
        return WindowSketch(
            {n: c.merge(other.columns[n]) for n, c in self.columns.items()},
            _merged(self.prediction, other.prediction),
            _merged(self.errors, other.errors),
            kinds,
            self.rows + other.rows,
            self.first,
        )


def sketch_partition(part: Partition, *, plan: WindowPlan) -> WindowSketch:
    """The statistics of one partition's rows."""
    names = plan.features + ([plan.target] if plan.target else [])
    frame = read_columns(part, names)
    columns: dict[str, ColumnSketch] = {}
    for name in plan.numeric:
        columns[name] = _numbers(frame, name, plan.numeric[name], plan.k)
    for name in plan.discrete:
        sketch = _numbers(frame, name, None, plan.k)
        if sketch.is_numeric:
            finite = np.asarray(frame[name], dtype=np.float64)
            finite = finite[np.isfinite(finite)]
            found, counts = np.unique(finite, return_counts=True)
            sketch = ColumnSketch(
                sketch.moments,
                sketch.summary,
                values={float(v): int(c) for v, c in zip(found, counts, strict=True)},
            )
        columns[name] = sketch
    for name in plan.categorical:
        columns[name] = _counted(frame[name])
    prediction = errors = None
    if plan.target:
        columns[plan.target] = _numbers(frame, plan.target, None, plan.k)
    numbers = [*plan.numeric, *plan.discrete]
    if plan.bundle is not None and all(frame.kinds[n] in ("number", "null") for n in numbers):
        # (text where the reference has numbers: no prediction; the kinds are refused after)
        import dataclasses

        spec = dataclasses.replace(plan.bundle.spec, unknown="ignore")
        predicted = np.asarray(
            plan.bundle.predict_matrix(spec.transform(dict(frame))), dtype=np.float64
        )
        prediction = _sketch(predicted, plan.prediction_edges, plan.k)
        if plan.target and frame.kinds[plan.target] in ("number", "null"):
            y = np.asarray(frame[plan.target], dtype=np.float64)
            keep = np.isfinite(y)
            errors = error_sums(y[keep], predicted[keep])
    return WindowSketch(columns, prediction, errors, frame.kinds, len(frame), part.label)


def sketch_window(
    engine: Engine, partitions: Sequence[Partition], plan: WindowPlan
) -> WindowSketch:
    """One pass over ``partitions``: the combined statistics of the window.

    Raises
    ------
    DataError
        There are no partitions.
    SchemaError
        A partition lacks a column or holds another kind of values in it.
    """
    if not partitions:
        raise DataError("the current data has no partition to read", reason="empty_window")
    task = functools.partial(sketch_partition, plan=plan)
    return engine.map_reduce(task, list(partitions), WindowSketch.merge)


def _numbers(frame: Any, name: str, edges: NDArray[np.float64] | None, k: int) -> ColumnSketch:
    """A numeric column's sketch, or its counts when the partition holds text there."""
    if frame.kinds[name] not in ("number", "null"):
        return _counted(frame[name])
    return _sketch(np.asarray(frame[name], dtype=np.float64), edges, k)


def _sketch(values: NDArray[np.float64], edges: NDArray[np.float64] | None, k: int) -> ColumnSketch:
    bins = None
    if edges is not None and edges.size:
        finite = values[np.isfinite(values)]
        # value == edge goes below it: the bins (-inf, e0], (e0, e1], ... of stats.binned_counts
        index = np.searchsorted(edges, finite, side="left")
        bins = np.bincount(index, minlength=edges.size + 1).astype(np.int64)
    return ColumnSketch(Moments.of(values), QuantileSummary.of(values, k), bins)


def _counted(values: Any) -> ColumnSketch:
    import pandas as pd

    return ColumnSketch(counts=Counts.of(values), missing=int(pd.isna(values).sum()))


def _merged_bins(
    a: NDArray[np.int64] | None, b: NDArray[np.int64] | None
) -> NDArray[np.int64] | None:
    if a is None:
        return b
    return a if b is None else a + b


def _merged(a, b):  # type: ignore[no-untyped-def]
    if a is None:
        return b
    return a if b is None else a.merge(b)
