"""The closed loop: monitor → extract → validate → train → gate → register/promote → reload.

:func:`retrain` looks at the rows the dataset's source holds that the lake does not (a read-only
peek), judges them against the champion's training reference (drift, and performance: the
source rows carry their labels), and when the trigger fires extracts them into a new raw
version, validates it, trains the configured candidates on the new clean version, gates the
best against the champion on the same fresh held-out rows and promotes it when the gates pass.
Running servers are told to reload, and webhooks hear what happened. Each run leaves a record:
``<home>/retrain/<id>.json`` and an MLflow run that the candidates' runs hang under.

One retrain per dataset at a time (a lock under the home; the registry's own lock guards the
promotion across machines).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from regressops.alerts.dispatch import emit
from regressops.config import Settings, get_settings
from regressops.errors import (
    ConfigError,
    DataError,
    ModelError,
    RegistryError,
    RegressopsError,
    ValidationFailed,
)
from regressops.reasons import Reason

logger = logging.getLogger(__name__)

Trigger = Literal["drift", "performance", "always"]
TRIGGERS: tuple[str, ...] = ("drift", "performance", "always")
RECORD_DIR = "retrain"


@dataclass(frozen=True)
class RetrainRequest:
    """What to retrain and when.

    Attributes
    ----------
    dataset : str
        The dataset whose source is watched and retrained on.
    when : {"drift", "performance", "always"}
        The trigger: dataset drift of the new source rows, degraded performance on them, or
        every time.
    model : str or None
        The champion's reference, ``models:/NAME@champion`` (default: the dataset's name).
    dry_run : bool
        Judge and report what would happen; change nothing, send nothing.
    """

    dataset: str
    when: Trigger = "drift"
    model: str | None = None
    dry_run: bool = False

    def model_uri(self) -> str:
        """The champion's ``models:/`` reference."""
        return self.model or f"models:/{self.dataset}@champion"


@dataclass
class RetrainRecord:
    """What one retrain did (``<home>/retrain/<id>.json``).

    ``status`` is one of ``not_triggered``, ``dry_run``, ``promoted``, ``kept_champion`` (the
    gates failed) and ``failed``.
    """

    id: str
    dataset: str
    model: str
    trigger: str
    started_at: str
    status: str = "running"
    triggered: bool = False
    reason: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] | None = None
    report: dict[str, str] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] | None = None
    reloads: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    error: dict[str, str] | None = None
    mlflow_run_id: str | None = None
    record_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the wall time of the block to ``timings[step]`` (seconds)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = round(time.perf_counter() - start, 4)


def retrain(request: RetrainRequest, *, settings: Settings | None = None) -> RetrainRecord:
    """Run the loop once for ``request.dataset``.

    Returns
    -------
    RetrainRecord
        Also written to ``<home>/retrain/<id>.json`` (and, when something ran, to MLflow).

    Raises
    ------
    ConfigError
        An unknown trigger or dataset.
    RegistryError
        Another retrain of the dataset holds the lock past ``retrain.lock_timeout``
        (``retrain_busy``); the registry cannot be reached.
    SourceError, DataError, ModelError
        A stage failed: nothing was promoted, ``retrain.failed`` was sent, the record says
        where.
    """
    from regressops.registry.resolve import parse_model_uri

    settings = settings or get_settings()
    if request.when not in TRIGGERS:
        raise ConfigError(
            f"--if takes {', '.join(TRIGGERS)}, not {request.when!r}", reason="invalid_trigger"
        )
    uri = request.model_uri()
    name = parse_model_uri(uri).name
    now = dt.datetime.now(dt.UTC)
    record = RetrainRecord(
        id=f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}",
        dataset=request.dataset,
        model=uri,
        trigger=request.when,
        started_at=now.isoformat(timespec="seconds"),
    )
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            with record.timed("lock_wait"):
                stack.enter_context(_retrain_lock(settings, request.dataset))
            _run(request, record, name, settings)
    except RegressopsError as exc:
        record.status = "failed"
        record.error = {
            "stage": next(reversed(record.timings), "start"),  # the last step begun: it failed
            "reason": exc.reason,
            "message": exc.message,
            "type": type(exc).__name__,
        }
        if not request.dry_run and exc.reason != Reason.RETRAIN_BUSY:
            _event(settings, record, "retrain.failed", {"error": record.error})
        raise
    finally:
        record.timings["total"] = round(time.perf_counter() - started, 4)
        _finish(record, settings, request.dry_run)
    return record


