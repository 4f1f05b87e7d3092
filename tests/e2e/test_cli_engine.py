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


def _run(*args: str, home: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    env.update(
        REGRESSOPS_HOME=str(home),
        REGRESSOPS_CONFIG="none",
        REGRESSOPS_COMPUTE__WORKER_MEMORY="1GB",
        COLUMNS="200",
        **env_extra,
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


@pytest.mark.slow
def test_train_registers_then_predict_and_monitor_on_a_local_cluster(
    home: Path, tmp_path: Path
) -> None:
    """train --engine dask --register logs a run and a gated version; the champion predicts
    in process, and monitor --engine dask judges a shifted window against its reference."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 6_000
    frame = pd.DataFrame(rng.standard_normal((n, 3)) * [1.0, 5.0, 2.0], columns=["a", "b", "c"])
    frame["kind"] = rng.choice(["u", "v"], n)
    frame["y"] = frame[["a", "b", "c"]].to_numpy() @ [2.0, -1.0, 0.5] + rng.standard_normal(n)
    data = tmp_path / "train"
    data.mkdir()
    for i, part in enumerate(np.array_split(np.arange(n), 2)):
        frame.iloc[part].to_parquet(data / f"part-{i}.parquet", index=False)
    trained = _run(
        "train", "--data", str(data), "--target", "y", "--engine", "dask", "--scheduler",
        "local:1", "--model-name", "synth", "--register", "--json", home=home,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    tracking = json.loads(trained.stdout)["tracking"]
    assert tracking["registered_version"] == "1" and tracking["champion"] == "1"
    assert tracking["leaderboard"][0]["run_id"] and tracking["gate_report"]["passed"]
    listed = _run("models", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert '"synth"' in listed.stdout
    rows = tmp_path / "rows.csv"
    frame.drop(columns="y").head(20).to_csv(rows, index=False)
    predicted = _run(
        "predict", "--model", "models:/synth@champion", "-i", str(rows), "-o",
        str(tmp_path / "pred.csv"), home=home,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_csv(tmp_path / "pred.csv")) == 20
    current = tmp_path / "current"
    current.mkdir()
    shifted = frame.assign(b=frame["b"] + 5.0)
    shifted.to_parquet(current / "window.parquet", index=False)
    report = tmp_path / "report"
    monitored = _run(
        "monitor", "--model", "models:/synth@champion", "--current-data", str(current),
        "--engine", "dask", "--scheduler", "local:1", "-o", str(report), home=home,
    )  # fmt: skip
    assert monitored.returncode == 0, monitored.stderr
    assert "score(s) from quantile summaries, bounds in drift.json" in monitored.stdout
    doc = json.loads((report / "drift.json").read_text())
    assert doc["drifted_features"] == ["b"]
    assert doc["current"]["engine"]["name"] == "dask"
    assert doc["features"]["b"]["approximation"]["exact"] is False
    assert (report / "report.html").is_file()


def test_monitor_on_dask_refuses_bad_input_in_one_line(home: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "in.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_csv(data, index=False)
    out = tmp_path / "report"
    base = ["monitor", "--reference-data", str(data), "-o", str(out), "--engine", "dask"]
    line = _one_error_line(_run(*base, home=home), 2)
    assert "give --current-data PATH or --current-dataset NAME" in line
    line = _one_error_line(_run(*base, "--current-data", str(data), "--last", "5", home=home), 2)
    assert "not the prediction log" in line
    line = _one_error_line(
        _run(
            *base,
            "--current-data",
            str(data),
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
            home=home,
            REGRESSOPS_COMPUTE__CONNECT_TIMEOUT="1",
        ),
        10,
    )
    assert "cannot reach the Dask scheduler" in line
    line = _one_error_line(_run("monitor", "--current-dataset", "diabetes", home=home), 2)
    assert "add --engine dask" in line
    assert not out.exists()
