"""Train candidate models on one split, gate them, track them, and register the best.

:func:`train_candidates` is what ``regressops train`` runs: the data is loaded once, and each
``--model`` kind is trained by :func:`regressops.training.train.train` on the same split, then
:func:`record_training` cross-validates each on the training rows, runs the quality gates on
the held-out rows against the current champion, logs every candidate to MLflow (one run each;
under a parent run with the leaderboard when there are several) and, with ``register``,
registers the best and makes it ``@champion`` if its gates pass (a version that fails is
registered and archived; the champion does not move).

Runs go straight into a SQL tracking store without importing MLflow when
:func:`~regressops.registry.store_writer.may_write_directly` allows it (decided before training,
so MLflow is then not imported in the background either) and the store turns out to be MLflow
3.17's; otherwise, or if the direct write declines, through MLflow
(:func:`~regressops.registry.tracking.log_training_run`).

If the tracking store cannot be reached the bundles are still written locally and the result
says why nothing was logged (:attr:`Recorded.tracking_error`); the caller decides whether that
is fatal (``--register``).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, RegistryError
from regressops.reasons import Reason
from regressops.training import train as training
from regressops.training.gates import GateReport, evaluate_gates

if TYPE_CHECKING:
    from regressops.data.selection import DataSelection
    from regressops.data.split import SplitPlan
    from regressops.registry.lifecycle import Change
    from regressops.training.estimator import EstimatorParams
    from regressops.training.train import Progress, TrainResult

logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One trained candidate with its evaluation."""

    result: TrainResult
    gates: GateReport
    cv: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    model_uri: str | None = None
    model_id: str | None = None

    @property
    def kind(self) -> str:
        """The model kind."""
        return self.result.bundle.kind

    def row(self) -> dict[str, Any]:
        """A leaderboard row."""
        m = self.result.metrics
        return {
            "kind": self.kind,
            "r2": m["r2"],
            "rmse": m["rmse"],
            "mae": m["mae"],
            "cv_rmse": self.cv.get("cv_rmse_mean"),
            "gates": "passed" if self.gates.passed else "failed",
            "failed": [c.name for c in self.gates.failed],
            "path": str(self.result.path),
            "run_id": self.run_id,
        }


@dataclass
class Recorded:
    """The outcome of :func:`record_training` / :func:`train_candidates`.

    Attributes
    ----------
    name : str
        Registered model name.
    candidates : list of Candidate
        Sorted best first (gates passed, then lowest test RMSE).
    tracking_uri : str or None
        Where runs were logged (``None`` when tracking was off).
    tracking_error : str or None
        Why nothing (or not everything) was logged.
    parent_run_id : str or None
        The parent run of several candidates.
    version : str or None
        The registered version (``register``).
    change : Change or None
        The promotion, when the gates passed.
    gate_summary : str
        The gates' verdict at registration.
    """

    name: str
    candidates: list[Candidate]
    tracking_uri: str | None = None
    tracking_error: str | None = None
    parent_run_id: str | None = None
    version: str | None = None
    change: Change | None = None
    gate_summary: str = ""

    @property
    def best(self) -> Candidate:
        """The leading candidate."""
        return self.candidates[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "name": self.name,
            "leaderboard": [c.row() for c in self.candidates],
            "tracking_uri": self.tracking_uri,
            "tracking_error": self.tracking_error,
            "parent_run_id": self.parent_run_id,
            "registered_version": self.version,
            "champion": self.change.version if self.change else None,
            "gates": self.gate_summary,
            "gate_report": self.best.gates.to_dict(),
        }


@dataclass(frozen=True)
class RecordPlan:
    """What happens to trained candidates after the fit, checked when built.

    Parameters
    ----------
    cv : int, default=5
        Folds of the cross-validated metrics on the training rows (0 or 1: none).
    track : bool, default=True
        Log runs to MLflow.
    register : bool, default=False
        Register the best candidate and make it ``@champion`` if its gates pass.
    tracking_uri : str, optional
        Tracking URI (the settings' otherwise).
    quantize : {"int8"}, optional
        Quantise each trained linear model (:func:`~regressops.training.quantization.
        quantize_model`, per-tensor) into ``<bundle>-int8`` and record, gate and register the
        quantised model instead of the float one (which stays at its bundle directory).
    """

    cv: int = 5
    track: bool = True
    register: bool = False
    tracking_uri: str | None = None
    quantize: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cv, bool) or not isinstance(self.cv, int) or self.cv < 0:
            raise ConfigError(f"--cv must be 0 or more folds, got {self.cv!r}", reason="invalid_cv")
        if self.quantize is not None:
            from regressops.training.quantization import check_scheme

            check_scheme(self.quantize)