# ------------------------------------------------------------------------ the stages
def _run(request: RetrainRequest, record: RetrainRecord, name: str, settings: Settings) -> None:
    from regressops.data.snapshot import peek_source

    with record.timed("peek_source"):
        peek = peek_source(request.dataset, settings=settings)
    record.source = peek.to_dict()
    with record.timed("monitor"):
        doc = _monitor(request, record, peek, settings) if peek.rows_new else None
    record.triggered, record.reason = _decide(request.when, peek.rows_new, doc)
    record.reason += _shadow_note(doc, record, name)
    if doc is not None and not request.dry_run:
        summary = {"drift": record.drift, "report": record.report}
        if doc.get("status") == "drift":
            _event(settings, record, "drift.detected", summary)
        if (doc.get("performance") or {}).get("degraded"):
            _event(settings, record, "performance.degraded", summary)
    if not record.triggered or request.dry_run:
        record.status = "dry_run" if record.triggered else "not_triggered"
        if record.triggered:
            record.reason = f"would extract, validate, train, gate and promote: {record.reason}"
        logger.info("retrain %s: %s", record.status, record.reason)
        return
    if record.versions.get("champion_before") is None:
        record.versions["champion_before"] = _alias_version(record.model, settings)
    _update_data(request.dataset, record, settings)
    recorded = _train(request.dataset, name, record, settings)
    if recorded.change is None:
        record.status = "kept_champion"
        _event(settings, record, "gate.failed", {"gates": record.gates})
    else:
        record.status = "promoted"
        with record.timed("reload"):
            record.reloads = reload_servers(settings)
        _event(settings, record, "model.promoted", {"gates": record.gates})
    _event(settings, record, "retrain.finished", {"status": record.status})


def _monitor(
    request: RetrainRequest, record: RetrainRecord, peek: Any, settings: Settings
) -> dict[str, Any]:
    """Judge the new source rows against the champion's reference; write the report."""
    import pyarrow.parquet as pq

    from regressops.monitoring.monitor import MonitorRequest, run_monitor, write_report
    from regressops.registry.resolve import parse_model_uri

    challenger = _alias_version(
        f"models:/{parse_model_uri(record.model).name}@challenger", settings
    )
    with tempfile.TemporaryDirectory(prefix="regressops-retrain-") as tmp:
        current = Path(tmp) / "new-rows.parquet"
        pq.write_table(peek.new, current)
        monitor = MonitorRequest(model=record.model, current_data=current, target=peek.target)
        try:  # the @challenger, if any, is compared with the champion on the same new rows
            shadow = f"models:/{parse_model_uri(record.model).name}/{challenger}"
            report = run_monitor(
                dataclasses.replace(monitor, shadow=shadow if challenger else None),
                settings=settings,
            )
        except (DataError, ModelError) as exc:
            if challenger is None:
                raise
            logger.warning("the @challenger v%s was not compared: %s", challenger, exc.message)
            report = run_monitor(monitor, settings=settings)
    doc = report.to_dict()
    record.versions["champion_before"] = (report.model or {}).get("version")
    perf = doc.get("performance")
    record.drift = {
        "status": doc["status"],
        "dataset_drift": doc["dataset_drift"],
        "share_drifted": doc["share_drifted"],
        "drifted_features": doc.get("drifted_features", []),
        "rows": peek.rows_new,
        "performance": {
            k: perf.get(k)
            for k in ("status", "rows_labelled", "rmse", "rmse_increase", "degraded", "shadow")
        }
        if perf
        else None,
    }
    if not request.dry_run:
        folder = settings.reports_dir / RECORD_DIR / record.id
        json_path, html_path = write_report(report, folder)
        record.report = {"drift_json": str(json_path), "report_html": str(html_path)}
    return doc


