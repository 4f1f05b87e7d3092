"""Model bundle: round trip without pickle, atomic saves, clear errors for bad bundles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regressops.errors import BundleError
from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle, load_bundle

DATA = {
    "age": [19, 33, 50, 41, 27, 60],
    "smoker": ["yes", "no", "no", "yes", "no", "no"],
    "charges": [16884.9, 4449.5, 8240.6, 40000.0, 3000.0, 12000.0],
}


@pytest.fixture
def bundle() -> ModelBundle:
    spec = FeatureSpec.fit(DATA, target="charges")
    return ModelBundle(
        name="insurance-mini",
        kind="linear",
        spec=spec,
        coef=np.array([1234.5, -200.25, 9000.125]),
        intercept=8000.0,
        params={"solver": "exact", "alpha": 0.0, "tol": None},
        metrics={"r2": 0.9, "rmse": 10.0, "mse": 100.0, "mae": 8.0, "train": {"r2": 0.95}},
        lineage={"source": "file", "rows": 6, "content_hash": "ab" * 32, "nan": float("nan")},
        created_at="2026-01-01T00:00:00+00:00",
    )


def test_round_trip(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "b")
    assert sorted(p.name for p in path.iterdir()) == ["lineage.json", "metrics.json", "model.json"]
    back = load_bundle(path)
    assert back.name == bundle.name
    assert back.kind == "linear"
    assert back.spec == bundle.spec
    np.testing.assert_array_equal(back.coef, bundle.coef)
    assert back.intercept == bundle.intercept
    assert back.params == bundle.params
    assert back.metrics == bundle.metrics
    assert back.lineage["content_hash"] == "ab" * 32
    assert back.lineage["nan"] is None  # non-finite values are stored as null
    assert back.created_at == bundle.created_at
    frame = pd.DataFrame(DATA)
    np.testing.assert_allclose(back.predict_frame(frame), bundle.predict_frame(frame))


def test_files_are_plain_json(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "b")
    doc = json.loads((path / "model.json").read_text())
    assert doc["format_version"] == 1
    assert doc["output_names"] == ["age", "smoker=no", "smoker=yes"]
    assert doc["coef"] == [1234.5, -200.25, 9000.125]
    assert doc["feature_spec"]["target"] == "charges"
    metrics = json.loads((path / "metrics.json").read_text())
    assert {"r2", "rmse", "mse", "mae"} <= set(metrics)


def test_predictions_are_the_linear_formula(bundle: ModelBundle) -> None:
    records = [{"age": 33, "smoker": "yes"}, {"age": 50, "smoker": "no"}]
    X = bundle.spec.transform_records(records)
    expected = X @ bundle.coef + bundle.intercept
    np.testing.assert_array_equal(bundle.predict_records(records), expected)
    np.testing.assert_array_equal(bundle.predict_frame(pd.DataFrame(records)), expected)


def test_linear_bundle_loads_and_predicts_with_numpy_only(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    path = bundle.save(tmp_path / "b")
    code = (
        "import sys, json\n"
        "from regressops.models.bundle import load_bundle\n"
        f"b = load_bundle({str(path)!r})\n"
        "p = b.predict_records([{'age': 33, 'smoker': 'yes'}])\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'scipy', 'mlflow', 'matplotlib') "
        "if m in sys.modules]\n"
        "print(json.dumps({'pred': float(p[0]), 'heavy': heavy}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    result = json.loads(out.stdout)
    assert result["heavy"] == []
    assert result["pred"] == pytest.approx(
        bundle.predict_records([{"age": 33, "smoker": "yes"}])[0]
    )


def test_a_failed_save_leaves_nothing(bundle: ModelBundle, tmp_path: Path) -> None:
    def broken(directory: Path) -> dict:
        (directory / "half-written.bin").write_bytes(b"\0" * 10)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        bundle.save(tmp_path / "b", write_artifacts=broken)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_old_bundle(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "b")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    bundle.intercept = -1.0

    def broken(directory: Path) -> dict:
        raise OSError("no space left")

    with pytest.raises(OSError, match="no space"):
        bundle.save(path, write_artifacts=broken)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_overwrite_replaces_and_can_be_refused(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "b")
    bundle.intercept = 1.0
    bundle.save(path)
    assert load_bundle(path).intercept == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    with pytest.raises(BundleError, match="exists"):
        bundle.save(path, overwrite=False)


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no model bundle") as info:
        load_bundle(tmp_path / "nowhere")
    assert info.value.reason == "bundle_not_found"
    assert info.value.exit_code == 4


def _corrupt(path: Path, **changes: object) -> None:
    doc = json.loads((path / "model.json").read_text())
    doc.update(changes)
    (path / "model.json").write_text(json.dumps(doc))


def test_corrupt_bundles_are_refused(bundle: ModelBundle, tmp_path: Path) -> None:
    path = bundle.save(tmp_path / "b")
    (path / "model.json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot read"):
        load_bundle(path)

    path = bundle.save(tmp_path / "b")
    (path / "model.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="JSON object"):
        load_bundle(path)

    path = bundle.save(tmp_path / "b")
    _corrupt(path, format_version=2)
    with pytest.raises(BundleError, match="format version") as info:
        load_bundle(path)
    assert info.value.reason == "unsupported_format"

    path = bundle.save(tmp_path / "b")
    _corrupt(path, coef=[1.0, 2.0])
    with pytest.raises(BundleError, match="coefficients"):
        load_bundle(path)

    path = bundle.save(tmp_path / "b")
    _corrupt(path, feature_spec={"format_version": 1})
    with pytest.raises(BundleError, match=r"invalid model\.json"):
        load_bundle(path)

    path = bundle.save(tmp_path / "b")
    doc = json.loads((path / "model.json").read_text())
    del doc["coef"]
    doc["artifact_format"] = "pickle"
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="artefact format") as info:
        load_bundle(path)
    assert info.value.reason == "unsupported_kind"

    path = bundle.save(tmp_path / "b")
    (path / "metrics.json").write_text("garbage")
    with pytest.raises(BundleError, match=r"metrics\.json"):
        load_bundle(path)
