"""Against a real ``mlflow server`` (PostgreSQL backend store, artefacts on local disk).

One server per module, started on a free port of 127.0.0.1 over a fresh database that is dropped
afterwards. Skipped when PostgreSQL at 127.0.0.1:5432 is unreachable — except under CI=true,
where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helpers.registry import diabetes_split, free_port, race_promotions, train_and_log
from regressops.config import GateSettings, Settings
from regressops.models.bundle import load_bundle
from regressops.registry import lifecycle
from regressops.registry.connection import connect
from regressops.registry.resolve import resolve_model
from regressops.training.promotion import register_and_promote

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PG = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
BIN = Path(sys.executable).parent


def _admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(PG, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required under CI: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}")


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not up after {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    admin = _admin()
    db = f"regressops_mlflow_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{db}"')
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{uri}/health", proc, log, timeout=120)
        home = root / "home"
        settings = Settings(home=home, tracking_uri=uri, gates=GateSettings(min_r2=0.0))
        yield {"uri": uri, "settings": settings, "home": home, "client": connect(uri), "root": root}
    finally:
        _stop(proc)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{db}"')
        admin.close()


@pytest.fixture(scope="module")
def champion(server: dict[str, Any]) -> dict[str, Any]:
    settings, uri, client = server["settings"], server["uri"], server["client"]
    _, test = diabetes_split()
    run, bundle, report = train_and_log(settings, uri, kind="hgb", name="served")
    version, change, _ = register_and_promote(
        client,
        uri,
        "served",
        model_uri=run.model_uri,
        run_id=run.run_id,
        model_id=run.model_id,
        bundle=bundle,
        eval_frame=test,
        report=report,
        settings=settings,
    )
    assert change is not None
    return {"version": version, "bundle": bundle, "test": test, "run": run}


def test_runs_and_artifacts_go_to_the_server(
    server: dict[str, Any], champion: dict[str, Any]
) -> None:
    client = server["client"]
    run = client.get_run(champion["run"].run_id)
    assert run.data.params["kind"] == "hgb" and "test_r2" in run.data.metrics
    # artefacts were proxied by the server into its artefact root, none under the client's home
    stored = list((server["root"] / "artifacts").rglob("model.json"))
    assert stored and not (server["home"] / "mlartifacts").exists()


def test_resolve_and_load_champion_through_the_server(
    server: dict[str, Any], champion: dict[str, Any]
) -> None:
    resolved = resolve_model("models:/served@champion", settings=server["settings"])
    bundle = load_bundle(resolved.path)
    assert bundle.version == champion["version"] and bundle.kind == "hgb"
    np.testing.assert_array_equal(
        bundle.predict_frame(champion["test"]), champion["bundle"].predict_frame(champion["test"])
    )


def test_a_cached_champion_resolves_through_the_server_without_mlflow(
    server: dict[str, Any], champion: dict[str, Any]
) -> None:
    from helpers.registry import resolve_in_fresh_process
    from regressops.registry.store_reader import read_alias

    light = read_alias(server["uri"], "served", "champion")
    assert light is not None and light.version == champion["version"]
    assert light.run_id == champion["run"].run_id
    card = server["client"].get_model_version("served", champion["version"]).tags
    assert light.card is not None and light.card == card["regressops.card"]  # over REST too
    assert read_alias(server["uri"], "served", "nosuch") is None
    resolve_model("models:/served@champion", settings=server["settings"])  # cached now
    again = resolve_in_fresh_process(server["settings"], "models:/served@champion")
    assert again["version"] == champion["version"] and again["mlflow"] is False


def test_mlflow_models_serve_answers_like_our_bundle(
    server: dict[str, Any], champion: dict[str, Any]
) -> None:
    port = free_port()
    log = server["root"] / "models-serve.log"
    env = {**_env(), "MLFLOW_TRACKING_URI": server["uri"]}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/served@champion",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait(f"http://127.0.0.1:{port}/ping", proc, log, timeout=120)
        rows = champion["test"][champion["bundle"].spec.names].head(25)
        body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}}
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(
            answer.json()["predictions"], champion["bundle"].predict_frame(rows), rtol=1e-12
        )
    finally:
        _stop(proc)


def test_lifecycle_and_concurrent_promotions_via_lease(
    server: dict[str, Any], tmp_path: Path
) -> None:
    uri, client, name = server["uri"], server["client"], "race"
    versions, exit_codes, outs = race_promotions(server, tmp_path, name)
    codes = sorted(exit_codes)
    model = client.get_registered_model(name)
    assert "regressops.lock" not in model.tags  # the lease was released
    final = str(model.aliases["champion"])
    other = versions[2] if final == versions[1] else versions[1]
    if codes == [0, 6]:
        # The lease is timing-based: a taker stalled longer than its settle time (a loaded
        # machine) may race; then the compare-and-set refuses one with a clear error, and the
        # registry is still consistent: one promotion, recorded once.
        loser = next(o for c, o in zip(exit_codes, outs, strict=True) if c == 6)
        assert "ERR concurrent_change" in loser[0], outs
        assert client.get_model_version(name, final).tags["regressops.replaced"] == versions[0]
        assert client.get_model_version(name, other).tags["regressops.status"] == "candidate"
        return
    assert codes == [0, 0], outs
    # serialised: the last promotion replaced the first, which replaced the base
    assert client.get_model_version(name, final).tags["regressops.replaced"] == other
    assert client.get_model_version(name, other).tags["regressops.replaced"] == versions[0]
    assert lifecycle.rollback(client, uri, name).version == other
    rows = {r["version"]: r for r in lifecycle.list_versions(client, name)}
    assert rows[other]["aliases"] == ["champion"] and rows[final]["status"] == "archived"
