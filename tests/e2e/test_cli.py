"""The command line, through Typer's runner and as a real subprocess of the console script."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from regressops import cli

REGRESSOPS = Path(sys.executable).parent / "regressops"
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_script(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REGRESSOPS), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def script_env(home: Path) -> dict[str, str]:
    if not REGRESSOPS.is_file():
        pytest.fail(f"console script not installed at {REGRESSOPS}; run `uv sync`")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    env["REGRESSOPS_HOME"] = str(home)
    env["REGRESSOPS_CONFIG"] = "none"
    env["COLUMNS"] = "200"
    return env


def assert_one_error_line(code: int, stderr: str, expected_code: int | None = None) -> None:
    assert code != 0
    if expected_code is not None:
        assert code == expected_code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr


# ---------------------------------------------------------------------- happy paths (runner)
def test_train_evaluate_predict(home: Path, tmp_path: Path) -> None:
    code, out, err = invoke("train", "--dataset", "diabetes", "--features", "bmi,bp", "--no-plots")
    assert code == 0, err
    assert "r2" in out and "rmse" in out and "test" in out and "train" in out
    bundle = home / "models" / "diabetes"
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert {"r2", "rmse", "mse", "mae"} <= set(metrics)
    assert f"{metrics['r2']:.4f}" in out

    code, out, err = invoke(
        "evaluate", "--model", str(bundle), "--dataset", "diabetes", "--test-rows", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metrics"]["r2"] == metrics["r2"]
    assert (home / "reports" / "evaluate-diabetes.json").is_file()

    inputs = tmp_path / "in.json"
    pd.DataFrame({"bmi": [0.0, 0.05], "bp": [0.0, 0.02]}).to_json(inputs, orient="records")
    output = tmp_path / "out.parquet"
    code, out, err = invoke("predict", "-m", str(bundle), "-i", str(inputs), "-o", str(output))
    assert code == 0, err
    assert "wrote 2 predictions" in out
    written = pd.read_parquet(output)
    assert list(written.columns) == ["bmi", "bp", "prediction"]


def test_train_json_output_and_options(home: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "sgd-model"
    code, out, err = invoke(
        "train", "-d", "diabetes", "--features", "bmi", "--solver", "sgd", "--learning-rate",
        "0.01", "--max-iter", "3", "--batch-size", "8", "--alpha", "0.1", "--test-size", "20",
        "--no-shuffle", "--random-state", "3", "--output", str(out_dir), "--json", "--no-plots",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["path"] == str(out_dir)
    assert doc["params"]["solver"] == "sgd"
    assert doc["params"]["learning_rate"] == 0.01
    assert doc["params"]["max_iter"] == 3
    assert doc["params"]["alpha"] == 0.1
    assert doc["metrics"]["n_test"] == 20
    assert doc["lineage"]["split"] == {
        "method": "tail", "test_size": 20, "n_rows": 442, "n_train": 422, "n_test": 20,
        "shuffle": False, "random_state": None,
    }  # fmt: skip
    assert doc["lineage"]["seed"] == 3
    assert (out_dir / "model.json").is_file()
    assert [c["path"] for c in doc["candidates"]] == [str(out_dir)]
    assert set(doc["tracking"]) >= {"leaderboard", "registered_version"}


def test_train_json_has_one_shape_and_learning_rate_auto(home: Path) -> None:
    code, out, err = invoke(
        "train", "-d", "diabetes", "--model", "linear", "--model", "tree",
        "--json", "--no-plots", "--no-track", "--cv", "0",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert [c["kind"] for c in doc["candidates"]] == ["linear", "tree"]
    best = next(c for c in doc["candidates"] if c["path"] == doc["path"])
    assert doc["metrics"] == best["metrics"] and "leaderboard" in doc["tracking"]
    code, out, err = invoke(
        "train", "-d", "diabetes", "--solver", "gd", "--learning-rate", "auto", "--json",
        "--no-plots", "--no-track", "--cv", "0",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["params"]["learning_rate"] == "auto", err
    code, _, err = invoke("train", "-d", "diabetes", "--learning-rate", "fast")
    assert code == 2 and "expected a positive number or 'auto', got 'fast'" in err


def test_train_on_a_file_with_text_columns(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "people.csv"
    pd.DataFrame(
        {"age": [20, 30, 40, 50, 60, 70] * 5, "smoker": ["yes", "no", "no"] * 10,
         "cost": [1.0, 2.0, 3.5, 4.0, 5.5, 6.0] * 5}
    ).to_csv(data, index=False)  # fmt: skip
    code, _out, err = invoke("train", "--data", str(data), "--target", "cost", "--no-plots")
    assert code == 0, err
    model = json.loads((home / "models" / "people" / "model.json").read_text())
    assert model["output_names"] == ["age", "smoker=no", "smoker=yes"]


def test_version_and_help() -> None:
    code, out, _ = invoke("--version")
    assert code == 0
    assert out.strip() == "regressops 0.1.0"
    code, out, _ = invoke("train", "--help")
    assert code == 0
    for option in ("--dataset", "--data", "--target", "--features", "--model", "--solver",
                   "--learning-rate", "--max-iter", "--batch-size", "--alpha", "--test-size",
                   "--no-shuffle", "--random-state", "--output"):  # fmt: skip
        assert option in out
    # the defaults stay in the help text (they were once taken for markup and stripped)
    flat = " ".join(out.split())
    assert "[default: linear]" in flat and "[default: auto]" in flat and " ." not in flat


# ---------------------------------------------------------------------- bad arguments (runner)
BAD = [
    (["train", "--dataset", "iris"], 2, "unknown dataset 'iris'"),
    (["train"], 2, "--dataset NAME"),
    (["train", "--dataset", "diabetes", "--data", "x.csv"], 2, "not both"),
    (["train", "--dataset", "diabetes", "--solver", "newton"], 2, "unknown solver 'newton'"),
    (["train", "--dataset", "diabetes", "--model", "svm"], 2, "unknown model kind 'svm'"),
    (["train", "--dataset", "diabetes", "--features", "bmi,nope"], 3, "['nope']"),
    (["train", "--dataset", "diabetes", "--target", "nope"], 3, "target column 'nope'"),
    (["train", "--data", "missing.csv", "--target", "y"], 3, "file not found"),
    (["train", "--data", "{csv}"], 2, "needs --target"),
    (["train", "--data", "{csv}", "--target", "city"], 3, "not numeric"),
    (["train", "--data", "{csv}", "--target", "gappy"], 3, "missing or infinite"),
    (["train", "--dataset", "diabetes", "--test-size", "1.5"], 2, "test size"),
    (["train", "--dataset", "diabetes", "--test-size", "lots"], 2, "test size"),
    (["train", "--dataset", "diabetes", "--max-iter", "0"], 2, "max_iter"),
    (["train", "--dataset", "diabetes", "--max-iter", "abc"], 2, "--max-iter"),
    (["train", "--dataset", "diabetes", "--bogus"], 2, "No such option"),
    (["frobnicate"], 2, "No such command"),
    (["evaluate", "--model", "nowhere", "--dataset", "diabetes"], 4, "no model bundle"),
    (["evaluate", "--dataset", "diabetes"], 2, "--model"),
    (["predict", "--model", "nowhere", "--input", "{csv}", "--output", "o.csv"], 4, "no model"),
]


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "city": ["a", "b", "c"], "gappy": [1.0, None, 2.0]}).to_csv(
        path, index=False
    )
    return path


@pytest.mark.parametrize(("args", "exit_code", "needle"), BAD)
def test_bad_arguments_give_one_line(
    args: list[str], exit_code: int, needle: str, bad_csv: Path, home: Path
) -> None:
    args = [a.replace("{csv}", str(bad_csv)) for a in args]
    code, _out, err = invoke(*args)
    assert_one_error_line(code, err, exit_code)
    assert needle in err
    assert not (home / "models").exists()


def test_unexpected_errors_hint_at_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    import regressops.training.train as training

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(training, "train", explode)
    code, _, err = invoke("train", "--dataset", "diabetes")
    assert_one_error_line(code, err, 1)
    assert "RuntimeError: boom" in err
    assert "--debug" in err
    code, _, err = invoke("--debug", "train", "--dataset", "diabetes")
    assert code == 1
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("error: unexpected error: RuntimeError: boom")


def test_predict_error_for_a_bad_input_file(diabetes_bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({"bmi": [0.1, 0.2]}).to_csv(src, index=False)
    code, _, err = invoke(
        "predict", "--model", str(diabetes_bundle), "--input", str(src), "--output",
        str(tmp_path / "out.csv"),
    )  # fmt: skip
    assert_one_error_line(code, err, 3)
    assert "missing feature(s)" in err
    assert not (tmp_path / "out.csv").exists()


# ---------------------------------------------------------------------- the real console script
def test_quickstart_then_the_suggested_commands(script_env: dict[str, str], tmp_path: Path) -> None:
    done = run_script("quickstart", cwd=tmp_path, env=script_env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "r2" in done.stdout and "diabetes" in done.stdout
    home = Path(script_env["REGRESSOPS_HOME"])
    bundle = home / "models" / "diabetes"
    assert {"model.json", "metrics.json", "lineage.json", "plots"} <= {
        p.name for p in bundle.iterdir()
    }
    steps = [
        line.strip() for line in done.stdout.splitlines() if line.strip().startswith("regressops ")
    ]
    assert [s.split()[1] for s in steps][:2] == ["evaluate", "predict"]
    for step in steps:
        if step.split()[1] == "serve":
            continue  # runs a server; covered by the serving tests
        follow = run_script(*shlex.split(step)[1:], cwd=tmp_path, env=script_env)
        assert follow.returncode == 0, (step, follow.stderr)
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == 5
    assert "prediction" in predictions.columns
    saved = json.loads((bundle / "metrics.json").read_text())
    report = json.loads((home / "reports" / "evaluate-diabetes.json").read_text())
    assert report["metrics"]["r2"] == saved["r2"]


def test_script_train_json_and_errors(script_env: dict[str, str], tmp_path: Path) -> None:
    done = run_script(
        "train", "--dataset", "insurance", "--json", "--no-plots", cwd=tmp_path, env=script_env
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["metrics"]["r2"] >= 0.78
    for args, code in [
        (["train", "--dataset", "iris"], 2),
        (["train", "--dataset", "diabetes", "--nope"], 2),
        (["evaluate", "--model", "nowhere", "--dataset", "diabetes"], 4),
    ]:
        failed = run_script(*args, cwd=tmp_path, env=script_env)
        assert_one_error_line(failed.returncode, failed.stderr, code)
        assert failed.stdout == ""


def test_debug_shows_why_a_run_went_through_mlflow(
    script_env: dict[str, str], tmp_path: Path
) -> None:
    args = ["train", "--dataset", "diabetes", "--no-plots", "--cv", "0", "--register"]
    loud = run_script("--debug", *args, cwd=tmp_path, env=script_env)
    assert loud.returncode == 0, loud.stderr
    assert (
        "DEBUG regressops.training.candidates: runs will be logged through MLflow: --register"
        in loud.stderr
    )
    direct = run_script(*args[:-1], cwd=tmp_path, env={**script_env, "REGRESSOPS_DEBUG": "1"})
    assert direct.returncode == 0, direct.stderr
    assert "through MLflow" not in direct.stderr
    assert "without MLflow" in direct.stderr  # the direct writer's own debug line
    quiet = run_script(*args[:-1], cwd=tmp_path, env=script_env)
    assert quiet.returncode == 0, quiet.stderr
    assert "DEBUG" not in quiet.stderr and "INFO" not in quiet.stderr


def test_help_is_fast_and_light(script_env: dict[str, str], tmp_path: Path) -> None:
    done = run_script("--help", cwd=tmp_path, env=script_env)
    assert done.returncode == 0
    for command in ("train", "evaluate", "predict", "quickstart"):
        assert command in done.stdout
    code = (
        "import sys, regressops.cli\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'matplotlib', 'mlflow', 'scipy') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_predictions_shows_the_newest_logged_rows(home: Path) -> None:
    import time

    import numpy as np

    from regressops.serving.log.batch import LogBatch
    from regressops.serving.log.sinks import JsonLinesSink

    features = np.arange(8.0).reshape(4, 2)
    sink = JsonLinesSink(home / "predictions.jsonl")  # where `serve` logs by default
    ts, names = time.time(), ["a", "b"]
    sink.write(
        [
            LogBatch(ts, "first", "/batch", "m", "3", names, features, np.ones(4), 2.5),
            LogBatch(ts, "second", "/stream", "m", "3", names, features[:1], np.zeros(1), 1.0),
        ]
    )
    sink.close()
    code, out, err = invoke("predictions", "--last", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["total_rows"] == 5
    assert [(r["request_id"], r["row"]) for r in doc["rows"]] == [("first", 3), ("second", 0)]
    assert doc["rows"][0]["features"] == {"a": 6.0, "b": 7.0} and doc["rows"][0]["prediction"] == 1
    code, out, err = invoke("predictions")
    assert code == 0 and "last 5 of 5 logged predictions" in out and "second" in out
    code, _, err = invoke("predictions", "--prediction-log", str(home / "nope.jsonl"))
    assert_one_error_line(code, err, 2)
    assert "nothing logged yet: no server has written" in err and "nope.jsonl" in err