def train_candidates(
    data: DataSelection,
    split: SplitPlan,
    estimators: Sequence[EstimatorParams],
    *,
    record: RecordPlan | None = None,
    output: str | Path | None = None,
    model_name: str | None = None,
    plots: bool = True,
    drop_drifting: str | Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Recorded:
    """Train every estimator on the same data and split, then :func:`record_training`.

    The data is loaded once and the split drawn once (:func:`~regressops.data.split.split_rows`)
    for every candidate, the gates and the tracked evaluation rows.

    Parameters
    ----------
    data : DataSelection
        The training data.
    split : SplitPlan
        How it is split (and the seed of every estimator).
    estimators : sequence of EstimatorParams
        One per candidate; each kind once.
    record : RecordPlan, optional
        Cross-validation, tracking and registration (default: :class:`RecordPlan`).
    output : path-like, optional
        Bundle directory of a single candidate, or the parent folder of several
        (``<output>/<kind>``). Default ``<home>/models/<name>`` (one) or
        ``<home>/models/<name>-<kind>`` (several).
    model_name : str, optional
        Registered model name and bundle name; default the dataset's name or the file's stem.
    plots : bool, default=True
        Write the evaluation plots into each bundle.
    drop_drifting : path-like, optional
        A ``drift.json`` of ``regressops monitor``: train without its drifted features.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.
    progress : callable, optional
        Receives the :class:`~regressops.training.train.TrainEvent` of every step.
    """
    from regressops.training.sources import load_training_data

    settings = settings or get_settings()
    kinds = [e.kind for e in estimators]
    if not kinds:
        raise ConfigError("give at least one --model kind", reason="no_model")
    if dupes := sorted({k for k in kinds if kinds.count(k) > 1}):
        raise ConfigError(f"model kind(s) {dupes} given more than once", reason="duplicate_model")
    notify = progress or (lambda event: None)
    notify(training.TrainEvent("load"))
    td = load_training_data(data, settings=settings, key=split.key)
    record = record or RecordPlan()
    store = record.tracking_uri or settings.resolved_tracking_uri
    if (record.track or record.register) and not _direct(store, record, settings):
        _Warm.start_for(store)  # import MLflow while the models train
    results = []
    for params in estimators:
        out: Path | None = None
        if output is not None:
            out = Path(output) if len(kinds) == 1 else Path(output) / params.kind
        elif len(kinds) > 1:
            out = settings.models_dir / f"{model_name or td.name}-{params.kind}"
        trained = training.train(
            td, split, params, output=out, name=model_name, plots=plots,
            drop_drifting=drop_drifting, settings=settings, progress=progress,
        )  # fmt: skip
        results.append(trained)
    if record.quantize is not None:
        from regressops.training.quantization import quantized_result

        results = [quantized_result(r, record.quantize, settings) for r in results]
    return record_training(results, record, settings=settings, progress=progress)


def record_training(
    results: Sequence[TrainResult],
    record: RecordPlan | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Recorded:
    """Cross-validate, gate, log and (optionally) register trained candidates.

    Parameters
    ----------
    results : sequence of TrainResult
        Candidates trained on the same data and split (their ``data`` and ``split``).
    record : RecordPlan, optional
        Cross-validation folds, tracking and registration (default: :class:`RecordPlan`).
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.
    progress : callable, optional
        Receives an ``"evaluate"`` event per candidate, then ``"tracking"`` and
        ``"registering"``.
    """
    from sklearn.exceptions import ConvergenceWarning

    from regressops.training.crossval import cross_validate
    from regressops.training.tracked_runs import log_runs, log_runs_directly

    settings = settings or get_settings()
    record = record or RecordPlan()
    notify = progress or (lambda event: None)
    first = results[0]
    td, split = first.data, first.split
    if td is None or split is None:
        raise ConfigError("record_training needs results of train()", reason="no_split")
    name = first.bundle.name
    train_rows, test_rows = td.frame.iloc[split.train], td.frame.iloc[split.test]
    store = record.tracking_uri or settings.resolved_tracking_uri
    client, error = None, None
    tracked = record.track or record.register
    if tracked and not _direct(store, record, settings, explain=True):
        client, error = _Warm.connect(store)
        tracked = client is not None
    champion = None
    if tracked:
        try:
            champion = _champion(name, store, settings)
        except RegistryError as exc:
            logger.info("training runs will not be logged: %s", exc.message)
            client, error, tracked = None, exc.message, False

    candidates = []
    for result in results:
        notify(training.TrainEvent("evaluate"))
        folds = {}
        if record.cv >= 2:
            with warnings.catch_warnings():  # the main fit already reported its convergence
                warnings.simplefilter("ignore", ConvergenceWarning)
                folds = cross_validate(
                    train_rows,
                    target=td.target,
                    features=td.features,
                    categorical=td.categorical,
                    kind=str(result.bundle.extra.get("quantized_from", {}).get("kind"))
                    if result.bundle.quantized is not None
                    else result.bundle.kind,
                    params=result.bundle.params,
                    cv=record.cv,
                    random_state=int(result.bundle.lineage.get("seed", 0)),
                ).flat()
        report = evaluate_gates(
            result.bundle,
            test_rows,
            target=td.target,
            dataset=td.name,
            champion=champion,
            settings=settings,
        )
        candidates.append(Candidate(result=result, gates=report, cv=folds))
    candidates.sort(key=lambda c: (not c.gates.passed, c.result.metrics["rmse"]))
    recorded = Recorded(name=name, candidates=candidates, tracking_error=error)
    if not tracked:
        return recorded
    recorded.tracking_uri = store
    notify(training.TrainEvent("tracking"))
    try:
        if client is None and log_runs_directly(store, recorded, td.name, test_rows, settings):
            return recorded
        if client is None:  # the store cannot be written directly after all: MLflow
            client, error = _connect(store)
            if client is None:
                recorded.tracking_uri, recorded.tracking_error = None, error
                return recorded
        log_runs(client, store, recorded, td.name, test_rows, settings)
    except RegistryError as exc:
        recorded.tracking_error = exc.message
        return recorded
    if record.register:
        notify(training.TrainEvent("registering"))
        _register(client, store, recorded, test_rows, settings)
    return recorded


# ---------------------------------------------------------------------------- internals
class _Warm(threading.Thread):
    """Import MLflow in the background while candidates train.

    Importing MLflow and its store modules takes seconds; training needs neither, so ``train``
    starts this thread first and :meth:`connect` joins it before connecting. The thread only
    imports: it writes nothing (no store is created for a command that then fails) and logs
    nothing. A failure of any kind in it (even an import deadlock with the main thread) only
    means importing again in the caller's thread.
    """

    _started: ClassVar[dict[str, _Warm]] = {}

    def __init__(self, store: str) -> None:
        super().__init__(name="regressops-tracking-warmup", daemon=True)
        self.store = store

    def run(self) -> None:
        try:
            import mlflow.pyfunc  # what connecting and logging the model import
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (the embedded store)
        except BaseException as exc:  # import again in the caller's thread
            logger.debug("background import of MLflow failed: %r", exc)

    @classmethod
    def start_for(cls, store: str) -> None:
        """Start warming ``store`` up (once per store at a time)."""
        if store not in cls._started:
            warm = cls._started[store] = cls(store)
            warm.start()

    @classmethod
    def connect(cls, store: str) -> tuple[Any, str | None]:
        """``_connect(store)``, once the warm-up thread (if one ran) has imported MLflow."""
        warm = cls._started.pop(store, None)
        if warm is not None:
            warm.join()
        return _connect(store)


def _connect(store: str) -> tuple[Any, str | None]:
    from regressops.registry.connection import connect

    try:
        return connect(store), None
    except RegistryError as exc:
        logger.info("training runs will not be logged: %s", exc.message)
        return None, exc.message


def _direct(store: str, record: RecordPlan, settings: Settings, *, explain: bool = False) -> bool:
    """Whether runs may be written without MLflow (decided before training, cheaply); with
    ``explain``, a debug line says why not."""
    from regressops.registry.store_writer import why_mlflow

    why = why_mlflow(store, register=record.register, settings=settings)
    if explain and why is not None:
        logger.debug("runs will be logged through MLflow: %s", why)
    return why is None


def _champion(name: str, store: str, settings: Settings) -> Any:
    from regressops.registry.store_reader import alias_unset
    from regressops.training.promotion import load_registered

    if alias_unset(store, name, "champion"):  # known without MLflow
        return None
    try:
        return load_registered(f"models:/{name}@champion", settings=settings, tracking=store)
    except RegistryError as exc:
        if exc.reason in (Reason.NOT_FOUND, Reason.UNKNOWN_ALIAS):
            return None
        raise


def _register(
    client: Any, store: str, recorded: Recorded, test_rows: Any, settings: Settings
) -> None:
    from regressops.training.promotion import register_and_promote

    best = recorded.best
    assert best.model_uri is not None and best.run_id is not None
    version, change, summary = register_and_promote(
        client,
        store,
        recorded.name,
        model_uri=best.model_uri,
        run_id=best.run_id,
        model_id=best.model_id,
        bundle=best.result.bundle,
        eval_frame=test_rows,
        report=best.gates,
        why=f"trained ({best.kind})",
        settings=settings,
    )
    recorded.version, recorded.change, recorded.gate_summary = version, change, summary


def train_dataset_candidates(
    dataset: str,
    kinds: Sequence[str],
    *,
    model_name: str | None = None,
    register: bool = True,
    settings: Settings | None = None,
) -> Recorded:
    """Train ``kinds`` on a dataset's newest clean version with the settings' split and solver,
    gate them against the champion and register the best (the retraining loop's training step).
    """
    from regressops.data.selection import DataSelection
    from regressops.data.split import SplitPlan
    from regressops.training.estimator import EstimatorParams

    settings = settings or get_settings()
    plan = SplitPlan(test_size=settings.train.test_size, seed=settings.train.random_state)
    estimators = [
        EstimatorParams.build(kind, solver=settings.train.solver if kind == "linear" else None)
        for kind in dict.fromkeys(kinds)
    ]
    record = RecordPlan(cv=settings.train.cv, track=settings.train.track or register,
                        register=register)  # fmt: skip
    return train_candidates(
        DataSelection(dataset=dataset), plan, estimators, record=record, model_name=model_name,
        settings=settings,
    )  # fmt: skip
