"""The drift statistics equal their scipy references (to 1e-12 relative), and behave.

Properties: identical samples never drift; the order of the rows never matters.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as ss
from scipy.spatial.distance import jensenshannon

from regressops.monitoring import stats
from regressops.monitoring.methods import default_method

REL = 1e-12


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b)) or abs(a - b) < 1e-300


@pytest.mark.parametrize(
    ("m", "n", "discrete"),
    [
        (30, 40, False),
        (353, 2000, False),
        (1000, 20_000, False),
        (10_000, 200_000, False),
        (500, 700, True),
        (10_000, 50_000, True),
        (7, 12_000, False),
    ],
)
def test_ks_and_wasserstein_equal_scipy(m: int, n: int, discrete: bool) -> None:
    rng = np.random.default_rng(m + n)
    ref, cur = rng.normal(size=m), rng.normal(0.05, 1.1, size=n)
    if discrete:  # ties inside and across the samples
        ref, cur = np.round(ref * 2), np.round(cur * 2)
    ref.sort()
    cur.sort()
    d, w = stats.ks_wasserstein(ref, cur)
    expected = ss.ks_2samp(ref, cur)
    assert _close(d, float(expected.statistic))
    assert _close(stats.ks_p_value(d, ref, cur), float(expected.pvalue))
    assert _close(w, float(ss.wasserstein_distance(ref, cur)))


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([5.0, 6.0, 7.0], [1.0, 2.0, 3.0, 4.0]),  # the reference above every current value
        ([-3.0, -2.0], [0.0, 1.0, 1.0, 2.0]),  # ... and below
        ([0.0, 1.0, 1.0, 2.5, 9.0], [1.0, 1.0, 2.0, 2.5, 3.0, 9.0]),  # values shared across
        ([0.5, 0.6, 0.7, 3.5], [0.0, 1.0, 2.0, 3.0, 4.0]),  # several inside one gap
        ([2.0], [2.0]),
    ],
)
def test_ks_and_wasserstein_where_the_samples_interleave(ref: list, cur: list) -> None:
    r, c = np.array(ref), np.array(cur)
    d, w = stats.ks_wasserstein(r, c)
    assert _close(d, float(ss.ks_2samp(r, c).statistic))
    assert _close(w, float(ss.wasserstein_distance(r, c)))


@given(
    ref=arrays(np.float64, st.integers(1, 60), elements=st.floats(-1e6, 1e6)),
    cur=arrays(np.float64, st.integers(1, 60), elements=st.floats(-1e6, 1e6)),
)
@settings(max_examples=150, deadline=None)
def test_ks_and_wasserstein_equal_scipy_on_any_samples(ref: np.ndarray, cur: np.ndarray) -> None:
    r, c = np.sort(ref), np.sort(cur)
    d, w = stats.ks_wasserstein(r, c)
    assert (
        _close(d, float(ss.ks_2samp(r, c).statistic))
        or abs(d - ss.ks_2samp(r, c).statistic) < 1e-15
    )
    expected_w = float(ss.wasserstein_distance(r, c))
    assert abs(w - expected_w) <= REL * max(expected_w, 1.0)


def test_chi_square_equals_scipy_contingency_on_the_pooled_table() -> None:
    r = np.array([500.0, 300.0, 150.0, 3.0, 4.0])
    c = np.array([480.0, 330.0, 140.0, 0.0, 5.0])
    table = stats.pool_sparse(r, c, 5.0)
    assert table.shape == (2, 4)  # the two rare categories became one column
    assert table.sum() == r.sum() + c.sum()
    expected = ss.chi2_contingency(table).pvalue
    assert _close(stats.chi2_test(table), float(expected))
    dense = np.vstack([r[:3], c[:3]])
    assert stats.pool_sparse(r[:3], c[:3], 5.0).shape == (2, 3)
    assert _close(stats.chi2_test(dense), float(ss.chi2_contingency(dense).pvalue))


def test_jensen_shannon_and_z_equal_their_references() -> None:
    r, c = np.array([120.0, 80.0, 0.0]), np.array([60.0, 90.0, 10.0])
    from regressops.monitoring.methods import METHODS

    assert METHODS["jensenshannon"].threshold == 0.1
    assert _close(float(jensenshannon(r, c)), float(jensenshannon(r / r.sum(), c / c.sum())))
    # two-proportion Z = the chi-square test without continuity correction on a 2x2 table
    r2, c2 = np.array([130.0, 70.0]), np.array([90.0, 110.0])
    chi = ss.chi2_contingency(np.vstack([r2, c2]), correction=False).pvalue
    assert _close(stats.two_proportion_z(r2, c2), float(chi))


def test_psi_of_identical_samples_is_zero_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = np.sort(rng.normal(size=5000))
    edges = stats.decile_edges(ref)
    assert stats.psi(ref, ref, edges) == 0.0
    small = stats.psi(ref, np.sort(ref + 0.1), edges)
    large = stats.psi(ref, np.sort(ref + 0.5), edges)
    assert 0 < small < large


def test_benjamini_hochberg_matches_the_step_up_rule() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.9])
    q = stats.benjamini_hochberg(p)
    # sorted: .005 .01 .03 .04 .9 → x5/1, x5/2, x5/3, x5/4, x5/5 then running minimum from the top
    assert np.allclose(q, [0.025, 0.05, 0.05, 0.025, 0.9])
    assert (q >= p).all()


def test_std_score() -> None:
    assert stats.std_score(1.0, 3.0) == 0.5
    assert stats.std_score(2.0, 2.0) == 0.0
    assert stats.std_score(0.0, 0.0) is None


@pytest.mark.parametrize(
    ("kind", "rows", "distinct", "method"),
    [
        ("numeric", 1000, 6, "ks"),
        ("numeric", 1000, 5, "chisquare"),
        ("numeric", 500, 2, "z"),
        ("categorical", 800, 4, "chisquare"),
        ("categorical", 800, 2, "z"),
        ("numeric", 1001, 6, "wasserstein"),
        ("numeric", 5000, 3, "jensenshannon"),
        ("categorical", 20_000, 2, "jensenshannon"),
    ],
)
def test_default_method_follows_evidently(kind: str, rows: int, distinct: int, method: str) -> None:
    assert default_method(kind, reference_rows=rows, distinct=distinct) == method  # type: ignore[arg-type]


@given(
    values=arrays(np.float64, st.integers(2, 300), elements=st.floats(-100, 100)),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_identical_samples_never_drift_and_order_never_matters(
    values: np.ndarray, seed: int
) -> None:
    ref = np.sort(values)
    shuffled = np.random.default_rng(seed).permutation(values)
    d, w = stats.ks_wasserstein(ref, np.sort(shuffled))
    assert d == 0.0
    assert w == 0.0
    assert stats.ks_p_value(d, ref, ref) == 1.0
