"""The rows and files of one training run, written into an open transaction of MLflow's store.

:class:`RunWriter` is what :func:`regressops.registry.store_writer.direct_store` yields: it writes
a run as :func:`regressops.registry.tracking.log_training_run` logs it (and the parent run of
several candidates) into MLflow 3.17's tables through SQLAlchemy Core with bound parameters, and
stages its artefacts in a folder beside the artefact root for :meth:`RunWriter.publish` to move
into place before the commit. Every value follows MLflow's own code (``SqlAlchemyStore``'s
``create_run``, ``log_batch``, ``log_inputs``, ``log_outputs``, ``create_logged_model``,
``finalize_logged_model``; ``mlflow.log_input``; ``DefaultRunContext``); a name MLflow would
refuse raises :class:`~regressops.registry.mlmodel_files.NotDirect` so that MLflow gives its own
error.
"""

from __future__ import annotations

import configparser
import getpass
import hashlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.registry.mlmodel_files import NotDirect, write_model_dir
from regressops.registry.tracking import (
    MODEL_NAME,
    LoggedRun,
    RunRecord,
    dataset_input,
    example_frame,
    model_requirements,
    run_metrics,
    run_params,
    run_tags,
    stage_run_artifacts,
    write_json,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

READY = 2  # LoggedModelStatus.READY in logged_models.status
_NAME = re.compile(r"^[/\w.\- :]*$")  # MLflow's valid param, metric and tag names (POSIX)
_COLUMNS = {
    "experiments": "experiment_id name artifact_location lifecycle_stage creation_time "
    "last_update_time workspace",
    "runs": "run_uuid name source_type source_name entry_point_name user_id status start_time "
    "end_time deleted_time source_version lifecycle_stage artifact_uri experiment_id",
    "tags": "key value run_uuid",
    "params": "key value run_uuid",
    "metrics": "key value timestamp step is_nan run_uuid",
    "latest_metrics": "key value timestamp step is_nan run_uuid",
    "datasets": "dataset_uuid experiment_id name digest dataset_source_type dataset_source "
    "dataset_schema dataset_profile",
    "inputs": "input_uuid source_type source_id destination_type destination_id step",
    "input_tags": "input_uuid name value",
    "logged_models": "model_id experiment_id name artifact_location creation_timestamp_ms "
    "last_updated_timestamp_ms status lifecycle_stage model_type source_run_id status_message",
    "logged_model_params": "model_id experiment_id param_key param_value",
    "logged_model_tags": "model_id experiment_id tag_key tag_value",
    "logged_model_metrics": "model_id metric_name metric_timestamp_ms metric_step metric_value "
    "experiment_id run_id dataset_uuid dataset_name dataset_digest",
}


@dataclass(frozen=True)
class Experiment:
    """The experiment runs are written to: its id and artefact root."""

    experiment_id: int
    location: str  # the artefact root, a file: URI
    root: Path  # the same as a local path


class RunWriter:
    """Writes runs into one open transaction of MLflow's store (see :func:`direct_store`).

    Parameters
    ----------
    conn : Connection
        The connection, inside its transaction.
    experiment : Experiment
        The experiment every run goes to.
    staging : Path
        An empty folder beside the artefact root for this transaction's files.
    uri : str
        The tracking URI as given (for the :class:`LoggedRun`).
    """

    def __init__(
        self, conn: sa.Connection, experiment: Experiment, staging: Path, uri: str
    ) -> None:
        self.conn = conn
        self.uri = uri
        self.experiment = experiment
        self.staging = staging
        self._units: list[Path] = []  # staged folders, relative to staging and root alike
        self.runs = 0  # runs written
        self.created: list[Path] = []  # folders publish() made (removed again if left empty)

    @property
    def experiment_id(self) -> str:
        """The experiment's id."""
        return str(self.experiment.experiment_id)

    @staticmethod
    def new_run_id() -> str:
        """A run id as MLflow makes them."""
        return uuid.uuid4().hex

    def log_run(
        self, record: RunRecord, *, run_id: str | None = None, parent_run_id: str | None = None
    ) -> LoggedRun:
        """Write one training run with its logged model, as ``log_training_run`` logs it.

        Raises
        ------
        NotDirect
            A name MLflow would refuse, or an example it would describe otherwise.
        """
        run_id = run_id or self.new_run_id()
        start = now()
        bundle = record.bundle
        name = record.run_name or bundle.kind
        context = run_context_tags()
        tags = {**context, **run_tags(bundle, record.dataset), **record.tags}
        if parent_run_id is not None:
            tags["mlflow.parentRunId"] = parent_run_id
        params = run_params(bundle, record.params)
        metrics = run_metrics(record)
        check_names([*tags, *params, *metrics])
        example = stage_run_artifacts(record, self._stage(Path(run_id)))
        dataset = dataset_input(bundle, record.dataset)
        model_id = f"m-{uuid.uuid4().hex}"
        model_location = self._uri(Path("models", model_id))
        created = now()
        frame = None if example is None else example_frame(bundle, example)
        write_model_dir(
            self._stage(Path("models", model_id)),
            bundle_dir=record.bundle_dir,
            example=frame,
            predictions=None if frame is None else bundle.predict_frame(frame),
            requirements=model_requirements(),
            model_id=model_id,
            run_id=run_id,
            artifact_location=model_location,
        )
        finalized = now()
        metric_time = now()
        self._insert_run(run_id, name, tags, start, now())
        self._insert(
            "params", [{"key": k, "value": v, "run_uuid": run_id} for k, v in params.items()]
        )
        self._insert_dataset_input(run_id, dataset.name, dataset.digest, dataset.source_tags)
        exp = self.experiment.experiment_id
        self._insert("logged_models", [{
            "model_id": model_id, "experiment_id": exp, "name": MODEL_NAME,
            "artifact_location": model_location, "creation_timestamp_ms": created,
            "last_updated_timestamp_ms": finalized, "status": READY, "lifecycle_stage": "active",
            "model_type": None, "source_run_id": run_id, "status_message": None,
        }])  # fmt: skip
        self._insert("logged_model_params", [
            {"model_id": model_id, "experiment_id": exp, "param_key": k, "param_value": v}
            for k, v in params.items()
        ])  # fmt: skip
        self._insert("logged_model_tags", [
            {"model_id": model_id, "experiment_id": exp, "tag_key": k, "tag_value": v}
            for k, v in context.items()
        ])  # fmt: skip
        self._insert("inputs", [{
            "input_uuid": uuid.uuid4().hex, "source_type": "RUN_OUTPUT", "source_id": run_id,
            "destination_type": "MODEL_OUTPUT", "destination_id": model_id, "step": 0,
        }])  # fmt: skip
        self._insert_metrics(run_id, metrics, metric_time, model_id=model_id)
        return LoggedRun(
            run_id=run_id,
            experiment_id=self.experiment_id,
            tracking_uri=self.uri,
            model_uri=f"models:/{model_id}",
            model_id=model_id,
        )

    def log_parent(
        self,
        run_id: str,
        *,
        name: str,
        start_time: int,
        tags: Mapping[str, str],
        metrics: Mapping[str, float],
        documents: Mapping[str, Any],
    ) -> None:
        """Write the parent run of several candidates, finished.

        Parameters
        ----------
        run_id : str
            The id its children name in ``mlflow.parentRunId``.
        name : str
            Run name.
        start_time : int
            When it started (ms since the epoch).
        tags : mapping of str to str
            Its tags (``regressops.candidates``, ``regressops.best_kind``, ...).
        metrics : mapping of str to float
            Its metrics (``best_test_rmse``).
        documents : mapping of str to object
            JSON artefacts by file name (``leaderboard.json``), written as ``log_dict`` does.
        """
        check_names([*tags, *metrics])
        files = self._stage(Path(run_id))
        for file_name, doc in documents.items():
            write_json(files / file_name, doc)
        metric_time = now()
        self._insert_run(run_id, name, dict(tags), start_time, now())
        self._insert_metrics(run_id, {k: float(v) for k, v in metrics.items()}, metric_time)

    def publish(self) -> list[Path]:
        """Move the staged artefacts into place; return where they went (to undo)."""
        moved = []
        for unit in self._units:
            target = self.experiment.root / unit
            if not target.parent.is_dir():
                target.parent.mkdir()
                self.created.append(target.parent)
            (self.staging / unit).rename(target)  # fails if it exists: nothing is overwritten
            moved.append(target)
        return moved

    # ------------------------------------------------------------------------- internals
    def _stage(self, unit: Path) -> Path:
        """The staged ``<unit>/artifacts`` folder (not created; its parent is)."""
        self._units.append(unit)
        (self.staging / unit).mkdir(parents=True)
        return self.staging / unit / "artifacts"

    def _uri(self, unit: Path) -> str:
        return f"{self.experiment.location.rstrip('/')}/{unit.as_posix()}/artifacts"

    def _insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(table(name).insert(), rows)

    def _insert_run(
        self, run_id: str, name: str, tags: dict[str, str], start: int, end: int
    ) -> None:
        """The finished run and its tags (``mlflow.runName`` added as MLflow adds it)."""
        self.runs += 1
        run_name = tags.setdefault("mlflow.runName", name)
        if run_name != name:
            raise NotDirect("the run name and its mlflow.runName tag differ")
        self._insert("runs", [{
            "run_uuid": run_id, "name": name, "source_type": "UNKNOWN", "source_name": "",
            "entry_point_name": "", "user_id": tags.get("mlflow.user", "unknown"),
            "status": "FINISHED", "start_time": start, "end_time": end, "deleted_time": None,
            "source_version": "", "lifecycle_stage": "active",
            "artifact_uri": self._uri(Path(run_id)),
            "experiment_id": self.experiment.experiment_id,
        }])  # fmt: skip
        self._insert("tags", [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()])

    def _insert_metrics(
        self, run_id: str, metrics: Mapping[str, float], now: int, *, model_id: str | None = None
    ) -> None:
        rows = [
            {"key": k, "value": v, "timestamp": now, "step": 0, "is_nan": False, "run_uuid": run_id}
            for k, v in metrics.items()
        ]
        self._insert("metrics", rows)
        self._insert("latest_metrics", rows)
        if model_id is not None:
            self._insert("logged_model_metrics", [{
                "model_id": model_id, "metric_name": k, "metric_timestamp_ms": now,
                "metric_step": 0, "metric_value": v, "experiment_id": self.experiment.experiment_id,
                "run_id": run_id, "dataset_uuid": None, "dataset_name": None,
                "dataset_digest": None,
            } for k, v in metrics.items()])  # fmt: skip

    def _insert_dataset_input(
        self, run_id: str, name: str, digest: str | None, source_tags: dict[str, str]
    ) -> None:
        """The dataset (reused when the experiment has it) and its input edge to the run, as
        ``mlflow.log_input(MetaDataset(CodeDatasetSource(tags), name, digest), "training")``."""
        import sqlalchemy as sa

        source = _json({"tags": source_tags})
        digest = digest or _meta_digest(name, source)
        found = self.conn.execute(
            sa.text(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = :exp AND name = :name "
                "AND digest = :digest"
            ),
            {"exp": self.experiment.experiment_id, "name": name, "digest": digest},
        ).scalar()
        if found is None:
            found = uuid.uuid4().hex
            self._insert("datasets", [{
                "dataset_uuid": found, "experiment_id": self.experiment.experiment_id,
                "name": name, "digest": digest, "dataset_source_type": "code",
                "dataset_source": source, "dataset_schema": None, "dataset_profile": None,
            }])  # fmt: skip
        edge = uuid.uuid4().hex
        self._insert("inputs", [{
            "input_uuid": edge, "source_type": "DATASET", "source_id": found,
            "destination_type": "RUN", "destination_id": run_id, "step": 0,
        }])  # fmt: skip
        self._insert("input_tags", [
            {"input_uuid": edge, "name": "mlflow.data.context", "value": "training"}
        ])  # fmt: skip


def run_context_tags() -> dict[str, str]:
    """The tags MLflow's ``DefaultRunContext`` gives a run: user, source name and type.

    The user is ``MLFLOW_TRACKING_USERNAME``, else the ``mlflow_tracking_username`` of
    ``~/.mlflow/credentials``, else the login name; the source is the program (``sys.argv[0]``).
    """
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or _credentials_user()
    if not user:
        try:
            user = getpass.getuser()
        except (ImportError, KeyError, OSError):
            user = "unknown"
    source = sys.argv[0] if sys.argv and sys.argv[0] else "<console>"
    return {"mlflow.user": user, "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}


def _credentials_user() -> str | None:
    path = os.path.expanduser("~/.mlflow/credentials")
    if not os.path.exists(path):
        return None
    config = configparser.ConfigParser()
    config.read(path)
    return config["mlflow"].get("mlflow_tracking_username") if "mlflow" in config else None


def check_names(names: list[str]) -> None:
    """Raise NotDirect for a key MLflow refuses (so that MLflow gives its own error)."""
    for name in names:
        norm = os.path.normpath(name).replace(os.sep, "/")
        bad_path = norm != name or norm == "." or norm.startswith(("..", "/"))
        if not _NAME.match(name) or bad_path or len(name) > 250:
            raise NotDirect(f"name {name!r} is not one MLflow accepts")


def _meta_digest(name: str, source: str) -> str:
    """The digest MLflow gives a ``MetaDataset`` without one (sha256 of its config, 8 chars)."""
    config = {"name": name, "source": source, "source_type": "code", "schema": ""}
    return hashlib.sha256(_json(config).encode("utf-8")).hexdigest()[:8]


def _json(doc: Any) -> str:
    return json.dumps(doc)


def table(name: str) -> sa.TableClause:
    """A lightweight SQLAlchemy table of MLflow's ``name`` with the columns written here."""
    import sqlalchemy as sa

    return sa.table(name, *(sa.column(c) for c in _COLUMNS[name].split()))


def now() -> int:
    """Milliseconds since the epoch, as MLflow stamps its rows."""
    return int(time.time() * 1000)
