"""The retrain loop's decisions without training: the trigger rule, the lock, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regressops.config import Settings
from regressops.errors import ConfigError, RegistryError, SourceError
from regressops.pipelines.retrain import RetrainRequest, _decide, _retrain_lock, retrain


def _doc(status: str, degraded: bool = False) -> dict:
    return {"status": status, "drifted_features": ["bmi"], "performance": {"degraded": degraded}}


@pytest.mark.parametrize(
    ("when", "rows", "doc", "fires"),
    [
        ("drift", 10, _doc("drift"), True),
        ("drift", 10, _doc("ok", degraded=True), False),
        ("drift", 0, None, False),
        ("performance", 10, _doc("ok", degraded=True), True),
        ("performance", 10, _doc("drift"), False),
        ("always", 0, None, True),
    ],
)
def test_the_trigger_fires_only_on_its_own_verdict(
    when: str, rows: int, doc: dict | None, fires: bool
) -> None:
    fired, why = _decide(when, rows, doc)
    assert fired is fires and why


def test_no_new_rows_says_so() -> None:
    assert "no rows the lake lacks" in _decide("drift", 0, None)[1]


def test_a_second_retrain_of_the_same_dataset_is_refused_while_one_runs(home: Path) -> None:
    settings = Settings(home=home, retrain={"lock_timeout": 0})
    with _retrain_lock(settings, "diabetes"), pytest.raises(RegistryError) as info:
        retrain(RetrainRequest(dataset="diabetes"), settings=settings)
    assert info.value.reason == "retrain_busy" and info.value.exit_code == 6
    (record,) = (home / "retrain").glob("*.json")
    doc = json.loads(record.read_text())
    assert doc["status"] == "failed" and doc["events"] == []  # busy: no retrain.failed event
    with _retrain_lock(settings, "other"):  # another dataset is not blocked
        pass


def test_an_unknown_trigger_is_a_config_error(home: Path) -> None:
    with pytest.raises(ConfigError, match="--if takes"):
        retrain(RetrainRequest(dataset="diabetes", when="sometimes"), settings=Settings(home=home))  # type: ignore[arg-type]


def test_a_failed_retrain_names_its_stage_and_frees_the_lock(home: Path) -> None:
    settings = Settings(home=home, retrain={"lock_timeout": 0})  # no demo.db: no source
    with pytest.raises(SourceError) as info:
        retrain(RetrainRequest(dataset="diabetes", when="always"), settings=settings)
    assert info.value.exit_code == 5
    (record,) = (home / "retrain").glob("*.json")
    doc = json.loads(record.read_text())
    assert doc["status"] == "failed" and doc["error"]["stage"] == "peek_source"
    assert doc["error"]["reason"] == "source_not_found" and doc["events"] == ["retrain.failed"]
    with _retrain_lock(settings, "diabetes"):  # this process holds no lock any more
        pass


def test_a_challenger_that_beat_the_champion_is_named_in_the_reason() -> None:
    from regressops.pipelines.retrain import RetrainRecord, _shadow_note

    record = RetrainRecord(id="x", dataset="d", model="models:/d@champion", trigger="performance",
                           started_at="t")  # fmt: skip
    record.report = {"drift_json": "/r/drift.json"}
    shadow = {"better_than_champion": True, "model_version": "4", "rows_labelled": 80,
              "rmse": 1.0, "champion": {"rmse": 2.0}}  # fmt: skip
    note = _shadow_note({"performance": {"shadow": shadow}}, record, "d")
    assert note == (
        "; @challenger v4 beat the champion on 80 labelled new rows (rmse 1 vs 2); promote it "
        "with `regressops models promote d 4 --evidence /r/drift.json`"
    )
    shadow["better_than_champion"] = False
    assert _shadow_note({"performance": {"shadow": shadow}}, record, "d") == ""
    assert _shadow_note(None, record, "d") == ""
