"""Column profiles computed per partition and combined; the FeatureSpec fitted from them.

A :class:`TableProfile` holds, per column, the mergeable pieces of
:mod:`regressops.compute.sketch`: :class:`~regressops.compute.sketch.Moments` and a
:class:`~regressops.compute.sketch.QuantileSummary` for numbers, and
:class:`~regressops.compute.sketch.Counts` for categories (plus exact bin counts over given
edges, for drift). One pass over the partitions gives it (:func:`profile_input`); from it
:func:`spec_from_profile` builds the same :class:`~regressops.features.FeatureSpec` that
:meth:`FeatureSpec.fit` would on all the rows: exact means and standard deviations (to
rounding), exact categories, frequencies and modes, and medians within the summary's
documented rank error (exact on small inputs).

This is also the API the monitoring statistics use on a large window (see ``docs/scale.md``):
:func:`profile_files` (or :func:`profile_input` on an open engine) returns, per column, the
combined pieces a drift statistic needs — for numbers the exact count/mean/std/range and
missing count, exact counts per bin of the reference's ``edges`` (PSI, chi-square on bins), and
a :class:`~regressops.compute.sketch.QuantileSummary` whose ``cdf``/``quantile`` are within
``rank_error / count`` of the truth (Kolmogorov-Smirnov distance within that bound, Wasserstein
from its quantiles); for categories exact counts.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from regressops.compute.engines import ComputeRequest, Engine
from regressops.compute.partitions import Columns, Partition, check_same_kinds, read_columns
from regressops.compute.rows import Side, SplitPlan, row_keys, select
from regressops.compute.sketch import Counts, Moments, QuantileSummary, bin_counts
from regressops.errors import DataError
from regressops.features import CategoricalFeature, FeatureSpec, NumericFeature


@dataclass(frozen=True)
class ColumnProfile:
    """The mergeable pieces of one column (those that apply to its kind).

    Attributes
    ----------
    moments : Moments
        Numbers: count, mean, spread, range, missing.
    summary : QuantileSummary or None
        Numbers: order statistics with a rank-error bound.
    counts : Counts or None
        Categories (text, booleans, or columns declared categorical).
    bins : ndarray or None
        Numbers: counts per bin of the ``edges`` given to :func:`profile_input`.
    """

    moments: Moments = field(default_factory=Moments)
    summary: QuantileSummary | None = None
    counts: Counts | None = None
    bins: NDArray[np.int64] | None = None

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both partitions' values."""
        return ColumnProfile(
            self.moments.merge(other.moments),
            _merge_optional(self.summary, other.summary),
            _merge_optional(self.counts, other.counts),
            other.bins
            if self.bins is None
            else self.bins + (0 if other.bins is None else other.bins),
        )


@dataclass(frozen=True)
class RowSample:
    """A uniform random sample of rows, mergeable: each row gets a seeded random key and the
    ``size`` rows with the smallest keys are kept (a bottom-k sample), so the merged sample is a
    uniform sample of all rows whatever the partitioning, without knowing the row count first.

    Attributes
    ----------
    keys : ndarray
        The kept rows' keys.
    columns : dict of str to ndarray
        The kept rows' values.
    size : int
        Rows kept at most.
    """

    keys: NDArray[np.float64]
    columns: Mapping[str, Any]
    size: int

    @classmethod
    def of(cls, frame: Mapping[str, Any], keys: NDArray[np.float64], size: int) -> RowSample:
        """The rows of ``frame`` with the ``size`` smallest ``keys``."""
        keep = np.argpartition(keys, size)[:size] if keys.size > size else np.arange(keys.size)
        return cls(keys[keep], {n: np.asarray(v)[keep] for n, v in frame.items()}, size)

    def merge(self, other: RowSample) -> RowSample:
        """The sample of both partitions' rows."""
        keys = np.concatenate([self.keys, other.keys])
        both = {n: np.concatenate([v, other.columns[n]]) for n, v in self.columns.items()}
        return RowSample.of(both, keys, self.size)

    def frame(self) -> Any:
        """The sampled rows as a DataFrame (in key order: a random order)."""
        import pandas as pd

        order = np.argsort(self.keys, kind="stable")
        return pd.DataFrame({n: v[order] for n, v in self.columns.items()})


