"""The live drift of the server: the rolling window (a ring buffer) and its numpy-only verdicts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from regressops.config import MonitorFeature, MonitorSettings
from regressops.monitoring import stats
from regressops.monitoring.live import LIVE_METHODS, LiveDrift, LiveResult, RollingWindow
from regressops.monitoring.reference import build_reference


def _ordered(n: int, start: int = 0) -> np.ndarray:
    """Rows ``start .. start+n-1`` of two columns (the row number and its negative)."""
    r = np.arange(start, start + n, dtype=np.float64)
    return np.column_stack([r, -r])


def test_the_window_keeps_the_newest_rows_in_order() -> None:
    w = RollingWindow({"a": "numeric", "b": "numeric"}, capacity=5)
    w.extend([_ordered(3)])
    assert w.size == 3 and w.values("a").tolist() == [0, 1, 2]
    w.extend([_ordered(1, 3), _ordered(3, 4)])  # wraps around
    assert w.size == 5 and w.added == 7
    assert w.values("a").tolist() == [2, 3, 4, 5, 6]
    assert w.values("b").tolist() == [-2, -3, -4, -5, -6]
    w.extend([_ordered(12, 7)])  # one block larger than the window: its last rows
    assert w.values("a").tolist() == [14, 15, 16, 17, 18] and w.added == 19
    # a tree model's requests come as matrices (rows) or columns (records), mixed in one drain
    w.extend([_ordered(1, 19), {"a": [20.0, 21.0], "b": [-20.0, -21.0]}, _ordered(1, 22)])
    assert w.values("a").tolist() == [18, 19, 20, 21, 22]
    assert w.values("b").tolist() == [-18, -19, -20, -21, -22]


def test_the_window_takes_column_blocks_of_a_mixed_model() -> None:
    w = RollingWindow({"x": "numeric", "c": "categorical"}, capacity=4)
    w.extend([{"x": np.array([1.0, 2.0]), "c": ["a", "b"]}, {"x": [3.0], "c": ["a"]}])
    w.extend([{"x": [4.0, 5.0, 6.0], "c": ["c", "c", "b"]}])
    assert w.values("x").tolist() == [3.0, 4.0, 5.0, 6.0]
    assert w.values("c").tolist() == ["a", "c", "c", "b"]
    snap = w.snapshot()
    assert snap.rows == 4 and snap.column("c").counts(None) == {"a": 1, "c": 2, "b": 1}  # type: ignore[arg-type]
    assert snap.prediction() is None


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 4000
    return pd.DataFrame(
        {
            "x": rng.normal(10, 2, n),
            "y": rng.exponential(1.0, n),
            "k": rng.integers(0, 3, n).astype(float),  # discrete: 3 values
            "c": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )


KINDS = {"x": "numeric", "y": "numeric", "k": "numeric", "c": "categorical"}


def _window(frame: pd.DataFrame, capacity: int = 10_000) -> RollingWindow:
    w = RollingWindow(KINDS, capacity)
    w.extend([{n: frame[n].tolist() for n in KINDS}])
    return w


def test_identical_data_never_drifts_and_a_shifted_feature_does(table: pd.DataFrame) -> None:
    live = LiveDrift(build_reference(table, kinds=KINDS, source="t"))
    same = live.calculate(_window(table), model="m", version="1")
    assert [f.name for f in same.features] == list(KINDS)
    assert all(f.score == pytest.approx(0.0, abs=1e-12) and not f.drifted for f in same.features)
    assert not same.dataset_drift and same.window_rows == len(table)
    methods = {f.name: f.method for f in same.features}
    assert methods == {"x": "wasserstein", "y": "wasserstein", "k": "jensenshannon",
                       "c": "jensenshannon"}  # fmt: skip

    shifted = table.copy()
    shifted["x"] += 0.5 * table["x"].std(ddof=0)
    result = live.calculate(_window(shifted), model="m", version="1")
    verdict = {f.name: f.drifted for f in result.features}
    assert verdict == {"x": True, "y": False, "k": False, "c": False}
    assert next(f.score for f in result.features if f.name == "x") == pytest.approx(0.5)
    assert LiveResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_window_of_the_last_rows_only_sees_the_recent_shift(table: pd.DataFrame) -> None:
    live = LiveDrift(build_reference(table, kinds=KINDS, source="t"))
    w = _window(table, capacity=len(table))
    moved = table.copy()
    moved["c"] = "blue"  # every new row is blue
    w.extend([{n: moved[n].tolist()[:1000] for n in KINDS}])  # a quarter of the window
    verdict = {f.name: f.drifted for f in live.calculate(w, model="m", version="1").features}
    assert verdict == {"x": False, "y": False, "k": False, "c": True}


def test_p_value_methods_fall_back_to_numpy_distances(table: pd.DataFrame) -> None:
    small = table.iloc[:500]  # a reference of at most 1,000 rows: KS, chi-square, Z by default
    settings = MonitorSettings(features={"y": MonitorFeature(method="psi", threshold=0.2)})
    live = LiveDrift(build_reference(small, kinds=KINDS, source="t"), settings)
    assert live.replaced == {"x": "wasserstein", "k": "jensenshannon", "c": "jensenshannon"}
    result = live.calculate(_window(small), model="m", version="1")
    used = {f.name: (f.method, f.threshold) for f in result.features}
    assert used == {"x": ("wasserstein", 0.1), "y": ("psi", 0.2), "k": ("jensenshannon", 0.1),
                    "c": ("jensenshannon", 0.1)}  # fmt: skip
    assert {m for m, _ in used.values()} <= LIVE_METHODS


def test_jensen_shannon_equals_scipy() -> None:
    rng = np.random.default_rng(0)
    for r, c in [
        (np.array([120.0, 80.0, 0.0]), np.array([60.0, 90.0, 10.0])),
        (rng.integers(0, 50, 20).astype(float), rng.integers(0, 50, 20).astype(float)),
    ]:
        expected = float(jensenshannon(r, c))
        assert stats.jensen_shannon(r, c) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_the_live_computation_imports_no_scipy() -> None:
    code = """
import sys, json
import numpy as np
from regressops.monitoring.live import LiveDrift, RollingWindow
from regressops.monitoring.reference import (
    ReferenceProfile, categorical_profile, numeric_profile)
rng = np.random.default_rng(0)
x, c = rng.normal(size=3000), rng.choice(["a", "b"], 3000).tolist()
ref = ReferenceProfile("t", 3000, {"x": numeric_profile(x), "c": categorical_profile(c)})
live = LiveDrift(ref)
w = RollingWindow({"x": "numeric", "c": "categorical"}, 1000)
w.extend([{"x": x[:1000] + 1.0, "c": c[:1000]}])
r = live.calculate(w, model="m", version="1")
print(json.dumps({"drifted": [f.name for f in r.features if f.drifted],
                  "heavy": [m for m in ("scipy", "pandas", "sklearn") if m in sys.modules]}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"drifted": ["x"], "heavy": []}
