"""Experiment tracking: what a training run records in MLflow.

:func:`log_training_run` records, in one MLflow run: the parameters; test, train and
cross-validated metrics; the plots; the data lineage (as ``regressops.lineage.*`` tags, a dataset
input with the content hash as digest, and ``lineage.json``); the gate report (``gates.json``);
the package versions and git commit; the held-out rows (``eval/heldout.parquet``, so gates can be
re-checked on the same rows at promotion); and the model — our bundle inside an MLflow pyfunc
model (:mod:`regressops.registry.pyfunc`) with a signature and an input example.

What a run holds is computed here once (:func:`run_tags`, :func:`run_params`,
:func:`run_metrics`, :func:`dataset_input`, :func:`stage_run_artifacts`, :func:`example_frame`,
:func:`model_requirements`) and shared with :mod:`regressops.registry.store_writer`, which writes
the same run into a SQL store without importing MLflow when it safely can; this module is the
MLflow path, used for everything else (tracking servers, other schemas, registration).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.config import Settings, get_settings
from regressops.provenance import PACKAGES, environment_of, git_commit, package_versions
from regressops.redact import redact_text
from regressops.registry.connection import (
    active_tracking,
    connect,
    is_http,
    mlflow_errors,
    tag_value,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from regressops.models.bundle import ModelBundle

logger = logging.getLogger(__name__)

MODEL_NAME = "model"
EVAL_ARTIFACT = "eval/heldout.parquet"
GATES_ARTIFACT = "gates.json"


@dataclass
class RunRecord:
    """Everything one training run logs.

    Attributes
    ----------
    bundle : ModelBundle
        The trained model (its params, metrics and lineage are logged too).
    bundle_dir : Path
        Where the bundle was saved locally; it is copied into the MLflow model.
    dataset : str
        Dataset name (experiment name by default).
    metrics : dict of str to float
        Flat metrics to log (``test_r2``, ``cv_rmse_mean``, ...); non-finite values are skipped.
    params : dict
        Extra run parameters (split, features) beside the estimator's.
    eval_frame : DataFrame, optional
        Held-out rows (features and target).
    plots : list of Path
        PNG files to log under ``plots/``.
    gate_report : dict, optional
        The gate report (``gates.json``).
    tags : dict of str to str
        Extra run tags.
    run_name : str, optional
        Display name (default: the model kind).
    """

    bundle: ModelBundle
    bundle_dir: Path
    dataset: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    eval_frame: pd.DataFrame | None = None
    plots: list[Path] = field(default_factory=list)
    gate_report: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run_name: str | None = None


@dataclass(frozen=True)
class LoggedRun:
    """Where a run was logged."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_uri: str | None = None
    model_id: str | None = None


def ensure_experiment(
    client: MlflowClient, name: str, uri: str, settings: Settings | None = None
) -> str:
    """Return the id of experiment ``name``, creating it when missing.

    On a local store (anything but an MLflow server) artefacts go under ``<home>/mlartifacts``
    rather than MLflow's ``./mlruns`` default.
    """
    with mlflow_errors(f"experiment {name!r} on {redact_text(uri)}"):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = None if is_http(uri) else local_artifact_root(settings)
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except Exception:
            experiment = client.get_experiment_by_name(name)  # created concurrently
            if experiment is None:
                raise
            return str(experiment.experiment_id)


def local_artifact_root(settings: Settings | None = None) -> str:
    """The artefact location (a ``file:`` URI) of experiments regressops creates on a local
    store: ``<home>/mlartifacts``, created if missing."""
    root = ((settings or get_settings()).home / "mlartifacts").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root.as_uri()


