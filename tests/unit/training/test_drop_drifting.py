"""``train(drop_drifting=drift.json)``: retrain without the drifted features (in the lineage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regressops.errors import ConfigError, DataError
from regressops.monitoring.reference import load_reference
from regressops.training.train import train


def test_drifted_features_are_dropped_and_recorded(tmp_path: Path) -> None:
    report = tmp_path / "drift.json"
    report.write_text(json.dumps({"status": "ok", "drifted_features": ["bmi", "s5", "zz"]}))
    result = train(dataset="diabetes", output=tmp_path / "b", plots=False, drop_drifting=report)
    names = result.bundle.spec.names
    assert "bmi" not in names and "s5" not in names and len(names) == 8
    assert result.bundle.lineage["dropped_drifting"] == {
        "drift_report": str(report),
        "features": ["bmi", "s5"],
    }
    assert list(load_reference(result.path).features) == names


def test_a_report_that_drops_everything_or_is_not_a_report(tmp_path: Path) -> None:
    everything = tmp_path / "all.json"
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    everything.write_text(json.dumps({"drifted_features": names}))
    with pytest.raises(ConfigError, match="nothing would be left"):
        train(dataset="diabetes", output=tmp_path / "b", plots=False, drop_drifting=everything)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="not a drift report"):
        train(
            dataset="diabetes",
            output=tmp_path / "b",
            plots=False,
            drop_drifting=tmp_path / "bad.json",
        )
    assert not (tmp_path / "b").exists()
