"""Fits over partitions (the in-process engine) give the in-process fit's answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy

from helpers.partitions import synthetic, train_rows, write_parts
from regressops.compute.engines import InProcessEngine
from regressops.compute.evaluation import error_sums
from regressops.compute.linear import (
    Design,
    LinearFitPlan,
    fit_exact,
    fit_minibatch,
    profile_and_factor,
)
from regressops.compute.partitions import list_files
from regressops.compute.profile import profile_input, spec_from_profile
from regressops.compute.rows import SplitPlan
from regressops.features import FeatureSpec, NumericFeature
from regressops.models.linear import LinearRegressor
from regressops.training.metrics import regression_metrics

FILES = 3
PLAN = SplitPlan(0.2, 11)


def _fit_partitioned(
    folder: Path, frame: pd.DataFrame, *, rows: int, plan: LinearFitPlan, scale: bool = True
) -> tuple[FeatureSpec, object]:
    engine = InProcessEngine()
    parts = list_files(folder, partition_rows=rows).partitions
    features = [c for c in frame.columns if c != "y"]
    profile = profile_input(engine, parts, columns=[*features, "y"], plan=PLAN, side="train")
    spec = spec_from_profile(profile, features=features, target="y", scale=scale)
    fit = (fit_exact if plan.solver == "exact" else fit_minibatch)(
        engine, parts, Design(spec, "y", PLAN), plan
    )
    return spec, fit


def test_exact_fit_over_partitions_equals_the_in_process_fit(tmp_path: Path) -> None:
    frame = synthetic(30_000, 8)
    frame.loc[frame.index[::97], "x3"] = np.nan  # gaps, imputed by the learned median
    folder = write_parts(frame, tmp_path / "in", files=FILES, row_group=1000)
    spec, fit = _fit_partitioned(folder, frame, rows=4000, plan=LinearFitPlan())
    rows = train_rows(frame, PLAN, files=FILES)
    ref = LinearRegressor().fit(spec.transform(rows), rows["y"].to_numpy())
    np.testing.assert_allclose(fit.estimator.coef_, ref.coef_, rtol=1e-10)  # type: ignore[attr-defined]
    assert fit.estimator.intercept_ == pytest.approx(ref.intercept_, rel=1e-10)  # type: ignore[attr-defined]
    assert fit.n_rows == len(rows)  # type: ignore[attr-defined]


def test_spec_from_partition_profiles_equals_featurespec_fit(tmp_path: Path) -> None:
    frame = synthetic(20_000, 4)
    frame.loc[frame.index[::13], "x1"] = np.nan
    frame.loc[frame.index[::29], "kind"] = None
    folder = write_parts(frame, tmp_path / "in", files=FILES, row_group=700)
    engine = InProcessEngine()
    parts = list_files(folder, partition_rows=1500).partitions
    columns = [c for c in frame.columns if c != "y"]
    profile = profile_input(engine, parts, columns=columns, plan=PLAN, side="train")
    ours = spec_from_profile(profile, features=columns, target="y")
    rows = train_rows(frame, PLAN, files=FILES)
    ref = FeatureSpec.fit(rows, features=columns, target="y")
    for a, b in zip(ours.features, ref.features, strict=True):
        if isinstance(b, NumericFeature):
            assert isinstance(a, NumericFeature)
            np.testing.assert_allclose(
                [a.center, a.scale, a.mean, a.std], [b.center, b.scale, b.mean, b.std], rtol=1e-12
            )
            assert (a.min, a.max) == (b.min, b.max)
            # the impute median: an order statistic within the reported rank error of n / 2
            values = np.sort(rows[a.name].dropna().to_numpy())
            rank = np.searchsorted(values, a.impute)
            bound = profile.columns[a.name].summary.rank_error  # type: ignore[union-attr]
            assert abs(rank - len(values) / 2) <= bound + 1
        else:
            assert a == b  # categories, frequencies and the mode: exact


@pytest.mark.parametrize(("fit_intercept", "alpha"), [(True, 0.0), (False, 0.0), (True, 5.0)])
def test_one_pass_fit_equals_the_in_process_fit_and_featurespec(
    tmp_path: Path, fit_intercept: bool, alpha: float
) -> None:
    frame = synthetic(12_000, 6, categorical=False)
    frame["x2"] = np.round(frame["x2"]).astype(np.int64)  # integers take the same path
    folder = write_parts(frame, tmp_path / "in", files=FILES, row_group=1000)
    engine = InProcessEngine()
    parts = list_files(folder, partition_rows=1500).partitions
    features = [c for c in frame.columns if c != "y"]
    profile, raw = profile_and_factor(engine, parts, features=features, target="y", plan=PLAN)
    assert raw is not None  # numbers without a gap: the factor came out of the profile's pass
    spec = spec_from_profile(profile, features=features, target="y")
    rows = train_rows(frame, PLAN, files=FILES)
    ref_spec = FeatureSpec.fit(rows, features=features, target="y")
    for a, b in zip(spec.features, ref_spec.features, strict=True):
        assert isinstance(a, NumericFeature) and isinstance(b, NumericFeature)
        np.testing.assert_allclose([a.center, a.scale], [b.center, b.scale], rtol=1e-12)
        assert (a.min, a.max) == (b.min, b.max)
        values = np.sort(rows[a.name].to_numpy())
        bound = profile.columns[a.name].summary.rank_error  # type: ignore[union-attr]
        first, last = (
            np.searchsorted(values, a.impute, "left"),
            np.searchsorted(values, a.impute, "right"),
        )
        assert first - bound - 1 <= len(values) / 2 <= last + bound + 1  # ties: a run of ranks
    plan = LinearFitPlan(alpha=alpha, fit_intercept=fit_intercept)
    fit = fit_exact(engine, parts, Design(spec, "y", PLAN), plan, raw_factor=raw)
    ref = LinearRegressor(alpha=alpha, fit_intercept=fit_intercept).fit(
        spec.transform(rows), rows["y"].to_numpy()
    )
    np.testing.assert_allclose(fit.estimator.coef_, ref.coef_, rtol=1e-10)
    assert fit.estimator.intercept_ == pytest.approx(ref.intercept_, rel=1e-10, abs=1e-12)
    assert fit.n_rows == len(rows)


@pytest.mark.parametrize("gap", ["missing", "categorical"])
def test_a_gap_or_a_category_leaves_the_factor_to_its_own_pass(tmp_path: Path, gap: str) -> None:
    frame = synthetic(6_000, 3, categorical=gap == "categorical")
    if gap == "missing":
        frame.loc[frame.index[5000], "x1"] = np.nan  # one gap, in the last file only
    folder = write_parts(frame, tmp_path / "in", files=FILES, row_group=500)
    parts = list_files(folder, partition_rows=1000).partitions
    features = [c for c in frame.columns if c != "y"]
    profile, raw = profile_and_factor(
        InProcessEngine(), parts, features=features, target="y", plan=PLAN
    )
    assert raw is None  # the median to impute, or the categories, come first
    assert profile.n_rows == len(train_rows(frame, PLAN, files=FILES))


def _exact_rational(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with intercept solved in exact rationals (sympy), rounded once."""
    A = sympy.Matrix([[1, *(sympy.Rational(float(v)) for v in row)] for row in X])
    b = sympy.Matrix([sympy.Rational(float(v)) for v in y])
    solution = (A.T * A).LUsolve(A.T * b)
    return np.array([float(v) for v in solution])


