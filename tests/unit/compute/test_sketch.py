"""Mergeable statistics: any split of the rows, merged in any tree, gives the whole's statistic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.compute.sketch import Counts, Moments, QuantileSummary, bin_counts

values = st.lists(
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), st.just(float("nan"))),
    min_size=1,
    max_size=400,
)


def _pieces(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    bounds = sorted({min(c, len(x)) for c in cuts})
    return np.split(x, bounds)


@settings(max_examples=60, deadline=None)
@given(values, st.lists(st.integers(0, 400), max_size=6))
def test_merged_moments_equal_the_whole(data: list[float], cuts: list[int]) -> None:
    x = np.array(data)
    merged = Moments()
    for piece in _pieces(x, cuts):
        merged = merged.merge(Moments.of(piece))
    finite = x[np.isfinite(x)]
    assert merged.count == finite.size
    assert merged.missing == x.size - finite.size
    if finite.size:
        scale = max(1.0, float(np.abs(finite).max()))
        assert merged.mean == pytest.approx(finite.mean(), abs=1e-12 * scale)
        assert merged.std == pytest.approx(finite.std(), abs=1e-9 * scale)
        assert (merged.min, merged.max) == (finite.min(), finite.max())


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50_000), st.integers(1, 12), st.integers(8, 64), st.integers(0, 10**6))
def test_quantile_summary_keeps_its_rank_error_bound(n: int, parts: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(2, n) * 100  # heavy tails, ties from rounding below
    x = np.round(x, 1)
    summaries = [QuantileSummary.of(p, k) for p in np.array_split(x, parts)]
    while len(summaries) > 1:  # a tree of merges, as on a cluster
        summaries = [
            summaries[i].merge(summaries[i + 1]) if i + 1 < len(summaries) else summaries[i]
            for i in range(0, len(summaries), 2)
        ]
    summary = summaries[0]
    assert summary.total == n
    ordered = np.sort(x)
    for q in (0.01, 0.25, 0.5, 0.9, 0.999):
        value = summary.quantile(q)
        # some copy of ``value`` in the data has a rank within the bound of q * n
        low = np.searchsorted(ordered, value, side="left")
        high = np.searchsorted(ordered, value, side="right")
        target = q * n
        gap = 0.0 if low <= target <= high else min(abs(low - target), abs(high - target))
        assert gap <= summary.rank_error + 1
    assert summary.rank_error <= 4 * n / k + 4 * max(1, n // (k * parts)) * parts


def test_uncompressed_summary_gives_numpys_median() -> None:
    x = np.array([5.0, 1.0, np.nan, 3.0, 8.0])
    summary = QuantileSummary.of(x[:2]).merge(QuantileSummary.of(x[2:]))
    assert summary.rank_error == 0
    assert summary.median() == np.nanmedian(x) == 4.0


def test_counts_and_bins_add_exactly() -> None:
    a, b = Counts.of(["x", "y", None, "x"]), Counts.of(["y", "z"])
    assert a.merge(b).counts == {"x": 2, "y": 2, "z": 1}
    edges = np.array([0.0, 1.0])
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])
    whole = bin_counts(x, edges)
    assert whole.tolist() == [1, 2, 2]
    assert (bin_counts(x[:3], edges) + bin_counts(x[3:], edges)).tolist() == whole.tolist()
