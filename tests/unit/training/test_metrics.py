"""Regression metrics: the same numbers as scikit-learn, clear errors on bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from regressops.errors import DataError
from regressops.training.metrics import METRIC_NAMES, mae, mse, r2, regression_metrics, rmse

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 200))
    y = draw(arrays(np.float64, n, elements=finite))
    p = draw(arrays(np.float64, n, elements=finite))
    return y, p


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_equal_to_sklearn(pair: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = pair
    ours = regression_metrics(y, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "r2": skm.r2_score(y, p),
            "rmse": skm.root_mean_squared_error(y, p),
            "mse": skm.mean_squared_error(y, p),
            "mae": skm.mean_absolute_error(y, p),
        }
    assert list(ours) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert ours[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12), name


def test_known_values() -> None:
    y, p = [3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0]
    assert mse(y, p) == 0.375
    assert mae(y, p) == 0.5
    assert rmse(y, p) == math.sqrt(0.375)
    assert r2(y, p) == pytest.approx(0.9486081370449679, rel=1e-15)


def test_perfect_predictions() -> None:
    y = np.linspace(-3, 8, 50)
    assert regression_metrics(y, y) == {"r2": 1.0, "rmse": 0.0, "mse": 0.0, "mae": 0.0}


def test_predicting_the_mean_scores_zero_r2() -> None:
    y = np.array([1.0, 2.0, 3.0, 10.0])
    assert r2(y, np.full(4, y.mean())) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(("pred", "expected"), [([5.0, 5.0, 5.0], 1.0), ([5.0, 6.0, 5.0], 0.0)])
def test_constant_truth_follows_sklearn(pred: list[float], expected: float) -> None:
    y = [5.0, 5.0, 5.0]
    assert r2(y, pred) == expected == skm.r2_score(y, pred)


def test_r2_of_a_single_value_is_nan_like_sklearn() -> None:
    assert math.isnan(r2([1.0], [2.0]))
    assert mse([1.0], [3.0]) == 4.0


def test_accepts_lists_columns_and_ints() -> None:
    col = np.array([[1], [2], [3]])
    assert regression_metrics(col, [1, 2, 4])["mae"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("y", "p", "reason"),
    [
        ([1.0, 2.0], [1.0], "length_mismatch"),
        ([], [], "empty"),
        ([1.0, float("nan")], [1.0, 2.0], "not_finite"),
        ([1.0, 2.0], [1.0, float("inf")], "not_finite"),
    ],
)
def test_bad_input_is_a_data_error(y: list[float], p: list[float], reason: str) -> None:
    with pytest.raises(DataError) as info:
        regression_metrics(y, p)
    assert info.value.reason == reason
