"""The "exact" solver: accuracy against exact rational arithmetic, weights, ridge, streaming.

Every test runs twice: as shipped (these small inputs take the Householder path) and with the
Gram/Cholesky fast path tried at any size, so its guard must send every ill-conditioned or
rank-deficient design below back to Householder QR with the same certified digits.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from regressops.models import LinearRegressor, _gram


@pytest.fixture(autouse=True, params=["as-shipped", "gram-at-any-size"])
def _gram_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "gram-at-any-size":
        monkeypatch.setattr(_gram, "GRAM_MIN_ROWS", 1)


def exact_least_squares(
    X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """The least-squares solution with intercept, solved exactly in rationals.

    Every float is a rational, so the normal equations of the given floats solved by
    fraction-exact Gauss-Jordan elimination give the true solution, rounded once at the end.
    """
    n, d = X.shape
    rows = [[Fraction(1)] + [Fraction(float(v)) for v in row] for row in X]
    b = [Fraction(float(v)) for v in y]
    weights = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    p = d + 1
    aug = [
        [sum(weights[k] * rows[k][i] * rows[k][j] for k in range(n)) for j in range(p)]
        + [sum(weights[k] * rows[k][i] * b[k] for k in range(n))]
        for i in range(p)
    ]
    for col in range(p):
        pivot = next(r for r in range(col, p) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        for r in range(p):
            if r != col and aug[r][col] != 0:
                f = aug[r][col] / aug[col][col]
                aug[r] = [a - f * c for a, c in zip(aug[r], aug[col], strict=True)]
    sol = [aug[i][p] / aug[i][i] for i in range(p)]
    return np.array([float(s) for s in sol[1:]]), float(sol[0])


def correct_digits(estimate: np.ndarray | float, truth: np.ndarray | float) -> float:
    """Fewest correct significant digits over all entries."""
    est, tru = np.atleast_1d(estimate), np.atleast_1d(truth)
    rel = np.abs(est - tru) / np.abs(tru)
    return float(-np.log10(np.maximum(rel, 1e-17)).min())


def polynomial_design(seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(1.0, 20.0, 40))
    X = np.column_stack([x**k for k in range(1, 11)])  # raw x, x^2, ..., x^10
    return X, np.sin(x) + noise * rng.standard_normal(40)


def economic_design(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Longley-style yearly series: trending, nearly collinear with each other and the year."""
    rng = np.random.default_rng(seed)
    t = np.arange(16.0)
    X = np.column_stack(
        [
            83 + 2.6 * t + rng.normal(0, 0.8, 16),  # price deflator
            234289 * 1.045**t * (1 + rng.normal(0, 0.004, 16)),  # GNP
            np.round(2300 + 700 * np.sin(t) + rng.normal(0, 50, 16)),  # unemployed
            107608 + 1700 * t + rng.normal(0, 30, 16),  # population
            1947 + t,  # year
        ]
    )
    return X, np.round(60323 + 1050 * t + rng.normal(0, 300, 16))


@pytest.mark.parametrize(("seed", "noise"), [(0, 0.0), (1, 1.0), (2, 100.0)])
def test_raw_polynomial_keeps_seven_digits_where_lstsq_and_sklearn_lose_all(
    seed: int, noise: float
) -> None:
    X, y = polynomial_design(seed, noise)
    coef, intercept = exact_least_squares(X, y)
    model = LinearRegressor().fit(X, y)
    assert correct_digits(model.coef_, coef) >= 7
    assert correct_digits(model.intercept_, intercept) >= 7
    lstsq = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), y, rcond=None)[0]
    assert correct_digits(lstsq[1:], coef) < 2
    assert correct_digits(LinearRegression().fit(X, y).coef_, coef) < 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collinear_economic_series_keep_seven_digits(seed: int) -> None:
    X, y = economic_design(seed)
    coef, intercept = exact_least_squares(X, y)
    model = LinearRegressor().fit(X, y)
    assert correct_digits(model.coef_, coef) >= 7
    assert correct_digits(model.intercept_, intercept) >= 7
    assert correct_digits(LinearRegression().fit(X, y).coef_, coef) < 2


def test_streaming_on_ill_conditioned_design_keeps_seven_digits() -> None:
    X, y = polynomial_design(3, 0.1)
    coef, _ = exact_least_squares(X, y)
    model = LinearRegressor()
    for rows in np.array_split(np.arange(len(X)), 4):
        model.partial_fit(X[rows], y[rows])
    assert correct_digits(model.coef_, coef) >= 7


