"""A training run written straight into MLflow's SQL store is the one MLflow writes.

The same trained candidates are recorded twice, into two fresh stores (SQLite, and PostgreSQL):
once through MLflow (``train.direct_tracking = false``) and once by
:mod:`regressops.registry.store_writer`. Every row of every table and every artefact file must be
equal once ids, timestamps and the home folder are normalised; then MLflow itself reads, loads,
registers and serves the directly written run. The failure cases leave nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.pool import NullPool

from helpers.postgres import temporary_database
from helpers.training import train_with
from regressops.config import GateSettings, Settings, TrainSettings
from regressops.redact import redact_text
from regressops.registry.connection import active_tracking, connect
from regressops.registry.store_reader import SCHEMA_REVISION
from regressops.registry.tracking import example_frame
from regressops.training.candidates import Recorded, RecordPlan, record_training

pytestmark = pytest.mark.slow

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
DIRECT_LOG = "without MLflow"
_TEXT = {".json", ".yaml", ".txt", ""}  # artefacts compared as normalised text


@contextmanager
def fresh_store(backend: str, home: Path, *, direct: bool) -> Iterator[Settings]:
    """Settings of a new home whose tracking store MLflow has just created (its migrations)."""

    def settings_for(uri: str | None) -> Settings:
        return Settings(
            home=home,
            tracking_uri=uri,
            gates=GateSettings(min_r2=0.0),
            train=TrainSettings(direct_tracking=direct),
        )

    if backend == "sqlite":
        settings = settings_for(None)
        connect(settings.resolved_tracking_uri)
        yield settings
        return
    with temporary_database("regressops_writer") as uri:
        settings = settings_for(uri)
        connect(uri)
        yield settings


def dump(uri: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the store."""
    engine = sa.create_engine(uri, poolclass=NullPool)
    try:
        names = sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            return {
                t: [dict(r) for r in conn.execute(sa.text(f'SELECT * FROM "{t}"')).mappings()]
                for t in names
            }
    finally:
        engine.dispose()


