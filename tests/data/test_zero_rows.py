"""Training on zero rows: one readable line and exit code 3, nothing written.

A real lake gets there: every row of the source fails validation and ``--on-fail quarantine``
(with the failure-rate bound lifted) writes a clean version of zero rows. Files and the
estimator itself refuse zero rows as well.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.data import make_settings
from regressops import cli
from regressops.config import Settings
from regressops.data.demo_db import seed_demo_db
from regressops.data.extract import extract
from regressops.data.validate import validate
from regressops.errors import DataError
from regressops.models import LinearRegressor
from regressops.training.train import train


@pytest.fixture
def empty_clean_version(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """insurance in the lake with a clean version of zero rows (every row quarantined)."""
    monkeypatch.setenv("REGRESSOPS_DATA__MAX_FAILURE_RATE", "1.0")
    settings = make_settings(home, data={"max_failure_rate": 1.0})
    seed_demo_db(dataset="insurance", settings=settings)
    with sqlite3.connect(home / "demo.db") as con:
        con.execute("UPDATE insurance SET age = -5")  # below the contract's range: all fail
    extract("insurance", settings=settings)
    result = validate("insurance", settings=settings, on_fail="quarantine")
    assert result.rows["clean"] == 0 and result.clean_version is not None
    return settings


def test_training_on_a_clean_version_of_zero_rows_is_one_data_error(
    empty_clean_version: Settings,
) -> None:
    settings = empty_clean_version
    with pytest.raises(DataError) as info:
        train(dataset="insurance", settings=settings, plots=False)
    assert info.value.exit_code == 3 and info.value.reason == "empty"
    assert info.value.message == "insurance clean v0 in the lake holds no rows; nothing to train on"
    assert not (settings.home / "models").exists()


def test_the_cli_says_it_in_one_line_with_exit_code_3(
    empty_clean_version: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(cli.app, ["train", "--dataset", "insurance", "--no-plots"])
    assert result.exit_code == 3, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: insurance clean v0 in the lake holds no rows; nothing to train on"
    ]
    assert not (empty_clean_version.home / "models").exists()


@pytest.mark.parametrize("solver", ["exact", "sgd"])
def test_the_estimator_refuses_zero_rows_in_one_line(solver: str) -> None:
    with pytest.raises(ValueError, match=r"^Found array with 0 sample\(s\)") as info:
        LinearRegressor(solver=solver).fit(np.empty((0, 3)), np.empty(0))
    assert "\n" not in str(info.value)
    model = LinearRegressor(solver=solver).fit(np.eye(3), np.arange(3.0))
    with pytest.raises(ValueError, match="0 sample"):
        model.partial_fit(np.empty((0, 3)), np.empty(0))
