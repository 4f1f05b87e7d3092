"""Drift methods, declared once, and the one function that picks a column's default.

A :class:`Method` says what it is (name, the column kinds it takes, its default threshold,
whether its score is a p-value or a distance) and computes a score from a fitted reference
column and a current column; :meth:`Method.drifted` is the decision rule. The statistics live in
:mod:`regressops.monitoring.stats`; the rendering in :mod:`regressops.monitoring.report_html`.

The defaults (:func:`default_method`) follow Evidently 0.7's, so results can be compared:

============================  ==============================  =================================
reference rows                numeric, more than 5 distinct   other (categorical, discrete)
============================  ==============================  =================================
at most 1,000                 ``ks`` (p < 0.05)               ``chisquare``; binary: ``z``
more than 1,000               ``wasserstein`` (≥ 0.1 std)     ``jensenshannon`` (≥ 0.1)
============================  ==============================  =================================

Two differences lower the false alarms: chi-square is the two-sample contingency test with
sparse categories pooled (Evidently's is a goodness-of-fit test that takes the reference's noisy
shares as exact), and the p-values of one table are adjusted together for the false discovery
rate (Benjamini–Hochberg) in :mod:`regressops.monitoring.drift`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from regressops.errors import ConfigError
from regressops.monitoring import stats

if TYPE_CHECKING:
    from regressops.monitoring.fitted import CurrentColumn, FittedColumn

ColumnKind = Literal["numeric", "categorical"]
SMALL_REFERENCE_ROWS = 1_000  # Evidently's switch from tests to distances
DISCRETE_MAX_DISTINCT = 5  # a numeric column with at most this many values is tested as counts


@dataclass(frozen=True)
class Method:
    """A drift method: what it takes, its default threshold and its statistic.

    Attributes
    ----------
    name : str
        The name used in settings, ``drift.json`` and the report.
    kinds : frozenset of {"numeric", "categorical"}
        Column kinds it applies to (``categorical`` includes discrete numeric columns).
    threshold : float
        Default threshold.
    p_value : bool
        True: the score is a p-value and drift is ``score < threshold``; False: the score is a
        distance and drift is ``score >= threshold``.
    label : str
        A human name for the report.
    score : callable
        ``score(fitted, current) -> float``.
    """

    name: str
    kinds: frozenset[str]
    threshold: float
    p_value: bool
    label: str
    score: Callable[[FittedColumn, CurrentColumn], float]

    def drifted(self, score: float, threshold: float) -> bool:
        """The decision rule: a p-value below, or a distance at or above, the threshold."""
        return score < threshold if self.p_value else score >= threshold


def _ks(ref: FittedColumn, cur: CurrentColumn) -> float:
    return cur.ks_p_value(ref)


def _wasserstein(ref: FittedColumn, cur: CurrentColumn) -> float:
    return cur.ecdf(ref)[1] / max(ref.std, 1e-3)  # Evidently's floor on the std


def _counts(ref: FittedColumn, cur: CurrentColumn) -> tuple[np.ndarray, np.ndarray]:
    _, r, c = stats.aligned_counts(ref.counts, cur.counts(ref))
    return r, c


def _chisquare(ref: FittedColumn, cur: CurrentColumn) -> float:
    r, c = _counts(ref, cur)
    return stats.chi2_test(stats.pool_sparse(r, c, ref.min_expected))


def _z(ref: FittedColumn, cur: CurrentColumn) -> float:
    r, c = _counts(ref, cur)
    if r.size > 2:  # a third category appeared in the current window: compare all of them
        return stats.chi2_test(stats.pool_sparse(r, c, ref.min_expected))
    if r.size < 2:
        return 1.0
    return stats.two_proportion_z(r, c)


def _jensenshannon(ref: FittedColumn, cur: CurrentColumn) -> float:
    r, c = _counts(ref, cur)
    return stats.jensen_shannon(r, c)


def _psi(ref: FittedColumn, cur: CurrentColumn) -> float:
    if ref.discrete:
        r, c = _counts(ref, cur)
        return stats.psi_shares(r, c)
    return stats.psi_shares(
        stats.binned_counts(ref.sorted, ref.psi_edges), cur.binned(ref.psi_edges)
    )


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", frozenset({"numeric"}), 0.05, True, "Kolmogorov–Smirnov p-value", _ks),
        Method(
            "wasserstein",
            frozenset({"numeric"}),
            0.1,
            False,
            "Wasserstein distance / reference std",
            _wasserstein,
        ),
        Method(
            "chisquare", frozenset({"categorical"}), 0.05, True, "chi-square p-value", _chisquare
        ),
        Method("z", frozenset({"categorical"}), 0.05, True, "two-proportion Z p-value", _z),
        Method(
            "jensenshannon",
            frozenset({"categorical"}),
            0.1,
            False,
            "Jensen–Shannon distance",
            _jensenshannon,
        ),
        Method("psi", frozenset({"numeric", "categorical"}), 0.1, False, "PSI", _psi),
    )
}


def get_method(name: str, *, kind: str, feature: str) -> Method:
    """The method called ``name``, checked against the column kind it is asked for.

    Raises
    ------
    ConfigError
        Unknown method, or one that does not take this kind of column.
    """
    method = METHODS.get(name)
    if method is None:
        raise ConfigError(
            f"unknown drift method {name!r} for feature {feature!r}; expected one of "
            f"{', '.join(METHODS)}",
            reason="unknown_method",
        )
    if kind not in method.kinds:
        raise ConfigError(
            f"drift method {name!r} does not take {kind} columns (feature {feature!r}); it "
            f"takes {' and '.join(sorted(method.kinds))} ones",
            reason="unknown_method",
        )
    return method


def default_method(kind: ColumnKind, *, reference_rows: int, distinct: int) -> str:
    """The default method of a column (Evidently 0.7's choice).

    Parameters
    ----------
    kind : {"numeric", "categorical"}
        The column's declared kind.
    reference_rows : int
        Rows of the reference.
    distinct : int
        Distinct values of the column in the reference.

    Returns
    -------
    str
        A key of :data:`METHODS`.
    """
    continuous = kind == "numeric" and distinct > DISCRETE_MAX_DISTINCT
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if continuous:
            return "ks"
        return "z" if distinct <= 2 else "chisquare"
    return "wasserstein" if continuous else "jensenshannon"
