"""The drift statistics, computed with numpy on a reference sorted once.

Each function equals its scipy reference (tests hold them to 1e-12 relative):

- :func:`ks_wasserstein` — the two-sample Kolmogorov–Smirnov statistic and p-value of
  :func:`scipy.stats.ks_2samp` and the distance of :func:`scipy.stats.wasserstein_distance`,
  both from the sorted current sample cut at its own values and at the few reference values
  between them (scipy sorts both samples and binary-searches every value into each, on every
  call);
- :func:`chi2_test` — :func:`scipy.stats.chi2_contingency` on the 2 × k table of counts, after
  sparse categories are pooled (:func:`pool_sparse`);
- :func:`jensen_shannon` — :func:`scipy.spatial.distance.jensenshannon` of the two shares
  (numpy only, like :func:`ks_wasserstein` and :func:`psi`: the methods the server's live drift
  uses without SciPy);
- :func:`two_proportion_z` — the pooled two-proportion Z-test;
- :func:`psi` — the population stability index over the reference's decile bins.
"""

from __future__ import annotations

import math

import numpy as np

KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp(method="auto") is exact up to this sample size
SHARE_FLOOR = 1e-4  # PSI: an empty bin counts as this share (Evidently's value), not log(0)
PSI_BINS = 10


def ks_wasserstein(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein distance of two sorted samples.

    Parameters
    ----------
    ref, cur : ndarray of float64, sorted, without NaN, non-empty
        The reference and current samples.

    Returns
    -------
    d, wasserstein : float
        As :func:`scipy.stats.ks_2samp` (two-sided) and :func:`scipy.stats.wasserstein_distance`
        compute them; :func:`ks_p_value` turns ``d`` into the p-value.
    """
    m, n = ref.size, cur.size
    # Both ECDFs are steps with the right-continuous counts scipy uses (``searchsorted(...,
    # side="right")``). Instead of merging the samples (several passes over m + n values), the
    # real line is cut at the current values and, inside the few gaps that hold reference
    # values, at those: each piece starts at one sample's value. Reference values are few
    # (at most 10,000 stored), so all work on the large current sample is a handful of
    # vectorised passes; F_ref - F_cur is formed as scipy forms it (a/m - b/n), bit for bit.
    first_ge = np.searchsorted(cur, ref, side="left")  # current values < ref_i
    upto = np.searchsorted(cur, ref, side="right")  # current values <= ref_i
    # F_ref - F_cur at each current value (valid where the value ends its run of ties)
    ref_le = np.cumsum(np.bincount(first_ge, minlength=n + 1)[:n])  # reference values <= cur_j
    diff = np.divide(ref_le, m, dtype=np.float64)
    del ref_le
    cur_cdf = np.arange(1, n + 1, dtype=np.float64)
    cur_cdf /= n
    diff -= cur_cdf
    del cur_cdf
    # ... and at each reference value (m of them)
    at_ref = np.arange(1, m + 1, dtype=np.float64) / m - upto / n
    # KS: the largest gap at any sample value, ties counted once (at the end of their run)
    run_end = np.empty(n, dtype=bool)
    np.not_equal(cur[1:], cur[:-1], out=run_end[:-1])
    run_end[-1] = True
    points = diff if run_end.all() else diff[run_end]
    ref_end = np.empty(m, dtype=bool)
    np.not_equal(ref[1:], ref[:-1], out=ref_end[:-1])
    ref_end[-1] = True
    ref_points = at_ref[ref_end]
    d_max = float(max(points.max(), ref_points.max()))
    d_min = float(np.clip(-min(points.min(), ref_points.min()), 0, 1))
    d = d_min if d_min > d_max else d_max
    # Wasserstein: the integral of |F_ref - F_cur| over the pieces, each with the value at its
    # start. A piece from cur_j ends at the next current value or at the first reference value
    # strictly inside the gap; a piece from ref_i at the next reference value or the first
    # current value >= ref_i (zero when a current value equals it: no piece is counted twice).
    length = np.empty(n, dtype=np.float64)
    np.subtract(cur[1:], cur[:-1], out=length[:-1])
    length[-1] = 0.0
    inside = (first_ge >= 1) & ((first_ge == n) | (ref < cur[np.minimum(first_ge, n - 1)]))
    gaps, first = np.unique(first_ge[inside] - 1, return_index=True)
    length[gaps] = ref[inside][first] - cur[gaps]
    # elementwise products and pairwise sums, as scipy computes it; not a dot product: a BLAS
    # dot starts BLAS threads, which spin on a busy machine and take a core from the server
    # whose background thread runs this
    np.abs(diff, out=diff)
    diff *= length
    wasserstein = float(diff.sum())
    del diff, length
    next_ref = np.empty(m, dtype=np.float64)
    next_ref[:-1] = ref[1:]
    next_ref[-1] = np.inf
    next_cur = np.where(first_ge < n, cur[np.minimum(first_ge, n - 1)], np.inf)
    ends = np.minimum(next_ref, next_cur)
    piece = np.where(np.isfinite(ends), ends - ref, 0.0)
    piece *= np.abs(at_ref)
    wasserstein += float(piece.sum())
    return d, wasserstein


def ks_p_value(d: float, ref: np.ndarray, cur: np.ndarray) -> float:
    """The two-sided KS p-value as ``scipy.stats.ks_2samp(method="auto")`` computes it."""
    from scipy import stats

    n1, n2 = ref.size, cur.size
    if max(n1, n2) <= KS_EXACT_MAX_N:
        # Small samples: scipy's exact distribution (its cost is in the p-value, not the sort).
        return float(stats.ks_2samp(ref, cur).pvalue)
    return ks_asymptotic_p_value(d, n1, n2)


def ks_asymptotic_p_value(d: float, n1: int, n2: int) -> float:
    """The two-sided KS p-value of statistic ``d`` for samples of ``n1`` and ``n2`` values, from
    the distribution scipy's ``ks_2samp`` uses when a sample has more than 10,000 values."""
    from scipy import stats

    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))