def test_weighted_fit_matches_exact_rationals() -> None:
    X, y = economic_design(4)
    w = np.random.default_rng(4).uniform(0.0, 3.0, len(y))
    coef, intercept = exact_least_squares(X, y, w)
    model = LinearRegressor().fit(X, y, sample_weight=w)
    assert correct_digits(model.coef_, coef) >= 7
    assert correct_digits(model.intercept_, intercept) >= 7


def _data(n: int = 500, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.logspace(-2, 3, d) + np.linspace(-50, 1e4, d)
    y = X @ rng.standard_normal(d) + 3.0 + rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("alpha", [0.0, 0.5, 100.0])
def test_weighted_ridge_matches_sklearn_ridge(alpha: float) -> None:
    X, y = _data()
    w = np.random.default_rng(1).uniform(0, 2, len(y))
    ours = LinearRegressor(alpha=alpha).fit(X, y, sample_weight=w)
    ref = Ridge(alpha=alpha, solver="svd").fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    assert ours.intercept_ == pytest.approx(ref.intercept_, rel=1e-8)


def test_integer_weights_equal_repeated_rows() -> None:
    X, y = _data(n=60)
    w = np.random.default_rng(2).integers(0, 4, len(y))
    weighted = LinearRegressor().fit(X, y, sample_weight=w)
    repeated = LinearRegressor().fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-10)
    assert weighted.intercept_ == pytest.approx(repeated.intercept_, rel=1e-10)


def test_no_intercept() -> None:
    X, y = _data()
    ours = LinearRegressor(fit_intercept=False).fit(X, y)
    ref = np.linalg.lstsq(X, y, rcond=None)[0]  # (cond ~2e4: LinearRegression gets this wrong)
    np.testing.assert_allclose(ours.coef_, ref, rtol=1e-9)
    assert ours.intercept_ == 0.0


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_partial_fit_over_chunks_equals_fit(alpha: float) -> None:
    X, y = _data(n=2000)
    w = np.random.default_rng(3).uniform(0.1, 2, len(y))
    full = LinearRegressor(alpha=alpha).fit(X, y, sample_weight=w)
    streamed = LinearRegressor(alpha=alpha)
    for rows in np.array_split(np.arange(len(y)), 13):
        streamed.partial_fit(X[rows], y[rows], sample_weight=w[rows])
    np.testing.assert_allclose(streamed.coef_, full.coef_, rtol=1e-10)
    assert streamed.intercept_ == pytest.approx(full.intercept_, rel=1e-10)
    assert streamed.n_samples_seen_ == len(y)
    assert streamed.loss_curve_[-1] == pytest.approx(full.loss_curve_[-1], rel=1e-10)


def test_partial_fit_keeps_a_factor_whose_size_does_not_grow() -> None:
    X, y = _data(n=3000, d=4)
    model = LinearRegressor()
    sizes = set()
    for rows in np.array_split(np.arange(len(y)), 10):
        model.partial_fit(X[rows], y[rows])
        sizes.add(model._state.R.shape)
    assert sizes == {(6, 6)}  # ones, 4 features, y


def test_first_chunk_smaller_than_the_number_of_features() -> None:
    X, y = _data(n=300, d=8)
    model = LinearRegressor().partial_fit(X[:3], y[:3])  # underdetermined: min-norm fit
    assert np.all(np.isfinite(model.coef_))
    model.partial_fit(X[3:], y[3:])
    np.testing.assert_allclose(model.coef_, LinearRegressor().fit(X, y).coef_, rtol=1e-10)


def test_merge_equals_fit_on_the_union() -> None:
    X, y = _data(n=1200)
    X[600:] += 250.0  # the second worker's rows have a different mean: different shifts
    a = LinearRegressor().partial_fit(X[:600], y[:600])
    b = LinearRegressor()
    for rows in np.array_split(np.arange(600, 1200), 3):
        b.partial_fit(X[rows], y[rows])
    b_coef = b.coef_.copy()
    a.merge(b)
    full = LinearRegressor().fit(X, y)
    np.testing.assert_allclose(a.coef_, full.coef_, rtol=1e-10)
    assert a.intercept_ == pytest.approx(full.intercept_, rel=1e-10)
    assert a.n_samples_seen_ == 1200
    np.testing.assert_array_equal(b.coef_, b_coef)  # other left unchanged


