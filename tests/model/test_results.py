"""Model results and behaviour through train(): the issue's reference numbers, directional and
invariance checks, and minimum-functionality cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.training import train_with
from regressops.models.bundle import load_bundle

SOLVERS = ("gd", "sgd", "minibatch", "exact")
SEED_OLS_R2 = 0.4726


# ---------------------------------------------------------------------- reference results
@pytest.mark.parametrize("solver", SOLVERS)
def test_seed_benchmark_every_solver_within_0_005_of_ols(solver: str) -> None:
    """diabetes, feature bmi, first 422 rows train, last 20 test; default parameters."""
    result = train_with(
        dataset="diabetes", features=["bmi"], test_size=20, shuffle=False, solver=solver,
        random_state=42, plots=False,
    )  # fmt: skip
    assert result.metrics["n_test"] == 20
    assert result.metrics["train"]["n"] == 422
    assert result.metrics["r2"] >= SEED_OLS_R2 - 0.005
    if solver == "exact":
        assert round(result.metrics["r2"], 4) == SEED_OLS_R2


def test_california_exact_matches_scikit_learn(california: Path) -> None:
    result = train_with(
        dataset="california", solver="exact", test_size=0.2, random_state=42, plots=False
    )
    assert round(result.metrics["r2"], 4) == 0.5758
    assert round(result.metrics["mse"], 4) == 0.5559
    assert result.metrics["n_test"] == 4128


def test_california_minibatch_within_0_005_of_exact(california: Path) -> None:
    result = train_with(dataset="california", solver="minibatch", random_state=42, plots=False)
    assert abs(result.metrics["r2"] - 0.5758) <= 0.005


def test_insurance_exact(tmp_path: Path) -> None:
    result = train_with(dataset="insurance", solver="exact", random_state=42, plots=False)
    assert result.metrics["r2"] >= 0.78
    assert result.bundle.spec.output_names[:3] == ["age", "sex=female", "sex=male"]


def test_insurance_exact_predictions_match_scikit_learn() -> None:
    """One-hot columns with an intercept are collinear; predictions must still be exact."""
    from sklearn.linear_model import LinearRegression

    result = train_with(dataset="insurance", solver="exact", plots=False)
    from regressops.datasets import load_dataset

    frame = load_dataset("insurance")
    spec = result.bundle.spec
    X = spec.transform(frame)
    from regressops.data.split import train_test_indices

    split = train_test_indices(len(frame), test_size=0.2, random_state=42)
    reference = LinearRegression().fit(X[split.train], frame["charges"].to_numpy()[split.train])
    np.testing.assert_allclose(
        result.bundle.predict_frame(frame), reference.predict(X), rtol=1e-9, atol=1e-6
    )


# ---------------------------------------------------------------------- behaviour
def test_directional_more_of_a_positively_weighted_feature_raises_the_prediction() -> None:
    bundle = train_with(dataset="insurance", plots=False).bundle
    person = {"age": 40, "sex": "female", "bmi": 28.0, "children": 1, "smoker": "no",
              "region": "northeast"}  # fmt: skip
    ages = bundle.predict_records([{**person, "age": a} for a in (20, 30, 40, 50, 60)])
    assert np.all(np.diff(ages) > 0)
    smoker = bundle.predict_records([person, {**person, "smoker": "yes"}])
    assert smoker[1] > smoker[0] + 10_000  # smoking is by far the strongest effect

    diabetes = train_with(dataset="diabetes", features=["bmi"], plots=False).bundle
    assert diabetes.coef is not None and diabetes.coef[0] > 0
    bmi = diabetes.predict_records([{"bmi": v} for v in np.linspace(-0.09, 0.17, 9)])
    assert np.all(np.diff(bmi) > 0)


def test_invariance_an_unused_column_changes_nothing(tmp_path: Path) -> None:
    from regressops.datasets import load_dataset

    frame = load_dataset("diabetes")
    noisy = frame.assign(noise=np.random.default_rng(0).normal(size=len(frame)))
    noisy.to_csv(tmp_path / "with_noise.csv", index=False)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    features = ["bmi", "bp", "s5"]
    a = train_with(data=tmp_path / "plain.csv", target="target", features=features, plots=False)
    b = train_with(
        data=tmp_path / "with_noise.csv", target="target", features=features, plots=False
    )
    np.testing.assert_array_equal(a.bundle.coef, b.bundle.coef)
    assert a.metrics == b.metrics
    bundle = load_bundle(a.path)
    shuffled_noise = noisy.assign(noise=noisy["noise"].to_numpy()[::-1])
    np.testing.assert_array_equal(bundle.predict_frame(noisy), bundle.predict_frame(shuffled_noise))


def test_invariance_row_order_does_not_change_the_exact_fit(tmp_path: Path) -> None:
    from regressops.datasets import load_dataset

    frame = load_dataset("diabetes")
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[::-1].to_csv(tmp_path / "b.csv", index=False)
    # the same training rows in another order: use every row but a fixed tail as test
    a = train_with(
        data=tmp_path / "a.csv", target="target", plots=False, test_size=2, shuffle=False
    )
    rows = frame.iloc[:-2].sample(frac=1.0, random_state=1)
    pd.concat([rows, frame.iloc[-2:]]).to_csv(tmp_path / "c.csv", index=False)
    c = train_with(
        data=tmp_path / "c.csv", target="target", plots=False, test_size=2, shuffle=False
    )
    assert c.bundle.coef is not None and a.bundle.coef is not None
    np.testing.assert_allclose(c.bundle.coef, a.bundle.coef, rtol=1e-9, atol=1e-9)
    assert c.metrics["r2"] == pytest.approx(a.metrics["r2"], rel=1e-9)


# ---------------------------------------------------------------------- minimum functionality
@pytest.mark.parametrize("solver", SOLVERS)
def test_noiseless_linear_data_is_learnt_exactly(tmp_path: Path, solver: str) -> None:
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(5.0, 2.0, 300), rng.uniform(-10, 10, 300)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "y": 3.0 * x1 - 2.0 * x2 + 5.0})
    frame.to_csv(tmp_path / "lin.csv", index=False)
    result = train_with(
        data=tmp_path / "lin.csv", target="y", solver=solver, random_state=0, plots=False
    )
    tol = 1e-9 if solver in ("exact", "gd") else 1e-4
    assert result.metrics["r2"] == pytest.approx(1.0, abs=tol)
    pred = result.bundle.predict_records([{"x1": 0.0, "x2": 0.0}, {"x1": 1.0, "x2": 1.0}])
    np.testing.assert_allclose(pred, [5.0, 6.0], atol=1e4 * tol)


def test_a_categorical_only_model_predicts_group_means(tmp_path: Path) -> None:
    frame = pd.DataFrame({"colour": ["red", "blue", "green"] * 40, "y": [10.0, 20.0, 30.0] * 40})
    frame.to_csv(tmp_path / "cat.csv", index=False)
    result = train_with(data=tmp_path / "cat.csv", target="y", plots=False)
    pred = result.bundle.predict_records([{"colour": c} for c in ("red", "blue", "green")])
    np.testing.assert_allclose(pred, [10.0, 20.0, 30.0], atol=1e-8)


def test_a_constant_feature_does_not_break_training(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(50.0), "const": 7.0, "y": 2.0 * np.arange(50.0) + 1.0})
    frame.to_csv(tmp_path / "const.csv", index=False)
    result = train_with(data=tmp_path / "const.csv", target="y", plots=False)
    assert result.metrics["r2"] == pytest.approx(1.0, abs=1e-9)
    assert np.isfinite(result.bundle.coef).all()  # type: ignore[arg-type]


def test_missing_feature_values_are_imputed_with_training_medians(tmp_path: Path) -> None:
    x = np.arange(40.0)
    frame = pd.DataFrame({"x": x, "y": 2.0 * x})
    frame.loc[[3, 17], "x"] = np.nan
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    result = train_with(data=tmp_path / "gaps.csv", target="y", plots=False)
    assert np.isfinite(result.metrics["r2"])
    median = float(np.nanmedian(frame["x"].to_numpy()[np.sort(_train_rows(40, 42))]))
    assert result.bundle.spec.feature("x").impute == median  # type: ignore[union-attr]


def _train_rows(n: int, seed: int) -> np.ndarray:
    from regressops.data.split import train_test_indices

    return train_test_indices(n, test_size=0.2, random_state=seed).train
