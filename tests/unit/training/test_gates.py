"""Quality gates: each gate passes a sound model and catches the fault it exists for."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import numpy as np
import pytest

from regressops.config import GateSettings, Settings
from regressops.data.split import train_test_indices
from regressops.datasets import DATASETS
from regressops.errors import GateFailed
from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle
from regressops.models.catalog import make_estimator, to_bundle
from regressops.training.gates import edge_records, evaluate_gates, raise_if_failed


def _settings(**gates: Any) -> Settings:
    return Settings(home="/nonexistent", gates=GateSettings(**gates))


@pytest.fixture(scope="module")
def diabetes() -> dict[str, Any]:
    info = DATASETS["diabetes"]
    frame = info.load()
    split = train_test_indices(len(frame), test_size=0.2, random_state=42)
    train, test = frame.iloc[split.train], frame.iloc[split.test]
    spec = FeatureSpec.fit(train, features=list(info.features), target=info.target)
    est = make_estimator("linear").fit(spec.transform(train), train[info.target])
    bundle = to_bundle("linear", est, name="diabetes", spec=spec, lineage={"dataset": "diabetes"})
    return {"train": train, "test": test, "spec": spec, "bundle": bundle}


def _checks(report: Any) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


def test_sound_linear_model_passes_every_gate(diabetes: dict[str, Any]) -> None:
    report = evaluate_gates(diabetes["bundle"], diabetes["test"], settings=_settings())
    checks = _checks(report)
    assert report.passed, report.summary()
    assert {"finite", "min_r2", "beats_champion", "edge_records", "invariance", "latency"} <= set(
        checks
    )
    assert {"directional:bmi", "directional:s5"} <= set(checks)
    assert checks["beats_champion"].skipped
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["passed"] is True and doc["n_rows"] == len(diabetes["test"])
    raise_if_failed(report)


def test_absolute_bounds_and_per_dataset_override(diabetes: dict[str, Any]) -> None:
    report = evaluate_gates(diabetes["bundle"], diabetes["test"], settings=_settings(min_r2=0.99))
    assert [c.name for c in report.failed] == ["min_r2"]
    with pytest.raises(GateFailed, match=r"quality gates failed: min_r2: r2 0\.45.* not >= 0\.99"):
        raise_if_failed(report)
    relaxed = _settings(
        min_r2=0.99, max_rmse=1.0, datasets={"diabetes": {"min_r2": 0.1, "max_rmse": 100}}
    )
    assert evaluate_gates(diabetes["bundle"], diabetes["test"], settings=relaxed).passed


def test_non_finite_predictions_fail_first(diabetes: dict[str, Any]) -> None:
    coef = diabetes["bundle"].coef.copy()
    coef[0] = np.nan
    bad = dataclasses.replace(diabetes["bundle"], coef=coef)
    report = evaluate_gates(bad, diabetes["test"], settings=_settings())
    assert [c.name for c in report.checks] == ["finite"] and not report.passed


def test_champion_comparison_on_the_same_rows(diabetes: dict[str, Any]) -> None:
    d = diabetes
    bmi_spec = FeatureSpec.fit(d["train"], features=["bmi"], target="target")
    weak = make_estimator("linear").fit(bmi_spec.transform(d["train"]), d["train"]["target"])
    weak_bundle = to_bundle("linear", weak, name="diabetes", spec=bmi_spec)
    # the full model beats the bmi-only champion ...
    report = evaluate_gates(d["bundle"], d["test"], champion=weak_bundle, settings=_settings())
    check = _checks(report)["beats_champion"]
    assert check.passed and not check.skipped
    assert report.champion is not None and report.champion["metrics"]["rmse"] > check.value
    # ... but not the other way round, unless a tolerance allows it
    report = evaluate_gates(weak_bundle, d["test"], champion=d["bundle"], settings=_settings())
    assert [c.name for c in report.failed] == ["beats_champion"]
    tolerant = _settings(min_improvement=-0.5)
    assert evaluate_gates(weak_bundle, d["test"], champion=d["bundle"], settings=tolerant).passed
    # the same model ties and passes with min_improvement=0
    assert evaluate_gates(d["bundle"], d["test"], champion=d["bundle"], settings=_settings()).passed


def test_champion_that_cannot_score_the_rows_fails_the_gate(diabetes: dict[str, Any]) -> None:
    d = diabetes
    rows = d["test"].drop(columns=["s6"])
    bmi_spec = FeatureSpec.fit(d["train"], features=["bmi"], target="target")
    cand = to_bundle(
        "linear",
        make_estimator("linear").fit(bmi_spec.transform(d["train"]), d["train"]["target"]),
        name="diabetes",
        spec=bmi_spec,
    )
    report = evaluate_gates(cand, rows, champion=d["bundle"], settings=_settings())
    check = _checks(report)["beats_champion"]
    assert not check.passed and "cannot score these rows" in check.detail and "s6" in check.detail


def test_wrong_direction_is_caught(diabetes: dict[str, Any]) -> None:
    d = diabetes
    coef = d["bundle"].coef.copy()
    coef[d["spec"].output_names.index("bmi")] *= -1
    flipped = dataclasses.replace(d["bundle"], coef=coef)
    report = evaluate_gates(flipped, d["test"], settings=_settings(min_r2=None))
    assert "directional:bmi" in [c.name for c in report.failed]
    assert _checks(report)["directional:s5"].passed


def test_configured_categorical_direction(tmp_path: Any) -> None:
    info = DATASETS["insurance"]
    frame = info.load()
    spec = FeatureSpec.fit(
        frame, features=list(info.features), target=info.target, categorical=list(info.categorical)
    )
    est = make_estimator("linear").fit(spec.transform(frame), frame[info.target])
    bundle = to_bundle("linear", est, name="insurance", spec=spec)
    ok = evaluate_gates(bundle, frame.head(200), settings=_settings())
    assert _checks(ok)["directional:smoker"].passed
    wrong = _settings(directional={"insurance": {"smoker": "yes<no", "region": "mars<venus"}})
    checks = _checks(evaluate_gates(bundle, frame.head(200), settings=wrong))
    assert not checks["directional:smoker"].passed
    assert "must be 'a<b' over categories" in checks["directional:region"].detail


class _Odd:
    """An estimator with a configurable fault, for the gates that generic models can break."""

    def __init__(self, mode: str, n: int) -> None:
        self.mode, self.n_features_in_ = mode, n

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.mode == "batch":  # depends on the other rows of the batch
            return X[:, 0] - X[:, 0].mean()
        if self.mode == "slow":
            time.sleep(0.003)
        if self.mode == "explode":  # fine inside the data, absurd at the edges
            return np.where(np.abs(X[:, 0]) > 2.0, 1e9, 150 + 10 * X[:, 0])
        return 150 + 10 * X[:, 0]


def _odd(diabetes: dict[str, Any], mode: str) -> ModelBundle:
    spec = diabetes["spec"]
    return ModelBundle(name="diabetes", kind="odd", spec=spec, estimator=_Odd(mode, spec.n_outputs))


def test_batch_dependent_model_fails_invariance(diabetes: dict[str, Any]) -> None:
    report = evaluate_gates(
        _odd(diabetes, "batch"), diabetes["test"], settings=_settings(min_r2=None)
    )
    assert "invariance" in [c.name for c in report.failed]
    assert "alone predicts differently" in _checks(report)["invariance"].detail


def test_absurd_edge_predictions_fail(diabetes: dict[str, Any]) -> None:
    report = evaluate_gates(
        _odd(diabetes, "explode"), diabetes["test"], settings=_settings(min_r2=None)
    )
    assert "edge_records" in [c.name for c in report.failed]
    assert len(edge_records(diabetes["bundle"])) == 2 + 2 * 10


def test_latency_budget(diabetes: dict[str, Any]) -> None:
    report = evaluate_gates(
        _odd(diabetes, "slow"),
        diabetes["test"],
        settings=_settings(min_r2=None, max_latency_ms=1.0),
    )
    check = _checks(report)["latency"]
    assert not check.passed and check.value is not None and check.value >= 3.0
