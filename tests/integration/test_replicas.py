"""The compose stack's promises about its two API replicas, with real processes and no Docker.

``deploy/compose.yaml`` runs ``regressops serve`` twice on ``models:/NAME@champion`` with alias
polling and one PostgreSQL prediction-log table. Here two real servers run the same way (their
own homes, one registry, one table in a fresh schema of the PostgreSQL at 127.0.0.1): both serve
the champion, a promotion reaches both without a restart, and the monitor's reader finds every
row either replica answered, exactly once, with the version that answered it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from helpers.registry import train_and_log
from helpers.servers import ServerProcess
from regressops.config import GateSettings, Settings
from regressops.registry import lifecycle
from regressops.registry.connection import connect
from regressops.serving.log.reader import iter_log_rows

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NAME = "fleet"
KEY = "replica-key"


@pytest.fixture
def log_url() -> Iterator[str]:
    """A SQLAlchemy URL whose prediction_log table lives in a schema of its own."""
    engine = sa.create_engine(PG, connect_args={"connect_timeout": 3})
    schema = f"regressops_replicas_{uuid.uuid4().hex[:10]}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError:
        engine.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def _version(url: str) -> str:
    reply = httpx.get(f"{url}/model-check", headers={"X-API-Key": KEY}, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["version"])


def _wait_version(url: str, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _version(url)) != version:
        assert time.monotonic() < deadline, f"{url} still serves v{seen}, not v{version}"
        time.sleep(0.1)


def _predict(url: str, request_id: str) -> str:
    reply = httpx.post(
        f"{url}/batch",
        json={"data": [[0.01 * j for j in range(10)], [-0.02] * 10]},
        headers={"X-API-Key": KEY, "X-Request-ID": request_id},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == request_id
    return str(reply.json()["model_version"])


def test_two_replicas_share_the_log_and_follow_a_promotion(tmp_path: Path, log_url: str) -> None:
    registry = tmp_path / "registry"
    settings = Settings(home=registry, gates=GateSettings(min_r2=0.0))
    uri = settings.resolved_tracking_uri
    client = connect(uri)
    run, _, _ = train_and_log(settings, uri, name=NAME)
    versions = [  # two versions of one logged model: what differs is the version that answers
        lifecycle.register_version(
            client, uri, NAME, model_uri=run.model_uri, run_id=run.run_id, model_id=run.model_id
        )
        for _ in range(2)
    ]
    assert versions[0] != versions[1]
    lifecycle.promote(client, uri, NAME, versions[0], force=True, why="first champion")

    env = {
        "REGRESSOPS_TRACKING_URI": uri,
        "REGRESSOPS_API_KEYS": KEY,
        "REGRESSOPS_SERVE__RELOAD_POLL_SECONDS": "0.2",
    }
    replicas = [
        ServerProcess(f"models:/{NAME}@champion", tmp_path / f"replica-{i}", env=env,
                      prediction_log=log_url)
        for i in range(2)
    ]  # fmt: skip
    sent: dict[str, str] = {}  # request id -> the version that answered it
    try:
        for r in replicas:
            r.wait_ready(timeout=120)
        for i, r in enumerate(replicas):
            assert _version(r.url) == versions[0]
            for n in range(3):
                rid = f"before-{i}-{n}"
                sent[rid] = _predict(r.url, rid)
        lifecycle.promote(client, uri, NAME, versions[1], force=True, why="promoted")
        for i, r in enumerate(replicas):  # no restart, no reload call: each polls the alias
            _wait_version(r.url, versions[1])
            for n in range(3):
                rid = f"after-{i}-{n}"
                sent[rid] = _predict(r.url, rid)
    finally:
        codes = [r.stop() for r in replicas]
    assert all(code in (0, -15) for code in codes), [r.output()[-2000:] for r in replicas]
    assert {v for rid, v in sent.items() if rid.startswith("before")} == {versions[0]}
    assert {v for rid, v in sent.items() if rid.startswith("after")} == {versions[1]}

    rows = list(iter_log_rows(log_url, tmp_path))  # what `regressops monitor` reads
    per_request = Counter(r["request_id"] for r in rows)
    assert per_request == dict.fromkeys(sent, 2)  # both rows of every request, once, both replicas
    assert {(r["request_id"], str(r["model_version"])) for r in rows} == set(sent.items())
    assert {r["model_name"] for r in rows} == {NAME}
