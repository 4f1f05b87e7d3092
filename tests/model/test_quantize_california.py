"""The seed's California model quantised to int8: what it costs on the 4128 test rows.

Float (exact, all 8 features, 20% test, seed 42): R² 0.5758. Quantised per-tensor the R² may
not drop by more than 0.001 (``gates.max_quantization_r2_drop``) and no row may differ from the
float prediction by more than its bound ``(s/2)·Σ|x_j|``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.training import split_plan
from helpers.training import train_with as train
from regressops.config import Settings
from regressops.data.selection import DataSelection
from regressops.errors import GateFailed
from regressops.models.bundle import load_bundle
from regressops.models.quantize import error_bound
from regressops.training.candidates import RecordPlan, train_candidates
from regressops.training.estimator import EstimatorParams
from regressops.training.quantization import heldout_matrix, quantize_model


@pytest.fixture
def california_float(california: Path, tmp_path: Path) -> Path:
    result = train(dataset="california", solver="exact", output=tmp_path / "float", plots=False)
    assert round(result.metrics["r2"], 4) == 0.5758
    return result.path


def test_per_tensor_int8_keeps_the_r2_within_0_001(california_float: Path, tmp_path: Path) -> None:
    result = quantize_model(model=california_float, output=tmp_path / "int8")
    r = result.report
    assert r.n_rows == 4128 and r.granularity == "per-tensor"
    assert round(r.float_r2, 4) == 0.5758
    assert abs(r.float_r2 - r.int8_r2) <= 0.001
    assert r.bound_violations == 0 and 0 < r.max_abs_error <= r.bound_at_max
    assert r.int8_bytes == 8 + 8 and r.float_bytes == 64
    assert [c.passed for c in result.checks] == [True, True]

    bundle = load_bundle(result.path)
    assert bundle.kind == "linear-int8"
    reference = "reference.json"  # the drift reference goes with it (monitor, live drift)
    assert (result.path / reference).read_bytes() == (california_float / reference).read_bytes()
    assert bundle.metrics["r2"] == pytest.approx(r.int8_r2, abs=1e-12)
    assert bundle.metrics["float"]["r2"] == pytest.approx(r.float_r2, abs=1e-12)
    # measured again independently of quantize_model: every test row within its bound
    source = load_bundle(california_float)
    X, _ = heldout_matrix(source, Settings())
    diff = np.abs(source.predict_matrix(X) - bundle.predict_matrix(X))
    assert bundle.quantized is not None
    assert np.all(diff <= error_bound(bundle.quantized, X) + 1e-9)
    assert float(diff.max()) == pytest.approx(r.max_abs_error, rel=1e-9)


def test_per_feature_is_exact_but_larger(california_float: Path, tmp_path: Path) -> None:
    result = quantize_model(
        model=california_float, output=tmp_path / "pf", granularity="per-feature"
    )
    pf, pt = result.alternatives["per-feature"], result.alternatives["per-tensor"]
    assert pf.max_abs_error < 1e-9 < pt.max_abs_error
    assert pf.int8_bytes > pf.float_bytes > pt.int8_bytes


def test_a_tighter_limit_refuses_the_model_and_writes_nothing(
    california_float: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No R² may be lost, and one coefficient 50x larger makes the single per-tensor step too
    # coarse for the others: the quantised model loses R² and is refused.
    monkeypatch.setenv("REGRESSOPS_GATES__MAX_QUANTIZATION_R2_DROP", "0")
    source = load_bundle(california_float)
    coef = source.coef
    assert coef is not None
    doc = json.loads((california_float / "model.json").read_text())
    doc["coef"] = [c * (50.0 if i == int(np.argmax(np.abs(coef))) else 1.0) for i, c in
                   enumerate(doc["coef"])]  # fmt: skip
    (california_float / "model.json").write_text(json.dumps(doc))
    with pytest.raises(GateFailed, match="quantization_r2_drop"):
        quantize_model(model=california_float, output=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    assert not list(tmp_path.glob(".refused*"))


def test_train_quantize_int8_records_the_quantised_model(california: Path, tmp_path: Path) -> None:
    linear = EstimatorParams.build("linear", solver="exact")
    recorded = train_candidates(
        DataSelection("california"), split_plan(), [linear],
        record=RecordPlan(cv=0, track=False, quantize="int8"), output=tmp_path / "cal",
        plots=False,
    )  # fmt: skip
    best = recorded.best
    assert best.kind == "linear-int8" and best.result.path == tmp_path / "cal-int8"
    assert load_bundle(tmp_path / "cal").kind == "linear"
    names = {c.name: c.passed for c in best.gates.checks}
    assert names["quantization_r2_drop"] and names["quantization_bound"]
