"""Messages point at the right thing: the bad value, the real cause, the option the user gave."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from regressops import cli
from regressops.data.selection import DataSelection
from regressops.errors import ConfigError, DataError
from regressops.features import FeatureSpec
from regressops.training.sources import load_training_data


def test_a_non_numeric_target_quotes_the_value_that_is_not_a_number(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,2\n2,3\n3,lots\n4,5\n")
    with pytest.raises(DataError, match=r"target column 'y' is not numeric \(e.g. 'lots'\)"):
        load_training_data(DataSelection(data=path, target="y"))


def test_a_csv_true_matches_the_category_true() -> None:
    spec = FeatureSpec.fit(
        {"flag": ["true", "false", "true"], "x": [1.0, 2.0, 3.0]}, categorical=["flag"]
    )
    as_read = spec.transform_columns({"flag": [True, False], "x": np.array([1.0, 2.0])})
    as_text = spec.transform_columns({"flag": ["true", "false"], "x": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(as_read, as_text)


def test_a_date_column_is_not_silently_one_hot_encoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    days = pd.date_range("2024-01-01", periods=30, freq="D").strftime("%Y-%m-%d")
    path = tmp_path / "sales.csv"
    pd.DataFrame({"sold_on": days, "units": range(30), "amount": range(30)}).to_csv(path)
    with caplog.at_level(logging.WARNING):
        td = load_training_data(
            DataSelection(data=path, target="amount", features=["sold_on", "units"])
        )
    assert td.categorical == ["sold_on"]
    assert "column 'sold_on' holds dates: it is one-hot encoded as 30 categories" in caplog.text


def test_a_time_travel_message_does_not_invent_an_option() -> None:
    with pytest.raises(ConfigError) as info:
        load_training_data(DataSelection(dataset="diabetes", data_version=1))
    assert info.value.message.startswith("clean version 1 of dataset 'diabetes' is needed")
    assert "--data-version 1 needs" not in info.value.message


def test_a_test_size_that_leaves_one_training_row_says_so(home: Path) -> None:
    result = CliRunner().invoke(
        cli.app, ["train", "-d", "diabetes", "--test-size", "441", "--no-track", "--no-plots"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: cross-validation needs at least 2 training rows, but the split left 1; lower "
        "--test-size or pass --cv 0"
    )
