"""The detector: FDR adjustment and its 'watch' status, threads, per-feature missing data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regressops.config import MonitorSettings
from regressops.monitoring.drift import DriftDetector
from regressops.monitoring.reference import build_reference
from regressops.monitoring.tables import TableWindow

KINDS = {f"x{i}": "numeric" for i in range(10)}


def frames(shift: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(rng.normal(size=(400, 10)), columns=list(KINDS))
    cur = pd.DataFrame(rng.normal(size=(400, 10)), columns=list(KINDS))
    cur["x0"] += shift
    return ref, cur


def judge(ref: pd.DataFrame, cur: pd.DataFrame, **settings: object) -> dict:
    profile = build_reference(ref, kinds=KINDS, source="test")
    detector = DriftDetector(settings=MonitorSettings(**settings)).fit(profile)  # type: ignore[arg-type]
    return detector.calculate(TableWindow(cur, KINDS)).to_dict()


def test_raw_p_below_threshold_but_not_after_adjustment_is_watch_not_drift() -> None:
    # find a shift whose raw KS p-value lands between 0.005 and 0.05 (adjusted above 0.05)
    for shift in np.linspace(0.1, 0.3, 21):
        ref, cur = frames(float(shift))
        off = judge(ref, cur, fdr=False)["features"]["x0"]
        if 0.005 < off["score"] < 0.05:
            break
    else:
        pytest.fail("no shift gave a p-value in (0.005, 0.05)")
    on = judge(ref, cur)
    assert off["drifted"] is True
    assert on["features"]["x0"]["status"] == "watch" and on["features"]["x0"]["drifted"] is False
    assert on["features"]["x0"]["p_adjusted"] > on["features"]["x0"]["score"]
    assert "x0" in on["watch_features"] and "x0" not in on["drifted_features"]


def test_a_clear_shift_drifts_with_fdr_and_threads_change_nothing() -> None:
    ref, cur = frames(0.6, seed=1)
    profile = build_reference(ref, kinds=KINDS, source="test")
    one = DriftDetector(workers=1).fit(profile).calculate(TableWindow(cur, KINDS)).to_dict()
    two = DriftDetector(workers=2).fit(profile).calculate(TableWindow(cur, KINDS)).to_dict()
    assert one == two
    assert one["drifted_features"] == ["x0"]


def test_a_feature_with_too_few_values_is_not_enough_data_alone() -> None:
    ref, cur = frames(0.0)
    cur.loc[cur.index[20:], "x3"] = np.nan  # 20 values left, min_rows 30
    doc = judge(ref, cur)
    assert doc["features"]["x3"]["status"] == "not_enough_data"
    assert doc["features"]["x3"]["current_missing"] == 380
    assert doc["status"] == "ok"  # the other nine are judged
