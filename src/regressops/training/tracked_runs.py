"""Log the candidates of a ``train``: one run each, under a parent run when there are several.

:func:`log_runs_directly` writes them straight into a SQL tracking store in one transaction
(:mod:`regressops.registry.store_writer`, no MLflow import) and answers False when the store
cannot be written that way; :func:`log_runs` logs them through MLflow
(:func:`~regressops.registry.tracking.log_training_run`). Both record the same
:func:`run_record` of each candidate and the same parent run (``leaderboard.json``,
``best_test_rmse``, ``regressops.best_kind``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from typing import TYPE_CHECKING, Any

from regressops.registry.tracking import RunRecord

if TYPE_CHECKING:
    from regressops.config import Settings
    from regressops.training.candidates import Candidate, Recorded

logger = logging.getLogger(__name__)


def log_runs_directly(
    store: str, recorded: Recorded, dataset: str, test_rows: Any, settings: Settings
) -> bool:
    """Write every run (and the parent of several) straight into the SQL store, in one
    transaction (:mod:`regressops.registry.store_writer`); False when MLflow must do it."""
    from regressops.redact import redact_text
    from regressops.registry.store_writer import NotDirect, direct_store

    try:
        with direct_store(store, dataset, settings) as writer:
            several = len(recorded.candidates) > 1
            parent = writer.new_run_id() if several else None
            start = int(time.time() * 1000)
            for cand in recorded.candidates:
                logged = writer.log_run(run_record(cand, dataset, test_rows), parent_run_id=parent)
                cand.run_id, cand.model_uri, cand.model_id = (
                    logged.run_id, logged.model_uri, logged.model_id,
                )  # fmt: skip
            if parent is not None:
                writer.log_parent(
                    parent, name=f"candidates {recorded.name}", start_time=start,
                    tags={**_parent_tags(dataset), "regressops.best_kind": recorded.best.kind},
                    metrics={"best_test_rmse": recorded.best.result.metrics["rmse"]},
                    documents={"leaderboard.json": [c.row() for c in recorded.candidates]},
                )  # fmt: skip
    except BaseException as exc:  # nothing was written: no candidate names a run
        for cand in recorded.candidates:
            cand.run_id = cand.model_uri = cand.model_id = None
        if not isinstance(exc, NotDirect):
            raise
        logger.debug("logging through MLflow: %s cannot be written directly (%s)",
                     redact_text(store), exc)  # fmt: skip
        return False
    recorded.parent_run_id = parent
    for cand in recorded.candidates:
        logger.info("logged run %s to %s", cand.run_id, redact_text(store))
    return True


def _parent_tags(dataset: str) -> dict[str, str]:
    return {"regressops.dataset": dataset, "regressops.candidates": "parent"}


def run_record(cand: Candidate, dataset: str, test_rows: Any) -> RunRecord:
    """What one candidate's run records (the same on both paths)."""
    result = cand.result
    m = result.metrics
    metrics = {f"test_{k}": m[k] for k in ("r2", "rmse", "mse", "mae")}
    metrics.update({f"train_{k}": v for k, v in m.get("train", {}).items() if k != "n"})
    metrics.update(cand.cv)
    metrics["gates_passed"] = float(cand.gates.passed)
    split = result.bundle.lineage.get("split", {})
    return RunRecord(
        bundle=result.bundle,
        bundle_dir=result.path,
        dataset=dataset,
        metrics=metrics,
        params={"split": split, "features": ",".join(result.bundle.spec.names)},
        eval_frame=test_rows,
        plots=list(result.plots),
        gate_report=cand.gates.to_dict(),
        tags={"regressops.gates": "passed" if cand.gates.passed else "failed"},
        run_name=result.bundle.kind,
    )


def log_runs(
    client: Any, store: str, recorded: Recorded, dataset: str, test_rows: Any, settings: Settings
) -> None:
    """Log every run (and the parent of several) through MLflow with ``client``."""
    from regressops.registry.connection import mlflow_errors
    from regressops.registry.tracking import ensure_experiment, log_training_run

    parent = None
    if len(recorded.candidates) > 1:
        experiment_id = ensure_experiment(client, dataset, store, settings)
        with mlflow_errors("creating the parent run"):
            parent = client.create_run(
                experiment_id, run_name=f"candidates {recorded.name}",
                tags=_parent_tags(dataset),
            ).info.run_id  # fmt: skip
    for cand in recorded.candidates:
        logged = log_training_run(
            run_record(cand, dataset, test_rows),
            uri=store,
            experiment=dataset,
            parent_run_id=parent,
            client=client,
            settings=settings,
        )
        cand.run_id, cand.model_uri, cand.model_id = (
            logged.run_id,
            logged.model_uri,
            logged.model_id,
        )
    if parent is not None:
        with mlflow_errors("closing the parent run"), contextlib.redirect_stdout(io.StringIO()):
            client.log_dict(parent, [c.row() for c in recorded.candidates], "leaderboard.json")
            best = recorded.best.result.metrics
            client.log_metric(parent, "best_test_rmse", best["rmse"])
            client.set_tag(parent, "regressops.best_kind", recorded.best.kind)
            client.set_terminated(parent)
    recorded.parent_run_id = parent
