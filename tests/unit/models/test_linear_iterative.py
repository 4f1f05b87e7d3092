"""The iterative solvers: convergence to least squares, divergence, warnings, partial_fit."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from regressops.errors import DivergenceError
from regressops.models import LinearRegressor

ITERATIVE = ["gd", "sgd", "minibatch"]


def _data(n: int = 2000, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled, offset, correlated features: what real data looks like to a solver."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, d))
    Z[:, 1] = 0.8 * Z[:, 0] + 0.6 * Z[:, 1]
    X = Z * np.logspace(-1, 3, d) + np.linspace(10, 5000, d)
    y = X @ (rng.standard_normal(d) / np.logspace(-1, 3, d)) + 40.0 + 0.5 * rng.standard_normal(n)
    return X, y


def rms_gap(a: LinearRegressor, b: LinearRegressor, X: np.ndarray) -> float:
    """Root-mean-square difference of two models' predictions (the data's noise sd is 0.5)."""
    return float(np.sqrt(np.mean((a.predict(X) - b.predict(X)) ** 2)))


@pytest.mark.parametrize("solver", ITERATIVE)
def test_defaults_converge_to_the_least_squares_fit(solver: str) -> None:
    X, y = _data()
    exact = LinearRegressor().fit(X, y)
    model = LinearRegressor(solver=solver, random_state=0).fit(X, y)
    assert rms_gap(model, exact, X) < 0.05  # a tenth of the noise
    assert model.loss_curve_[-1] == pytest.approx(exact.loss_curve_[-1], rel=2e-3)
    assert len(model.loss_curve_) == model.n_iter_ < model.max_iter


@pytest.mark.parametrize("solver", ["sgd", "minibatch"])
def test_averaged_iterates_keep_converging_instead_of_wandering(solver: str) -> None:
    X, y = _data(n=1500)
    optimum = LinearRegressor().fit(X, y).loss_curve_[-1]
    with pytest.warns(ConvergenceWarning):
        model = LinearRegressor(solver=solver, tol=None, max_iter=100, random_state=0).fit(X, y)
    excess = np.array(model.loss_curve_) / optimum - 1
    assert excess[-1] < 1e-4
    assert excess[-1] < excess[9] / 3


@pytest.mark.parametrize("solver", ITERATIVE)
def test_ridge_converges_to_the_exact_ridge_fit(solver: str) -> None:
    X, y = _data(n=1000)
    exact = LinearRegressor(alpha=50.0).fit(X, y)
    model = LinearRegressor(solver=solver, alpha=50.0, random_state=0).fit(X, y)
    assert rms_gap(model, exact, X) < 0.05
    assert model.loss_curve_[-1] == pytest.approx(exact.loss_curve_[-1], rel=2e-3)


@pytest.mark.parametrize("solver", ITERATIVE)
def test_sample_weight_matches_the_weighted_exact_fit(solver: str) -> None:
    X, y = _data(n=1500)
    z = (X[:, 0] - X[:, 0].mean()) / X[:, 0].std()
    y = y + z**2  # curvature: a linear fit then depends on where the weight lies
    w = np.exp(z)
    exact = LinearRegressor().fit(X, y, sample_weight=w)
    unweighted = LinearRegressor().fit(X, y)
    model = LinearRegressor(solver=solver, random_state=0).fit(X, y, sample_weight=w)
    # the weighted fit moves predictions by ~2 (rms); the solver lands within 5% of that
    assert rms_gap(model, exact, X) < 0.05 * rms_gap(unweighted, exact, X)
    assert model.loss_curve_[-1] == pytest.approx(exact.loss_curve_[-1], rel=3e-3)


@pytest.mark.parametrize("solver", ITERATIVE)
def test_same_random_state_same_model(solver: str) -> None:
    X, y = _data(n=500)
    a = LinearRegressor(solver=solver, random_state=3).fit(X, y)
    b = LinearRegressor(solver=solver, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


@pytest.mark.parametrize("solver", ITERATIVE)
def test_too_large_learning_rate_raises_divergence_error_naming_the_fix(solver: str) -> None:
    X, y = _data(n=500)
    with pytest.raises(DivergenceError, match=r"diverged.*lower learning_rate") as info:
        LinearRegressor(solver=solver, learning_rate=50.0, random_state=0).fit(X, y)
    assert info.value.reason == "diverged"
    assert info.value.details["solver"] == solver


@pytest.mark.parametrize("solver", ITERATIVE)
def test_max_iter_reached_warns(solver: str) -> None:
    X, y = _data(n=500)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        model = LinearRegressor(solver=solver, max_iter=2, random_state=0).fit(X, y)
    assert model.n_iter_ == 2


def test_tol_none_runs_every_epoch_and_loss_decreases() -> None:
    X, y = _data(n=300)
    with pytest.warns(ConvergenceWarning):
        model = LinearRegressor(solver="gd", max_iter=40, tol=None).fit(X, y)
    assert model.n_iter_ == 40
    assert np.all(np.diff(model.loss_curve_) <= 1e-12)


def test_small_user_learning_rate_still_works_but_slower() -> None:
    X, y = _data(n=300)
    with pytest.warns(ConvergenceWarning):
        slow = LinearRegressor(solver="gd", learning_rate=1e-3, max_iter=20).fit(X, y)
    fast = LinearRegressor(solver="gd").fit(X, y)
    assert slow.loss_curve_[-1] > fast.loss_curve_[-1]


@pytest.mark.parametrize("solver", ITERATIVE)
def test_partial_fit_epochs_approach_the_fit(solver: str) -> None:
    X, y = _data(n=3000)
    exact = LinearRegressor().fit(X, y)
    model = LinearRegressor(solver=solver, batch_size=32, random_state=0)
    chunks = np.array_split(np.arange(len(y)), 6)
    for _ in range(30 if solver == "gd" else 3):
        for rows in chunks:
            model.partial_fit(X[rows], y[rows])
    assert model.n_samples_seen_ == len(y) * (30 if solver == "gd" else 3)
    assert rms_gap(model, exact, X) < 0.05


def test_sgd_in_order_without_shuffle_converges() -> None:
    X, y = _data(n=1000)
    exact = LinearRegressor().fit(X, y)
    model = LinearRegressor(solver="sgd", shuffle=False).fit(X, y)
    assert rms_gap(model, exact, X) < 0.02


def test_no_intercept_iterative() -> None:
    X, y = _data(n=800)
    X, y = X - X.mean(axis=0), y - y.mean()  # (offset columns without intercept are ill-posed)
    exact = LinearRegressor(fit_intercept=False).fit(X, y)
    model = LinearRegressor(solver="minibatch", fit_intercept=False, random_state=0).fit(X, y)
    assert model.intercept_ == 0.0
    assert model.loss_curve_[-1] == pytest.approx(exact.loss_curve_[-1], rel=1e-2)


def test_verbose_logs_every_epoch(caplog: pytest.LogCaptureFixture) -> None:
    X, y = _data(n=200)
    with caplog.at_level(logging.INFO, logger="regressops.models"):
        model = LinearRegressor(solver="gd", verbose=1).fit(X, y)
    epochs = [r for r in caplog.records if "epoch" in r.getMessage()]
    assert len(epochs) == model.n_iter_


def test_callback_sees_every_epoch() -> None:
    X, y = _data(n=200)
    seen = []
    model = LinearRegressor(solver="minibatch", random_state=0, callback=seen.append).fit(X, y)
    assert [p.step for p in seen] == list(range(1, model.n_iter_ + 1))
    assert all(p.total == model.max_iter and p.solver == "minibatch" for p in seen)
    assert [p.loss for p in seen] == model.loss_curve_


@pytest.mark.parametrize("solver", ["sgd", "minibatch"])
@pytest.mark.parametrize("seed", [0, 1, 7, 42, 123])
def test_defaults_reach_the_least_squares_test_r2_for_any_seed(solver: str, seed: int) -> None:
    """The seed benchmark (diabetes, bmi; first 422 rows train, last 20 test; OLS R2 0.4726).

    Early stopping must not end a stochastic fit while its averaged iterate is still off by
    a seed-dependent amount: every seed reaches the issue's R2 >= 0.4676.
    """
    from sklearn.datasets import load_diabetes
    from sklearn.metrics import r2_score

    X, y = load_diabetes(return_X_y=True)
    X = X[:, [2]]  # bmi
    ols = LinearRegressor().fit(X[:422], y[:422])
    assert r2_score(y[422:], ols.predict(X[422:])) == pytest.approx(0.4726, abs=5e-5)
    model = LinearRegressor(solver=solver, random_state=seed).fit(X[:422], y[:422])
    assert r2_score(y[422:], model.predict(X[422:])) >= 0.4676
