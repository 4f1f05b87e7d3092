"""``pipeline run`` stage by stage (skips of unchanged stages) and the Prefect retraining flow
under Prefect's own test harness (an ephemeral local API, no network)."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from regressops.config import get_settings
from regressops.data.demo_db import seed_demo_db
from regressops.errors import RegressopsError
from regressops.pipelines.stages import STAGES, inputs_hash, run_pipeline


def _statuses(result: dict) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in result["stages"]}


def _add_rows(db: Path, n: int) -> None:
    con = sqlite3.connect(db)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(diabetes)")]
        rows = con.execute(f"SELECT * FROM diabetes LIMIT {n}").fetchall()
        new = [[500000 + k, *row[1:]] for k, row in enumerate(rows)]
        con.executemany(f"INSERT INTO diabetes VALUES ({','.join('?' * len(cols))})", new)
        con.commit()
    finally:
        con.close()


def test_inputs_hash_is_order_free_and_tells_values_apart() -> None:
    assert inputs_hash({"a": 1, "b": [1, 2]}) == inputs_hash({"b": [1, 2], "a": 1})
    assert inputs_hash({"a": 1}) != inputs_hash({"a": 2})


@pytest.mark.slow
def test_pipeline_runs_every_stage_then_skips_what_did_not_change(home: Path) -> None:
    settings = get_settings()
    seed_demo_db(url=f"sqlite:///{home / 'demo.db'}", dataset="diabetes", settings=settings)
    first = run_pipeline("diabetes", settings=settings)
    assert [s["stage"] for s in first["stages"]] == list(STAGES)
    assert _statuses(first) == {**dict.fromkeys(STAGES[:-1], "ran"), "monitor": "ran"}
    assert first["stages"][4]["outputs"]["champion"] == "1"
    assert Path(first["record_path"]).is_file()

    again = run_pipeline("diabetes", settings=settings)
    assert _statuses(again) == {**dict.fromkeys(STAGES[:-1], "skipped"), "monitor": "ran"}
    assert all("unchanged" in s["note"] for s in again["stages"][:-1])

    _add_rows(home / "demo.db", 50)  # a new source snapshot: everything downstream runs again
    third = run_pipeline("diabetes", settings=settings)
    assert _statuses(third)["extract"] == "ran" and _statuses(third)["train"] == "ran"
    assert third["stages"][0]["inputs"] != first["stages"][0]["inputs"]

    late = run_pipeline("diabetes", start="monitor", settings=settings)
    assert _statuses(late)["extract"] == "not_run" and _statuses(late)["monitor"] == "ran"

    (home / "demo.db").unlink()  # the source is gone: extract fails after its retries
    sleeps: list[float] = []
    with pytest.raises(RegressopsError):
        run_pipeline("diabetes", settings=settings, sleep=sleeps.append)
    (record,) = sorted((home / "pipeline" / "diabetes").glob("run-*.json"))[-1:]
    failed = json.loads(record.read_text())["stages"][-1]
    assert failed["stage"] == "extract" and failed["status"] == "failed"


def test_pipeline_refuses_an_unknown_or_inner_start(home: Path) -> None:
    from regressops.errors import ConfigError

    with pytest.raises(ConfigError, match="--from takes"):
        run_pipeline("diabetes", start="deploy", settings=get_settings())
    with pytest.raises(ConfigError, match="use --from train"):
        run_pipeline("diabetes", start="gate", settings=get_settings())


def test_pipeline_serve_builds_the_two_scheduled_deployments(home: Path) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    from regressops.errors import ConfigError
    from regressops.flows import retraining_deployments

    retraining, monitoring = retraining_deployments(
        dataset="diabetes", when="performance", cron="0 3 * * 1"
    )
    assert (retraining.flow_name, retraining.name) == ("regressops-retraining", "retrain-diabetes")
    assert retraining.parameters == {"dataset": "diabetes", "when": "performance"}
    assert (monitoring.flow_name, monitoring.name) == ("regressops-monitoring", "monitor-diabetes")
    assert monitoring.parameters == {"dataset": "diabetes"}
    for deployment in (retraining, monitoring):
        (schedule,) = deployment.schedules
        assert isinstance(schedule.schedule, CronSchedule) and schedule.active
        assert schedule.schedule.cron == "0 3 * * 1"
    for bad, message in [
        ({"cron": "every hour"}, "not a valid cron expression"),
        ({"when": "sometimes"}, "--if takes"),
        ({"dataset": "no_such_dataset"}, "unknown dataset"),
    ]:
        options = {"dataset": "diabetes", "when": "drift", "cron": "0 * * * *", **bad}
        with pytest.raises(ConfigError, match=message):
            retraining_deployments(**options)


@pytest.fixture
def _logging_restored() -> Iterator[None]:
    """Put every logger back as it was: Prefect's logging setup adds its console handler to the
    root logger, bound to this test's captured stdout, which is closed once the test ends; a
    later test of the same worker whose background thread logs would print handler errors."""
    loggers = [
        logging.getLogger(),
        *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    yield
    for lg, handlers, level, propagate, disabled in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled
    for lg in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(lg, logging.Logger) and lg not in loggers:
            lg.handlers.clear()  # a logger Prefect created: no handler of its left behind


@pytest.mark.slow
@pytest.mark.usefixtures("_logging_restored")
def test_prefect_retraining_flow_retrains_and_promotes_offline(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no importorskip: Prefect is in the locked environment (the `prefect` extra), and its local
    # API must start here (pyproject caps FastAPI below 0.155 for Prefect 3.8; see docs/loop.md)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    from regressops.flows import data_flow, extract_task, retraining_flow
    from regressops.pipelines.quickstart import quickstart

    quickstart(settings=get_settings())
    with prefect_test_harness(server_startup_timeout=120):
        record = retraining_flow(dataset="diabetes", when="always")
        assert record["status"] == "promoted", record
        assert record["versions"] == {
            **record["versions"],
            "champion_before": "1",
            "champion_after": "2",
        }
        # input-hash caching: the same source snapshot is not extracted twice
        first = data_flow(dataset="diabetes")

        @flow
        def extract_again(snapshot: str) -> str:
            return str(extract_task("diabetes", snapshot, return_state=True).name)

        assert extract_again(first["snapshot_hash"]) == "Cached"
        assert extract_again("another snapshot") == "Completed"

        # what `pipeline serve --cron` serves, registered with the harness's API and read back
        from prefect.client.orchestration import get_client

        from regressops.flows import retraining_deployments

        deployments = retraining_deployments(dataset="diabetes", when="drift", cron="*/15 * * * *")
        with get_client(sync_client=True) as client:
            for deployment in deployments:
                deployment.apply()
                stored = client.read_deployment_by_name(f"{deployment.flow_name}/{deployment.name}")
                assert [s.schedule.cron for s in stored.schedules] == ["*/15 * * * *"]
                assert stored.parameters == deployment.parameters