def namer(tables: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Stable names for the random ids of a store (runs by name, models by their run, ...)."""
    names = {r["run_uuid"]: f"<run {r['name']}>" for r in tables["runs"]}
    for m in tables["logged_models"]:
        names[m["model_id"]] = f"<model of {names[m['source_run_id']]}>"
    for d in tables["datasets"]:
        names[d["dataset_uuid"]] = f"<dataset {d['name']}>"
    for i in tables["inputs"]:
        names[i["input_uuid"]] = f"<input {i['source_type']} to {names[i['destination_id']]}>"
    assert len(set(names.values())) == len(names), "two ids got one name"
    return names


def normalise_text(text: str, names: dict[str, str], home: Path) -> str:
    for raw in sorted(names, key=len, reverse=True):
        text = text.replace(raw, names[raw])
    text = text.replace(str(home.resolve()), "<home>")
    return re.sub(r"utc_time_created: '[^']*'", "utc_time_created: <time>", text)


def normalised_rows(uri: str, home: Path) -> dict[str, list[str]]:
    """Each table's rows, ids and the home replaced, times checked and replaced, sorted."""
    tables = dump(uri)
    names = namer(tables)
    out = {}
    for table, rows in tables.items():
        normal = []
        for row in rows:
            fixed = {}
            for column, value in row.items():
                if "time" in column and value is not None:
                    assert isinstance(value, int) and value > 1_600_000_000_000, (table, column)
                    value = "<time>"
                elif isinstance(value, str):
                    value = normalise_text(value, names, home)
                fixed[column] = value
            normal.append(json.dumps(fixed, sort_keys=True, default=str))
        out[table] = sorted(normal)
    return out


def artefact_tree(home: Path, uri: str) -> dict[str, tuple[int, Any]]:
    """Every file under the home's artefact root: normalised path -> (mode, normalised content)."""
    names = namer(dump(uri))
    root = home / "mlartifacts"
    tree = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = normalise_text(path.relative_to(root).as_posix(), names, home)
        content: Any = path.read_bytes()
        if path.name == "gates.json":  # the latency gate is measured anew by each recording
            content = _without_latency(content)
        if path.suffix in _TEXT:
            content = normalise_text(content.decode(), names, home)
        tree[rel] = (stat.S_IMODE(path.stat().st_mode), content)
    return tree


def _without_latency(raw: bytes) -> bytes:
    doc = json.loads(raw)
    for check in doc["checks"]:
        if check["name"] == "latency":
            check["value"] = check["detail"] = "<measured>"
    return json.dumps(doc, indent=2).encode()


#: What is trained: two candidates with plots (a parent run, a dataset shared by two runs), and
#: one candidate on categorical features with gaps (string columns, optional inputs, NaN in the
#: example).
SCENARIOS = {"diabetes": ("linear", "tree"), "gappy-insurance": ("linear",)}


def _gappy_insurance(folder: Path) -> Path:
    from regressops.datasets import DATASETS

    frame = DATASETS["insurance"].load()
    frame.loc[frame.index % 3 == 0, "bmi"] = np.nan
    frame.loc[frame.index % 4 == 1, "region"] = None
    path = folder / "gappy-insurance.csv"
    frame.to_csv(path, index=False)
    return path


#: For the tests that need one scenario only.
ONLY_DIABETES = pytest.mark.parametrize("trained", ["diabetes"], indirect=True)


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The candidates of one scenario, trained once."""
    home = tmp_path_factory.mktemp("trained")
    settings = Settings(home=home)
    if request.param == "diabetes":
        data: dict[str, Any] = {"dataset": "diabetes"}
    else:
        data = {"data": str(_gappy_insurance(home)), "target": "charges"}
    return [
        train_with(**data, model=kind, settings=settings, plots=True, output=home / "models" / kind)
        for kind in SCENARIOS[request.param]
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, trained: list[Any]
) -> Iterator[dict[str, Any]]:
    """The candidates recorded through MLflow and directly, each into a fresh store."""
    backend = request.param
    root = tmp_path_factory.mktemp(f"pair-{backend}")
    with (
        fresh_store(backend, root / "mlflow", direct=False) as via_mlflow,
        fresh_store(backend, root / "direct", direct=True) as direct,
    ):
        recorded = {}
        for key, settings in (("mlflow", via_mlflow), ("direct", direct)):
            handler = _Capture()
            logging.getLogger("regressops.registry.store_writer").addHandler(handler)
            logging.getLogger("regressops.registry.store_writer").setLevel(logging.DEBUG)
            try:
                recorded[key] = record_training(trained, RecordPlan(cv=2), settings=settings)
            finally:
                logging.getLogger("regressops.registry.store_writer").removeHandler(handler)
            assert recorded[key].tracking_error is None
            assert any(DIRECT_LOG in m for m in handler.messages) == (key == "direct")
        yield {"backend": backend, "mlflow": via_mlflow, "direct": direct, "recorded": recorded}


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_mlflow_leaves_the_schema_revision_the_writer_knows(pair: dict[str, Any]) -> None:
    for key in ("mlflow", "direct"):
        rows = dump(pair[key].resolved_tracking_uri)["alembic_version"]
        assert rows == [{"version_num": SCHEMA_REVISION}]


def test_every_row_is_the_row_mlflow_writes(pair: dict[str, Any]) -> None:
    via_mlflow = normalised_rows(pair["mlflow"].resolved_tracking_uri, pair["mlflow"].home)
    direct = normalised_rows(pair["direct"].resolved_tracking_uri, pair["direct"].home)
    assert sorted(via_mlflow) == sorted(direct)  # the same tables
    touched = {t for t, rows in via_mlflow.items() if rows}
    assert {"runs", "tags", "params", "metrics", "latest_metrics", "datasets", "inputs",
            "input_tags", "logged_models", "logged_model_params", "logged_model_tags",
            "logged_model_metrics"} <= touched  # fmt: skip
    for table in sorted(via_mlflow):
        assert direct[table] == via_mlflow[table], f"table {table} differs"
    # a parent when there are several candidates; one dataset row shared by all
    runs = len(pair["recorded"]["direct"].candidates)
    assert len(via_mlflow["runs"]) == (runs + 1 if runs > 1 else 1)
    assert len(via_mlflow["datasets"]) == 1


def test_every_file_is_the_file_mlflow_writes(pair: dict[str, Any]) -> None:
    via_mlflow = artefact_tree(pair["mlflow"].home, pair["mlflow"].resolved_tracking_uri)
    direct = artefact_tree(pair["direct"].home, pair["direct"].resolved_tracking_uri)
    assert sorted(direct) == sorted(via_mlflow)
    for path in sorted(via_mlflow):
        assert direct[path] == via_mlflow[path], f"{path} differs"
    files = set(direct)
    recorded: Recorded = pair["recorded"]["direct"]
    for cand in recorded.candidates:
        run = f"<run {cand.kind}>/artifacts/"
        for expected in ("lineage.json", "environment.json", "gates.json", "eval/heldout.parquet",
                         "plots/"):  # fmt: skip
            assert any(f.startswith(run + expected) for f in files), expected
        model = f"models/<model of <run {cand.kind}>>/artifacts/"
        for expected in ("MLmodel", "requirements.txt", "python_env.yaml", "conda.yaml",
                         "input_example.json", "serving_input_example.json",
                         "data/bundle/model.json"):  # fmt: skip
            assert model + expected in files, expected
    if len(recorded.candidates) > 1:
        assert f"<run candidates {recorded.name}>/artifacts/leaderboard.json" in files
    else:  # the example of the gappy data has missing values, and its signature says so
        mlmodel = direct[f"models/<model of <run {recorded.best.kind}>>/artifacts/MLmodel"][1]
        inputs = json.loads(yaml.safe_load(mlmodel)["signature"]["inputs"])
        assert {"type": "string", "name": "region", "required": False} in inputs
        assert {"type": "double", "name": "bmi", "required": False} in inputs
    root = pair["direct"].home / "mlartifacts"
    assert [p for p in root.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_mlflow_reads_loads_registers_and_serves_the_direct_run(
    pair: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from fastapi.testclient import TestClient

    from regressops.config import get_settings
    from regressops.registry.resolve import load_registered_bundle
    from regressops.serving.app import create_app
    from regressops.training.promotion import register_and_promote

    settings = pair["direct"]
    uri = settings.resolved_tracking_uri
    recorded: Recorded = pair["recorded"]["direct"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    best = recorded.best
    run = client.get_run(best.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == best.kind
    assert run.data.params["kind"] == best.kind
    assert run.data.metrics["test_rmse"] == best.result.metrics["rmse"]
    assert run.data.tags.get("mlflow.parentRunId") == recorded.parent_run_id
    assert run.inputs.dataset_inputs[0].dataset.name == run.data.tags["regressops.dataset"]
    assert [o.model_id for o in run.outputs.model_outputs] == [best.model_id]
    experiment = client.get_experiment_by_name(run.data.tags["regressops.dataset"])
    runs = client.search_runs([experiment.experiment_id], "tags.regressops.candidates = 'parent'")
    assert [r.info.run_id for r in runs] == [p for p in [recorded.parent_run_id] if p]
    assert all(r.data.tags["regressops.best_kind"] == best.kind for r in runs)
    found = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{best.kind}'")
    assert [r.info.run_id for r in found] == [best.run_id]
    model = client.get_logged_model(best.model_id)
    assert str(model.status) == "READY" and model.source_run_id == best.run_id
    assert {m.key for m in model.metrics} >= {"test_rmse", "gates_passed"}
    assert {a.path for a in client.list_artifacts(best.run_id)} >= {"lineage.json", "eval"}

    rows = best.result.data.frame.iloc[best.result.split.test]
    features = rows[best.result.bundle.spec.names]
    expected = best.result.bundle.predict_frame(features)
    with active_tracking(uri):  # models:/<model id> is looked up in the current store
        loaded = mlflow.pyfunc.load_model(best.model_uri)
    typed = example_frame(best.result.bundle, features)  # the signature's types
    assert np.allclose(np.asarray(loaded.predict(typed), dtype=float), expected)

    version, change, _ = register_and_promote(
        client, uri, "direct-writer", model_uri=best.model_uri, run_id=best.run_id,
        model_id=best.model_id, bundle=best.result.bundle, eval_frame=rows, report=best.gates,
        why="written directly", settings=settings,
    )  # fmt: skip
    assert change is not None and change.version == version
    monkeypatch.setenv("REGRESSOPS_HOME", str(settings.home))
    monkeypatch.setenv("REGRESSOPS_TRACKING_URI", uri)
    get_settings.cache_clear()
    try:
        served = load_registered_bundle("models:/direct-writer@champion")
        assert np.allclose(served.predict_frame(features), expected)
        with TestClient(create_app(settings, model="models:/direct-writer@champion")) as c:
            answer = c.post("/predict", json={"data": features.head(3).to_dict(orient="records")})
            assert answer.status_code == 200, answer.text
            assert np.allclose(answer.json()["predictions"], expected[:3])
            assert str(answer.json()["version"]) == version
    finally:
        get_settings.cache_clear()


@ONLY_DIABETES
def test_a_run_without_heldout_rows_is_written_alike(tmp_path: Path, trained: list[Any]) -> None:
    """No held-out rows: no example, no signature (``log_training_run``'s other branch)."""
    from regressops.registry.store_writer import direct_store
    from regressops.registry.tracking import RunRecord, log_training_run

    result = trained[0]
    record = RunRecord(
        bundle=result.bundle, bundle_dir=result.path, dataset="plain",
        metrics={"test_rmse": result.metrics["rmse"], "not_finite": float("nan")},
    )  # fmt: skip
    with (
        fresh_store("sqlite", tmp_path / "mlflow", direct=False) as via_mlflow,
        fresh_store("sqlite", tmp_path / "direct", direct=True) as direct,
    ):
        uri = via_mlflow.resolved_tracking_uri
        log_training_run(record, uri=uri, client=connect(uri), settings=via_mlflow)
        with direct_store(direct.resolved_tracking_uri, "plain", direct) as writer:
            writer.log_run(record)
        for settings in (via_mlflow, direct):
            assert dump(settings.resolved_tracking_uri)["metrics"][0]["key"] == "test_rmse"
        assert normalised_rows(direct.resolved_tracking_uri, direct.home) == normalised_rows(
            uri, via_mlflow.home
        )
        tree = artefact_tree(direct.home, direct.resolved_tracking_uri)
        assert tree == artefact_tree(via_mlflow.home, uri)
        assert not any(p.endswith("input_example.json") for p in tree)


# ------------------------------------------------------------------ falling back, failing
@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Settings]:
    with fresh_store("sqlite", tmp_path / "home", direct=True) as settings:
        yield settings


def _runs(settings: Settings) -> int:
    return len(dump(settings.resolved_tracking_uri)["runs"])


def _artefacts(settings: Settings) -> list[str]:
    root = settings.home / "mlartifacts"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


@ONLY_DIABETES
def test_a_schema_revision_it_does_not_know_is_logged_through_mlflow(
    sqlite_store: Settings, trained: list[Any], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from regressops.registry import store_writer

    monkeypatch.setattr(store_writer, "SCHEMA_REVISION", "a-later-mlflow")
    with caplog.at_level(logging.DEBUG, logger="regressops"):
        recorded = record_training(trained[:1], RecordPlan(cv=0), settings=sqlite_store)
    assert recorded.tracking_error is None and recorded.best.run_id is not None
    assert "is not MLflow 3.17's" in caplog.text and DIRECT_LOG not in caplog.text
    run = connect(sqlite_store.resolved_tracking_uri).get_run(recorded.best.run_id)
    assert run.info.status == "FINISHED"


@ONLY_DIABETES
def test_a_store_at_another_revision_is_left_to_mlflow(
    sqlite_store: Settings, trained: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine = sa.create_engine(sqlite_store.resolved_tracking_uri, poolclass=NullPool)
    with engine.begin() as conn:  # an older MLflow's revision
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": "0584bdc529eb"})
    engine.dispose()
    with caplog.at_level(logging.DEBUG, logger="regressops"):
        recorded = record_training(trained[:1], RecordPlan(cv=0), settings=sqlite_store)
    # not written directly: MLflow decides (a new process would refuse to use such a store, this
    # one opened it before the change); whatever it did is reported in one line
    assert "schema revision '0584bdc529eb' is not MLflow 3.17's" in caplog.text
    assert DIRECT_LOG not in caplog.text
    assert recorded.tracking_error is None or "\n" not in recorded.tracking_error


#: SQL that makes the write fail: at the last insert of a run, or only at the commit (every insert
#: succeeds, a deferred foreign key is violated).
_SABOTAGE = {
    ("sqlite", "write"): [
        "CREATE TRIGGER refuse BEFORE INSERT ON logged_model_metrics "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ],
    ("postgresql", "write"): [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON logged_model_metrics "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
    ("sqlite", "commit"): [
        "CREATE TABLE anchor (id TEXT PRIMARY KEY)",
        "CREATE TABLE guard (id TEXT REFERENCES anchor(id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER guard_runs AFTER INSERT ON runs "
        "BEGIN INSERT INTO guard VALUES (NEW.run_uuid); END",
    ],
    ("postgresql", "commit"): [
        "CREATE TABLE anchor (id TEXT PRIMARY KEY)",
        "CREATE TABLE guard (id TEXT REFERENCES anchor(id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE FUNCTION guard_runs() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO guard VALUES (NEW.run_uuid); RETURN NEW; END $$",
        "CREATE TRIGGER guard_runs AFTER INSERT ON runs FOR EACH ROW EXECUTE FUNCTION guard_runs()",
    ],
}


@ONLY_DIABETES
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("when", ["write", "commit"])
def test_a_failed_write_leaves_no_rows_and_no_files(
    tmp_path: Path, trained: list[Any], backend: str, when: str
) -> None:
    with fresh_store(backend, tmp_path / "home", direct=True) as settings:
        uri = settings.resolved_tracking_uri
        engine = sa.create_engine(uri, poolclass=NullPool)
        with engine.begin() as conn:
            for statement in _SABOTAGE[backend, when]:
                conn.execute(sa.text(statement))
        engine.dispose()
        before = _artefacts(settings)
        recorded = record_training(trained, RecordPlan(cv=0), settings=settings)
        error = recorded.tracking_error
        assert error is not None and "\n" not in error
        assert error.startswith(f"logging the run to {redact_text(uri)}: ")
        assert ("refused by the test" if when == "write" else "foreign key") in error.lower()
        assert _runs(settings) == 0
        assert _artefacts(settings) == before  # no run or model folder, no staging left
        assert all(c.run_id is None for c in recorded.candidates)


def test_a_tracked_train_never_imports_mlflow(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REGRESSOPS_"))}
    env.update(REGRESSOPS_HOME=str(tmp_path / "home"), REGRESSOPS_CONFIG="none")
    base = ["train", "-d", "diabetes", "--no-plots", "--cv", "0"]
    first = subprocess.run(
        [str(Path(sys.executable).parent / "regressops"), *base, "--register"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    script = (
        "import json, sys\n"
        "from regressops.cli import app\n"
        f"app({[*base, '--model', 'linear', '--model', 'ridge']!r}, standalone_mode=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow')))\n"
    )
    second = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout.strip().splitlines()[-1]) == []
    client = connect(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("diabetes").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [
        "candidates diabetes", "linear", "linear", "ridge",
    ]  # fmt: skip
