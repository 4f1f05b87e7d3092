"""`regressops predictions` says what is wrong with the log it was pointed at, in one line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from regressops import cli

runner = CliRunner()
HOUSING = Path(__file__).resolve().parents[3] / "shared/data/california_housing_raw/housing.csv"


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, ["predictions", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_fresh_home_has_nothing_logged_yet(home: Path) -> None:
    code, out, err = _run()
    assert code == 0 and err.strip() == (
        f"nothing logged yet: no server has written {home / 'predictions.jsonl'}"
    )
    code, out, _ = _run("--json")
    assert code == 0 and '"total_rows": 0' in out


def test_a_csv_is_not_a_prediction_log(tmp_path: Path) -> None:
    csv = tmp_path / "housing.csv"  # the real data set's file when present
    csv.write_text(HOUSING.read_text() if HOUSING.is_file() else "a,b\n1,2\n3,4\n")
    code, _, err = _run("--prediction-log", str(csv))
    assert code == 3 and err.strip().splitlines() == [
        f"error: {csv} is not a prediction log (its first lines are not the JSON lines a server "
        "writes)"
    ]


def test_an_unreachable_database_says_so_without_the_password() -> None:
    url = "postgresql+psycopg://ops:s3cret@127.0.0.1:9/nowhere"
    code, _, err = _run("--prediction-log", url)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(
        "error: cannot reach the prediction log database postgresql+psycopg://ops@127.0.0.1:9/"
    )
    assert "refused" in lines[0] and "s3cret" not in err
