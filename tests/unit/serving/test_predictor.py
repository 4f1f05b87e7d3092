"""The predictor: one validation path for rows, records and columns; the bundle's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.errors import DataError, SchemaError
from regressops.models.bundle import ModelBundle
from regressops.serving.predictor import Predictor

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]
RECORD = {
    "age": 19,
    "sex": "female",
    "bmi": 27.9,
    "children": 0,
    "smoker": "yes",
    "region": "southwest",
}


@pytest.fixture(scope="module")
def dia(diabetes_bundle: tuple[Path, ModelBundle]) -> Predictor:
    return Predictor(diabetes_bundle[1], max_rows=50)


@pytest.fixture(scope="module")
def ins(insurance_bundle: tuple[Path, ModelBundle]) -> Predictor:
    return Predictor(insurance_bundle[1])


def _reference(bundle: ModelBundle, rows: list[list[float]]) -> np.ndarray:
    return bundle.predict_matrix(bundle.spec.transform_rows(rows))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-10, 10, allow_nan=False), min_size=10, max_size=10),
        min_size=1,
        max_size=20,
    )
)
def test_folded_coefficients_match_the_bundle(dia: Predictor, rows: list[list[float]]) -> None:
    got = dia.predict_rows(rows).predictions
    np.testing.assert_allclose(got, _reference(dia.bundle, rows), rtol=1e-9, atol=1e-9)


def test_rows_records_and_columns_agree(dia: Predictor) -> None:
    rows = [ROW, [v * 2 for v in ROW]]
    records = [dict(zip(dia.names, r, strict=True)) for r in rows]
    columns = {n: [r[j] for r in rows] for j, n in enumerate(dia.names)}
    a = dia.predict_rows(rows).predictions
    np.testing.assert_allclose(dia.predict_records(records).predictions, a)
    np.testing.assert_allclose(dia.predict_columns(columns).predictions, a)
    np.testing.assert_allclose(dia.predict_batch(records).predictions, a)
    assert dia.predict_one(ROW).predictions[0] == pytest.approx(a[0])
    assert dia.predict_one([ROW]).predictions[0] == pytest.approx(a[0])
    assert dia.predict_one(records[0]).predictions[0] == pytest.approx(a[0])


def test_categorical_records_match_the_bundle(ins: Predictor) -> None:
    other = {**RECORD, "smoker": "no", "region": "northeast", "age": 50}
    got = ins.predict_records([RECORD, other]).predictions
    np.testing.assert_allclose(got, ins.bundle.predict_records([RECORD, other]))
    assert got[0] > got[1] - 20_000  # sanity: smoker effect is large and positive
    rows = [[RECORD[n] for n in ins.names]]
    np.testing.assert_allclose(ins.predict_rows(rows).predictions, got[:1])


@pytest.mark.parametrize(
    ("rows", "reason", "fragment"),
    [
        ([ROW[:9]], "wrong_shape", "row 0 has 9 value(s); expected 10"),
        ([ROW, "abc"], "invalid_record", "row 1 is a string"),
        ([[*ROW[:9], "1.0"]], "invalid_type", "feature 's6' is a string"),
        ([[*ROW[:9], True]], "invalid_type", "feature 's6' is a boolean"),
        ([[*ROW[:9], None]], "invalid_type", "feature 's6' is null"),
        ([[*ROW[:9], math.nan]], "not_finite", "feature 's6' is not a finite number"),
        ([[*ROW[:9], math.inf]], "not_finite", "feature 's6' is not a finite number"),
    ],
)
def test_bad_rows_name_the_row_and_feature(
    dia: Predictor, rows: list[object], reason: str, fragment: str
) -> None:
    strict = Predictor(dia.bundle, max_rows=dia.max_rows, impute_missing=False)  # refuse nulls
    with pytest.raises(SchemaError) as err:
        strict.predict_rows(rows)  # type: ignore[arg-type]
    assert err.value.reason == reason
    assert fragment in err.value.message


def test_bad_records(dia: Predictor, ins: Predictor) -> None:
    rec = dict(zip(dia.names, ROW, strict=True))
    with pytest.raises(SchemaError, match=r"record 1: missing feature\(s\) \['s6'\]"):
        dia.predict_records([rec, {k: v for k, v in rec.items() if k != "s6"}])
    # a key that is not a feature is ignored, as by the CLI's predict (docs/serving.md)
    assert dia.predict_records([{**rec, "zzz": 1.0}]).predictions.tolist() == (
        dia.predict_records([rec]).predictions.tolist()
    )
    with pytest.raises(SchemaError, match="feature 'bmi' in record 0 is a string"):
        dia.predict_records([{**rec, "bmi": "high"}])
    with pytest.raises(SchemaError, match="unknown category 'mars'"):
        ins.predict_records([{**RECORD, "region": "mars"}])
    with pytest.raises(SchemaError, match=r"has 3 value\(s\); expected 6"):
        ins.predict_batch([[1, 2, 3]])


def test_limits(dia: Predictor) -> None:
    with pytest.raises(DataError) as err:
        dia.predict_batch([])
    assert err.value.reason == "empty_batch"
    with pytest.raises(DataError) as err:
        dia.predict_rows([ROW] * 51)
    assert err.value.reason == "too_many_rows"
    assert "at most 50" in err.value.message


def test_non_finite_prediction_is_refused(dia: Predictor) -> None:
    with pytest.raises(DataError) as err:
        dia.predict_rows([[1e308] * 10])
    assert err.value.reason in ("non_finite_prediction", "not_finite")


def test_predict_each_reports_invalid_records(dia: Predictor) -> None:
    good = dict(zip(dia.names, ROW, strict=True))
    data = [good, {**good, "bmi": "x"}, good, {"nope": 1}]
    predictions, errors, scored = dia.predict_each(data)
    assert [e.index for e in errors] == [1, 3]
    assert errors[0].reason == "invalid_type" and "record 1" in errors[0].message
    assert predictions[1] is None and predictions[3] is None
    assert predictions[0] == pytest.approx(predictions[2])
    assert scored is not None and len(scored) == 2


def test_missing_values_get_the_impute_value_learned_at_training(
    dia: Predictor, ins: Predictor
) -> None:
    """Serving treats a null as training does: the learned impute value, counted."""
    names = dia.names
    record = dict(zip(names, ROW, strict=True))
    gaps = [{**record, "bmi": None}, record, {**record, "bp": None, "s6": None}]
    expected = dia.bundle.predict_records(gaps)  # the bundle's (training's) imputation
    filled = [
        {k: dia.spec.feature(k).impute if v is None else v for k, v in r.items()} for r in gaps
    ]
    np.testing.assert_allclose(expected, dia.bundle.predict_records(filled))
    for scored in (
        dia.predict_records(gaps),
        dia.predict_rows([[r[n] for n in names] for r in gaps]),
        dia.predict_columns({n: [r[n] for r in gaps] for n in names}),
        dia.predict_batch(gaps),
    ):
        np.testing.assert_allclose(scored.predictions, expected, rtol=1e-12)
        assert scored.imputed == 3
    assert dia.predict_records([record]).imputed == 0
    # categorical and numeric nulls in a one-hot model
    rec = {**RECORD, "region": None, "bmi": None}
    got = ins.predict_records([rec])
    assert got.imputed == 2
    np.testing.assert_allclose(got.predictions, ins.bundle.predict_records([rec]))


def test_an_operator_can_refuse_missing_values(dia: Predictor, ins: Predictor) -> None:
    strict = Predictor(dia.bundle, impute_missing=False)
    record = {**dict(zip(dia.names, ROW, strict=True)), "bmi": None}
    with pytest.raises(SchemaError, match="feature 'bmi' in record 0 is null") as err:
        strict.predict_records([record])
    assert err.value.reason == "invalid_type"
    strict_ins = Predictor(ins.bundle, impute_missing=False)
    with pytest.raises(SchemaError):
        strict_ins.predict_records([{**RECORD, "region": None}])
