"""The exact solver's Gram/Cholesky fast path: where it is taken, where its guard refuses it.

The accuracy is measured against exact rational solutions (``exact_least_squares``) on designs
of a chosen condition number; the large-input tests run at the size where the path switches on.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_linear_exact import correct_digits, exact_least_squares

from regressops.models import LinearRegressor, _gram


def conditioned_design(
    n: int, d: int, cond: float, seed: int, noise: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Centred columns with singular values from 1 to 1/cond, then offset and rescaled."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    U -= U.mean(axis=0)
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (U * np.logspace(0, -np.log10(cond), d)) @ V.T
    X = X * 10.0 ** rng.uniform(-2, 2, d) + rng.uniform(-100, 100, d)
    y = X @ rng.standard_normal(d) + noise * X.std(axis=0).mean() * rng.standard_normal(n)
    return X, y


@pytest.fixture
def gram_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gram, "GRAM_MIN_ROWS", 1)


@pytest.mark.usefixtures("gram_at_any_size")
@pytest.mark.parametrize("cond", [1.0, 10.0, 40.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_well_conditioned_design_takes_the_fast_path_and_keeps_eleven_digits(
    cond: float, seed: int
) -> None:
    X, y = conditioned_design(300, 6, cond, seed)
    coef, intercept = exact_least_squares(X, y)
    model = LinearRegressor().fit(X, y)
    assert model._state.method == "cholesky"
    assert correct_digits(model.coef_, coef) >= 11
    assert correct_digits(model.intercept_, intercept) >= 11


@pytest.mark.usefixtures("gram_at_any_size")
@pytest.mark.parametrize("cond", [1e3, 1e6, 1e10])
def test_ill_conditioned_design_is_sent_back_to_householder_qr(cond: float) -> None:
    X, y = conditioned_design(300, 6, cond, seed=2)
    coef, intercept = exact_least_squares(X, y)
    model = LinearRegressor().fit(X, y)
    assert model._state.method == "householder"
    assert correct_digits(model.coef_, coef) >= 7
    assert correct_digits(model.intercept_, intercept) >= 7


@pytest.mark.usefixtures("gram_at_any_size")
def test_near_exact_fit_is_sent_back_for_an_accurate_objective() -> None:
    X, _ = conditioned_design(300, 4, 2.0, seed=3)
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 1e-4 * np.random.default_rng(3).standard_normal(300)
    model = LinearRegressor().fit(X, y)
    assert model._state.method == "householder"
    residual = y - model.predict(X)
    assert model.loss_curve_[0] == pytest.approx(residual @ residual / (2 * len(y)), rel=1e-9)


@pytest.mark.usefixtures("gram_at_any_size")
def test_rank_deficient_design_is_sent_back_and_gets_the_minimum_norm_fit() -> None:
    X, y = conditioned_design(200, 3, 1.0, seed=4)
    X = np.column_stack([X, 2.0 * X[:, 0]])
    model = LinearRegressor().fit(X, y)
    assert model._state.method == "householder"
    centred = X - X.mean(axis=0)
    ref = np.linalg.pinv(centred, rcond=1e-10) @ (y - y.mean())
    np.testing.assert_allclose(model.coef_, ref, rtol=1e-8)


def test_large_input_takes_the_fast_path_by_default_and_matches_householder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = conditioned_design(_gram.GRAM_MIN_ROWS, 5, 5.0, seed=5)
    w = np.random.default_rng(5).uniform(0.5, 2.0, len(y))
    fast = LinearRegressor(alpha=0.1).fit(X, y, sample_weight=w)
    assert fast._state.method == "cholesky"
    monkeypatch.setattr(_gram, "GRAM_MIN_ROWS", len(y) + 1)
    slow = LinearRegressor(alpha=0.1).fit(X, y, sample_weight=w)
    assert slow._state.method == "householder"
    np.testing.assert_allclose(fast.coef_, slow.coef_, rtol=1e-11)
    assert fast.intercept_ == pytest.approx(slow.intercept_, rel=1e-11)
    assert fast.loss_curve_[0] == pytest.approx(slow.loss_curve_[0], rel=1e-10)


@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN"), (np.inf, "infinity")])
def test_non_finite_input_on_the_fast_path_is_refused_and_leaves_the_model_unchanged(
    value: float, message: str
) -> None:
    X, y = conditioned_design(_gram.GRAM_MIN_ROWS, 4, 2.0, seed=6)
    bad = X.copy()
    bad[1234, 2] = value
    with pytest.raises(ValueError, match=f"Input X contains {message}"):
        LinearRegressor().fit(bad, y)
    model = LinearRegressor().partial_fit(X, y)
    before = model.coef_.copy()
    with pytest.raises(ValueError, match=f"Input X contains {message}"):
        model.partial_fit(bad, y)
    model.partial_fit(X, y)  # the factor was left as it was: the rows count twice now
    np.testing.assert_allclose(model.coef_, before, rtol=1e-10)
    assert model.n_samples_seen_ == 2 * len(y)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 8),
    st.lists(st.integers(1, 400), min_size=1, max_size=5),
)
def test_streaming_through_both_paths_equals_fit(seed: int, d: int, chunks: list[int]) -> None:
    """Chunks of any size (some Cholesky, some Householder) merge into the fit of all rows."""
    n = sum(chunks) + d + 20
    X, y = conditioned_design(n, d, 3.0, seed % 1000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_gram, "GRAM_MIN_ROWS", 50)
        full = LinearRegressor().fit(X, y)
        streamed = LinearRegressor()
        for rows in np.split(np.arange(n), np.cumsum(chunks)):
            streamed.partial_fit(X[rows], y[rows])
    np.testing.assert_allclose(streamed.coef_, full.coef_, rtol=1e-9, atol=1e-12)
    assert streamed.intercept_ == pytest.approx(full.intercept_, rel=1e-9, abs=1e-9)
