"""The retrain loop on a PostgreSQL source: a champion trained from a table in a fresh schema,
shifted rows inserted into that table, `regressops retrain --if drift` promotes a new champion;
run again with no new rows it changes nothing. Once with the embedded MLflow store, once with a
real ``mlflow server`` (PostgreSQL backend, the fixture of ``test_mlflow_server``). And the
source cut off in the middle of a retrain's extract: the run fails cleanly and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.postgres import PG_URL, temporary_schema
from integration.test_mlflow_server import server  # noqa: F401 - the module-scoped fixture
from regressops.config import get_settings

REGRESSOPS = Path(sys.executable).parent / "regressops"
SHIFTED = ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
HELD_ROW = 100300  # a new row (ids + 100000) well past the first chunks of the new data

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


def test_the_source_cut_off_mid_extract_fails_the_retrain_and_changes_nothing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network to the source goes down while ``retrain`` streams the new rows into the lake.

    The source is a PostgreSQL table reached through a TCP link the test can cut. A view over
    the table waits on an advisory lock at one row of the new data, so the extract can be held
    mid-stream (after the monitor, with chunks already in the lake writer): the receiver holds
    its answer to ``drift.detected`` while the test takes the lock, then the test cuts the link
    once the extract waits. Exit 5 with one error line (after the retry's warning),
    ``retrain.failed`` verified by a real receiver, the record naming the extract, no new lake
    version or file, nothing registered; once the link is back the same retrain (which a
    leftover lock would refuse) extracts one new version and promotes.
    """
    from sqlalchemy import create_engine, make_url, text

    from helpers.tcp_proxy import TcpProxy
    from helpers.webhooks import Receiver
    from regressops.alerts import generate_secret
    from regressops.data.demo_db import seed_demo_db
    from regressops.data.extract import extract
    from regressops.data.lake import Lake
    from regressops.data.validate import validate
    from regressops.pipelines.retrain import RetrainRequest, retrain
    from regressops.registry.connection import connect
    from regressops.training.candidates import train_dataset_candidates as train_candidates

    pg = make_url(PG_URL)
    secret = generate_secret()
    key = int.from_bytes(os.urandom(3), "big")  # this test's advisory lock
    with (
        temporary_schema("prefect_cut") as schema,
        Receiver(tmp_path / "hooks", secret, pause_on="drift.detected") as receiver,
    ):
        proxy = TcpProxy(pg.host or "127.0.0.1", pg.port or 5432)
        engine = create_engine(PG_URL)
        # the source's rows, read through a view that waits for the advisory lock at one new row
        gate = (
            f'CREATE FUNCTION "{schema}".gate(row_id bigint) RETURNS boolean LANGUAGE plpgsql '
            f"VOLATILE AS $$ BEGIN IF row_id = {HELD_ROW} THEN "
            f"PERFORM pg_advisory_xact_lock_shared({key}); END IF; RETURN true; END $$"
        )
        view = f'CREATE VIEW "{schema}".diabetes AS SELECT * FROM "{schema}".rows '
        view += f'WHERE "{schema}".gate(id)'
        shifted = ", ".join(f"{c} + 0.05" for c in SHIFTED)
        insert = f'INSERT INTO "{schema}".rows (id, {", ".join(SHIFTED)}, sex, target) '
        insert += f'SELECT id + 100000, {shifted}, sex, target FROM "{schema}".rows'
        config = tmp_path / "regressops.toml"

        def configure(port: int) -> None:  # the source through the link on ``port``
            through = pg.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
            config.write_text(
                f'[datasets.diabetes]\nsource = "{through}"\ntable = "{schema}.diabetes"\n'
                "[data]\nchunk_size = 50\nretries = 1\nretry_backoff = 0.05\n"
                "[retrain]\nlock_timeout = 0\n"
                "[gates]\nmax_latency_ms = 5000\n"  # not this test's subject; CI machines vary
                f'[[webhooks]]\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\n'
                "allow_private = true\ntimeout = 60\nbackoff = 0.01\n"
            )
            get_settings.cache_clear()

        configure(proxy.port)
        monkeypatch.setenv("REGRESSOPS_CONFIG", str(config))
        monkeypatch.setenv("HOOK_SECRET", secret)
        settings = get_settings()
        seed_demo_db(url=PG_URL, dataset="diabetes", table=f"{schema}.rows", settings=settings)
        with engine.begin() as conn:
            conn.execute(text(gate))
            conn.execute(text(view))
        extract("diabetes", settings=settings)
        validate("diabetes", settings=settings)
        assert train_candidates("diabetes", ["linear"], settings=settings).change is not None
        with engine.begin() as conn:  # shifted new rows: the monitor sees drift
            conn.execute(text(insert))

        lake = Lake.from_settings(settings)
        versions = {t: lake.latest_version("diabetes", t) for t in ("raw", "clean")}
        files = sorted(p for t in ("raw", "clean") for p in lake.path("diabetes", t).rglob("*"))
        env = {**os.environ, "REGRESSOPS_HOME": str(home), "COLUMNS": "200"}
        run = subprocess.Popen(
            [str(REGRESSOPS), "retrain", "--dataset", "diabetes", "--if", "drift"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        holder = engine.connect()
        try:
            _wait(lambda: receiver.paused() or run.poll() is not None, "drift.detected")
            assert run.poll() is None, run.communicate()
            holder.execute(text(f"SELECT pg_advisory_lock({key})"))  # held on this session
            receiver.resume()
            waiting = text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = :key"
            )
            _wait(
                lambda: (
                    holder.execute(waiting, {"key": key}).scalar() == 1 or run.poll() is not None
                ),
                "the extract to reach the held row",
            )
            assert run.poll() is None, run.communicate()
            proxy.cut()  # the network to the source goes down mid-stream
            holder.execute(text(f"SELECT pg_advisory_unlock({key})"))
            out, err = run.communicate(timeout=120)
        finally:
            holder.close()
            proxy.cut()
            if run.poll() is None:
                run.kill()
                run.wait()

        assert run.returncode == 5, (out, err)
        *retried, last = err.splitlines()  # a warning per retry, then the error's one line
        assert last.startswith("error: cannot reach the source database")
        assert "connection refused" in last.lower() and "gave up after 2 attempts" in last
        assert [line.startswith("attempt 1 of 2 failed") for line in retried] == [True]
        assert "Traceback" not in err
        events = [r["payload"] for r in receiver.requests() if r["verified"]]
        types = [e["type"] for e in events]
        assert "drift.detected" in types and types[-1] == "retrain.failed"
        assert not {"model.promoted", "retrain.finished"} & set(types)
        failed = events[-1]["data"]
        assert failed["error"]["stage"] == "extract"
        assert failed["error"]["reason"] == "source_unreachable"
        (path,) = (home / "retrain").glob("*.json")
        record = json.loads(path.read_text())
        assert record["status"] == "failed" and record["error"] == failed["error"]
        assert {t: lake.latest_version("diabetes", t) for t in ("raw", "clean")} == versions
        assert (
            sorted(p for t in ("raw", "clean") for p in lake.path("diabetes", t).rglob("*"))
            == files
        )
        client = connect(settings.resolved_tracking_uri)
        assert [str(v.version) for v in client.search_model_versions("name = 'diabetes'")] == ["1"]
        assert str(client.get_model_version_by_alias("diabetes", "champion").version) == "1"

        # the link is back: the same retrain (lock_timeout = 0: a held lock would refuse it)
        # extracts one new raw version and promotes
        with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as back:
            configure(back.port)
            again = retrain(
                RetrainRequest(dataset="diabetes", when="drift"), settings=get_settings()
            )
        assert again.status == "promoted", again.to_dict()
        assert again.data["raw_version"] == (versions["raw"] or 0) + 1
        engine.dispose()


def _wait(done: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
