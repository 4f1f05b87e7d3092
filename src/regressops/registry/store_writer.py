"""Write a training run into MLflow's SQL store without importing MLflow.

Importing MLflow and its SQL store takes 2–2.6 s, and its write path (a session per call, the
model logged through a temporary directory and checked by loading it) about a second more: most
of what tracking added to a ``train``. On a database store (``sqlite:///…``, ``postgresql://…``)
whose schema is the one MLflow 3.17 leaves (:data:`SCHEMA_REVISION`) and whose experiment keeps
its artefacts under a local ``file:`` URI, :func:`direct_store` writes the same rows and files as
:func:`regressops.registry.tracking.log_training_run` (and the parent run of several candidates)
through SQLAlchemy Core with bound parameters:

- ``runs`` (FINISHED, start and end times; ``user_id`` from the ``mlflow.user`` tag) with its
  ``tags`` (the run tags of :func:`~regressops.registry.tracking.run_tags`, the
  ``mlflow.user``/``mlflow.source.*`` tags MLflow's default run context adds, ``mlflow.runName``,
  ``mlflow.parentRunId``) and ``params``;
- ``metrics`` and ``latest_metrics``, and ``logged_model_metrics`` for the run's model;
- the dataset input: a ``datasets`` row (reused when the experiment holds that name and digest),
  an ``inputs`` row DATASET → RUN and its ``input_tags`` (``mlflow.data.context``);
- the logged model: ``logged_models`` (READY), ``logged_model_params``, ``logged_model_tags``,
  and the ``inputs`` row RUN_OUTPUT → MODEL_OUTPUT that makes it the run's output;
- the artefacts: the run's files under ``<root>/<run_id>/artifacts`` and the model directory
  (:mod:`regressops.registry.mlmodel_files`) under ``<root>/models/<model_id>/artifacts``.

Everything is one transaction. The artefacts are written to a staging folder beside them first,
moved into place just before the commit, and removed again if the commit fails: a failure leaves
no run rows and no artefacts. Errors become :class:`~regressops.errors.RegistryError` with the
lines MLflow's path gives (:func:`~regressops.registry.connection.store_errors`).

Whenever it cannot be sure to write what MLflow would, it raises :class:`NotDirect` before
writing anything, and the caller logs through MLflow: another schema revision, a missing
database (MLflow creates it by its migrations), an experiment with remote or plain-path
artefacts or not active, a name MLflow would refuse, or MLflow settings that change the model
files. The compatibility tests log one run both ways and compare every row and file.
"""

from __future__ import annotations

