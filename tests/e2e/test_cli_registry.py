"""``train`` with candidates and --register, ``tune``, ``models ...``: the CLI over a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regressops import cli

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_error(code: int, err: str, expected: int) -> str:
    lines = err.strip().splitlines()
    assert code == expected and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def test_candidates_register_promote_rollback(home: Path) -> None:
    code, out, err = invoke(
        "train",
        "-d",
        "diabetes",
        "--model",
        "ridge",
        "--model",
        "tree",
        "--register",
        "--no-plots",
        "--cv",
        "3",
    )
    assert code == 0, err
    assert "candidates on one split" in out and "ridge" in out and "tree" in out
    assert "registered diabetes v1 (ridge) as @champion" in out
    assert (home / "models" / "diabetes-ridge" / "model.json").is_file()
    assert (home / "models" / "diabetes-tree" / "model.skops").is_file()
    # a worse model is registered but archived; the champion stays
    code, out, err = invoke(
        "train", "-d", "diabetes", "--features", "bmi", "--register", "--no-plots", "--cv", "0"
    )
    line = one_error(code, err, 7)
    assert "diabetes v2 was registered but archived" in line and "beats_champion" in line
    code, out, _ = invoke("models", "list", "diabetes", "--json")
    rows = {r["version"]: r for r in json.loads(out)}
    assert rows["1"]["aliases"] == ["champion"] and rows["2"]["status"] == "archived"
    assert all(isinstance(r[k], float) for r in rows.values() for k in ("r2", "rmse"))
    # promote re-checks the gates; --force needs a reason; rollback restores v1
    assert "beats_champion" in one_error(*invoke("models", "promote", "diabetes", "2")[::2], 7)
    one_error(*invoke("models", "promote", "diabetes", "2", "--force")[::2], 2)
    code, out, err = invoke("models", "promote", "diabetes", "2", "--force", "--reason", "demo")
    assert code == 0 and "diabetes v2 is now @champion (was v1); gates forced" in out, err
    code, out, err = invoke("models", "rollback", "diabetes", "--reason", "oops")
    assert code == 0 and "@champion is back on v1" in out, err
    assert "cannot be archived" in one_error(*invoke("models", "archive", "diabetes", "1")[::2], 6)
    code, out, _ = invoke("models", "list")
    assert code == 0 and "diabetes" in out


def test_bad_registry_input_is_one_line(home: Path) -> None:
    invoke("train", "-d", "diabetes", "--register", "--no-plots", "--cv", "0")
    for args, needle in [
        (("models", "list", "nobody"), "registered model 'nobody'"),
        (("models", "promote", "diabetes", "9"), "version 9"),
        (("models", "promote", "diabetes", "one"), "positive integer"),
        (("models", "rollback", "diabetes"), "no earlier champion to roll back to"),
    ]:
        code, _, err = invoke(*args)
        assert needle in one_error(code, err, 6), args
    for args, needle in [  # bad arguments: exit 2, as docs/cli.md says
        (("models", "promote", "diabetes", "1", "--alias", "gold"), "--alias must be one of"),
        (("models", "promote", "diabetes", "1", "--force"), "--force needs a reason"),
        (("models", "rollback", "diabetes", "--force"), "--force needs a reason"),
    ]:
        code, _, err = invoke(*args)
        assert needle in one_error(code, err, 2), args


@pytest.mark.parametrize(
    "dead",
    [
        "http://127.0.0.1:9",
        "postgresql+psycopg://postgres:secret@127.0.0.1:9/mlflow",
        "sqlite:///{home}/model.json/mlflow.db",  # a file where the store's folder should be
    ],
    ids=["http", "postgresql", "sqlite"],
)
def test_tracking_down_keeps_the_bundle(home: Path, dead: str) -> None:
    """Every kind of tracking URI that cannot be reached: one warning line and exit 0, or one
    error line and exit 6 with --register; the bundle is kept and no password is shown."""
    (home / "model.json").parent.mkdir(parents=True, exist_ok=True)
    (home / "model.json").write_text("{}")
    dead = dead.format(home=home)
    code, out, err = invoke("train", "-d", "diabetes", "--no-plots", "--tracking-uri", dead)
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1 and "NOT logged to MLflow" in lines[0], err
    assert ("unavailable" if dead.startswith("sqlite") else "unreachable") in err
    assert "secret" not in err and "unexpected" not in err
    assert (home / "models" / "diabetes" / "model.json").is_file()
    code, out, err = invoke(
        "train", "-d", "diabetes", "--no-plots", "--tracking-uri", dead, "--register"
    )
    assert "not logged and nothing was registered" in one_error(code, err, 6)
    assert "r2" in out  # the results were still shown


def test_tune_writes_back_and_train_uses_it(home: Path) -> None:
    code, out, err = invoke(
        "tune", "-d", "diabetes", "--model", "tree", "--trials", "4", "--cv", "3", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["parent_run_id"] and len(doc["trials"]) == 4
    saved = json.loads(Path(doc["params_path"]).read_text())["params"]
    assert saved == doc["best_params"]
    code, out, err = invoke(
        "train", "-d", "diabetes", "--model", "tree", "--tuned", "--json", "--no-plots", "--cv", "0"
    )
    assert code == 0, err
    params = json.loads(out)["params"]
    assert all(params[k] == v for k, v in saved.items())
    assert "no tuned parameters for 'hgb'" in one_error(
        *invoke("train", "-d", "diabetes", "--model", "hgb", "--tuned")[::2], 2
    )
