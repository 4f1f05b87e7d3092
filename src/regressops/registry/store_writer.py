"""Write a training run into MLflow's SQL store without importing MLflow.

Importing MLflow and its SQL store takes 2–2.6 s, and its write path (a session per call, the
model logged through a temporary directory and checked by loading it) about a second more: most
of what tracking added to a ``train``. On a database store (``sqlite:///…``, ``postgresql://…``)
whose schema is the one MLflow 3.17 leaves (:data:`SCHEMA_REVISION`) and whose experiment keeps
its artefacts under a local ``file:`` URI, :func:`direct_store` writes the same rows and files as
:func:`regressops.registry.tracking.log_training_run` (and the parent run of several candidates)
through SQLAlchemy Core with bound parameters (the rows and files of a run:
:mod:`regressops.registry.run_writer`):

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

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.redact import redact_text
from regressops.registry.connection import store_errors
from regressops.registry.mlmodel_files import NotDirect
from regressops.registry.run_writer import Experiment, RunWriter, now, table
from regressops.registry.store_reader import (
    SCHEMA_REVISION,
    file_uri_path,
    is_sql_store,
    sqlite_missing,
    store_engine,
)
from regressops.registry.tracking import local_artifact_root

if TYPE_CHECKING:
    import sqlalchemy as sa

    from regressops.config import Settings

__all__ = [
    "SCHEMA_REVISION",
    "NotDirect",
    "RunWriter",
    "direct_store",
    "may_write_directly",
    "why_mlflow",
]

logger = logging.getLogger(__name__)

WORKSPACE = "default"
#: MLflow settings under which ``log_model`` writes other files (uv project files, locked
#: requirements): the run is then logged through MLflow.
_MLFLOW_ONLY_ENV = (
    "MLFLOW_UV_AUTO_DETECT",
    "MLFLOW_LOG_UV_FILES",
    "MLFLOW_LOCK_MODEL_DEPENDENCIES",
)


def may_write_directly(uri: str, *, register: bool, settings: Settings) -> bool:
    """Whether a train may log to ``uri`` without MLflow (cheap: no connection is made).

    True for a SQL store (an existing file for SQLite) when ``train.direct_tracking`` is on,
    nothing is registered (registering needs MLflow anyway) and no MLflow setting changes what
    ``log_model`` writes; :func:`direct_store` checks the rest. :func:`why_mlflow` says why not.
    """
    return why_mlflow(uri, register=register, settings=settings) is None


def why_mlflow(uri: str, *, register: bool, settings: Settings) -> str | None:
    """Why runs to ``uri`` must be logged through MLflow (None: they may be written directly)."""
    if register:
        return "--register asks for registration, which needs MLflow"
    if not settings.train.direct_tracking:
        return "train.direct_tracking is off"
    if not is_sql_store(uri):
        return "the tracking store is not a SQL database"
    if sqlite_missing(uri):
        return "no store yet (MLflow creates it)"
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return "a Databricks runtime (MLflow adds its version to every MLmodel)"
    for name in _MLFLOW_ONLY_ENV:
        if os.environ.get(name, "").lower() in ("true", "1"):
            return f"{name} changes what log_model writes"
    return None


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
    engine: sa.Engine, exp: Experiment, staging: Path, uri: str, what: str
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


def _open_experiment(engine: sa.Engine, name: str, settings: Settings) -> Experiment:
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
    return Experiment(int(experiment_id), str(location), root)


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

    created = now()
    try:
        with engine.begin() as conn:
            conn.execute(
                table("experiments").insert().values(
                    name=name, artifact_location=location, lifecycle_stage="active",
                    creation_time=created, last_update_time=created, workspace=WORKSPACE,
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
    root = file_uri_path(location)
    return root if root is not None and root.is_absolute() and root.is_dir() else None


def _session_settings(conn: sa.Connection) -> None:
    """What MLflow's session sets on SQLite: foreign keys checked, 20 s waiting on a lock."""
    import sqlalchemy as sa

    if conn.dialect.name == "sqlite":
        conn.execute(sa.text("PRAGMA foreign_keys = ON"))
        conn.execute(sa.text("PRAGMA busy_timeout = 20000"))