def _digits(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Fewest correct significant digits over all entries."""
    worst = float((np.abs(estimate - truth) / np.abs(truth)).max())
    return -np.log10(max(worst, 1e-17))


def _longley_like(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(16.0)
    frame = pd.DataFrame(
        {
            "deflator": 83 + 2.6 * t + rng.normal(0, 0.8, 16),
            "gnp": 234289 * 1.045**t * (1 + rng.normal(0, 0.004, 16)),
            "unemployed": np.round(2300 + 700 * np.sin(t) + rng.normal(0, 50, 16)),
            "population": 107608 + 1700 * t + rng.normal(0, 30, 16),
            "year": 1947 + t,
        }
    )
    frame["y"] = np.round(60323 + 1050 * t + rng.normal(0, 300, 16))
    return frame


def _wampler_like() -> pd.DataFrame:
    x = np.arange(21.0)
    frame = pd.DataFrame({f"x{k}": x**k for k in range(1, 6)})
    frame["y"] = 1 + x + x**2 + x**3 + x**4 + x**5
    return frame


@pytest.mark.parametrize("one_pass", [False, True], ids=["two-passes", "one-pass"])
@pytest.mark.parametrize("frame", [_longley_like(0), _longley_like(1), _wampler_like()])
def test_ill_conditioned_designs_keep_the_in_process_certified_digits(
    tmp_path: Path, frame: pd.DataFrame, one_pass: bool
) -> None:
    plan = SplitPlan(0.0, 0)
    folder = write_parts(frame, tmp_path / "in", files=2, row_group=4)
    engine = InProcessEngine()
    parts = list_files(folder, partition_rows=4).partitions
    features = [c for c in frame.columns if c != "y"]
    if one_pass:
        profile, raw = profile_and_factor(engine, parts, features=features, target="y", plan=plan)
        assert raw is not None
    else:
        profile = profile_input(engine, parts, columns=[*features, "y"], plan=plan, side="train")
        raw = None
    spec = spec_from_profile(profile, features=features, target="y", scale=False)
    fit = fit_exact(engine, parts, Design(spec, "y", plan), LinearFitPlan(), raw_factor=raw)
    truth = _exact_rational(frame[features].to_numpy(), frame["y"].to_numpy())
    ours = np.concatenate([[fit.estimator.intercept_], fit.estimator.coef_])
    local = LinearRegressor().fit(frame[features].to_numpy(), frame["y"].to_numpy())
    theirs = np.concatenate([[local.intercept_], local.coef_])
    assert fit.refined
    assert _digits(ours, truth) >= 7  # the in-process solver's certified digits
    assert _digits(ours, truth) >= min(_digits(theirs, truth), 10) - 1


def test_minibatch_over_partitions_is_within_one_percent_of_exact(tmp_path: Path) -> None:
    frame = synthetic(40_000, 6)
    folder = write_parts(frame, tmp_path / "in", files=FILES, row_group=2000)
    spec, exact = _fit_partitioned(folder, frame, rows=5000, plan=LinearFitPlan())
    _, mini = _fit_partitioned(folder, frame, rows=5000, plan=LinearFitPlan(solver="minibatch"))
    rows = train_rows(frame, PLAN, files=FILES)
    test = frame.drop(rows.index)
    X, y = spec.transform(test), test["y"].to_numpy()
    mse_exact = np.mean((exact.estimator.predict(X) - y) ** 2)  # type: ignore[attr-defined]
    mse_mini = np.mean((mini.estimator.predict(X) - y) ** 2)  # type: ignore[attr-defined]
    assert mse_mini <= 1.01 * mse_exact


def test_combined_error_sums_give_the_metrics_of_all_rows() -> None:
    rng = np.random.default_rng(3)
    y, p = rng.normal(5, 2, 1000), rng.normal(5, 2, 1000)
    merged = error_sums(y[:300], p[:300]).merge(error_sums(y[300:], p[300:]))
    ours, ref = merged.metrics(), regression_metrics(y, p)
    for name in ref:
        assert ours[name] == pytest.approx(ref[name], rel=1e-12)
