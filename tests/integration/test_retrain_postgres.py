"""The retrain loop on a PostgreSQL source: a champion trained from a table in a fresh schema,
shifted rows inserted into that table, `regressops retrain --if drift` promotes a new champion;
run again with no new rows it changes nothing. Once with the embedded MLflow store, once with a
real ``mlflow server`` (PostgreSQL backend, the fixture of ``test_mlflow_server``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.postgres import PG_URL, temporary_schema
from integration.test_mlflow_server import server  # noqa: F401 - the module-scoped fixture
from regressops.config import get_settings

REGRESSOPS = Path(sys.executable).parent / "regressops"
SHIFTED = ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _retrain(tmp_path: Path, home: Path) -> tuple[int, dict, str]:
    env = {**os.environ, "REGRESSOPS_HOME": str(home), "COLUMNS": "200"}  # tracking URI included
    done = subprocess.run(
        [str(REGRESSOPS), "retrain", "--dataset", "diabetes", "--if", "drift", "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    try:
        record = json.loads(done.stdout) if done.stdout else {}
    except ValueError:
        pytest.fail(f"not JSON on stdout: {done.stdout[:2000]!r} / {done.stderr[-2000:]!r}")
    return done.returncode, record, done.stderr


def test_retrain_on_a_postgres_source(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _loop(home, tmp_path, monkeypatch)


def test_retrain_on_a_postgres_source_with_an_mlflow_server(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: dict,  # noqa: F811
) -> None:
    monkeypatch.setenv("REGRESSOPS_TRACKING_URI", server["uri"])
    _loop(home, tmp_path, monkeypatch)


def _loop(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import create_engine, text

    from regressops.data.demo_db import seed_demo_db
    from regressops.data.extract import extract
    from regressops.data.validate import validate
    from regressops.training.candidates import train_dataset_candidates as train_candidates

    with temporary_schema("regressops_retrain") as schema:
        config = tmp_path / "regressops.toml"
        config.write_text(
            f'[datasets.diabetes]\nsource = "{PG_URL}"\ntable = "{schema}.diabetes"\n'
        )
        monkeypatch.setenv("REGRESSOPS_CONFIG", str(config))
        get_settings.cache_clear()
        settings = get_settings()
        seed_demo_db(url=PG_URL, dataset="diabetes", table=f"{schema}.diabetes", settings=settings)
        extract("diabetes", settings=settings)
        validate("diabetes", settings=settings)
        first = train_candidates("diabetes", ["linear"], settings=settings)
        assert first.change is not None and first.change.version == "1"

        code, record, err = _retrain(tmp_path, home)
        assert code == 0, err
        assert record["status"] == "not_triggered"

        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            table = f'"{schema}".diabetes'
            shifted = ", ".join(f"{c} + 0.05" for c in SHIFTED)
            conn.execute(
                text(
                    f"INSERT INTO {table} (id, {', '.join(SHIFTED)}, sex, target) "
                    f"SELECT id + 100000, {shifted}, sex, target FROM {table}"
                )
            )
        engine.dispose()
        code, record, err = _retrain(tmp_path, home)
        assert code == 0, err
        assert record["status"] == "promoted", record
        assert record["versions"]["champion_before"] == "1"
        assert record["versions"]["champion_after"] == "2"
        assert record["source"]["rows_new"] == record["source"]["rows_read"] // 2
        assert record["data"]["rows_new"] == record["source"]["rows_new"]

        code, record, err = _retrain(tmp_path, home)
        assert code == 0 and record["status"] == "not_triggered", err