def _alias_version(uri: str, settings: Settings) -> str | None:
    """The version ``models:/NAME@ALIAS`` names now (None: no such alias yet)."""
    from regressops.registry.connection import connect
    from regressops.registry.lifecycle import alias_version
    from regressops.registry.resolve import parse_model_uri

    ref = parse_model_uri(uri)
    if ref.alias is None:
        return ref.version
    try:
        mv = alias_version(connect(settings.resolved_tracking_uri), ref.name, ref.alias)
    except RegistryError:  # no such model yet: the first retrain registers it
        return None
    return str(mv.version) if mv is not None else None


def _decide(when: str, rows_new: int, doc: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the trigger fired, and why (or why not) in words."""
    if when == "always":
        return True, "retrain requested unconditionally (--if always)"
    if not rows_new or doc is None:
        return False, "the source holds no rows the lake lacks: nothing new to judge"
    drifted = ", ".join(doc.get("drifted_features", [])) or "none"
    if when == "drift":
        if doc["status"] == "drift":
            return True, f"dataset drift on {rows_new} new rows (drifted: {drifted})"
        return False, f"no dataset drift on {rows_new} new rows (status {doc['status']})"
    perf = doc.get("performance") or {}
    if perf.get("degraded"):
        return True, f"performance degraded on {rows_new} new labelled rows"
    return False, f"performance not degraded on {rows_new} new rows"


def _shadow_note(doc: dict[str, Any] | None, record: RetrainRecord, name: str) -> str:
    """A sentence for the reason when the @challenger beat the champion on the new rows."""
    shadow = ((doc or {}).get("performance") or {}).get("shadow")
    if not shadow or not shadow.get("better_than_champion"):
        return ""
    evidence = record.report.get("drift_json")
    how = (
        f"; promote it with `regressops models promote {name} {shadow['model_version']} "
        f"--evidence {evidence}`"
        if evidence
        else ""
    )
    return (
        f"; @challenger v{shadow['model_version']} beat the champion on {shadow['rows_labelled']} "
        f"labelled new rows (rmse {shadow['rmse']:.6g} vs {shadow['champion']['rmse']:.6g}){how}"
    )


def _update_data(dataset: str, record: RetrainRecord, settings: Settings) -> None:
    from regressops.data.extract import extract
    from regressops.data.validate import validate

    with record.timed("extract"):
        extracted = extract(dataset, settings=settings)
    record.data.update(raw_version=extracted.raw_version, rows_new=extracted.rows_new)
    with record.timed("validate"):
        try:
            validated = validate(dataset, on_fail="quarantine", settings=settings)
        except ValidationFailed as exc:
            _event(settings, record, "validation.failed", {"error": exc.message})
            raise
    record.data.update(clean_version=validated.clean_version, report=str(validated.report_json))


def _train(dataset: str, name: str, record: RetrainRecord, settings: Settings) -> Any:
    from regressops.training.candidates import train_dataset_candidates

    with record.timed("train_gate_register"):
        recorded = train_dataset_candidates(
            dataset, settings.retrain.models, model_name=name, settings=settings
        )
    if recorded.tracking_error or recorded.version is None:
        raise RegistryError(
            f"the candidate could not be registered: {recorded.tracking_error or 'no version'}",
            reason="not_registered",
        )
    record.versions["candidate"] = recorded.version
    record.versions["champion_after"] = (
        recorded.change.version if recorded.change else record.versions.get("champion_before")
    )
    record.versions["runs"] = [c.run_id for c in recorded.candidates if c.run_id]
    record.versions["parent_run"] = recorded.parent_run_id
    record.gates = {"summary": recorded.gate_summary, "report": recorded.best.gates.to_dict()}
    return recorded


def reload_servers(settings: Settings) -> list[dict[str, Any]]:
    """``POST /admin/reload`` on every ``retrain.servers`` URL; never raises.

    Returns
    -------
    list of dict
        Per server: ``url``, ``status`` (HTTP status or None) and ``version`` or ``error``.
    """
    import httpx

    key = os.environ.get(settings.retrain.admin_key_env)
    headers = {"X-API-Key": key} if key else {}
    out: list[dict[str, Any]] = []
    for url in settings.retrain.servers:
        target = url.rstrip("/") + "/admin/reload"
        try:
            resp = httpx.post(target, headers=headers, timeout=30.0)
            body = (
                resp.json()
                if resp.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            entry: dict[str, Any] = {"url": url, "status": resp.status_code}
            if resp.is_success:
                entry["version"] = body.get("version") or body.get("model_version")
            else:
                entry["error"] = str(body.get("detail") or body.get("title") or resp.reason_phrase)
        except httpx.HTTPError as exc:
            entry = {"url": url, "status": None, "error": type(exc).__name__}
        if "error" in entry:
            logger.warning("server %s did not reload: %s", url, entry["error"])
        out.append(entry)
    return out


# -------------------------------------------------------------------------- records
@contextlib.contextmanager
def _retrain_lock(settings: Settings, dataset: str) -> Iterator[None]:
    """Hold the dataset's retrain lock (waiting up to ``retrain.lock_timeout``)."""
    from regressops.registry.locks import _file_lock

    path = settings.home / "locks" / f"retrain-{dataset}.lock"
    lock = _file_lock(path, dataset, settings.retrain.lock_timeout)
    try:
        lock.__enter__()
    except RegistryError:
        raise RegistryError(
            f"another retrain of {dataset!r} is running (lock {path} held for over "
            f"{settings.retrain.lock_timeout:g}s); try again later",
            reason="retrain_busy",
        ) from None
    with contextlib.ExitStack() as stack:
        stack.push(lock)
        yield


def _event(settings: Settings, record: RetrainRecord, kind: str, extra: dict[str, Any]) -> None:
    """Send a webhook event about this run (never raises for a delivery problem)."""
    data = {
        "model": record.model,
        "dataset": record.dataset,
        "retrain_id": record.id,
        "trigger": record.trigger,
        "reason": record.reason,
        "versions": dict(record.versions),
        **extra,
    }
    emit(settings, kind, data)
    record.events.append(kind)


def _finish(record: RetrainRecord, settings: Settings, dry_run: bool) -> None:
    """Write the record (JSON under the home, and an MLflow run when anything ran)."""
    if record.triggered and not dry_run:
        try:
            record.mlflow_run_id = _log_run(record, settings)
        except Exception as exc:  # the record on disk still tells the story
            logger.warning("retrain record not logged to MLflow: %s", type(exc).__name__)
    folder = settings.home / RECORD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.id}.json"
    record.record_path = str(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def _log_run(record: RetrainRecord, settings: Settings) -> str:
    """An MLflow run for the retrain, the parent of the candidates' runs."""
    from regressops.registry.connection import connect
    from regressops.registry.tracking import ensure_experiment

    store = settings.resolved_tracking_uri
    client = connect(store)
    experiment_id = ensure_experiment(client, record.dataset, store, settings)
    run = client.create_run(
        experiment_id,
        run_name=f"retrain {record.dataset} ({record.status})",
        tags={"regressops.retrain": record.id, "regressops.dataset": record.dataset},
    )
    run_id = str(run.info.run_id)
    for key, value in record.timings.items():
        client.log_metric(run_id, f"seconds_{key}", value)
    client.log_param(run_id, "trigger", record.trigger)
    client.set_tag(run_id, "regressops.status", record.status)
    client.log_dict(run_id, record.to_dict(), "retrain.json")
    parent = record.versions.get("parent_run")
    for child in [parent] if parent else record.versions.get("runs", []):
        client.set_tag(str(child), "mlflow.parentRunId", run_id)
    printed = io.StringIO()  # an MLflow server's client prints the run's URL: keep stdout clean
    with contextlib.redirect_stdout(printed):
        client.set_terminated(run_id, "FAILED" if record.status == "failed" else "FINISHED")
    logger.debug("mlflow: %s", printed.getvalue().strip())
    return run_id