def log_training_run(
    record: RunRecord,
    *,
    uri: str,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    client: MlflowClient | None = None,
    settings: Settings | None = None,
) -> LoggedRun:
    """Log one training run with its model to the tracking store at ``uri``.

    Parameters
    ----------
    record : RunRecord
        What to log.
    uri : str
        Tracking URI.
    experiment : str, optional
        Experiment name; default ``record.dataset``.
    parent_run_id : str, optional
        Log as a child of this run (several candidates of one ``train``).
    client : MlflowClient, optional
        A connected client (one is made, and the store probed, otherwise).
    settings : Settings, optional
        For the artefact root of local stores.

    Returns
    -------
    LoggedRun

    Raises
    ------
    RegistryError
        The store is unreachable or refuses a write; the run is then marked FAILED if it was
        created.
    """
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking.context.default_context import DefaultRunContext

    client = client or connect(uri)
    experiment_id = ensure_experiment(client, experiment or record.dataset, uri, settings)
    bundle = record.bundle
    name = record.run_name or bundle.kind
    # The run is created with the client (one write: the run and all its tags) rather than by
    # ``mlflow.start_run``, whose context providers import GitPython to find the commit that
    # run_tags() already records; the same for the logged model below.
    tags = {**DefaultRunContext().tags(), **run_tags(bundle, record.dataset), **record.tags}
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    params = run_params(bundle, record.params)
    with mlflow_errors(f"logging the run to {redact_text(uri)}"):
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    with (
        mlflow_errors(f"logging the run to {redact_text(uri)}"),
        contextlib.redirect_stdout(io.StringIO()),  # MLflow prints run links to stdout
        active_tracking(uri),
        mlflow.start_run(run_id=run_id),  # FINISHED at the end, FAILED on an error
        tempfile.TemporaryDirectory(prefix="regressops-run-") as tmp,
    ):
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        files = Path(tmp) / "artifacts"
        example = stage_run_artifacts(record, files)
        client.log_artifacts(run_id, str(files))
        _log_input(bundle, record.dataset)
        model = client.create_logged_model(
            experiment_id, name=MODEL_NAME, source_run_id=run_id,
            tags=DefaultRunContext().tags(), params=params,
        )  # fmt: skip
        info = log_bundle_model(bundle, record.bundle_dir, Path(tmp), example, model.model_id)
        # Logged once, for the run and its model (MLflow would copy run metrics to the model).
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[
                Metric(k, v, now, 0, model_id=model.model_id)
                for k, v in run_metrics(record).items()
            ],
        )
    logger.info("logged run %s to %s", run_id, redact_text(uri))
    return LoggedRun(
        run_id=run_id,
        experiment_id=experiment_id,
        tracking_uri=uri,
        model_uri=info.model_uri,
        model_id=getattr(info, "model_id", None),
    )


def stage_run_artifacts(record: RunRecord, files: Path) -> pd.DataFrame | None:
    """Write the run's artefacts into ``files`` (created); return the model's input example.

    ``lineage.json``, ``environment.json``, ``gates.json``, ``plots/`` and
    ``eval/heldout.parquet``, as the run holds them; the example is the first five held-out rows
    of the model's features (None without held-out rows).
    """
    bundle = record.bundle
    files.mkdir(parents=True)
    write_json(files / "lineage.json", bundle.lineage)
    write_json(files / "environment.json", environment_of(bundle.lineage))
    if record.gate_report is not None:
        write_json(files / GATES_ARTIFACT, record.gate_report)
    if any(Path(plot).is_file() for plot in record.plots):
        (files / "plots").mkdir()
        for plot in record.plots:
            if Path(plot).is_file():
                shutil.copy2(plot, files / "plots" / Path(plot).name)
    if record.eval_frame is None:
        return None
    heldout = files / EVAL_ARTIFACT
    heldout.parent.mkdir(parents=True, exist_ok=True)
    record.eval_frame.to_parquet(heldout, index=False)
    return record.eval_frame[bundle.spec.names].head(5)


