"""FeatureSpec: fitting, the transform paths agreeing, unknown categories, JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.errors import DataError, SchemaError
from regressops.features import CategoricalFeature, FeatureSpec, NumericFeature

TRAIN = {
    "age": [19, 33, 50, 41, 27],
    "bmi": [27.9, 22.7, 30.1, 35.5, 24.0],
    "smoker": ["yes", "no", "no", "yes", "no"],
    "region": ["north", "south", "south", "east", "north"],
    "charges": [16884.9, 4449.5, 8240.6, 40000.0, 3000.0],
}


@pytest.fixture
def spec() -> FeatureSpec:
    return FeatureSpec.fit(TRAIN, target="charges")


def test_fit_detects_types_and_orders_outputs(spec: FeatureSpec) -> None:
    assert spec.names == ["age", "bmi", "smoker", "region"]
    assert spec.target == "charges"
    assert isinstance(spec.feature("age"), NumericFeature)
    smoker = spec.feature("smoker")
    assert isinstance(smoker, CategoricalFeature)
    assert smoker.categories == ("no", "yes")
    assert smoker.impute == "no"
    assert smoker.frequencies == pytest.approx((0.6, 0.4))
    assert spec.output_names == [
        "age", "bmi", "smoker=no", "smoker=yes", "region=east", "region=north", "region=south",
    ]  # fmt: skip
    assert spec.n_outputs == 7
    assert not spec.is_numeric_only


def test_numeric_features_are_standardised_on_the_training_data(spec: FeatureSpec) -> None:
    X = spec.transform(pd.DataFrame(TRAIN))
    np.testing.assert_allclose(X[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X[:, :2].std(axis=0), 1.0, rtol=1e-12)
    age = spec.feature("age")
    assert isinstance(age, NumericFeature)
    assert (age.min, age.max, age.impute) == (19, 50, 33)


def test_one_hot_columns(spec: FeatureSpec) -> None:
    X = spec.transform(pd.DataFrame(TRAIN))
    np.testing.assert_array_equal(X[:, 2:4], [[0, 1], [1, 0], [1, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(X[:, 4:].sum(axis=1), 1.0)


def test_without_scaling_numbers_pass_through() -> None:
    spec = FeatureSpec.fit(TRAIN, features=["age", "bmi"], scale=False)
    np.testing.assert_array_equal(
        spec.transform(TRAIN), np.column_stack([TRAIN["age"], TRAIN["bmi"]])
    )


def test_transform_paths_agree(spec: FeatureSpec) -> None:
    frame = pd.DataFrame(TRAIN)
    records = frame.drop(columns="charges").to_dict(orient="records")
    by_frame = spec.transform(frame)
    np.testing.assert_array_equal(spec.transform_records(records), by_frame)
    np.testing.assert_array_equal(spec.transform_columns(TRAIN), by_frame)
    numeric = FeatureSpec.fit(TRAIN, features=["age", "bmi"])
    rows = frame[["age", "bmi"]].to_numpy().tolist()
    np.testing.assert_array_equal(numeric.transform_rows(rows), numeric.transform(frame))


def test_unknown_category_policy() -> None:
    new = {"age": [30], "bmi": [25.0], "smoker": ["sometimes"], "region": ["north"]}
    strict = FeatureSpec.fit(TRAIN, target="charges")
    with pytest.raises(SchemaError, match="unknown category 'sometimes'") as info:
        strict.transform(new)
    assert info.value.reason == "unknown_category"
    lenient = FeatureSpec.fit(TRAIN, target="charges", unknown="ignore")
    row = lenient.transform(new)[0]
    assert row[2:4].tolist() == [0.0, 0.0]
    assert row[4:].tolist() == [0.0, 1.0, 0.0]


def test_missing_values_are_imputed_on_frames_but_refused_in_records(spec: FeatureSpec) -> None:
    frame = pd.DataFrame({"age": [np.nan], "bmi": [None], "smoker": [None], "region": ["east"]})
    imputed = spec.transform(frame)
    expected = spec.transform({"age": [33], "bmi": [27.9], "smoker": ["no"], "region": ["east"]})
    np.testing.assert_allclose(imputed, expected)
    with pytest.raises(SchemaError, match="missing") as info:
        spec.transform_records([{"age": None, "bmi": 1.0, "smoker": "no", "region": "east"}])
    assert info.value.reason == "missing_value"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"age": 30, "bmi": 25.0, "smoker": "no"}, "missing_feature"),
        ({"age": 30, "bmi": 25.0, "smoker": "no", "region": "east", "x": 1}, "unknown_feature"),
        ({"age": "old", "bmi": 25.0, "smoker": "no", "region": "east"}, "invalid_type"),
        ({"age": math.inf, "bmi": 25.0, "smoker": "no", "region": "east"}, "not_finite"),
        ({"age": 30, "bmi": 25.0, "smoker": ["no"], "region": "east"}, "invalid_type"),
    ],
)
def test_bad_records_are_schema_errors(spec: FeatureSpec, record: dict, reason: str) -> None:
    with pytest.raises(SchemaError) as info:
        spec.transform_records([record])
    assert info.value.reason == reason


def test_positional_rows_need_a_numeric_spec(spec: FeatureSpec) -> None:
    with pytest.raises(SchemaError, match="named records"):
        spec.transform_rows([[1, 2, 3, 4]])
    numeric = FeatureSpec.fit(TRAIN, features=["age", "bmi"])
    with pytest.raises(SchemaError, match="2 value"):
        numeric.transform_rows([[1.0, 2.0, 3.0]])
    with pytest.raises(SchemaError, match="NaN"):
        numeric.transform_rows([[1.0, float("nan")]])


def test_json_round_trip(spec: FeatureSpec) -> None:
    text = json.dumps(spec.to_dict(), allow_nan=False)
    back = FeatureSpec.from_dict(json.loads(text))
    assert back == spec
    frame = pd.DataFrame(TRAIN)
    np.testing.assert_array_equal(back.transform(frame), spec.transform(frame))


def test_from_dict_refuses_other_formats_and_garbage(spec: FeatureSpec) -> None:
    doc = spec.to_dict()
    with pytest.raises(SchemaError, match="format 99"):
        FeatureSpec.from_dict({**doc, "format_version": 99})
    with pytest.raises(SchemaError, match="invalid feature spec"):
        FeatureSpec.from_dict({"format_version": 1})
    with pytest.raises(SchemaError, match="unknown feature kind"):
        FeatureSpec.from_dict({**doc, "features": [{"kind": "image", "name": "x"}]})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"features": ["age", "nope"]}, SchemaError, "not in data"),
        ({"features": ["age", "charges"], "target": "charges"}, SchemaError, "cannot also be"),
        ({"features": ["age"], "categorical": ["smoker"]}, SchemaError, "not among the features"),
        ({"features": ["smoker"], "categorical": []}, SchemaError, "expected a number"),
        ({"features": ["age"], "unknown": "maybe"}, SchemaError, "policy"),
    ],
)
def test_fit_errors(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        FeatureSpec.fit(TRAIN, **kwargs)


def test_a_column_without_values_cannot_be_learnt() -> None:
    with pytest.raises(DataError, match="no finite value"):
        FeatureSpec.fit({"x": [np.nan, np.nan]})
    with pytest.raises(SchemaError, match="duplicate"):
        FeatureSpec(features=(NumericFeature("x", 0.0), NumericFeature("x", 0.0)))


# ---------------------------------------------------------------------- properties
@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(2, 30))
    num = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    cats = st.sampled_from(["a", "b", "c", "ünï", "x y"])
    return pd.DataFrame(
        {
            "n1": draw(st.lists(num, min_size=n, max_size=n)),
            "n2": draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n)),
            "c1": draw(st.lists(cats, min_size=n, max_size=n)),
        }
    )


@settings(max_examples=60, deadline=None)
@given(tables(), st.booleans())
def test_property_json_round_trip_transforms_identically(frame: pd.DataFrame, scale: bool) -> None:
    spec = FeatureSpec.fit(frame, scale=scale)
    back = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict(), allow_nan=False)))
    assert back == spec
    np.testing.assert_array_equal(back.transform(frame), spec.transform(frame))


@settings(max_examples=60, deadline=None)
@given(tables(), st.randoms(use_true_random=False))
def test_property_row_order_and_extra_columns_do_not_matter(frame: pd.DataFrame, rnd) -> None:
    spec = FeatureSpec.fit(frame)
    X = spec.transform(frame)
    order = list(range(len(frame)))
    rnd.shuffle(order)
    shuffled = frame.iloc[order].assign(unused=rnd.random())
    np.testing.assert_array_equal(spec.transform(shuffled), X[order])
    np.testing.assert_array_equal(spec.transform_records(frame.to_dict(orient="records")), X)