def aligned_counts(
    ref: dict[str, int], cur: dict[str, int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both count tables over the union of their categories (reference order, then new ones)."""
    keys = list(ref) + [k for k in cur if k not in ref]
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cur.get(k, 0) for k in keys], dtype=np.float64)
    return keys, r, c


def pool_sparse(r: np.ndarray, c: np.ndarray, min_expected: float) -> np.ndarray:
    """Pool the categories whose expected count is below ``min_expected`` into one column.

    The chi-square approximation fails on near-empty cells: a category seen twice in
    reference and never in the current window adds a large term on noise alone. The sparse
    categories (rarest first) are summed into one column; if that column is itself still
    sparse it joins the rarest of the rest.

    Returns
    -------
    ndarray of shape (2, k)
        The pooled contingency table (row 0 reference, row 1 current).
    """
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    if total == 0 or table.shape[1] < 2:
        return table
    rows = table.sum(axis=1)

    def sparse(col_total: np.ndarray) -> np.ndarray:
        return np.asarray(rows.min() * col_total / total < min_expected)

    order = np.argsort(table.sum(axis=0), kind="stable")
    table = table[:, order]
    small = sparse(table.sum(axis=0))
    if not small.any():
        return table
    pooled = table[:, small].sum(axis=1, keepdims=True)
    rest = table[:, ~small]
    if rest.shape[1] and sparse(pooled.sum(axis=0)).any():
        pooled = pooled + rest[:, :1]
        rest = rest[:, 1:]
    return np.hstack([rest, pooled])


def chi2_test(table: np.ndarray) -> float:
    """The p-value of :func:`scipy.stats.chi2_contingency` on a 2 × k table (1.0 when k < 2)."""
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    from scipy.stats import chi2_contingency

    return float(chi2_contingency(table).pvalue)


def two_proportion_z(r: np.ndarray, c: np.ndarray) -> float:
    """The p-value of the pooled two-proportion Z-test on the first category's share.

    Parameters
    ----------
    r, c : ndarray of shape (2,)
        Counts of the two categories in the reference and the current sample.
    """
    from scipy.stats import norm

    n1, n2 = float(r.sum()), float(c.sum())
    p1, p2 = r[0] / n1, c[0] / n2
    pooled = (r[0] + c[0]) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:  # one category only, in both samples: nothing moved
        return 1.0
    z = (p1 - p2) / math.sqrt(var)
    return float(2 * norm.sf(abs(z)))


def jensen_shannon(r: np.ndarray, c: np.ndarray) -> float:
    """The Jensen–Shannon distance (natural log) of two count vectors' shares."""
    p, q = r / r.sum(), c / c.sum()
    m = (p + q) / 2.0
    js = (_rel_entr(p, m).sum() + _rel_entr(q, m).sum()) / 2.0
    return float(np.sqrt(js))


def _rel_entr(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``p * log(p / m)`` with 0 where ``p`` is 0 (:func:`scipy.special.rel_entr`; ``m > 0``
    wherever ``p > 0`` here), in numpy: the server's live drift runs without SciPy."""
    out = np.zeros_like(p)
    present = p > 0
    out[present] = p[present] * np.log(p[present] / m[present])
    return out


def psi_shares(r: np.ndarray, c: np.ndarray) -> float:
    """The population stability index of two count vectors (empty bins floored)."""
    p = np.maximum(r / r.sum(), SHARE_FLOOR)
    q = np.maximum(c / c.sum(), SHARE_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def decile_edges(ref: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (fitted once per reference)."""
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def binned_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of a sorted sample in the bins ``(-inf, e0], (e0, e1], ..., (ek, inf)``."""
    cuts = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate([[0], cuts, [sorted_values.size]])).astype(np.float64)


def psi(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> float:
    """PSI of two sorted numeric samples over the reference's bins ``edges``."""
    return psi_shares(binned_counts(ref, edges), binned_counts(cur, edges))


def std_score(ref_std: float, cur_std: float) -> float | None:
    """``|σ_ref − σ_cur| / (σ_ref + σ_cur)``, the std score of seed 001 (None when both are 0)."""
    total = ref_std + cur_std
    return abs(ref_std - cur_std) / total if total > 0 else None


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order."""
    n = p_values.size
    if n == 0:
        return p_values
    order = np.argsort(p_values)
    ranked = p_values[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adjusted, 1.0)
    return out
