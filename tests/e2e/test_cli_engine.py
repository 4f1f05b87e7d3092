"""``train`` and ``predict`` with ``--engine dask`` as a user runs them (console script)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REGRESSOPS = Path(sys.executable).parent / "regressops"
HOUSING = (
    Path(__file__).resolve().parents[2].parent / "shared/data/california_housing_raw/housing.csv"
)

pytest.importorskip("distributed")


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    env.update(
        REGRESSOPS_HOME=str(home),
        REGRESSOPS_CONFIG=str(home.parent / "no.toml"),
        REGRESSOPS_COMPUTE__WORKER_MEMORY="1GB",
        COLUMNS="200",
    )
    return subprocess.run(
        [str(REGRESSOPS), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.mark.slow
def test_train_and_predict_the_raw_housing_csv_on_a_local_cluster(
    home: Path, tmp_path: Path
) -> None:
    if not HOUSING.is_file():
        pytest.fail(f"the shared housing data is missing at {HOUSING}")
    data = tmp_path / "in"
    data.mkdir()
    frame = pd.read_csv(HOUSING)  # gaps in total_bedrooms, a text column, capped values
    for i, part in enumerate((frame.iloc[:8000], frame.iloc[8000:])):
        part.to_parquet(data / f"housing-{i}.parquet", index=False)
    model = tmp_path / "model"
    trained = _run(
        "train", "--data", str(data), "--target", "median_house_value", "--engine", "dask",
        "--scheduler", "local:2", "--output", str(model), "--json", home=home,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert result["metrics"]["fit"]["engine"] == "dask"
    assert 0.55 < result["metrics"]["r2"] < 0.75  # a linear model on this data
    assert result["metrics"]["n_test"] + result["metrics"]["train"]["n"] == len(frame)
    scores = tmp_path / "scores"
    predicted = _run(
        "predict", "--model", str(model), "--input", str(data), "--output", str(scores),
        "--engine", "dask", "--scheduler", "local:1", home=home,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert f"wrote {len(frame)} predictions in 2 Parquet file(s)" in predicted.stdout
    written = pd.read_parquet(scores)
    assert len(written) == len(frame) and written["prediction"].notna().all()
    assert set(written["model_name"]) == {"in"}


def test_bad_input_is_one_line_with_its_exit_code(home: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "in.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]}).to_csv(data, index=False)
    line = _one_error_line(
        _run(
            "train",
            "--data",
            str(data),
            "--target",
            "y",
            "--engine",
            "dask",
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
            home=home,
        ),
        10,
    )
    assert "cannot reach the Dask scheduler" in line
    line = _one_error_line(
        _run("train", "--data", str(data), "--target", "y", "--scheduler", "nowhere", home=home),
        2,
    )
    assert "invalid scheduler 'nowhere'" in line
    assert not (home / "models").exists()
