"""int8 quantisation: the rounding, the error bound (a hypothesis property), the bundle kind
``linear-int8`` (round trip, numpy only, bad files refused) and the quantisation gates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from regressops.config import GateSettings
from regressops.errors import BundleError, ConfigError
from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle, load_bundle
from regressops.models.quantize import (
    QMAX,
    error_bound,
    feature_groups,
    measure,
    quantize_bundle,
    quantize_coefficients,
)
from regressops.training.quantization import quantization_checks

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------------- the rounding
def test_per_tensor_scale_is_the_largest_magnitude_over_127() -> None:
    qc = quantize_coefficients(np.array([0.3, -2.54, 1.0, 0.0]))
    assert qc.scales.tolist() == [pytest.approx(2.54 / 127)]
    assert qc.q.dtype == np.int8
    assert qc.q.tolist() == [15, -127, 50, 0]
    assert qc.nbytes == 4 + 8


def test_per_feature_numeric_coefficients_are_kept_to_rounding() -> None:
    w = np.array([0.3, -2.54, 1e-9, 0.0])
    qc = quantize_coefficients(w, granularity="per-feature")
    assert np.abs(qc.q[:3]).tolist() == [QMAX] * 3 and qc.q[3] == 0
    np.testing.assert_allclose(qc.dequantize(), w, rtol=1e-15, atol=0)
    assert qc.nbytes == 4 + 4 * 8  # larger than the 32 bytes of float64 coefficients


def test_per_feature_groups_share_a_scale_across_one_hot_columns() -> None:
    spec = FeatureSpec.fit({"age": [20.0, 30, 40], "region": ["n", "s", "e"]})
    groups = feature_groups(spec)
    assert spec.output_names == ["age", "region=e", "region=n", "region=s"]
    assert groups.tolist() == [0, 1, 1, 1]
    qc = quantize_coefficients(
        np.array([5.0, 1.27, -0.5, 0.0]), granularity="per-feature", groups=groups
    )
    assert qc.scales.tolist() == [pytest.approx(5 / 127), pytest.approx(0.01)]
    assert qc.q.tolist() == [127, 127, -50, 0]


def test_all_zero_coefficients_quantise_to_zero() -> None:
    qc = quantize_coefficients(np.zeros(3))
    assert qc.q.tolist() == [0, 0, 0] and qc.dequantize().tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("coef", "kwargs", "error"),
    [
        (np.array([1.0, np.nan]), {}, BundleError),
        (np.array([1.0]), {"granularity": "per-row"}, ConfigError),
        (np.array([1.0, 2.0]), {"granularity": "per-feature", "groups": [0]}, ConfigError),
    ],
)
def test_bad_input_is_refused(coef: np.ndarray, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        quantize_coefficients(coef, **kwargs)


@given(
    w=hnp.arrays(np.float64, st.integers(1, 12), elements=finite),
    granularity=st.sampled_from(["per-tensor", "per-feature"]),
)
@settings(max_examples=200, deadline=None)
def test_each_coefficient_is_within_half_a_step(w: np.ndarray, granularity: str) -> None:
    qc = quantize_coefficients(w, granularity=granularity)
    assert np.abs(qc.q.astype(int)).max() <= QMAX
    step = qc.column_scales
    assert np.all(np.abs(w - qc.dequantize()) <= step / 2 * (1 + 1e-12) + 1e-300)


@st.composite
def models(draw: st.DrawFn) -> tuple[np.ndarray, float, np.ndarray, str]:
    n = draw(st.integers(1, 10))
    rows = draw(st.integers(1, 30))
    w = draw(hnp.arrays(np.float64, n, elements=st.floats(-1e4, 1e4)))
    X = draw(hnp.arrays(np.float64, (rows, n), elements=st.floats(-1e3, 1e3)))
    b = draw(st.floats(-1e5, 1e5))
    return w, b, X, draw(st.sampled_from(["per-tensor", "per-feature"]))


@given(models())
@example((np.array([5e-324]), 0.0, np.array([[1.0]]), "per-tensor"))  # scale underflow
@settings(max_examples=300, deadline=None)
def test_prediction_error_never_exceeds_its_bound(model: tuple) -> None:
    """|ŷ_float − ŷ_int8| ≤ Σ_j (s_j/2)|x_j| on every row (plus float64 rounding)."""
    w, b, X, granularity = model
    qc = quantize_coefficients(w, granularity=granularity)
    y = X @ w + b
    report = measure(w, b, qc, X, np.append(y[:-1], y[-1] + 1.0))
    assert report.bound_violations == 0
    exact = np.abs(X @ (w - qc.dequantize()))
    assert np.all(exact <= error_bound(qc, X) * (1 + 1e-9) + 1e-9)
    assert report.max_abs_error <= report.max_bound * (1 + 1e-9) + 1e-6 * (1 + abs(b))


def test_a_wrong_bound_would_be_caught() -> None:
    """The violation count can fail: with a bound of a quarter step it does."""
    w = np.array([1.0, 0.37, -0.61])
    qc = quantize_coefficients(w)
    X = np.random.default_rng(0).normal(size=(200, 3))
    halved = type(qc)(qc.q, qc.scales / 4, qc.groups, qc.granularity)
    diff = np.abs(X @ (w - qc.dequantize()))
    assert np.any(diff > error_bound(halved, X))


# ---------------------------------------------------------------------- the bundle kind
@pytest.fixture
def float_bundle() -> ModelBundle:
    data = {"age": [19.0, 33, 50, 41], "smoker": ["yes", "no", "no", "yes"], "y": [1.0, 2, 3, 4]}
    spec = FeatureSpec.fit(data, target="y")
    return ModelBundle(
        name="mini",
        kind="linear",
        spec=spec,
        coef=np.array([1234.5, -200.25, 9000.125]),
        intercept=8000.0,
        metrics={"r2": 0.9},
        lineage={"source": "file"},
    )


@pytest.mark.parametrize("granularity", ["per-tensor", "per-feature"])
def test_int8_bundle_round_trip(
    float_bundle: ModelBundle, tmp_path: Path, granularity: str
) -> None:
    q = quantize_bundle(float_bundle, granularity=granularity)
    path = q.save(tmp_path / "q")
    doc = json.loads((path / "model.json").read_text())
    assert doc["kind"] == "linear-int8" and "coef" not in doc
    assert all(isinstance(v, int) and -127 <= v <= 127 for v in doc["quantization"]["q"])
    assert doc["quantized_from"]["kind"] == "linear"
    back = load_bundle(path)
    assert back.kind == "linear-int8" and back.is_linear and back.quantized is not None
    np.testing.assert_array_equal(back.quantized.q, q.quantized.q)  # type: ignore[union-attr]
    np.testing.assert_array_equal(back.coef, q.coef)
    records = [{"age": 30.0, "smoker": "yes"}, {"age": 45.0, "smoker": "no"}]
    np.testing.assert_array_equal(back.predict_records(records), q.predict_records(records))
    exact = float_bundle.predict_records(records)
    bound = error_bound(back.quantized, float_bundle.spec.transform_records(records))
    assert np.all(np.abs(back.predict_records(records) - exact) <= bound + 1e-9)


def test_an_int8_bundle_cannot_be_quantised_again(float_bundle: ModelBundle) -> None:
    with pytest.raises(BundleError, match="only a float linear model"):
        quantize_bundle(quantize_bundle(float_bundle))


def test_an_int8_bundle_loads_and_predicts_with_numpy_only(
    float_bundle: ModelBundle, tmp_path: Path
) -> None:
    path = quantize_bundle(float_bundle).save(tmp_path / "q")
    code = (
        "import sys; from regressops.models.bundle import load_bundle; "
        f"b = load_bundle({str(path)!r}); "
        "print(b.predict_records([{'age': 30.0, 'smoker': 'no'}])[0]); "
        "print(sorted(m for m in ('sklearn', 'pandas', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert float(out[0]) == pytest.approx(
        float(float_bundle.predict_records([{"age": 30.0, "smoker": "no"}])[0]), rel=1e-2
    )
    assert out[1] == "[]"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"q": [1, 2]}, "2 int8 values for 3"),
        ({"q": [1, 200, 3]}, "outside"),
        ({"q": [1, 2.5, 3]}, "non-integer"),
        ({"scales": [-1.0]}, "scales"),
        ({"scheme": "asymmetric-int4"}, "scheme"),
        ({"granularity": "per-feature", "scales": [1.0]}, "1 scale"),
        ({"scales": [1.0, 2.0]}, "2 scale"),
    ],
)
def test_a_bad_quantization_section_is_refused(
    float_bundle: ModelBundle, tmp_path: Path, change: dict, message: str
) -> None:
    path = quantize_bundle(float_bundle).save(tmp_path / "q")
    doc = json.loads((path / "model.json").read_text())
    doc["quantization"].update(change)
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_an_int8_kind_without_its_section_is_refused(
    float_bundle: ModelBundle, tmp_path: Path
) -> None:
    path = quantize_bundle(float_bundle).save(tmp_path / "q")
    doc = json.loads((path / "model.json").read_text())
    del doc["quantization"]
    (path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="no quantization section"):
        load_bundle(path)


# ---------------------------------------------------------------------- the gates
def _report(**change: float) -> dict:
    base = {
        "float_r2": 0.6, "int8_r2": 0.5995, "r2_drop": 0.0005, "max_abs_error": 0.1,
        "bound_at_max": 0.4, "bound_violations": 0, "n_rows": 100,
    }  # fmt: skip
    return {**base, **change}


def test_quantization_gates_pass_within_limits() -> None:
    checks = quantization_checks(_report(), GateSettings())
    assert [(c.name, c.passed) for c in checks] == [
        ("quantization_r2_drop", True),
        ("quantization_bound", True),
    ]
    assert checks[0].threshold == 0.001


def test_quantization_gates_refuse_a_large_drop_or_a_broken_bound() -> None:
    checks = quantization_checks(
        _report(int8_r2=0.59, r2_drop=0.01, bound_violations=3), GateSettings()
    )
    assert [c.passed for c in checks] == [False, False]
    assert "drop 1.00e-02 > 0.001" in checks[0].detail
    assert "3 of 100 rows over their bound" in checks[1].detail
    relaxed = GateSettings(max_quantization_r2_drop=0.02)
    assert quantization_checks(_report(r2_drop=0.01), relaxed)[0].passed
