"""A reference column fitted once, and a current column, for the drift methods to compare.

:class:`FittedColumn` is computed once per reference (the chosen method and threshold, the
sorted sample, the bins, the counts of a discrete column); :class:`CurrentColumn` wraps one
window's values and sorts them at most once, whichever methods read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from regressops.monitoring import stats
from regressops.monitoring.methods import (
    DISCRETE_MAX_DISTINCT,
    Method,
    default_method,
    get_method,
)
from regressops.monitoring.reference import CategoricalProfile, Profile


def number_key(value: float) -> str:
    """The category name of a value of a discrete numeric column (``"1.0"``, ``"0.05068"``)."""
    return repr(float(value))


@dataclass
class FittedColumn:
    """One reference column, ready to be compared with many windows.

    Attributes
    ----------
    name : str
        The feature.
    kind : {"numeric", "categorical"}
        The declared kind.
    discrete : bool
        Tested as counts: categorical, or numeric with at most 5 distinct values.
    method : Method
        The drift method used for this column.
    threshold : float
        Its threshold.
    std : float
        Standard deviation of the reference (numeric columns).
    sorted : ndarray
        The sorted reference sample (numeric columns).
    counts : dict of str to int
        Count of each category (discrete columns).
    psi_edges : ndarray
        The reference's decile edges (PSI on numeric columns).
    min_expected : float
        Expected count under which a category is pooled before chi-square.
    """

    name: str
    kind: str
    discrete: bool
    method: Method
    threshold: float
    std: float = math.nan
    sorted: np.ndarray = field(default_factory=lambda: np.empty(0))
    counts: dict[str, int] = field(default_factory=dict)
    psi_edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    min_expected: float = 5.0

    @classmethod
    def fit(
        cls,
        name: str,
        profile: Profile,
        *,
        reference_rows: int,
        method: str | None = None,
        threshold: float | None = None,
        min_expected: float = 5.0,
    ) -> FittedColumn:
        """Fit a reference column; ``method``/``threshold`` override the defaults.

        Raises
        ------
        ConfigError
            The method is unknown or does not take this kind of column.
        """
        if isinstance(profile, CategoricalProfile):
            chosen = method or default_method(
                "categorical", reference_rows=reference_rows, distinct=len(profile.counts)
            )
            m = get_method(chosen, kind="categorical", feature=name)
            return cls(
                name,
                "categorical",
                True,
                m,
                _threshold(m, threshold),
                counts=dict(profile.counts),
                min_expected=min_expected,
            )
        sample = profile.sample
        values, counts = np.unique(sample, return_counts=True)
        discrete = values.size <= DISCRETE_MAX_DISTINCT
        chosen = method or default_method(
            "numeric", reference_rows=reference_rows, distinct=int(values.size)
        )
        m = get_method(chosen, kind="categorical" if discrete else "numeric", feature=name)
        return cls(
            name,
            "numeric",
            discrete,
            m,
            _threshold(m, threshold),
            std=profile.std,
            sorted=sample,
            counts={number_key(v): int(c) for v, c in zip(values, counts, strict=True)}
            if discrete
            else {},
            psi_edges=stats.decile_edges(sample) if sample.size and not discrete else np.empty(0),
            min_expected=min_expected,
        )

    @property
    def rows(self) -> int:
        """Values in the reference sample."""
        return int(self.sorted.size) if not self.counts else sum(self.counts.values())


class CurrentColumn:
    """One feature of the current window.

    Parameters
    ----------
    values : ndarray of float64 (numeric) or dict of str to int (categorical counts)
        The window's values (NaN for missing) or its category counts.
    missing : int, default=0
        Missing values of a categorical column (a numeric column counts its NaN).
    owned : bool, default=False
        The array is this column's own: sort it in place rather than copy it.
    """

    def __init__(
        self, values: np.ndarray | dict[str, int], *, missing: int = 0, owned: bool = False
    ) -> None:
        self._values = values
        self._missing = missing
        self._owned = owned
        self._sorted: np.ndarray | None = None
        self._ecdf: tuple[float, float] | None = None

    @property
    def is_numeric(self) -> bool:
        """True for a numeric column."""
        return isinstance(self._values, np.ndarray)

    @property
    def sorted(self) -> np.ndarray:
        """The non-missing values, sorted (computed once)."""
        if self._sorted is None:
            assert isinstance(self._values, np.ndarray)
            values = self._values
            nan = np.isnan(values)
            present = values[~nan] if nan.any() else values if self._owned else values.copy()
            del nan
            present.sort()
            self._sorted = present
            self._values = np.empty(0)  # the sorted copy is all the methods need
            self._missing += int(values.size - present.size)
        return self._sorted

    @property
    def rows(self) -> int:
        """Non-missing values."""
        if isinstance(self._values, dict):
            return sum(self._values.values())
        return int(self.sorted.size)

    @property
    def missing(self) -> int:
        """Missing values."""
        if self.is_numeric:
            _ = self.sorted
        return self._missing

    @property
    def std(self) -> float:
        """Population standard deviation (numeric columns; NaN when empty)."""
        s = self.sorted
        return float(s.std()) if s.size else math.nan

    def ecdf(self, ref: FittedColumn) -> tuple[float, float]:
        """KS statistic and Wasserstein distance against ``ref`` (computed once)."""
        if self._ecdf is None:
            self._ecdf = stats.ks_wasserstein(ref.sorted, self.sorted)
        return self._ecdf

    def ks_p_value(self, ref: FittedColumn) -> float:
        """The two-sided KS p-value against ``ref`` (as ``scipy.stats.ks_2samp``)."""
        return stats.ks_p_value(self.ecdf(ref)[0], ref.sorted, self.sorted)

    def binned(self, edges: np.ndarray) -> np.ndarray:
        """Counts in the bins ``(-inf, e0], (e0, e1], ..., (ek, inf)`` (PSI)."""
        return stats.binned_counts(self.sorted, edges)

    def counts(self, ref: FittedColumn) -> dict[str, int]:
        """Count of each category (a discrete numeric column is counted by value)."""
        if isinstance(self._values, dict):
            return self._values
        values, counts = np.unique(self.sorted, return_counts=True)
        return {number_key(v): int(c) for v, c in zip(values, counts, strict=True)}

    def histogram(self, edges: np.ndarray) -> list[int]:
        """Counts in the bins between ``edges`` (for the report)."""
        hist, _ = np.histogram(self.sorted, bins=edges)
        return [int(c) for c in hist]


def _threshold(method: Method, threshold: Any) -> float:
    return method.threshold if threshold is None else float(threshold)