import configparser
import contextlib
import getpass
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.redact import redact_text
from regressops.registry.connection import store_errors
from regressops.registry.mlmodel_files import NotDirect, write_model_dir
from regressops.registry.store_reader import (
    SCHEMA_REVISION,
    is_sql_store,
    sqlite_missing,
    store_engine,
)
from regressops.registry.tracking import (
    MODEL_NAME,
    LoggedRun,
    RunRecord,
    dataset_input,
    example_frame,
    local_artifact_root,
    model_requirements,
    run_metrics,
    run_params,
    run_tags,
    stage_run_artifacts,
    write_json,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    from regressops.config import Settings

__all__ = ["SCHEMA_REVISION", "NotDirect", "RunWriter", "direct_store", "may_write_directly"]

logger = logging.getLogger(__name__)

WORKSPACE = "default"
READY = 2  # LoggedModelStatus.READY in logged_models.status
#: MLflow settings under which ``log_model`` writes other files (uv project files, locked
#: requirements): the run is then logged through MLflow.
_MLFLOW_ONLY_ENV = (
    "MLFLOW_UV_AUTO_DETECT",
    "MLFLOW_LOG_UV_FILES",
    "MLFLOW_LOCK_MODEL_DEPENDENCIES",
)
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


def may_write_directly(uri: str, *, register: bool, settings: Settings) -> bool:
    """Whether a train may log to ``uri`` without MLflow (cheap: no connection is made).

    True for a SQL store (an existing file for SQLite) when ``train.direct_tracking`` is on,
    nothing is registered (registering needs MLflow anyway) and no MLflow setting changes what
    ``log_model`` writes; :func:`direct_store` checks the rest.
    """
    if register or not settings.train.direct_tracking or not is_sql_store(uri):
        return False
    if sqlite_missing(uri):  # a fresh home: MLflow creates the store
        return False
    return not any(os.environ.get(k, "").lower() in ("true", "1") for k in _MLFLOW_ONLY_ENV)


@dataclass(frozen=True)
class _Experiment:
    experiment_id: int
    location: str  # the artefact root, a file: URI
    root: Path  # the same as a local path


@contextlib.contextmanager
def direct_store(uri: str, experiment: str, settings: Settings) -> Iterator[RunWriter]:
    """A :class:`RunWriter` on the store at ``uri``, in one transaction committed at the end.

    Parameters
    ----------
    uri : str
        SQLAlchemy URL of MLflow's tracking store.
    experiment : str
        Experiment name; created as :func:`~regressops.registry.tracking.ensure_experiment`
        creates it when missing.
    settings : Settings
        For the artefact root of a new experiment.

    Raises
    ------
    NotDirect
        Before anything is written: the store cannot be written without MLflow.
    RegistryError
        A write or the commit failed; nothing of the block is left (rows nor artefacts).
    """

    what = f"logging the run to {redact_text(uri)}"
    if sqlite_missing(uri):
        raise NotDirect("no database yet (MLflow creates its schema)")
    try:
        engine: sa.Engine = store_engine(uri)
    except Exception as exc:  # an unknown driver: MLflow says what is wrong
        raise NotDirect(f"cannot open the store: {type(exc).__name__}") from None
    try:
        exp = _open_experiment(engine, experiment, settings)
        with store_errors(what):
            staging = Path(tempfile.mkdtemp(prefix=".regressops-staging-", dir=exp.root))
        try:
            yield from _transaction(engine, exp, staging, uri, what)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        engine.dispose()


def _transaction(
    engine: sa.Engine, exp: _Experiment, staging: Path, uri: str, what: str
) -> Iterator[RunWriter]:
    """Yield the writer inside one transaction; publish the artefacts, then commit; on any
    failure roll back and remove what was published."""
    moved: list[Path] = []
    writer: RunWriter | None = None
    try:
        with store_errors(what), engine.begin() as conn:
            _session_settings(conn)
            writer = RunWriter(conn, exp, staging, uri)
            yield writer
            moved = writer.publish()
    except BaseException:
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        for folder in writer.created if writer is not None else []:
            with contextlib.suppress(OSError):  # only when nothing else arrived in it
                folder.rmdir()
        raise
    logger.debug("wrote %d run(s) to %s without MLflow", writer.runs, redact_text(uri))


def _open_experiment(engine: sa.Engine, name: str, settings: Settings) -> _Experiment:
    """Check the schema, find (or create) the experiment; NotDirect when unsure."""
    import sqlalchemy as sa

    try:
        with engine.connect() as conn:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            row = _experiment_row(conn, name)
    except sa.exc.SQLAlchemyError as exc:  # unreachable, not MLflow's schema: MLflow explains
        raise NotDirect(f"cannot read the store: {type(exc).__name__}") from None
    if revision != SCHEMA_REVISION:
        raise NotDirect(f"schema revision {revision!r} is not MLflow 3.17's {SCHEMA_REVISION!r}")
    if row is None:
        row = _create_experiment(engine, name, local_artifact_root(settings))
    experiment_id, location, stage = row
    if stage != "active":
        raise NotDirect(f"experiment {name!r} is {stage}")
    root = _local_root(str(location or ""))
    if root is None:
        raise NotDirect(f"experiment {name!r} keeps its artefacts at {redact_text(str(location))}")
    return _Experiment(int(experiment_id), str(location), root)


def _experiment_row(conn: sa.Connection, name: str) -> Any:
    import sqlalchemy as sa

    return conn.execute(
        sa.text(
            "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments "
            "WHERE name = :name AND workspace = :workspace"
        ),
        {"name": name, "workspace": WORKSPACE},
    ).first()


def _create_experiment(engine: sa.Engine, name: str, location: str) -> Any:
    """Create the experiment in its own transaction, as MLflow's ``create_experiment`` does."""
    import sqlalchemy as sa

    now = _now()
    table = _table("experiments")
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(
                    name=name, artifact_location=location, lifecycle_stage="active",
                    creation_time=now, last_update_time=now, workspace=WORKSPACE,
                )
            )  # fmt: skip
    except sa.exc.IntegrityError:
        pass  # created concurrently: read it below
    except sa.exc.SQLAlchemyError as exc:
        raise NotDirect(f"cannot create the experiment: {type(exc).__name__}") from None
    with engine.connect() as conn:
        row = _experiment_row(conn, name)
    if row is None:
        raise NotDirect(f"experiment {name!r} could not be created")
    return row


