"""The compiled sgd loop (numba, the ``fast`` extra) against the numpy path it replaces."""

from __future__ import annotations

import sys

import numba  # a dev dependency: these tests run the compiled loop, not a skip
import numpy as np
import pytest

from regressops.models import LinearRegressor
from regressops.models import _compiled as compiled


def _data(n: int = 400, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-1, 2, d) + rng.uniform(-20, 20, d)
    y = X @ rng.standard_normal(d) + 2.0 + rng.standard_normal(n)
    return X, y


def _fit(
    path: str, monkeypatch: pytest.MonkeyPatch, weighted: bool, params: dict[str, object]
) -> LinearRegressor:
    """Fit with the compiled loop, the numpy path, or the loop run as plain Python."""
    X, y = _data()
    w = np.random.default_rng(1).uniform(0.2, 2.0, len(y)) if weighted else None
    with monkeypatch.context() as mp:
        if path == "numpy":
            mp.setenv(compiled.ENV_SWITCH, "0")
        elif path == "python":
            mp.setattr(compiled, "sgd_loop", lambda: compiled.sgd_epoch_loop)
        else:
            mp.delenv(compiled.ENV_SWITCH, raising=False)
        defaults: dict[str, object] = {"solver": "sgd", "random_state": 3, "tol": None}
        return LinearRegressor(**{**defaults, **params}).fit(X, y, sample_weight=w)


def test_numba_is_installed_and_compiles_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compiled.ENV_SWITCH, raising=False)
    loop = compiled.sgd_loop()
    assert isinstance(loop, numba.core.registry.CPUDispatcher)


@pytest.mark.parametrize("value", ["0", "off", "FALSE", "no"])
def test_the_environment_switch_turns_the_compiled_loop_off(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(compiled.ENV_SWITCH, value)
    assert compiled.sgd_loop() is None


def test_without_numba_the_numpy_path_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    compiled._compiled.cache_clear()
    try:
        assert compiled.sgd_loop() is None
        model = LinearRegressor(solver="sgd", random_state=0).fit(*_data())
        assert np.all(np.isfinite(model.coef_))
    finally:
        compiled._compiled.cache_clear()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=None
@pytest.mark.parametrize(
    ("weighted", "params"),
    [
        (False, {"max_iter": 6}),
        (False, {"max_iter": 6, "alpha": 50.0}),
        (True, {"max_iter": 6}),
        (False, {"max_iter": 4, "shuffle": False, "fit_intercept": False}),
    ],
    ids=["plain", "ridge", "weighted", "in-order-no-intercept"],
)
def test_compiled_loop_and_numpy_path_make_the_same_updates(
    weighted: bool, params: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same draws, same sequential updates and averages: equal to rounding, epoch by epoch."""
    paths = ("compiled", "numpy", "python")
    fits = {path: _fit(path, monkeypatch, weighted, params) for path in paths}
    ref = fits["numpy"]
    for path in ("compiled", "python"):
        np.testing.assert_allclose(fits[path].coef_, ref.coef_, rtol=1e-9, atol=1e-12)
        assert fits[path].intercept_ == pytest.approx(ref.intercept_, rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(fits[path].loss_curve_, ref.loss_curve_, rtol=1e-9)
        assert fits[path].n_iter_ == ref.n_iter_


def test_partial_fit_continues_the_average_across_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _data(n=600)
    models = {}
    for path in ("compiled", "numpy"):
        with monkeypatch.context() as mp:
            if path == "numpy":
                mp.setenv(compiled.ENV_SWITCH, "0")
            model = LinearRegressor(solver="sgd", random_state=0)
            for rows in np.array_split(np.arange(len(y)), 3):
                model.partial_fit(X[rows], y[rows])
            models[path] = model
    np.testing.assert_allclose(models["compiled"].coef_, models["numpy"].coef_, rtol=1e-9)
    assert models["compiled"]._state.n_avg == models["numpy"]._state.n_avg > 0


def test_compiled_draws_equal_searchsorted_including_ties_and_the_top() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0.0, 1.0, 500)
    p[[3, 4, 200]] = 0.0  # rows that can never be drawn: repeated cdf values
    cdf = np.cumsum(p / p.sum())
    u = np.sort(np.concatenate([rng.uniform(0, 1, 5000), cdf[:50], [0.0, cdf[-1], 1.0]]))
    walk = compiled.kernel("sorted_draws")
    assert walk is not None
    expected = np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
    np.testing.assert_array_equal(walk(cdf, u), expected)
    np.testing.assert_array_equal(compiled.sorted_draws(cdf, u), expected)  # as plain Python


@pytest.mark.parametrize("icpt", [0.0, 1.0])
def test_compiled_row_norms_equal_numpy(icpt: float) -> None:
    X, _ = _data(n=300, d=7)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    out = np.empty(len(X))
    norms = compiled.kernel("row_norms2")
    assert norms is not None
    norms(X, mean, scale, icpt, out)
    np.testing.assert_allclose(out, (((X - mean) / scale) ** 2).sum(axis=1) + icpt, rtol=1e-13)
