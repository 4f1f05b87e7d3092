"""``regressops pipeline run``: extract → validate → train → gate → register → monitor.

Each stage is a plain function run with retries after a transient error (an unreachable
source or registry); each leaves a record (status, seconds, inputs hash, outputs). A stage
whose inputs did not change since its last successful run (the source snapshot hash, the lake
version it reads, its parameters) is skipped and says so. Gate and register run inside the
train stage's call (one held-out split, the champion compared under the registry lock); their
records carry the verdict and the version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, DataError, RegistryError, RegressopsError, SourceError
from regressops.reasons import Reason

logger = logging.getLogger(__name__)

STAGES = ("extract", "validate", "train", "gate", "register", "monitor")
_TRANSIENT = (SourceError, RegistryError)


def inputs_hash(inputs: dict[str, Any]) -> str:
    """A stable hash of a stage's inputs (JSON with sorted keys)."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def with_stage_retries(fn: Callable[[], Any], retries: int, sleep: Callable[[float], None]) -> Any:
    """Call ``fn``; after a source or registry error try again up to ``retries`` times."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except _TRANSIENT as exc:
            if attempt == retries:
                raise
            logger.warning("stage attempt %d failed (%s); retrying", attempt + 1, exc.message)
            sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def run_pipeline(
    dataset: str,
    *,
    start: str | None = None,
    settings: Settings | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run the stages for ``dataset`` from ``start`` (default: the first).

    Returns
    -------
    dict
        ``stages`` (one record per stage) and ``record_path`` (the JSON written under
        ``<home>/pipeline/<dataset>/``).

    Raises
    ------
    ConfigError
        An unknown stage, or ``--from gate``/``register`` (they run with ``train``).
    SourceError, DataError, RegistryError, ModelError
        A stage failed after its retries; the record so far is written.
    """
    from regressops.data.extract import extract
    from regressops.data.snapshot import peek_source
    from regressops.data.validate import validate
    from regressops.training.candidates import train_dataset_candidates as train_candidates

    settings = settings or get_settings()
    start = start or STAGES[0]
    if start not in STAGES:
        raise ConfigError(f"--from takes one of {', '.join(STAGES)}, not {start!r}")
    if start in ("gate", "register"):
        raise ConfigError(f"--from {start}: gate and register run with train; use --from train")
    folder = settings.home / "pipeline" / dataset
    state_path = folder / "state.json"
    state: dict[str, Any] = _read_json(state_path)
    records: list[dict[str, Any]] = []
    todo = STAGES[STAGES.index(start) :]
    retries = settings.retrain.stage_retries
    t = settings.train

    def stage(name: str, inputs: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict:
        begun = time.perf_counter()
        digest = inputs_hash(inputs)
        last = state.get(name) or {}
        rec: dict[str, Any]
        if name not in todo:
            rec = {"stage": name, "status": "not_run", "note": f"before --from {start}"}
            outputs = last.get("outputs", {})
        elif last.get("inputs_hash") == digest:
            rec = {"stage": name, "status": "skipped", "note": "inputs unchanged since last run"}
            outputs = last.get("outputs", {})
        else:
            try:
                outputs = with_stage_retries(work, retries, sleep)
            except RegressopsError as exc:  # the record says which stage failed, and why
                records.append(_failed(name, exc, inputs, begun))
                raise
            rec = {"stage": name, "status": "ran", "note": outputs.pop("note", "")}
            state[name] = {"inputs_hash": digest, "outputs": outputs}
        rec.update(inputs=inputs, inputs_hash=digest, outputs=outputs)
        rec["seconds"] = round(time.perf_counter() - begun, 4)
        records.append(rec)
        return outputs

    try:
        begun = time.perf_counter()
        try:  # the source snapshot is the extract stage's input
            peek = with_stage_retries(
                lambda: peek_source(dataset, settings=settings), retries, sleep
            )
        except RegressopsError as exc:
            records.append(_failed("extract", exc, {}, begun))
            raise
        raw = stage(
            "extract",
            {"snapshot": peek.snapshot_hash},
            lambda: {"raw_version": extract(dataset, settings=settings).raw_version},
        )
        clean = stage(
            "validate",
            {
                "raw_version": raw.get("raw_version"),
                "max_failure_rate": settings.data.max_failure_rate,
            },
            lambda: {
                "clean_version": validate(
                    dataset, on_fail="quarantine", settings=settings
                ).clean_version
            },
        )
        params = {
            "clean_version": clean.get("clean_version"),
            "models": settings.retrain.models,
            "test_size": t.test_size,
            "random_state": t.random_state,
            "solver": t.solver,
            "cv": t.cv,
            "gates": settings.gates.model_dump(mode="json"),
        }
        trained = stage("train", params, lambda: _train(train_candidates, dataset, settings))
        stage(
            "gate",
            params,
            lambda: {"passed": trained.get("passed"), "summary": trained.get("gates")},
        )
        stage(
            "register",
            params,
            lambda: {"version": trained.get("version"), "champion": trained.get("champion")},
        )
        stage(
            "monitor",
            {"champion": trained.get("champion"), "at": dt.datetime.now(dt.UTC).isoformat()},
            lambda: _monitor(dataset, settings),
        )
    finally:
        path = _write(folder, state_path, state, records)
    return {"dataset": dataset, "stages": records, "record_path": str(path)}


def _failed(name: str, exc: RegressopsError, inputs: dict, begun: float) -> dict[str, Any]:
    return {
        "stage": name, "status": "failed", "note": exc.message, "reason": exc.reason,
        "inputs": inputs, "outputs": {}, "seconds": round(time.perf_counter() - begun, 4),
    }  # fmt: skip


def _train(train_candidates: Callable[..., Any], dataset: str, settings: Settings) -> dict:
    recorded = train_candidates(dataset, settings.retrain.models, settings=settings)
    return {
        "version": recorded.version,
        "champion": recorded.change.version if recorded.change else None,
        "passed": recorded.change is not None,
        "gates": recorded.gate_summary,
        "runs": [c.run_id for c in recorded.candidates],
    }


def _monitor(dataset: str, settings: Settings) -> dict[str, Any]:
    """Drift of the served rows (the prediction log) against the champion's reference."""
    from regressops.monitoring.monitor import MonitorRequest, run_monitor, write_report

    try:
        report = run_monitor(MonitorRequest(model=f"models:/{dataset}@champion"), settings=settings)
    except (DataError, ConfigError) as exc:
        if isinstance(exc, ConfigError) and exc.reason != Reason.PREDICTION_LOG:
            raise
        # no log, or no logged rows yet: nothing to judge, not a failure
        return {"status": "no_window", "note": exc.message}
    json_path, _ = write_report(report, settings.reports_dir / "monitor")
    return {"status": report.drift.status, "report": str(json_path)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _write(folder: Path, state_path: Path, state: dict, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"run-{stamp}.json"
    for target, doc in ((path, {"stages": records}), (state_path, state)):
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
        tmp.replace(target)
    return path