@dataclass(frozen=True)
class TableProfile:
    """Profiles of the columns of an input, and the rows of each partition.

    Attributes
    ----------
    columns : dict of str to ColumnProfile
    kinds : dict of str to str
        Each column's kind (``number``, ``text``, ``bool``, ``null``), agreed by every partition.
    rows : dict of int to int
        Rows on the profiled side per partition index.
    first : str
        Label of the first partition the kinds came from (for messages).
    sample : RowSample or None
        A uniform random sample of the profiled rows (when asked for).
    """

    columns: Mapping[str, ColumnProfile]
    kinds: Mapping[str, str]
    rows: Mapping[int, int]
    first: str = ""
    sample: RowSample | None = None

    @property
    def n_rows(self) -> int:
        """Rows profiled."""
        return sum(self.rows.values())


def merge_profiles(a: TableProfile, b: TableProfile) -> TableProfile:
    """Combine two partitions' profiles; raise when a column's kind differs between them."""
    first, second = (a, b) if min(a.rows, default=0) <= min(b.rows, default=0) else (b, a)
    kinds = check_same_kinds(first.kinds, first.first, second.kinds, second.first)
    columns = {
        name: first.columns[name].merge(second.columns[name])
        if name in second.columns
        else first.columns[name]
        for name in first.columns
    }
    return TableProfile(
        columns,
        kinds,
        {**first.rows, **second.rows},
        first.first,
        _merge_optional(first.sample, second.sample),
    )


def profile_partition(
    part: Partition,
    *,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    plan: SplitPlan | None = None,
    side: Side = "all",
    edges: Mapping[str, NDArray[np.float64]] | None = None,
    sample_size: int = 0,
) -> TableProfile:
    """Profile one partition's ``columns`` (its rows on ``side`` of ``plan``'s split), with a
    bottom-k :class:`RowSample` of ``sample_size`` rows (keys seeded by the plan's seed and
    the partition's place in the input)."""
    frame = read_columns(part, columns)
    sample = sample_rows(frame, part, plan, side, sample_size) if sample_size > 0 else None
    if plan is not None:
        frame = select(frame, part, plan, side)
    profile = profile_frame(frame, part, columns=columns, categorical=categorical, edges=edges)
    return dataclasses.replace(profile, sample=sample)


def sample_rows(
    frame: Columns, part: Partition, plan: SplitPlan | None, side: Side, size: int
) -> RowSample:
    """A bottom-k :class:`RowSample` of ``size`` of the rows of ``frame`` (all of ``part``'s
    rows) on ``side`` of ``plan``: each row's key is :func:`~regressops.compute.rows.row_keys`
    of its identity, so the merged sample does not depend on the partitioning."""
    seed = plan.seed if plan is not None else 0
    keys = Columns({"key": row_keys(seed, part.file_index, part.first_row, len(frame))}, {})
    if plan is not None:
        frame, keys = select(frame, part, plan, side), select(keys, part, plan, side)
    return RowSample.of(frame, keys["key"], size)


def profile_frame(
    frame: Columns,
    part: Partition,
    *,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    edges: Mapping[str, NDArray[np.float64]] | None = None,
) -> TableProfile:
    """Profile ``columns`` of rows already read from ``part`` (and selected)."""
    kinds = frame.kinds
    profiles = {}
    for name in columns:
        column = frame[name]
        if kinds[name] == "number" and name not in categorical:
            values = np.asarray(column, dtype=np.float64)
            bins = bin_counts(values, edges[name]) if edges and name in edges else None
            profiles[name] = ColumnProfile(
                Moments.of(values), QuantileSummary.of(values), None, bins
            )
        else:
            import pandas as pd

            missing = int(pd.isna(column).sum())
            profiles[name] = ColumnProfile(Moments(missing=missing), None, Counts.of(column))
    return TableProfile(profiles, kinds, {part.index: len(frame)}, part.label)


