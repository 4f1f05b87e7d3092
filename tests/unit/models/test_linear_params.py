"""LinearRegressor's parameters, validation messages and scikit-learn compatibility."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from regressops.models import LinearRegressor

SOLVERS = ["exact", "gd", "sgd", "minibatch"]


def _expected_failures(estimator: LinearRegressor) -> dict[str, str]:
    if estimator.solver == "sgd":
        # As for scikit-learn's own SGDRegressor (see PER_ESTIMATOR_XFAIL_CHECKS): weighting a
        # row and repeating it change the random sample sequence, and a stochastic solver
        # stops within its tolerance of the optimum, not at rtol=1e-7 of it.
        return {"check_sample_weight_equivalence_on_dense_data": "stochastic solver"}
    return {}


@parametrize_with_checks(
    [LinearRegressor(solver=s, random_state=0) for s in SOLVERS],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator: LinearRegressor, check: object) -> None:
    check(estimator)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"solver": "newton"}, r"The 'solver' parameter of LinearRegressor must be a str among"),
        (
            {"max_iter": 0},
            r"'max_iter' parameter of LinearRegressor must be an int in the range \[1, inf\)\. "
            r"Got 0 instead",
        ),
        (
            {"learning_rate": -0.1},
            r"'learning_rate' parameter .* float in the range \(0.0, inf\) or a str among "
            r"\{'auto'\}\. Got -0.1 instead",
        ),
        ({"learning_rate": "fast"}, r"'learning_rate' parameter .* Got 'fast' instead"),
        ({"alpha": -1.0}, r"'alpha' parameter .* \[0.0, inf\)\. Got -1.0 instead"),
        ({"batch_size": 0}, r"'batch_size' parameter"),
        ({"tol": -1e-3}, r"'tol' parameter"),
        ({"n_iter_no_change": 0}, r"'n_iter_no_change' parameter"),
        ({"fit_intercept": "yes"}, r"'fit_intercept' parameter"),
        ({"callback": 3}, r"'callback' parameter .* callable"),
    ],
)
def test_invalid_parameters_are_refused_with_a_clear_message(
    params: dict[str, object], message: str
) -> None:
    X, y = np.ones((4, 1)), np.arange(4.0)
    with pytest.raises(ValueError, match=message):
        LinearRegressor(**params).fit(X, y)  # type: ignore[arg-type]


def test_init_only_stores_parameters() -> None:
    model = LinearRegressor(solver="sgd", learning_rate=0.01, random_state=7)
    assert model.get_params()["learning_rate"] == 0.01
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(model, "coef_")


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        LinearRegressor().predict(np.ones((2, 2)))


@pytest.mark.parametrize("solver", SOLVERS)
def test_bad_input_messages(solver: str) -> None:
    model = LinearRegressor(solver=solver)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.array([[1.0], [np.nan], [2.0]]), np.arange(3.0))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        model.fit(np.ones((3, 1)), np.arange(3.0), sample_weight=[1.0, -1.0, 1.0])
    model.fit(np.arange(6.0).reshape(3, 2), np.arange(3.0))
    with pytest.raises(ValueError, match="X has 3 features, but LinearRegressor is expecting 2"):
        model.predict(np.ones((2, 3)))
    with pytest.raises(ValueError, match="X has 3 features"):
        model.partial_fit(np.ones((2, 3)), np.ones(2))


@pytest.mark.parametrize("solver", SOLVERS)
def test_fit_resets_the_state_of_earlier_partial_fits(solver: str) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 3)), rng.standard_normal(200)
    fresh = LinearRegressor(solver=solver, random_state=0).fit(X, y)
    reused = LinearRegressor(solver=solver, random_state=0)
    reused.partial_fit(X[:50] + 100.0, y[:50])
    reused.fit(X, y)
    np.testing.assert_allclose(reused.coef_, fresh.coef_)
    assert reused.n_samples_seen_ == 200