def _local_root(location: str) -> Path | None:
    """The local folder of a ``file:`` artefact URI (None for any other kind)."""
    parts = urllib.parse.urlparse(location)
    if parts.scheme != "file" or parts.netloc or parts.query or parts.params or parts.fragment:
        return None
    root = Path(urllib.request.url2pathname(parts.path))
    return root if root.is_absolute() and root.is_dir() else None


def _session_settings(conn: sa.Connection) -> None:
    """What MLflow's session sets on SQLite: foreign keys checked, 20 s waiting on a lock."""
    import sqlalchemy as sa

    if conn.dialect.name == "sqlite":
        conn.execute(sa.text("PRAGMA foreign_keys = ON"))
        conn.execute(sa.text("PRAGMA busy_timeout = 20000"))


class RunWriter:
    """Writes runs into one open transaction of MLflow's store (see :func:`direct_store`).

    Parameters
    ----------
    conn : Connection
        The connection, inside its transaction.
    experiment : _Experiment
        The experiment every run goes to.
    staging : Path
        An empty folder beside the artefact root for this transaction's files.
    uri : str
        The tracking URI as given (for the :class:`LoggedRun`).
    """

    def __init__(
        self, conn: sa.Connection, experiment: _Experiment, staging: Path, uri: str
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
        start = _now()
        bundle = record.bundle
        name = record.run_name or bundle.kind
        context = run_context_tags()
        tags = {**context, **run_tags(bundle, record.dataset), **record.tags}
        if parent_run_id is not None:
            tags["mlflow.parentRunId"] = parent_run_id
        params = run_params(bundle, record.params)
        metrics = run_metrics(record)
        _check_names([*tags, *params, *metrics])
        example = stage_run_artifacts(record, self._stage(Path(run_id)))
        dataset = dataset_input(bundle, record.dataset)
        model_id = f"m-{uuid.uuid4().hex}"
        model_location = self._uri(Path("models", model_id))
        created = _now()
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
        finalized = _now()
        metric_time = _now()
        self._insert_run(run_id, name, tags, start, _now())
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
        _check_names([*tags, *metrics])
        files = self._stage(Path(run_id))
        for file_name, doc in documents.items():
            write_json(files / file_name, doc)
        metric_time = _now()
        self._insert_run(run_id, name, dict(tags), start_time, _now())
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

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(_table(table).insert(), rows)

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


def _check_names(names: list[str]) -> None:
    """NotDirect for a key MLflow refuses (so MLflow gives its own error)."""
    for name in names:
        norm = os.path.normpath(name).replace(os.sep, "/")
        bad_path = norm != name or norm == "." or norm.startswith(("..", "/"))
        if not _NAME.match(name) or bad_path or len(name) > 250:
            raise NotDirect(f"name {name!r} is not one MLflow accepts")


def _meta_digest(name: str, source: str) -> str:
    """The digest MLflow gives a ``MetaDataset`` without one (sha256 of its config, 8 chars)."""
    import hashlib

    config = {"name": name, "source": source, "source_type": "code", "schema": ""}
    return hashlib.sha256(_json(config).encode("utf-8")).hexdigest()[:8]


def _json(doc: Any) -> str:
    import json

    return json.dumps(doc)


def _table(name: str) -> sa.TableClause:
    import sqlalchemy as sa

    return sa.table(name, *(sa.column(c) for c in _COLUMNS[name].split()))


def _now() -> int:
    return int(time.time() * 1000)
