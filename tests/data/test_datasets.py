"""Contracts of the built-in datasets: shapes, dtypes, no missing values, ranges, provenance."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regressops.config import Settings
from regressops.datasets import (
    CALIFORNIA_FEATURES,
    DATASETS,
    get_dataset,
    load_dataset,
)
from regressops.errors import ConfigError, DataError

INSURANCE_SHA256 = "505c1cbc2e63d0363bac59501563df2530aadf4cdb9cfee226f4ef32f5468281"


def _numeric_kind(series: pd.Series) -> str:
    return series.to_numpy().dtype.kind


def test_registry_lists_the_three_datasets() -> None:
    assert sorted(DATASETS) == ["california", "diabetes", "insurance"]
    for name, info in DATASETS.items():
        assert info.name == name
        assert info.target not in info.features
        assert set(info.categorical) <= set(info.features)
        assert info.description
        assert info.source


def test_unknown_dataset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'iris'") as info:
        get_dataset("iris")
    assert info.value.reason == "unknown_dataset"


def test_diabetes_contract() -> None:
    frame = load_dataset("diabetes")
    info = get_dataset("diabetes")
    assert frame.shape == (442, 11)
    assert list(frame.columns) == [*info.features, "target"]
    assert all(_numeric_kind(frame[c]) == "f" for c in frame.columns)
    assert not frame.isna().any().any()
    X = frame[list(info.features)].to_numpy()
    # scikit-learn ships the features centred and scaled to unit sum of squares
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose((X**2).sum(axis=0), 1.0, rtol=1e-10)
    assert frame["target"].between(25, 346).all()
    assert (frame["target"].min(), frame["target"].max()) == (25.0, 346.0)


def test_insurance_package_data_is_the_published_file() -> None:
    data = resources.files("regressops").joinpath("datasets_data", "insurance.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == INSURANCE_SHA256
    provenance = resources.files("regressops").joinpath("datasets_data", "PROVENANCE.md")
    assert INSURANCE_SHA256 in provenance.read_text()


def test_insurance_contract() -> None:
    frame = load_dataset("insurance")
    assert frame.shape == (1338, 7)
    assert list(frame.columns) == ["age", "sex", "bmi", "children", "smoker", "region", "charges"]
    assert not frame.isna().any().any()
    assert _numeric_kind(frame["age"]) == "i"
    assert _numeric_kind(frame["children"]) == "i"
    assert _numeric_kind(frame["bmi"]) == "f"
    assert _numeric_kind(frame["charges"]) == "f"
    assert set(frame["sex"]) == {"female", "male"}
    assert set(frame["smoker"]) == {"yes", "no"}
    assert set(frame["region"]) == {"northeast", "northwest", "southeast", "southwest"}
    assert (frame["age"].min(), frame["age"].max()) == (18, 64)
    assert (frame["children"].min(), frame["children"].max()) == (0, 5)
    assert frame["bmi"].min() == pytest.approx(15.96)
    assert frame["bmi"].max() == pytest.approx(53.13)
    assert frame["charges"].min() == pytest.approx(1121.8739)
    assert frame["charges"].max() == pytest.approx(63770.42801)
    assert int(frame.duplicated().sum()) == 1
    assert set(get_dataset("insurance").categorical) == {"sex", "smoker", "region"}


def _bits(frame: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).view(np.int64)


def test_california_from_the_raw_file_equals_the_sklearn_frame_bit_for_bit(
    california: Path, california_sklearn_csv: Path
) -> None:
    csv = california_sklearn_csv
    frame = load_dataset("california")
    # pandas 3 parses floats round-trip exactly by default; pandas 2 needs to be asked
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    expected = pd.read_csv(csv, **exact)
    assert list(frame.columns) == [*CALIFORNIA_FEATURES, "MedHouseVal"]
    assert list(frame.columns) == list(expected.columns)
    np.testing.assert_array_equal(_bits(frame), _bits(expected))


def test_california_contract(california: Path) -> None:
    frame = load_dataset("california")
    assert frame.shape == (20640, 9)
    assert all(_numeric_kind(frame[c]) == "f" for c in frame.columns)
    assert not frame.isna().any().any()
    assert np.isfinite(frame.to_numpy()).all()
    y = frame["MedHouseVal"]
    assert y.max() == 5.00001
    assert int((y == 5.00001).sum()) == 965
    assert y.min() > 0
    assert frame["HouseAge"].max() == 52
    assert int((frame["HouseAge"] == 52).sum()) == 1273
    assert frame["MedInc"].max() == 15.0001
    assert frame["Latitude"].between(32, 42).all()
    assert frame["Longitude"].between(-125, -114).all()
    assert (frame[["AveRooms", "AveBedrms", "AveOccup", "Population"]] > 0).all().all()


def test_california_from_a_csv_of_the_sklearn_frame(
    monkeypatch: pytest.MonkeyPatch, california_sklearn_csv: Path
) -> None:
    monkeypatch.setenv("REGRESSOPS_CALIFORNIA_PATH", str(california_sklearn_csv))
    frame = load_dataset("california")
    assert frame.shape == (20640, 9)


def test_california_path_from_settings(monkeypatch: pytest.MonkeyPatch, california: Path) -> None:
    monkeypatch.delenv("REGRESSOPS_CALIFORNIA_PATH")
    settings = Settings(datasets={"california": {"path": str(california)}})
    assert load_dataset("california", settings).shape == (20640, 9)


def test_california_missing_local_file_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REGRESSOPS_CALIFORNIA_PATH", str(tmp_path / "cal_housing.data"))
    with pytest.raises(DataError, match="REGRESSOPS_CALIFORNIA_PATH") as info:
        load_dataset("california")
    assert info.value.reason == "file_not_found"


def test_california_csv_without_the_columns_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "cal.csv"
    bad.write_text("a,b\n1,2\n")
    monkeypatch.setenv("REGRESSOPS_CALIFORNIA_PATH", str(bad))
    with pytest.raises(DataError, match="lacks the scikit-learn California columns"):
        load_dataset("california")
