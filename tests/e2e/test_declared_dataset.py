"""A user's own table, as a new user runs it: the Hands-On-ML housing CSV loaded into
PostgreSQL, declared as ``[datasets.housing]`` in ``regressops.toml``, then extract, validate,
tune, train --register, evaluate and serve the champion — with its gaps, text column and capped
values. And the same CSV trained on directly (``--data``): its gaps are imputed, never fatal."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from helpers.servers import ServerProcess
from regressops import cli
from regressops.config import get_settings

PG_URL = os.environ.get(
    "REGRESSOPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def housing_table(housing_csv: Path) -> Iterator[str]:
    """The CSV (plus an ``id`` column) as a table in a schema of its own; dropped afterwards."""
    engine = create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} (CI=true: the PostgreSQL tests must run)")
        pytest.skip(message)
    schema = f"regressops_housing_{uuid.uuid4().hex[:10]}"
    frame = pd.read_csv(housing_csv)
    frame.insert(0, "id", range(1, len(frame) + 1))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        frame.to_sql("housing", engine, schema=schema, index=False, chunksize=5_000)
        yield f"{schema}.housing"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def declared(housing_table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    toml = tmp_path / "regressops.toml"
    toml.write_text(
        f"""
[datasets.housing]
source = "{PG_URL}"
table = "{housing_table}"
target = "median_house_value"
key = "id"

[datasets.housing.columns]
id = {{ dtype = "int", unique = true }}
longitude = {{ dtype = "float", min = -125, max = -114 }}
latitude = {{ dtype = "float", min = 32, max = 42 }}
housing_median_age = {{ dtype = "float", min = 0, max = 100 }}
total_rooms = {{ dtype = "float", min = 0 }}
population = {{ dtype = "float", min = 0 }}
households = {{ dtype = "float", min = 0 }}
median_income = {{ dtype = "float", min = 0 }}
total_bedrooms = {{ dtype = "float", nullable = true, min = 0 }}
ocean_proximity = {{ dtype = "str", allowed = [
    "<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY", "ISLAND"
] }}
median_house_value = {{ dtype = "float", min = 0, max = 500000 }}
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(toml))
    get_settings.cache_clear()
    yield toml
    get_settings.cache_clear()


@pytest.mark.postgres
def test_a_declared_postgres_dataset_from_extract_to_serve(declared: Path, home: Path) -> None:
    code, out, err = invoke("extract", "--dataset", "housing", "--json")
    assert code == 0, err
    assert json.loads(out)["rows_new"] == 20640
    code, out, err = invoke("validate", "--dataset", "housing", "--on-fail", "quarantine", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["rows"]["clean"] == 19675 and report["rows"]["quarantined"] == 965  # capped

    code, out, err = invoke(
        "tune", "--dataset", "housing", "--model", "tree", "--trials", "2", "--cv", "3",
        "--split-key", "id", "--no-track", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["split"]["method"] == "key_hash"

    code, out, err = invoke(
        "train", "--dataset", "housing", "--model", "tree", "--tuned", "--split-key", "id",
        "--register", "--cv", "0", "--no-plots", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tracking"]["champion"] == "1"
    lineage = doc["lineage"]
    assert lineage["source"] == "lake" and lineage["rows"] == 19675
    assert "id" not in lineage["features"]  # the split key is an identifier, not a feature
    assert "ocean_proximity" in lineage["categorical"]
    assert {c["name"]: c["passed"] for c in doc["tracking"]["gate_report"]["checks"]}["latency"]

    code, out, err = invoke(
        "evaluate", "--model", "models:/housing@champion", "--dataset", "housing", "--test-rows",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["metrics"]["rmse"] == pytest.approx(doc["metrics"]["rmse"], rel=1e-9)
    rows = pd.DataFrame([{**r, "total_bedrooms": None} for r in _records(3)])
    src, dst = home / "in.csv", home / "out.csv"
    rows.to_csv(src, index=False)
    code, out, err = invoke("predict", "-m", "models:/housing/1", "-i", str(src), "-o", str(dst))
    assert code == 0, err
    assert pd.read_csv(dst)["prediction"].notna().all()

    server = ServerProcess("models:/housing@champion", home)
    try:
        server.wait_ready(timeout=120)
        record = {**_records(1)[0], "total_bedrooms": None}
        r = httpx.post(f"{server.url}/predict", json=[record], timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["x-imputed-values"] == "1"
        assert r.json()["version"] == "1" and r.json()["predictions"][0] > 0
    finally:
        server.stop()


def _records(n: int) -> list[dict[str, object]]:
    record = {
        "longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0,
        "total_rooms": 880.0, "total_bedrooms": 129.0, "population": 322.0,
        "households": 126.0, "median_income": 8.3252, "ocean_proximity": "NEAR BAY",
    }  # fmt: skip
    return [{**record, "median_income": 2.0 + i} for i in range(n)]


def test_training_on_a_file_with_gaps_imputes_them(housing_csv: Path, tmp_path: Path) -> None:
    """207 rows lack total_bedrooms: training imputes them and every gate checks the data."""
    code, out, err = invoke(
        "train", "--data", str(housing_csv), "--target", "median_house_value", "--no-track",
        "--cv", "0", "--no-plots", "--json",
    )  # fmt: skip
    assert code in (0, 7), err
    doc = json.loads(out)
    checks = {c["name"]: c for c in doc["tracking"]["gate_report"]["checks"]}
    assert checks["latency"]["passed"], checks["latency"]
    gaps = pd.read_csv(housing_csv).drop(columns="median_house_value").head(300)
    assert gaps["total_bedrooms"].isna().any()
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    gaps.to_csv(src, index=False)
    code, out, err = invoke("predict", "--model", doc["path"], "--input", str(src), "-o", str(dst))
    assert code == 0, err
    assert pd.read_csv(dst)["prediction"].notna().all()
