"""Model catalog: kinds, parameters, search spaces, bundles of every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.errors import ConfigError, ModelError
from regressops.features import FeatureSpec
from regressops.models.bundle import load_bundle
from regressops.models.catalog import (
    KINDS,
    describe,
    get_kind,
    make_estimator,
    resolve_params,
    save_bundle,
    suggest_params,
    to_bundle,
)


@pytest.fixture(scope="module")
def data() -> tuple[FeatureSpec, Any, np.ndarray]:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=300),
            "x2": rng.uniform(0, 10, size=300),
            "colour": rng.choice(["red", "green", "blue"], size=300),
        }
    )
    y = (
        3 * frame["x1"]
        - 0.5 * frame["x2"]
        + (frame["colour"] == "red") * 2
        + rng.normal(0, 0.1, 300)
    )
    spec = FeatureSpec.fit(frame, categorical=["colour"])
    return spec, frame, y.to_numpy()


def test_every_kind_is_described_with_a_valid_search_space() -> None:
    rows = {row["kind"]: row for row in describe()}
    assert set(rows) == {"linear", "ridge", "tree", "forest", "hgb"}
    for kind in KINDS:
        params = resolve_params(kind)
        estimator = make_estimator(kind)
        assert set(params) <= set(estimator.get_params())
        assert rows[kind]["search_space"], kind


def test_unknown_kind_and_parameter_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model kind 'svm'; expected one of linear"):
        get_kind("svm")
    with pytest.raises(ConfigError, match=r"does not take parameter\(s\) \['depth'\]"):
        make_estimator("tree", {"depth": 3})
    with pytest.raises(ConfigError, match="always uses solver='exact'"):
        resolve_params("ridge", {"solver": "sgd"})


def test_ridge_is_our_exact_solver_with_alpha_and_seed_is_passed() -> None:
    ridge = make_estimator("ridge", {"alpha": 2.5})
    assert type(ridge).__name__ == "LinearRegressor"
    assert ridge.solver == "exact" and ridge.alpha == 2.5
    assert make_estimator("forest", random_state=7).random_state == 7
    assert make_estimator("forest", {"random_state": 3}, random_state=7).random_state == 3


class _GridTrial:
    """Draws the lower bound, the upper bound or the first choice — a real Trial's interface."""

    def __init__(self, upper: bool) -> None:
        self.upper = upper

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        return high if self.upper else low

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return high if self.upper else low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return choices[-1] if self.upper else choices[0]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("upper", [False, True])
def test_search_space_corners_build_and_fit(kind: str, upper: bool, data: Any) -> None:
    spec, frame, y = data
    params = suggest_params(kind, _GridTrial(upper))
    if kind == "forest":
        params["n_estimators"] = min(params["n_estimators"], 20)
    if kind == "hgb":
        params["max_iter"] = min(params["max_iter"], 30)
    est = make_estimator(kind, params, random_state=0).fit(spec.transform(frame), y)
    assert np.isfinite(est.predict(spec.transform(frame.head(5)))).all()


@pytest.mark.parametrize("kind", list(KINDS))
def test_bundle_round_trip_predicts_identically(kind: str, data: Any, tmp_path: Path) -> None:
    spec, frame, y = data
    params = {"n_estimators": 10} if kind == "forest" else None
    est = make_estimator(kind, params, random_state=0).fit(spec.transform(frame), y)
    bundle = to_bundle(kind, est, name="toy", spec=spec, metrics={"r2": 1.0})
    path = save_bundle(bundle, tmp_path / kind)
    loaded = load_bundle(path)
    assert loaded.kind == kind
    assert loaded.is_linear == KINDS[kind].linear
    assert (
        not (path / "model.skops").exists()
        if KINDS[kind].linear
        else (path / "model.skops").exists()
    )
    np.testing.assert_array_equal(loaded.predict_frame(frame), bundle.predict_frame(frame))


def test_to_bundle_refuses_unfitted_or_mismatched(data: Any) -> None:
    spec, frame, y = data
    with pytest.raises(ModelError, match="not fitted"):
        to_bundle("tree", make_estimator("tree"), name="t", spec=spec)
    est = make_estimator("tree").fit(spec.transform(frame)[:, :2], y)
    with pytest.raises(ModelError, match="takes 2 columns but the feature spec makes 5"):
        to_bundle("tree", est, name="t", spec=spec)


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(1e-4, 1e3))
def test_ridge_shrinks_coefficients_as_alpha_grows(alpha: float) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + rng.normal(0, 0.1, 80)
    small = make_estimator("ridge", {"alpha": alpha}).fit(X, y)
    large = make_estimator("ridge", {"alpha": alpha * 10}).fit(X, y)
    assert np.linalg.norm(large.coef_) <= np.linalg.norm(small.coef_) + 1e-12
