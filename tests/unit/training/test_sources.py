"""load_training_data: the one entry for training data; checks, categoricals and lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regressops.errors import ConfigError, DataError
from regressops.training.sources import file_sha256, frame_sha256, load_training_data


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "houses.csv"
    pd.DataFrame(
        {
            "rooms": [3, 4, 2, 5, 3, 4],
            "area": [70.5, 90.0, 45.2, 120.0, np.nan, 88.8],
            "city": ["Oslo", "Bergen", "Oslo", "Oslo", "Bergen", "Tromsø"],
            "flag": [True, False, True, True, False, False],
            "price": [3.1, 4.2, 2.0, 6.3, 3.3, 4.0],
        }
    ).to_csv(path, index=False)
    return path


def test_dataset_defaults() -> None:
    td = load_training_data("insurance")
    assert td.target == "charges"
    assert td.features == ["age", "sex", "bmi", "children", "smoker", "region"]
    assert td.categorical == ["sex", "smoker", "region"]
    assert list(td.frame.columns) == [*td.features, "charges"]
    assert td.name == "insurance"
    assert td.y.dtype == np.float64
    lineage = td.lineage
    assert lineage["source"] == "dataset"
    assert lineage["dataset"] == "insurance"
    assert lineage["rows"] == 1338
    assert lineage["content_hash"] == frame_sha256(td.frame)
    assert len(lineage["content_hash"]) == 64


def test_file_source_with_automatic_categoricals(table: Path) -> None:
    td = load_training_data(data=table, target="price")
    assert td.features == ["rooms", "area", "city", "flag"]
    assert td.categorical == ["city", "flag"]  # non-numeric columns become categorical
    assert td.name == "houses"
    assert td.lineage["source"] == "file"
    assert td.lineage["path"] == str(table.resolve())
    assert td.lineage["file_sha256"] == file_sha256(table)
    assert td.lineage["rows"] == 6


def test_feature_selection_keeps_the_given_order(table: Path) -> None:
    td = load_training_data(data=table, target="price", features=["city", " rooms "])
    assert td.features == ["city", "rooms"]
    assert list(td.frame.columns) == ["city", "rooms", "price"]
    assert td.categorical == ["city"]


def test_another_target_of_a_dataset_uses_the_other_columns() -> None:
    td = load_training_data("diabetes", target="bmi")
    assert "bmi" not in td.features
    assert "target" in td.features


def test_content_hash_is_stable_and_sensitive() -> None:
    a = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", None]})
    assert frame_sha256(a) == frame_sha256(a.copy())
    assert frame_sha256(a) == frame_sha256(a.set_axis([10, 11]))  # the index is not content
    assert frame_sha256(a) != frame_sha256(a.assign(x=[1.0, 2.5]))
    assert frame_sha256(a) != frame_sha256(a.assign(c=["a", "None"]))
    assert frame_sha256(a) != frame_sha256(a.rename(columns={"x": "y"}))
    assert frame_sha256(a) != frame_sha256(a.iloc[::-1])
    assert frame_sha256(a) != frame_sha256(a.assign(x=[1, 2]))  # dtype is content


@pytest.mark.parametrize(
    ("kwargs", "error", "reason"),
    [
        ({}, ConfigError, "no_data"),
        ({"dataset": "diabetes", "data": "x.csv"}, ConfigError, "ambiguous_data"),
        ({"dataset": "iris"}, ConfigError, "unknown_dataset"),
        ({"dataset": "diabetes", "target": "nope"}, DataError, "unknown_column"),
        ({"dataset": "diabetes", "features": ["bmi", "nope"]}, DataError, "unknown_column"),
        ({"dataset": "diabetes", "features": ["bmi", "bmi"]}, ConfigError, "duplicate_feature"),
        ({"dataset": "diabetes", "features": ["target"]}, ConfigError, "target_is_feature"),
        ({"dataset": "diabetes", "features": [" ", ""]}, ConfigError, "no_features"),
        ({"data": "missing.csv", "target": "y"}, DataError, "file_not_found"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as info:
        load_training_data(**kwargs)
    assert getattr(info.value, "reason", None) == reason
    assert "\n" not in str(info.value)


def test_file_needs_a_target(table: Path) -> None:
    with pytest.raises(ConfigError, match="needs --target") as info:
        load_training_data(data=table)
    assert info.value.reason == "missing_target"


def test_non_numeric_target_is_refused(table: Path) -> None:
    with pytest.raises(DataError, match="not numeric") as info:
        load_training_data(data=table, target="city")
    assert info.value.reason == "non_numeric_target"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_missing_or_infinite_target_is_refused(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, bad, 3.0]}).to_parquet(path)
    with pytest.raises(DataError, match="row 1") as info:
        load_training_data(data=path, target="y")
    assert info.value.reason == "missing_target"


def test_only_a_target_is_not_enough(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("y\n1\n2\n")
    with pytest.raises(DataError, match="no column besides the target"):
        load_training_data(data=path, target="y")
