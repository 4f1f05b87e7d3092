"""The data commands end to end: demo-db, extract, validate, data show, train on the lake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regressops import cli

REGRESSOPS = Path(sys.executable).parent / "regressops"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESSOPS_DATA__RETRIES", "0")
    monkeypatch.setenv("COLUMNS", "200")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_error_line(code: int, stderr: str, expected: int) -> str:
    assert code == expected, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_the_data_path_from_demo_db_to_a_trained_model(home: Path) -> None:
    code, out, err = invoke("demo-db", "--messy")
    assert code == 0, err
    assert "seeded table insurance with 1,364 rows" in out and "numbers as text 13" in out

    code, out, err = invoke("extract", "--dataset", "insurance", "--chunk-size", "500")
    assert code == 0, err
    assert "raw v0 of insurance: 1,364 rows read" in out
    code, out, _ = invoke("extract", "--dataset", "insurance")
    assert "nothing new" in out and "stays at v0" in out

    code, _, err = invoke("validate", "--dataset", "insurance")  # stop by default
    line = one_error_line(code, err, 3)
    assert "91 of 1364 rows failed" in line and "nothing was written" in line

    code, out, err = invoke("validate", "-d", "insurance", "--on-fail", "quarantine", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "quarantined" and doc["rows"]["quarantined"] == 91
    assert Path(doc["report_json"]).is_file() and Path(doc["report_csv"]).is_file()

    code, out, err = invoke("data", "show")
    assert code == 0, err
    assert "v0 (1,273 rows)" in out and "v0 (91 rows)" in out
    code, out, err = invoke("data", "show", "--dataset", "insurance", "--version", "0")
    assert code == 0, err
    assert "validation_status: quarantined" in out and "field_uniqueness" in out

    code, out, err = invoke("train", "--dataset", "insurance", "--no-track", "--no-plots")
    assert code in (0, 7), err  # 7: a quality gate failed; the model is still trained
    assert "data: insurance clean v0 from the lake (raw v0, 1273 rows" in out

    code, _, err = invoke("train", "-d", "insurance", "--data-version", "4", "--no-track")
    assert "insurance clean has no version 4" in one_error_line(code, err, 3)


def test_training_says_when_it_uses_the_builtin_copy(home: Path) -> None:
    code, out, err = invoke("train", "--dataset", "diabetes", "--no-track", "--no-plots")
    assert code in (0, 7), err
    assert "data: the built-in copy of diabetes (442 rows; not extracted into the lake)" in out


@pytest.mark.parametrize(
    ("args", "exit_code", "words"),
    [
        (["extract", "-d", "insurance", "--query", "DELETE FROM insurance"], 2, "got DELETE"),
        (["extract", "-d", "insurance", "--table", "nope"], 3, "'nope' not found"),
        (["extract", "-d", "insurance", "--source-url", "sqlite:////no/dir/x.db"], 5, "not found"),
        (["extract", "-d", "insurance", "--query", "SELECT 1", "--param", "oops"], 2, "NAME=VALUE"),
        (
            ["extract", "-d", "insurance", "--query", "SELECT * FROM insurance WHERE 0"],
            3,
            "no rows",
        ),
        (["extract", "-d", "insurance", "--query", "SELECT id FROM insurance"], 3, "lacks column"),
        (["extract", "-d", "sales"], 2, "unknown dataset 'sales'"),
        (["validate", "-d", "insurance", "--on-fail", "ignore"], 2, "--on-fail must be one of"),
        (["data", "show", "-d", "insurance"], 3, "nothing in the lake"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    home: Path, args: list[str], exit_code: int, words: str
) -> None:
    assert invoke("demo-db")[0] == 0
    code, _, err = invoke(*args)
    assert words in one_error_line(code, err, exit_code)
    lake = home / "lake"
    assert not lake.exists() or not any(p.is_file() for p in lake.rglob("*"))


def test_the_console_script(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    env.update(REGRESSOPS_HOME=str(home), REGRESSOPS_CONFIG="none")
    for args in (["demo-db", "-d", "diabetes"], ["extract", "-d", "diabetes", "--json"]):
        done = subprocess.run(
            [str(REGRESSOPS), *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows_new"] == 442
