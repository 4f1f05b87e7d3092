"""Training on the lake: which data, time travel bit for bit, lineage, and `data show`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from helpers.data import make_settings
from regressops.config import Settings
from regressops.data.catalog import describe
from regressops.data.demo_db import DemoDbResult
from regressops.data.extract import extract
from regressops.data.validate import validate
from regressops.errors import ConfigError, DataError
from regressops.training.sources import load_training_data
from regressops.training.train import train


def _model(path: Path) -> dict[str, Any]:
    doc = json.loads((path / "model.json").read_text())
    doc.pop("created_at", None)
    return doc


def _grow(settings: Settings) -> None:
    with sqlite3.connect(settings.home / "demo.db") as db:
        db.execute(
            "INSERT INTO insurance SELECT id + 2000, age, sex, bmi + 1, children, smoker, region, "
            "charges * 1.05 FROM insurance WHERE id <= 300"
        )


def test_clean_lake_data_equals_the_builtin_copy(
    settings: Settings, insurance_db: DemoDbResult, home: Path
) -> None:
    builtin = load_training_data("insurance", settings=settings)
    assert builtin.lineage["source"] == "dataset"
    extract("insurance", settings=settings)
    validate("insurance", settings=settings)
    lake = load_training_data("insurance", settings=settings)
    assert lake.lineage["source"] == "lake" and lake.lineage["clean_version"] == 0
    assert lake.lineage["content_hash"] == builtin.lineage["content_hash"]
    a = train(dataset="insurance", settings=settings, plots=False, output=home / "a")
    b = train(
        dataset="insurance",
        settings=make_settings(home / "elsewhere"),
        plots=False,
        output=home / "b",
    )
    assert b.bundle.lineage["source"] == "dataset"
    assert _model(a.path)["coef"] == _model(b.path)["coef"]


def test_time_travel_reproduces_a_model_bit_for_bit(
    settings: Settings, messy_db: DemoDbResult, home: Path
) -> None:
    extract("insurance", settings=settings)
    validate("insurance", settings=settings, on_fail="quarantine")
    first = train(dataset="insurance", settings=settings, plots=False, output=home / "m0")
    _grow(settings)
    extract("insurance", settings=settings)
    validate("insurance", settings=settings, on_fail="quarantine")
    latest = train(dataset="insurance", settings=settings, plots=False, output=home / "m1")
    again = train(
        dataset="insurance", settings=settings, plots=False, output=home / "m0b", data_version=0
    )
    assert latest.bundle.lineage["clean_version"] == 1
    assert _model(latest.path) != _model(first.path)
    assert _model(again.path) == _model(first.path)
    assert (home / "m0b" / "model.json").read_bytes() != b""
    assert again.metrics == first.metrics
    assert again.bundle.lineage["content_hash"] == first.bundle.lineage["content_hash"]


def test_lineage_names_everything_needed_to_walk_back(
    settings: Settings, messy_db: DemoDbResult, home: Path
) -> None:
    extracted = extract("insurance", settings=settings)
    validated = validate("insurance", settings=settings, on_fail="quarantine")
    result = train(dataset="insurance", settings=settings, plots=False, output=home / "m")
    lineage = json.loads((result.path / "lineage.json").read_text())
    assert lineage["source"] == "lake" and lineage["dataset"] == "insurance"
    assert lineage["source_url"] == extracted.source and lineage["source_table"] == "insurance"
    assert lineage["extracted_at"] == extracted.extracted_at
    assert (lineage["raw_version"], lineage["clean_version"]) == (0, 0)
    assert Path(lineage["validation_report"]) == validated.report_json.resolve()
    assert Path(lineage["validation_report"]).is_file()
    assert lineage["raw_rows"] == 1364
    assert lineage["clean_rows"] == lineage["rows"] == validated.rows["clean"]
    assert lineage["quarantined_rows"] == validated.rows["quarantined"]
    assert len(lineage["content_hash"]) == 64
    assert lineage["split"]["method"] == "shuffle" and lineage["split"]["random_state"] == 42


def test_key_hash_split_keeps_rows_on_their_side(
    settings: Settings, insurance_db: DemoDbResult, home: Path
) -> None:
    extract("insurance", settings=settings)
    validate("insurance", settings=settings)
    small = load_training_data("insurance", settings=settings, key="id")
    first = train(dataset="insurance", settings=settings, plots=False, split_key="id")
    assert first.bundle.lineage["split"]["method"] == "key_hash"
    _grow(settings)
    extract("insurance", settings=settings)
    validate("insurance", settings=settings)
    from regressops.data.split import key_hash_indices

    grown = load_training_data("insurance", settings=settings, key="id")
    assert small.keys is not None and grown.keys is not None
    before = set(small.keys[key_hash_indices(small.keys, test_size=0.2).test].tolist())
    after = set(grown.keys[key_hash_indices(grown.keys, test_size=0.2).test].tolist())
    assert before <= after and len(after) > len(before)


def test_data_version_needs_a_lake_dataset(settings: Settings) -> None:
    with pytest.raises(ConfigError) as info:
        load_training_data("insurance", settings=settings, data_version=0)
    assert info.value.reason == "not_validated"


def test_a_declared_dataset_must_be_extracted_before_training(home: Path) -> None:
    declared = {"target": "y", "columns": {"x": {"dtype": "float"}, "y": {"dtype": "float"}}}
    settings = make_settings(home, datasets={"mine": declared})
    with pytest.raises(DataError, match="no clean version in the lake"):
        load_training_data("mine", settings=settings)


def test_data_show_describes_versions_and_reports(
    settings: Settings, messy_db: DemoDbResult
) -> None:
    assert describe(settings=settings)["datasets"] == []
    with pytest.raises(DataError, match="nothing in the lake"):
        describe("insurance", settings=settings)
    extract("insurance", settings=settings)
    validate("insurance", settings=settings, on_fail="quarantine")
    overview = describe(settings=settings)["datasets"]
    assert overview == [
        {
            "dataset": "insurance",
            "raw": {"version": 0, "rows": 1364},
            "clean": {"version": 0, "rows": 1273},
            "quarantine": {"version": 0, "rows": 91},
        }
    ]
    doc = describe("insurance", version=0, settings=settings)
    assert [v["version"] for v in doc["tables"]["raw"]] == [0]
    assert doc["tables"]["clean"][0]["summary"].startswith("raw v0: quarantined, 91/1364")
    detail = doc["detail"]
    assert detail["raw_version"] == 0 and detail["source_table"] == "insurance"
    assert any(c["status"] == "failed" for c in detail["checks"])
    assert detail["meta"]["status"] == "passed"
    with pytest.raises(DataError, match="no version 3"):
        describe("insurance", version=3, settings=settings)


def test_the_quickstart_data_path(settings: Settings) -> None:
    from regressops.pipelines.data_path import run_data_path

    first = run_data_path("diabetes", settings=settings)
    assert first.extract.rows_new == 442 and first.validation.status == "passed"
    again = run_data_path("diabetes", settings=settings)  # a re-run extracts nothing new
    assert not again.extract.created and again.extract.raw_version == 0
    assert again.validation.clean_version == 1
    artefacts = again.to_dict()["artefacts"]
    assert set(artefacts) == {
        "source database",
        "raw Delta table",
        "clean Delta table",
        "validation report",
    }
    assert Path(again.validation.report_json).is_file()
    data = load_training_data("diabetes", settings=settings)
    assert data.lineage["source"] == "lake" and data.lineage["clean_version"] == 1


def test_gates_and_evaluation_use_the_rows_a_model_was_trained_on(
    settings: Settings, insurance_db: DemoDbResult, home: Path
) -> None:
    """--data-version and --split-key flow through recording (gates) and evaluate --test-rows."""
    from regressops.training.candidates import train_candidates
    from regressops.training.evaluate import evaluate

    extract("insurance", settings=settings)
    validate("insurance", settings=settings)
    _grow(settings)
    extract("insurance", settings=settings)
    validate("insurance", settings=settings)  # clean v1 has 300 more rows
    recorded = train_candidates(
        models=["linear"],
        dataset="insurance",
        data_version=0,
        split_key="id",
        cv=0,
        track=False,
        settings=settings,
        plots=False,
        output=home / "v0",
    )
    best = recorded.candidates[0]
    n_test = best.result.metrics["n_test"]
    assert best.result.bundle.lineage["clean_version"] == 0
    assert best.gates.n_rows == n_test  # gates scored the model's own test rows of v0
    # evaluate --test-rows reads clean v0 (not the newest, v1) and rebuilds the key-hash split
    scored = evaluate(home / "v0", dataset="insurance", rows="test", settings=settings)
    assert scored.metrics["n"] == n_test
    assert scored.metrics["rmse"] == pytest.approx(best.result.metrics["rmse"], rel=1e-12)