def profile_input(
    engine: Engine,
    partitions: Sequence[Partition],
    *,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    plan: SplitPlan | None = None,
    side: Side = "all",
    edges: Mapping[str, NDArray[np.float64]] | None = None,
    sample_size: int = 0,
) -> TableProfile:
    """One pass over ``partitions``: the combined profile of ``columns`` (and a uniform random
    sample of ``sample_size`` of its rows, :attr:`TableProfile.sample`).

    Raises
    ------
    DataError
        There are no partitions.
    SchemaError
        A partition lacks a column or holds another kind of values in it.
    """
    if not partitions:
        raise DataError("the input has no partition to read", reason="empty")
    task = functools.partial(
        profile_partition,
        columns=list(columns),
        categorical=list(categorical),
        plan=plan,
        side=side,
        edges=edges,
        sample_size=sample_size,
    )
    return engine.map_reduce(task, list(partitions), merge_profiles)


def profile_files(
    path: str,
    *,
    columns: Sequence[str],
    compute: ComputeRequest,
    categorical: Sequence[str] = (),
    edges: Mapping[str, NDArray[np.float64]] | None = None,
) -> TableProfile:
    """Profile every row of a Parquet/CSV file or folder on ``compute``'s engine.

    Parameters
    ----------
    path : str
        The input (e.g. a window of the prediction log exported to Parquet).
    columns : sequence of str
        Columns to profile.
    compute : ComputeRequest
        Engine and scheduler.
    categorical : sequence of str
        Numeric columns to count as categories.
    edges : mapping of str to ndarray, optional
        Per numeric column, bin edges (e.g. the reference's) for exact bin counts.

    Raises
    ------
    DataError, SchemaError, ComputeError
        See :func:`profile_input` and :func:`~regressops.compute.engines.open_engine`.
    """
    from regressops.compute.engines import open_engine
    from regressops.compute.partitions import list_files

    listed = list_files(
        path, partition_rows=compute.partition_rows, storage_options=compute.options
    )
    with open_engine(compute) as engine:
        return profile_input(
            engine, listed.partitions, columns=columns, categorical=categorical, edges=edges
        )


def spec_from_profile(
    profile: TableProfile,
    *,
    features: Sequence[str],
    target: str | None,
    categorical: Sequence[str] | None = None,
    scale: bool = True,
) -> FeatureSpec:
    """The FeatureSpec :meth:`FeatureSpec.fit` would learn from the profiled rows.

    Numbers: mean and population standard deviation (exact to rounding), range, and the
    median as impute value (within the profile's rank error, exact when uncompressed).
    Categories: sorted, with frequencies and the most frequent as impute value (exact).
    Columns holding text or booleans are categorical unless ``categorical`` says otherwise.

    Raises
    ------
    DataError
        A feature has no value to learn from.
    """
    chosen = set(categorical) if categorical is not None else None
    fitted: list[NumericFeature | CategoricalFeature] = []
    for name in features:
        col = profile.columns[name]
        is_cat = name in chosen if chosen is not None else profile.kinds[name] in ("text", "bool")
        if is_cat or col.summary is None:
            fitted.append(_categorical(name, col))
        else:
            fitted.append(_numeric(name, col, scale))
    return FeatureSpec(features=tuple(fitted), target=target)


def _numeric(name: str, col: ColumnProfile, scale: bool) -> NumericFeature:
    m = col.moments
    if m.count == 0 or col.summary is None:
        raise DataError(f"feature {name!r} has no finite value to learn from", reason="empty")
    std = m.std
    return NumericFeature(
        name=name,
        impute=col.summary.median(),
        center=m.mean if scale else 0.0,
        scale=(std if std > 0 else 1.0) if scale else 1.0,
        min=m.min,
        max=m.max,
        mean=m.mean,
        std=std,
    )


def _categorical(name: str, col: ColumnProfile) -> CategoricalFeature:
    counts = col.counts.counts if col.counts is not None else {}
    if not counts:
        raise DataError(f"feature {name!r} has no category to learn from", reason="empty")
    categories = tuple(sorted(counts))
    total = sum(counts.values())
    numbers = [counts[c] for c in categories]
    mode = categories[int(np.argmax(numbers))]
    freqs = tuple(n / total for n in numbers)
    return CategoricalFeature(name=name, categories=categories, impute=mode, frequencies=freqs)


def _merge_optional(a, b):  # type: ignore[no-untyped-def]
    if a is None:
        return b
    return a if b is None else a.merge(b)