def test_merge_refuses_other_solvers_and_shapes() -> None:
    X, y = _data(n=100)
    exact = LinearRegressor().fit(X, y)
    with pytest.raises(ValueError, match="solver='exact'"):
        exact.merge(LinearRegressor(solver="gd").fit(X, y))
    with pytest.raises(ValueError, match="features"):
        exact.merge(LinearRegressor().fit(X[:, :3], y))


def test_rank_deficient_design_gives_a_finite_least_squares_fit() -> None:
    X, y = _data(n=50, d=3)
    X = np.column_stack([X, X[:, 0]])  # duplicated column
    model = LinearRegressor().fit(X, y)
    ref = LinearRegression().fit(X, y)
    np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-8)


def test_callback_reports_rows_folded_in() -> None:
    X, y = _data(n=300_000, d=2)
    seen = []
    LinearRegressor(callback=seen.append).fit(X, y)
    assert seen[-1].step == seen[-1].total == 300_000
    assert seen[-1].solver == "exact"
    assert [p.step for p in seen] == sorted(p.step for p in seen)


def test_feature_names_are_kept_and_checked() -> None:
    pd = pytest.importorskip("pandas")
    X, y = _data(n=50, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = LinearRegressor().fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[["c", "b", "a"]])


def _collinear_designs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Duplicated columns, and one-hot groups (every category) beside an intercept.

    Columns of different spread (a copy times 3, rare categories) make the minimum norm in
    the caller's units differ from the one in the solver's scaled coordinates.
    """
    rng = np.random.default_rng(7)
    X, y = _data(n=400, d=3, seed=7)
    duplicated = np.column_stack([X, X[:, 1], 3.0 * X[:, 1]])
    region = rng.choice(4, 400, p=[0.7, 0.1, 0.1, 0.1])
    smoker = rng.integers(0, 2, 400)
    one_hot = np.column_stack([X[:, :2], np.eye(4)[region], np.eye(2)[smoker]])
    y_hot = y + 300.0 * region - 2e3 * smoker
    return {"duplicated": (duplicated, y), "one_hot": (one_hot, y_hot)}


def _min_norm_reference(
    X: np.ndarray, y: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Minimum-norm coefficients of the (weighted) centred design, by an explicit cutoff."""
    w = np.ones(len(y)) if w is None else w
    x_mean, y_mean = w @ X / w.sum(), w @ y / w.sum()
    sw = np.sqrt(w)[:, None]
    coef = np.linalg.pinv(sw * (X - x_mean), rcond=1e-10) @ (sw[:, 0] * (y - y_mean))
    return coef, float(y_mean - x_mean @ coef)


@pytest.mark.parametrize("design", ["duplicated", "one_hot"])
@pytest.mark.parametrize("weighted", [False, True])
def test_collinear_design_gives_the_minimum_norm_fit_by_fit_stream_and_merge(
    design: str, weighted: bool
) -> None:
    X, y = _collinear_designs()[design]
    w = np.random.default_rng(8).uniform(0.2, 3.0, len(y)) if weighted else None
    coef, intercept = _min_norm_reference(X, y, w)
    sk = LinearRegression().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(sk.coef_, coef, rtol=1e-8, atol=1e-8 * np.abs(coef).max())

    fitted = LinearRegressor().fit(X, y, sample_weight=w)
    streamed = LinearRegressor()
    for rows in np.array_split(np.arange(len(y)), 7):
        streamed.partial_fit(X[rows], y[rows], None if w is None else w[rows])
    merged, other = LinearRegressor(), LinearRegressor()
    merged.partial_fit(X[:150], y[:150], None if w is None else w[:150])
    other.partial_fit(X[150:] + 0.0, y[150:], None if w is None else w[150:])
    merged.merge(other)

    for model in (fitted, streamed, merged):
        assert np.all(np.isfinite(model.coef_))
        np.testing.assert_allclose(model.coef_, coef, rtol=1e-8, atol=1e-8 * np.abs(coef).max())
        assert model.intercept_ == pytest.approx(intercept, rel=1e-8)
        np.testing.assert_allclose(model.predict(X), sk.predict(X), rtol=1e-8)


def test_collinear_design_with_a_ridge_penalty_matches_sklearn_ridge() -> None:
    X, y = _collinear_designs()["one_hot"]
    ours = LinearRegressor(alpha=1.0).fit(X, y)
    ref = Ridge(alpha=1.0, solver="svd").fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    assert ours.intercept_ == pytest.approx(ref.intercept_, rel=1e-8)
