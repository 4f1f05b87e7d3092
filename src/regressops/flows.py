"""Prefect 3 flows over the same stage functions (``pip install 'regressops[prefect]'``).

The only module that imports Prefect. Tasks wrap the plain functions of
:mod:`regressops.pipelines` with retries and input-hash caching (an extract of the same source
snapshot, a validation of the same raw version are not run twice); :func:`retraining_flow`
is one ``regressops retrain``, :func:`monitoring_flow` one ``regressops monitor`` of the
served rows, and :func:`serve_retraining` serves both on a cron schedule
(``regressops pipeline serve --cron``). Settings come from the environment and
``regressops.toml`` of the process running the flows, as for the CLI.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from prefect import flow, serve, task
from prefect.cache_policies import INPUTS, NO_CACHE

from regressops.config import get_settings

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

logger = logging.getLogger(__name__)

CACHE_FOR = timedelta(days=7)


@task(name="peek source", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def peek_source_task(dataset: str) -> dict[str, Any]:
    """The source's snapshot hash and how many rows the lake lacks."""
    from regressops.data.snapshot import peek_source

    return peek_source(dataset, settings=get_settings()).to_dict()


@task(
    name="extract",
    retries=2,
    retry_delay_seconds=1,
    cache_policy=INPUTS,
    cache_expiration=CACHE_FOR,
)
def extract_task(dataset: str, snapshot_hash: str) -> int:
    """Extract into a new raw version; cached per source snapshot."""
    from regressops.data.extract import extract

    return extract(dataset, settings=get_settings()).raw_version


@task(name="validate", retries=1, cache_policy=INPUTS, cache_expiration=CACHE_FOR)
def validate_task(dataset: str, raw_version: int) -> int | None:
    """Validate a raw version into a clean one; cached per raw version."""
    from regressops.data.validate import validate

    return validate(dataset, on_fail="quarantine", settings=get_settings()).clean_version


@task(name="retrain", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def retrain_task(dataset: str, when: str) -> dict[str, Any]:
    """One :func:`regressops.pipelines.retrain.retrain`; its record."""
    from regressops.pipelines.retrain import RetrainRequest, retrain

    request = RetrainRequest(dataset=dataset, when=when)  # type: ignore[arg-type]
    return retrain(request, settings=get_settings()).to_dict()


@task(name="monitor", cache_policy=NO_CACHE)
def monitor_task(model: str) -> dict[str, Any]:
    """Drift of the served rows against ``model``'s reference; the summary."""
    from regressops.monitoring.monitor import MonitorRequest, run_monitor, write_report

    settings = get_settings()
    report = run_monitor(MonitorRequest(model=model), settings=settings)
    json_path, _ = write_report(report, settings.reports_dir / "monitor")
    return {"status": report.drift.status, "report": str(json_path)}


@flow(name="regressops-retraining", log_prints=False)
def retraining_flow(dataset: str = "diabetes", when: str = "drift") -> dict[str, Any]:
    """Retrain ``dataset`` when ``when`` says so (drift, performance, always)."""
    record = retrain_task(dataset, when)
    logger.info("retrain %s: %s (%s)", dataset, record["status"], record["reason"])
    return record


@flow(name="regressops-data")
def data_flow(dataset: str = "diabetes") -> dict[str, Any]:
    """Extract and validate, skipping both when the source snapshot did not change."""
    peek = peek_source_task(dataset)
    raw = extract_task(dataset, peek["snapshot_hash"])
    clean = validate_task(dataset, raw)
    return {"snapshot_hash": peek["snapshot_hash"], "raw_version": raw, "clean_version": clean}


@flow(name="regressops-monitoring")
def monitoring_flow(dataset: str = "diabetes") -> dict[str, Any]:
    """Monitor the champion of ``dataset`` on its served rows."""
    return monitor_task(f"models:/{dataset}@champion")


def retraining_deployments(*, dataset: str, when: str, cron: str) -> list[RunnerDeployment]:
    """The retraining and monitoring flows of ``dataset`` as deployments scheduled on ``cron``.

    What ``regressops pipeline serve`` serves; built without contacting a Prefect API, so the
    options are checked before anything runs.

    Returns
    -------
    list of prefect.deployments.runner.RunnerDeployment
        ``retrain-DATASET`` (parameters ``dataset``, ``when``) and ``monitor-DATASET``.

    Raises
    ------
    ConfigError
        ``cron`` is not a cron expression, ``when`` not a trigger, ``dataset`` unknown.
    """
    from prefect.client.schemas.schedules import CronSchedule

    from regressops.data.declarations import get_contract
    from regressops.errors import ConfigError
    from regressops.pipelines.retrain import TRIGGERS

    try:
        CronSchedule(cron=cron)
    except ValueError:
        raise ConfigError(f"--cron {cron!r} is not a valid cron expression") from None
    if when not in TRIGGERS:
        raise ConfigError(
            f"--if takes {', '.join(TRIGGERS)}, not {when!r}", reason="invalid_trigger"
        )
    get_contract(dataset, get_settings())
    retraining = retraining_flow.to_deployment(
        name=f"retrain-{dataset}", cron=cron, parameters={"dataset": dataset, "when": when}
    )
    monitoring = monitoring_flow.to_deployment(
        name=f"monitor-{dataset}", cron=cron, parameters={"dataset": dataset}
    )
    # called from sync code, to_deployment returns the deployment itself, not a coroutine
    return [cast("RunnerDeployment", retraining), cast("RunnerDeployment", monitoring)]


def serve_retraining(*, dataset: str, when: str, cron: str) -> None:
    """Serve the retraining and monitoring flows on ``cron`` until interrupted."""
    serve(*retraining_deployments(dataset=dataset, when=when, cron=cron))
