"""A window's partition statistics answer the drift methods: exact counts, bounded KS/W1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.partitions import write_parts
from regressops.compute.engines import InProcessEngine
from regressops.compute.partitions import list_files
from regressops.compute.sketch import Moments, QuantileSummary
from regressops.compute.window import ColumnSketch, WindowPlan, sketch_window
from regressops.monitoring import stats
from regressops.monitoring.drift import FeatureDrift
from regressops.monitoring.fitted import CurrentColumn, FittedColumn
from regressops.monitoring.partitioned import SketchColumn
from regressops.monitoring.reference import numeric_profile


def _summary(values: np.ndarray, parts: int, k: int) -> QuantileSummary:
    pieces = [QuantileSummary.of(p, k) for p in np.array_split(values, parts)]
    out = pieces[0]
    for piece in pieces[1:]:
        out = out.merge(piece)
    return out


def _fitted(ref: np.ndarray, method: str) -> FittedColumn:
    return FittedColumn.fit(
        "x", numeric_profile(ref, sample_size=ref.size), reference_rows=ref.size, method=method
    )


def _judged(ref: FittedColumn, score: float) -> FeatureDrift:
    return FeatureDrift(
        "x", "numeric", ref.method.name, ref.threshold, "ok", score, False, None, 0, 0, 0, False
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["ks", "wasserstein"])
def test_summary_scores_are_within_their_stated_bound(seed: int, method: str) -> None:
    rng = np.random.default_rng(seed)
    ref = np.sort(rng.standard_normal(2_000))
    shape = seed % 3  # a normal, a heavy-tailed and a skewed window, shifted a little
    draw = [rng.standard_normal, rng.standard_cauchy, rng.exponential][shape]
    cur = draw(size=60_000) + 0.05 * seed
    fitted = _fitted(ref, method)
    exact = float(fitted.method.score(fitted, CurrentColumn(cur.copy())))
    summary = _summary(cur, parts=12, k=256)  # small summaries: a visible rank error
    sketched = SketchColumn(ColumnSketch(Moments.of(cur), summary))
    assert not sketched.exact and sketched.cdf_error > 0
    score = float(fitted.method.score(fitted, sketched))
    approx = sketched.approximation(fitted, _judged(fitted, score))
    low, high = approx["score_range"]
    assert low <= exact <= high
    assert abs(score - exact) <= approx["score_bound"] + 1e-15
    d_exact = stats.ks_wasserstein(ref, np.sort(cur))[0]
    assert abs(sketched.ecdf(fitted)[0] - d_exact) <= sketched.cdf_error + 1e-15


def test_an_uncompressed_summary_gives_the_in_process_scores_exactly() -> None:
    rng = np.random.default_rng(3)
    ref = np.sort(rng.standard_normal(500))
    cur = rng.standard_normal(900) + 0.2
    for method in ("ks", "wasserstein", "psi"):
        fitted = _fitted(ref, method)
        edges = fitted.psi_edges
        bins = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=edges.size + 1)
        sketched = SketchColumn(ColumnSketch(Moments.of(cur), _summary(cur, 3, 2048), bins))
        assert sketched.exact
        score = fitted.method.score(fitted, sketched)
        assert score == pytest.approx(fitted.method.score(fitted, CurrentColumn(cur.copy())))
        assert sketched.approximation(fitted, _judged(fitted, score)) == {"exact": True}


def test_window_sketches_merge_into_the_exact_counts_of_all_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    frame = pd.DataFrame(
        {
            "x": rng.standard_normal(n),
            "grade": rng.choice([1.0, 2.0, 3.0], n),
            "kind": rng.choice(["a", "b", None], n),
        }
    )
    frame.loc[frame.index[::7], "x"] = np.nan
    folder = write_parts(frame, tmp_path / "in", files=3, row_group=700)
    parts = list_files(folder, partition_rows=700).partitions
    edges = np.array([-1.0, 0.0, 0.5])
    plan = WindowPlan(numeric={"x": edges}, discrete=("grade",), categorical=("kind",))
    sketch = sketch_window(InProcessEngine(), parts, plan)
    assert sketch.rows == n and len(parts) > 3
    x = frame["x"].to_numpy()
    finite = np.sort(x[np.isfinite(x)])
    col = sketch.columns["x"]
    assert col.bins is not None
    assert col.bins.tolist() == stats.binned_counts(finite, edges).astype(int).tolist()
    assert (col.moments.count, col.moments.missing) == (finite.size, n - finite.size)
    assert col.moments.std == pytest.approx(finite.std(), rel=1e-12)
    grade = sketch.columns["grade"].values
    assert grade == {float(k): int(v) for k, v in frame["grade"].value_counts().items()}
    kind = sketch.columns["kind"]
    assert kind.counts is not None
    assert dict(kind.counts.counts) == frame["kind"].value_counts().to_dict()
    assert kind.missing == int(frame["kind"].isna().sum())