def write_json(path: Path, doc: Any) -> None:
    """A JSON artefact as ``mlflow.log_dict`` writes it (indented, keys in their order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str))


def log_bundle_model(
    bundle: ModelBundle,
    bundle_dir: Path,
    tmp: Path,
    example: pd.DataFrame | None,
    model_id: str | None = None,
) -> Any:
    """Log ``bundle_dir`` as an MLflow pyfunc model (``loader_module`` flavour, no pickle).

    Must run inside an active MLflow run. Returns MLflow's ``ModelInfo``.
    """
    import mlflow
    from mlflow.models import infer_signature

    staged = tmp / "bundle"
    shutil.copytree(bundle_dir, staged)
    signature = None
    if example is not None:
        example = example_frame(bundle, example)
        signature = infer_signature(example, bundle.predict_frame(example))
    with _requirements_known():
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            loader_module="regressops.registry.pyfunc",
            data_path=str(staged),
            signature=signature,
            input_example=example,
            pip_requirements=model_requirements(),
            model_id=model_id,
        )


@contextlib.contextmanager
def _requirements_known() -> Iterator[None]:
    """Spare MLflow its scan of every installed distribution while it logs our model.

    ``log_model`` checks that the environment satisfies the pip requirements; for that it maps
    every importable module to its distribution (``packages_distributions()``, about 1.5 s of
    CPU), a map it needs only when a distribution's version cannot be read from its metadata.
    Our requirements are read from that metadata (:func:`_requirements`), so the check runs on
    an empty map here; MLflow's own map is left as it was (and built on its next use).
    """
    from mlflow.utils import requirements_utils as ru

    if getattr(ru, "_MODULES_TO_PACKAGES", "missing") is not None:
        yield  # already built (or MLflow changed): nothing to spare
        return
    setattr(ru, "_MODULES_TO_PACKAGES", {})  # noqa: B010  (MLflow's private cache)
    try:
        yield
    finally:
        setattr(ru, "_MODULES_TO_PACKAGES", None)  # noqa: B010
        setattr(ru, "_PACKAGES_TO_MODULES", None)  # noqa: B010


def run_tags(bundle: ModelBundle, dataset: str) -> dict[str, str]:
    """Tags of a training run: kind, dataset, lineage, git commit."""
    tags = {
        "regressops.kind": bundle.kind,
        "regressops.dataset": dataset,
        "regressops.model_name": bundle.name,
    }
    for key, value in _flatten(bundle.lineage).items():
        if isinstance(value, (str, int, float, bool)) and not key.startswith("packages"):
            tags[f"regressops.lineage.{key}"] = tag_value(redact_text(str(value)))
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


@dataclass(frozen=True)
class DatasetInput:
    """The dataset input of a training run: name, digest (None: MLflow derives one) and the
    lineage scalars its code source carries."""

    name: str
    digest: str | None
    source_tags: dict[str, str]


def dataset_input(bundle: ModelBundle, dataset: str) -> DatasetInput:
    """The training run's dataset input: the content hash as digest, the lineage as tags."""
    lineage = bundle.lineage
    digest = str(lineage.get("content_hash") or lineage.get("hash") or "")[:36] or None
    scalars = {k: redact_text(str(v)) for k, v in _flatten(lineage).items() if "packages" not in k}
    return DatasetInput(dataset, digest, dict(list(scalars.items())[:40]))


def _log_input(bundle: ModelBundle, dataset: str) -> None:
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    found = dataset_input(bundle, dataset)
    source = CodeDatasetSource(tags=found.source_tags)
    meta = MetaDataset(source=source, name=found.name, digest=found.digest)  # type: ignore[abstract]
    mlflow.log_input(meta, context="training")


def example_frame(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric features as float64 (so the signature accepts ints and floats alike)."""
    from regressops.features import NumericFeature

    out = frame.copy()
    for f in bundle.spec.features:
        if isinstance(f, NumericFeature):
            out[f.name] = out[f.name].astype("float64")
        else:
            out[f.name] = out[f.name].astype(str)
    return out.reset_index(drop=True)


def model_requirements() -> list[str]:
    """The pip requirements of a logged model: our runtime packages, pinned as installed."""
    versions = package_versions()
    return [f"{n}=={versions[n]}" for n in PACKAGES if n in versions and n != "regressops"]


def run_params(bundle: ModelBundle, extra: Mapping[str, Any]) -> dict[str, str]:
    """The run's (and its logged model's) parameters: the kind, the estimator's, ``extra``."""
    params = {"kind": bundle.kind, **{f"model.{k}": v for k, v in bundle.params.items()}}
    params.update(_flatten(dict(extra)))
    return {k: tag_value(v, 6000) for k, v in params.items() if v is not None}


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def run_metrics(record: RunRecord) -> dict[str, float]:
    """The run's metrics as floats, without the non-finite ones."""
    return {k: float(v) for k, v in record.metrics.items() if _finite(v)}


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
