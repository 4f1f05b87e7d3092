"""`regressops retrain` and `regressops pipeline` refuse bad input with one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REGRESSOPS = Path(sys.executable).parent / "regressops"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retrain", "--dataset", "diabetes", "--if", "sometimes"], "--if takes drift"),
        (["pipeline", "run", "--config", "/nonexistent/regressops.toml"], "no such file"),
        (["pipeline", "run", "--from", "deploy"], "--from takes one of"),
        (["pipeline", "serve", "--cron", "every hour"], "not a valid cron expression"),
        (["pipeline", "serve", "--cron", "0 * * * *", "--if", "sometimes"], "--if takes drift"),
        (["pipeline", "serve", "--cron", "0 * * * *", "--dataset", "nope"], "unknown dataset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(home: Path, args: list[str], message: str) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [str(REGRESSOPS), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (home / "retrain").exists()
