"""Tracking and registry on the embedded store (MLflow on SQLite in a temporary home)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.registry import (
    diabetes_split,
    race_promotions,
    resolve_in_fresh_process,
    train_and_log,
)
from regressops.config import GateSettings, Settings
from regressops.errors import ConfigError, GateFailed, RegistryError
from regressops.models.bundle import load_bundle
from regressops.registry import lifecycle, listing
from regressops.registry.connection import active_tracking, connect
from regressops.registry.resolve import resolve_model
from regressops.registry.store_reader import read_alias, read_version
from regressops.training.promotion import promote_version, register_and_promote


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, gates=GateSettings(min_r2=0.0))
    uri = settings.resolved_tracking_uri
    return {"settings": settings, "uri": uri, "client": connect(uri), "home": home}


def test_a_run_records_everything(store: dict[str, Any]) -> None:
    import mlflow

    run, bundle, _report = train_and_log(store["settings"], store["uri"], kind="tree")
    client = store["client"]
    data = client.get_run(run.run_id).data
    assert data.params["kind"] == "tree" and data.params["model.max_depth"] == "6"
    assert data.metrics["test_r2"] == pytest.approx(bundle.metrics["r2"])
    assert data.tags["regressops.lineage.content_hash"] == "abc123"
    assert data.tags["regressops.dataset"] == "diabetes"
    names = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"lineage.json", "environment.json", "gates.json", "eval"} <= names
    env = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.run_id, artifact_path="environment.json", tracking_uri=store["uri"]
            )
        ).read_text()
    )
    assert env["packages"]["mlflow"].startswith("3.17")
    inputs = client.get_run(run.run_id).inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "diabetes" and inputs[0].dataset.digest == "abc123"
    # the run is closed, carries MLflow's own context tags, and its model the run's params and
    # metrics (logged once for both) with the run as its source
    full = client.get_run(run.run_id)
    assert full.info.status == "FINISHED" and full.info.run_name == "tree"
    assert {"mlflow.user", "mlflow.source.name", "mlflow.source.type"} <= set(data.tags)
    assert [o.model_id for o in full.outputs.model_outputs] == [run.model_id]
    model = client.get_logged_model(run.model_id)
    assert model.source_run_id == run.run_id and str(model.status).endswith("READY")
    assert model.params == data.params
    assert {m.key: m.value for m in model.metrics} == data.metrics
    # artefacts live under the home, not in ./mlruns
    assert (store["home"] / "mlartifacts").is_dir() and not Path("mlruns").exists()
    # the logged model is a pyfunc over our bundle: same predictions, no pickle in it
    with active_tracking(store["uri"]):  # MLflow resolves models:/m-... via the global store
        model_dir = Path(mlflow.artifacts.download_artifacts(run.model_uri))
    assert not list(model_dir.rglob("*.pkl"))
    assert "loader_module: regressops.registry.pyfunc" in (model_dir / "MLmodel").read_text()
    _, test = diabetes_split()
    with_uri = mlflow.pyfunc.load_model(str(model_dir))
    np.testing.assert_allclose(
        with_uri.predict(test[bundle.spec.names].astype(float)), bundle.predict_frame(test)
    )


def test_lifecycle_promote_gate_force_rollback_archive(store: dict[str, Any]) -> None:
    settings, uri, client = store["settings"], store["uri"], store["client"]
    name = "life"
    _, test = diabetes_split()
    run1, b1, r1 = train_and_log(settings, uri, name=name)
    v1, change, _ = register_and_promote(
        client,
        uri,
        name,
        model_uri=run1.model_uri,
        run_id=run1.run_id,
        model_id=run1.model_id,
        bundle=b1,
        eval_frame=test,
        report=r1,
        settings=settings,
    )
    assert change is not None and change.action == "@champion" and change.previous is None
    # a weaker model (bmi only) fails "beats_champion" on the same rows: registered, archived
    run2, b2, _r2 = train_and_log(settings, uri, name=name, features=("bmi",))
    v2, change, summary = register_and_promote(
        client,
        uri,
        name,
        model_uri=run2.model_uri,
        run_id=run2.run_id,
        model_id=run2.model_id,
        bundle=b2,
        eval_frame=test,
        report=None,
        settings=settings,
    )
    assert change is None and "beats_champion" in summary
    assert resolve_model(f"models:/{name}@champion", settings=settings).version == v1
    rows = {r["version"]: r for r in listing.list_versions(client, name)}
    assert rows[v2]["status"] == "archived" and rows[v2]["gates"] == "failed"
    assert rows[v1]["aliases"] == ["champion"] and rows[v1]["by"]
    # promote re-checks gates from the registry (bundle + held-out rows of its run)
    with pytest.raises(
        GateFailed, match=rf"{name} v{v2} was not promoted to @champion: beats_champion"
    ):
        promote_version(name, v2, settings=settings)
    with pytest.raises(ConfigError, match="--force needs a reason"):
        promote_version(name, v2, force=True, settings=settings)
    forced = promote_version(name, v2, force=True, why="incident 42", settings=settings)
    assert forced.gates == "forced" and forced.previous == v1
    mv2 = client.get_model_version(name, v2)
    assert mv2.tags["regressops.status.why"] == "incident 42"
    # recorded as forced, not left "failed" from the refused attempt
    assert mv2.tags["regressops.gates"] == "forced"
    last = json.loads(mv2.tags["regressops.history"].splitlines()[-1])
    assert (last["event"], last["forced"]) == ("champion", True)
    top = json.loads(client.get_registered_model(name).tags["regressops.champions"])[-1]
    assert (top["version"], top["gates"], top["why"]) == (v2, "forced", "incident 42")
    assert client.get_model_version(name, v1).tags["regressops.status"] == "previous"
    # the champion cannot be archived; rollback restores v1 and archives v2
    with pytest.raises(RegistryError, match=f"v{v2} is @champion and cannot be archived"):
        lifecycle.archive(client, uri, name, v2)
    back = lifecycle.rollback(client, uri, name, why="bad latency")
    assert (back.version, back.previous) == (v1, v2)
    assert client.get_model_version(name, v2).tags["regressops.status"] == "archived"
    with pytest.raises(RegistryError, match="no earlier champion to roll back to"):
        lifecycle.rollback(client, uri, name)
    # challenger: kept aside on the absolute gates alone (v2 does not beat the champion)
    ch = promote_version(name, v2, alias="challenger", why="shadow test", settings=settings)
    assert ch.action == "@challenger" and ch.gates == "passed"
    beats = [c for c in ch.report["checks"] if c["name"] == "beats_champion"]
    assert not beats or beats[0]["skipped"]
    assert _aliases(client, name) == {"champion": v1, "challenger": v2}
    with pytest.raises(RegistryError, match="is @champion; it cannot also be @challenger"):
        lifecycle.promote(client, uri, name, v1, alias="challenger", why="x")
    lifecycle.archive(client, uri, name, v2, why="done")
    assert _aliases(client, name) == {"champion": v1}
    assert {r["name"]: r["champion"] for r in listing.list_models(client)}[name] == v1


def test_resolver_follows_the_alias(store: dict[str, Any]) -> None:
    settings, uri, client = store["settings"], store["uri"], store["client"]
    name = "follow"
    versions = []
    for kind in ("linear", "hgb"):
        run, _bundle, _ = train_and_log(settings, uri, name=name, kind=kind)
        versions.append(
            lifecycle.register_version(
                client, uri, name, model_uri=run.model_uri, run_id=run.run_id, model_id=run.model_id
            )
        )
    lifecycle.promote(client, uri, name, versions[0], force=True, why="first")
    first = resolve_model(f"models:/{name}@champion", settings=settings)
    loaded = load_bundle(first.path)
    assert (first.version, loaded.version, loaded.kind) == (versions[0], versions[0], "linear")
    assert loaded.extra["registry"]["name"] == name
    lifecycle.promote(client, uri, name, versions[1], force=True, why="second")
    second = load_bundle(resolve_model(f"models:/{name}@champion", settings=settings).path)
    assert (second.version, second.kind) == (versions[1], "hgb")
    assert resolve_model(f"models:/{name}/{versions[0]}", settings=settings).path == first.path


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("models:/nobody@champion", RegistryError, "registered model 'nobody'.*not found"),
        ("models:/follow@gold", RegistryError, "has no alias @gold"),
        ("models:/follow/999", RegistryError, "version 999.*not found"),
        ("models:/follow", ConfigError, "expected models:/NAME@ALIAS"),
    ],
)
def test_unknown_names_versions_aliases(
    store: dict[str, Any], uri: str, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        resolve_model(uri, settings=store["settings"])


def test_concurrent_promotions_from_two_processes_serialise(
    store: dict[str, Any], tmp_path: Path
) -> None:
    uri, client, name = store["uri"], store["client"], "race"
    versions, exit_codes, outs = race_promotions(store, tmp_path, name)
    assert exit_codes == [0, 0], outs
    model = client.get_registered_model(name)
    final = str(model.aliases["champion"])
    other = versions[2] if final == versions[1] else versions[1]
    # serialised: the last promotion replaced the first, which replaced the base
    assert client.get_model_version(name, final).tags["regressops.replaced"] == other
    assert client.get_model_version(name, other).tags["regressops.replaced"] == versions[0]
    statuses = {v: client.get_model_version(name, v).tags["regressops.status"] for v in versions}
    assert statuses == {final: "champion", other: "previous", versions[0]: "previous"}
    assert model.tags["regressops.champion_epoch"].startswith("3:")
    assert lifecycle.rollback(client, uri, name).version == other
    assert lifecycle.rollback(client, uri, name).version == versions[0]


def test_listing_reads_the_sqlite_store_without_mlflow(store: dict[str, Any]) -> None:
    import subprocess
    import sys

    client, uri = store["client"], store["uri"]

    def no_client() -> Any:
        raise AssertionError("fell back to MlflowClient")

    expected = listing.list_models(client)
    assert expected and listing.models_at(uri, no_client) == expected
    for row in expected:
        assert listing.versions_at(uri, row["name"], no_client) == listing.list_versions(
            client, row["name"]
        )
    with pytest.raises(RegistryError, match=r"registered model 'nobody'.*not found"):
        listing.versions_at(uri, "nobody", no_client)
    # the command itself does not import MLflow, and a fresh home is not created by reading it
    fresh = store["home"].parent / "fresh-home"
    code = (
        "import sys\n"
        "from regressops.cli import main\n"
        "sys.argv = ['regressops', 'models', 'list', '--json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    for home, has_rows in ((store["home"], True), (fresh, False)):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={"REGRESSOPS_HOME": str(home), "REGRESSOPS_CONFIG": "none", "PATH": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (done.stdout.strip() != "[]") is has_rows, done.stdout
    assert not fresh.exists()


def _register(store: dict[str, Any], name: str, n: int) -> list[str]:
    settings, uri, client = store["settings"], store["uri"], store["client"]
    versions = []
    for _ in range(n):
        run, _bundle, _ = train_and_log(settings, uri, name=name)
        versions.append(
            lifecycle.register_version(
                client, uri, name, model_uri=run.model_uri, run_id=run.run_id, model_id=run.model_id
            )
        )
    return versions


def test_rollback_walks_the_champion_history_and_never_resurrects(store: dict[str, Any]) -> None:
    settings, uri, client, name = store["settings"], store["uri"], store["client"], "incident"
    v1, v2, v3 = _register(store, name, 3)
    for v in (v1, v2, v3):
        lifecycle.promote(client, uri, name, v, why=f"release {v}")
    history = json.loads(client.get_registered_model(name).tags["regressops.champions"])
    assert [e["version"] for e in history] == [v1, v2, v3]
    assert all(e["by"] and e["at"] and e["why"] == f"release {e['version']}" for e in history)
    # an archived earlier champion is passed over, and the operator is told
    lifecycle.archive(client, uri, name, v2, why="known bad")
    back = lifecycle.rollback(client, uri, name, why="latency")
    assert (back.version, back.previous) == (v1, v3)
    assert back.report["skipped"] == [f"v{v2} (archived; restore it with --force --reason)"]
    assert "skipped v2 (archived" in back.detail
    with pytest.raises(RegistryError, match="no earlier champion to roll back to"):
        lifecycle.rollback(client, uri, name)
    # the cycle: v2 forced in, v1 forced back, then rollback twice
    promote_version(name, v2, force=True, why="hotfix", settings=settings)
    promote_version(name, v1, force=True, why="test", settings=settings)
    assert lifecycle.rollback(client, uri, name).version == v2  # v1 is archived by it
    with pytest.raises(RegistryError, match=rf"skipped v{v1} \(archived"):
        lifecycle.rollback(client, uri, name)
    assert _aliases(client, name)["champion"] == v2
    # an archived version comes back only when forced with a reason
    with pytest.raises(ConfigError, match="--force needs a reason"):
        lifecycle.rollback(client, uri, name, force=True)
    forced = lifecycle.rollback(client, uri, name, force=True, why="v2 worse")
    assert forced.version == v1 and forced.detail.startswith("forced: v2 worse")
    with pytest.raises(RegistryError, match="no earlier champion"):
        lifecycle.rollback(client, uri, name, force=True, why="again")


def _aliases(client: Any, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def test_a_cached_champion_resolves_without_importing_mlflow(store: dict[str, Any]) -> None:
    settings, uri, client = store["settings"], store["uri"], store["client"]
    name = "fast"
    _, test = diabetes_split()
    run, bundle, report = train_and_log(settings, uri, name=name)
    version, change, _ = register_and_promote(
        client, uri, name, model_uri=run.model_uri, run_id=run.run_id, model_id=run.model_id,
        bundle=bundle, eval_frame=test, report=report, settings=settings,
    )  # fmt: skip
    assert change is not None
    light = read_alias(uri, name, "champion")
    assert light is not None and (light.version, light.run_id) == (version, run.run_id)
    card = client.get_model_version(name, version).tags["regressops.card"]
    assert light.card == card  # the model card's context comes with it, for /model-check
    location = client.get_model_version_download_uri(name, version)
    assert light.storage_location == location  # where its files are (copied without MLflow)
    expected = light.__class__(name, "", version, run.run_id, card, location)
    assert read_version(uri, name, version) == expected
    assert read_alias(uri, name, "nosuch") is None and read_version(uri, name, "99") is None
    # the first resolution fetches the bundle into the cache; later ones need no MLflow at all
    first = resolve_model(f"models:/{name}@champion", settings=settings)
    again = resolve_in_fresh_process(settings, f"models:/{name}@champion")
    assert again == {"version": version, "path": str(first.path), "mlflow": False}
    by_version = resolve_in_fresh_process(settings, f"models:/{name}/{version}")
    assert by_version["version"] == version and not by_version["mlflow"]
    # a version whose files are on this machine is cached without MLflow too
    shutil.rmtree(first.path)
    fetched = resolve_in_fresh_process(settings, f"models:/{name}@champion")
    assert fetched == {"version": version, "path": str(first.path), "mlflow": False}
    assert json.loads((Path(first.path) / "model.json").read_text())["registry"]["uri"] == uri
    # a cached bundle recorded from another store is not trusted: MLflow resolves it again
    model_json = Path(first.path) / "model.json"
    doc = json.loads(model_json.read_text())
    doc["registry"]["uri"] = "sqlite:////elsewhere/mlflow.db"
    model_json.write_text(json.dumps(doc))
    assert resolve_in_fresh_process(settings, f"models:/{name}@champion")["mlflow"] is True


def test_lineage_and_the_mlflow_run_describe_one_environment(
    store: dict[str, Any], tmp_path: Path
) -> None:
    """lineage.json and the run's environment.json come from one function and agree."""
    import mlflow

    from regressops.data.selection import DataSelection
    from regressops.provenance import ENVIRONMENT_KEYS
    from regressops.training.candidates import RecordPlan, record_training
    from regressops.training.train import train

    settings = store["settings"]
    result = train(DataSelection("diabetes"), output=tmp_path / "m", plots=False, settings=settings)
    recorded = record_training([result], RecordPlan(cv=0), settings=settings)
    assert recorded.tracking_error is None
    run_id = recorded.best.run_id
    logged = {
        name: json.loads(
            Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=name, tracking_uri=store["uri"]
                )
            ).read_text()
        )
        for name in ("environment.json", "lineage.json")
    }
    saved = json.loads((result.path / "lineage.json").read_text())
    assert logged["lineage.json"] == saved
    assert logged["environment.json"] == {k: saved[k] for k in ENVIRONMENT_KEYS}
    assert set(logged["environment.json"]["packages"]) >= {"numpy", "scikit-learn", "mlflow"}


def test_logging_a_model_skips_the_scan_of_installed_distributions(
    store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.utils import requirements_utils as ru

    def scan() -> dict[str, list[str]]:
        raise AssertionError("MLflow scanned every installed distribution")

    monkeypatch.setattr(ru, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(ru.importlib_metadata, "packages_distributions", scan)
    run, _bundle, _ = train_and_log(store["settings"], store["uri"], name="noscan")
    assert run.model_uri
    assert ru._MODULES_TO_PACKAGES is None  # MLflow's own cache is left as it was
