"""``regressops quantize`` and ``train --quantize int8`` as a user runs them (console script)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from subprocess import CompletedProcess, run

import pytest

REGRESSOPS = Path(sys.executable).parent / "regressops"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    if not REGRESSOPS.is_file():
        pytest.fail(f"console script not installed at {REGRESSOPS}; run `uv sync`")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    return {
        **clean,
        "REGRESSOPS_HOME": str(home),
        "REGRESSOPS_CONFIG": str(home.parent / "no-regressops.toml"),
        "COLUMNS": "200",
    }


def cli(env: dict[str, str], cwd: Path, *args: str) -> CompletedProcess[str]:
    return run(
        [str(REGRESSOPS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def test_quantize_a_model_trained_on_the_raw_housing_csv(
    env: dict[str, str], tmp_path: Path, housing_raw_csv: Path
) -> None:
    trained = cli(
        env, tmp_path, "train", "--data", str(housing_raw_csv), "--target", "median_house_value",
        "--no-track", "--cv", "0", "--no-plots", "-o", "float",
    )  # fmt: skip
    # the float model fails its edge_records gate on this raw data (exit 7), but is written
    assert (tmp_path / "float" / "model.json").is_file(), trained.stderr

    done = cli(env, tmp_path, "quantize", "--model", "float", "--output", "int8")
    assert done.returncode == 0, done.stderr
    assert "float -> int8 (per-tensor, 4128 rows)" in done.stdout
    assert "pass quantization_r2_drop" in done.stdout and "pass quantization_bound" in done.stdout

    done = cli(
        env, tmp_path, "quantize", "-m", "float", "-o", "int8-pf", "--granularity",
        "per-feature", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "linear-int8" and doc["granularity"] == "per-feature"
    pf, pt = doc["alternatives"]["per-feature"], doc["alternatives"]["per-tensor"]
    assert pf["n_rows"] == 4128 and pf["bound_violations"] == 0 == pt["bound_violations"]
    # 13 model columns; ocean_proximity's 5 one-hot columns share one scale: 9 scales
    assert pt["int8_bytes"] == 13 + 8 and pf["int8_bytes"] == 13 + 9 * 8
    assert pf["r2_drop"] <= 0.001 and pt["r2_drop"] <= 0.001
    model_json = json.loads((tmp_path / "int8-pf" / "model.json").read_text())
    assert len(model_json["quantization"]["scales"]) == 9

    # the quantised bundle predicts from the command line like any bundle, gaps included
    rows = tmp_path / "rows.csv"
    rows.write_text(housing_raw_csv.read_text().splitlines()[0] + "\n"
                    "-122.23,37.88,41.0,880.0,,322.0,126.0,8.3252,452600.0,NEAR BAY\n")  # fmt: skip
    done = cli(env, tmp_path, "predict", "-m", "int8", "-i", str(rows), "-o", "out.csv")
    assert done.returncode == 0, done.stderr
    predicted = (tmp_path / "out.csv").read_text().splitlines()
    assert len(predicted) == 2 and float(predicted[1].split(",")[-1]) > 0


ERRORS = [
    (["--model", "float", "--output", "float"], 2, "must differ"),
    (["--model", "nowhere", "--output", "x"], 4, "no model bundle"),
    (["--model", "int8", "--output", "x"], 4, "only a float linear model"),
    (["--model", "float", "--output", "x", "--granularity", "per-row"], 2, "granularity"),
    (["--model", "float"], 2, "--output"),
]


def test_quantize_errors_are_one_line_with_their_exit_code(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert cli(env, tmp_path, "train", "-d", "diabetes", "--no-track", "--no-plots",
               "--cv", "0", "-o", "float").returncode == 0  # fmt: skip
    assert cli(env, tmp_path, "quantize", "-m", "float", "-o", "int8").returncode == 0
    for args, code, message in ERRORS:
        failed = cli(env, tmp_path, "quantize", *args)
        assert failed.returncode == code, (args, failed.stderr)
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, failed.stderr)
        assert "Traceback" not in failed.stderr
        assert not (tmp_path / "x").exists()


def test_train_quantize_int8_registers_the_int8_model(env: dict[str, str], tmp_path: Path) -> None:
    done = cli(
        env, tmp_path, "train", "-d", "diabetes", "--quantize", "int8", "--register", "--cv", "0",
        "--no-plots", "-o", "diabetes", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "linear-int8" and doc["path"].endswith("diabetes-int8")
    assert doc["tracking"]["champion"] == "1"
    assert (tmp_path / "diabetes" / "model.json").is_file()  # the float model stays
    listed = cli(env, tmp_path, "models", "list", "diabetes", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["kind"] == "linear-int8" and row["aliases"] == ["champion"]
    bad = cli(env, tmp_path, "train", "-d", "diabetes", "--quantize", "int4", "--no-track")
    assert bad.returncode == 2 and "--quantize must be one of int8" in bad.stderr
