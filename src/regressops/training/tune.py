"""Hyper-parameter tuning: Optuna TPE over a catalog kind's search space, k-fold CV objective.

:func:`tune` minimises the mean cross-validated RMSE on the training rows of the split ``train``
draws with the same :class:`~regressops.data.split.SplitPlan` (its test rows are never seen),
pruning a trial after any fold whose running mean is worse than the median of earlier trials at that
fold. With tracking on, it logs one parent MLflow run (``tune <kind>``: the search space, the best
parameters as ``best.*`` params, the best CV metrics, ``tuning.json``) and one child run per trial
(its parameters, CV metrics and state). The best parameters are written back to
``<home>/tuning/<dataset>/<kind>.json``, which ``regressops train --model KIND --tuned`` reads
(:func:`load_tuned_params`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.config import Settings, get_settings
from regressops.data.split import SplitPlan, split_rows
from regressops.errors import ConfigError, RegistryError, RegressopsError
from regressops.models.catalog import describe, get_kind, suggest_params
from regressops.training.crossval import cross_validate

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from regressops.training.sources import TrainingData

logger = logging.getLogger(__name__)

#: ``progress(done, total, best_cv_rmse_or_nan)`` after each trial.
ProgressFn = Callable[[int, int, float], None]


@dataclass
class TuneResult:
    """The outcome of a tuning study.

    Attributes
    ----------
    kind : str
        The tuned catalog kind.
    best_params : dict
        Parameters of the best trial.
    best_cv : dict of str to float
        Mean CV metrics of the best trial.
    trials : list of dict
        Every trial: number, state, params, CV RMSE.
    params_path : Path
        Where the best parameters were written.
    parent_run_id : str or None
        The parent MLflow run, when logged.
    tracking_error : str or None
        Why the study was not logged, when tracking was asked for but failed.
    split : dict
        The description of the split whose training rows were searched (as in a bundle's
        ``lineage["split"]``).
    """

    kind: str
    best_params: dict[str, Any]
    best_cv: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)
    params_path: Path | None = None
    parent_run_id: str | None = None
    tracking_error: str | None = None
    split: dict[str, Any] = field(default_factory=dict)


def tune(
    data: TrainingData,
    split: SplitPlan,
    *,
    kind: str,
    n_trials: int = 20,
    cv: int = 5,
    tracking_uri: str | None = None,
    track: bool = True,
    progress: ProgressFn | None = None,
    settings: Settings | None = None,
) -> TuneResult:
    """Search ``kind``'s hyper-parameters on the training rows of ``data`` split by ``split``.

    The rows are split by :func:`~regressops.data.split.split_rows`, exactly as ``train``
    splits them with the same plan, and only the training rows are searched: no row of the
    test set ``train`` holds out is seen.

    Parameters
    ----------
    data : TrainingData
        The loaded data (with the split key's values when ``split.key`` is set); its name is
        the experiment name and the folder of the written-back parameters.
    split : SplitPlan
        The split ``train`` will use; its seed also seeds the sampler, folds and estimators.
    kind : str
        Catalog kind with a search space.
    n_trials : int, default=20
        Number of trials (at least 1).
    cv : int, default=5
        Folds per trial.
    tracking_uri : str, optional
        MLflow tracking URI (settings' otherwise).
    track : bool, default=True
        Log to MLflow. If the store is unreachable the study still runs and
        :attr:`TuneResult.tracking_error` says why nothing was logged.
    progress : callable, optional
        Called after each trial (e.g. to advance a Rich progress bar).
    settings : Settings, optional

    Returns
    -------
    TuneResult

    Raises
    ------
    ConfigError
        Unknown kind, a kind without search space, or ``n_trials < 1``.
    RegressopsError
        Every trial failed (the last error is named).
    """
    import optuna

    settings = settings or get_settings()
    dataset, random_state = data.name, split.seed
    drawn = split_rows(split, len(data.frame), keys=data.keys)
    frame = data.frame.iloc[drawn.train]
    target, features, categorical = data.target, data.features, data.categorical
    entry = get_kind(kind)
    if not entry.search_space:
        raise ConfigError(f"model kind {kind!r} has nothing to tune", reason="no_search_space")
    if n_trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {n_trials}", reason="invalid_trials")
    tracker = _Tracker.open(settings, tracking_uri, dataset, kind) if track else None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=random_state),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        study_name=f"{dataset}-{kind}",
    )
    last_error: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(kind, trial)

        def on_fold(i: int, running: float) -> None:
            trial.report(running, i)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = cross_validate(
                    frame,
                    target=target,
                    features=features,
                    categorical=categorical,
                    kind=kind,
                    params=params,
                    cv=cv,
                    random_state=random_state,
                    on_fold=on_fold,
                )
        except (RegressopsError, ValueError, ArithmeticError) as exc:
            last_error[:] = [f"{type(exc).__name__}: {exc}"]
            raise
        trial.set_user_attr("cv", result.flat())
        trial.set_user_attr("warnings", len(caught))
        return result.mean["rmse"]

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if tracker is not None:
            tracker.log_trial(trial)
        if progress is not None:
            best = _best_value(study)
            progress(len(study.trials), n_trials, best)

    study.optimize(
        objective,
        n_trials=n_trials,
        catch=(RegressopsError, ValueError, ArithmeticError),
        callbacks=[after_trial],
    )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        if tracker is not None:
            tracker.finish(None, [], failed=True)
        raise RegressopsError(
            f"every tuning trial of {kind!r} failed; last error: "
            f"{last_error[0] if last_error else 'all pruned'}",
            reason="tuning_failed",
        )
    best = study.best_trial
    result = TuneResult(
        kind=kind,
        best_params=dict(best.params),
        best_cv={k: float(v) for k, v in best.user_attrs.get("cv", {}).items()},
        trials=[_trial_row(t) for t in study.trials],
        split=drawn.description,
    )
    result.params_path = _write_back(settings, dataset, result, cv, random_state)
    if tracker is not None:
        result.parent_run_id = tracker.finish(result, study.trials, failed=False)
        result.tracking_error = tracker.error
    return result


def tuned_params_path(settings: Settings, dataset: str, kind: str) -> Path:
    """Where the best parameters of ``kind`` on ``dataset`` are written."""
    return settings.home / "tuning" / dataset / f"{kind}.json"


def load_tuned_params(dataset: str, kind: str, settings: Settings | None = None) -> dict[str, Any]:
    """Return the parameters written back by :func:`tune`.

    Raises
    ------
    ConfigError
        Nothing was tuned for ``kind`` on ``dataset`` yet.
    """
    path = tuned_params_path(settings or get_settings(), dataset, kind)
    if not path.is_file():
        raise ConfigError(
            f"no tuned parameters for {kind!r} on {dataset!r} (expected {path}); run "
            f"`regressops tune --dataset {dataset} --model {kind}` first",
            reason="not_tuned",
        )
    doc = json.loads(path.read_text(encoding="utf-8"))
    return dict(doc["params"])


# ---------------------------------------------------------------------------- internals
def _best_value(study: Any) -> float:
    try:
        return float(study.best_value)
    except ValueError:
        return math.nan


def _trial_row(trial: Any) -> dict[str, Any]:
    value = trial.value if trial.value is not None else None
    return {
        "number": trial.number,
        "state": trial.state.name,
        "params": dict(trial.params),
        "cv_rmse": value,
    }


def _write_back(settings: Settings, dataset: str, result: TuneResult, cv: int, seed: int) -> Path:
    path = tuned_params_path(settings, dataset, result.kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "kind": result.kind,
        "dataset": dataset,
        "params": result.best_params,
        "cv": cv,
        "random_state": seed,
        "split": result.split,
        "best_cv": result.best_cv,
        "n_trials": len(result.trials),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


class _Tracker:
    """The study's MLflow runs, degrading to a recorded error when the store fails."""

    def __init__(self, client: MlflowClient, parent: str, experiment_id: str) -> None:
        self.client, self.parent, self.experiment_id = client, parent, experiment_id
        self.error: str | None = None

    @classmethod
    def open(
        cls, settings: Settings, uri: str | None, dataset: str, kind: str
    ) -> _Tracker | _Offline:
        from regressops.provenance import git_commit
        from regressops.registry.connection import connect, mlflow_errors, tracking_uri
        from regressops.registry.tracking import ensure_experiment

        store = tracking_uri(settings, uri)
        try:
            client = connect(store)
            experiment_id = ensure_experiment(client, dataset, store, settings)
            with mlflow_errors("starting the tuning run"):
                run = client.create_run(
                    experiment_id,
                    run_name=f"tune {kind}",
                    tags={
                        "regressops.kind": kind,
                        "regressops.dataset": dataset,
                        "regressops.tuning": "parent",
                        **({"mlflow.source.git.commit": c} if (c := git_commit()) else {}),
                    },
                )
                space = next(d for d in describe() if d["kind"] == kind)["search_space"]
                client.log_dict(run.info.run_id, space, "search_space.json")
        except RegistryError as exc:
            logger.info("tuning runs will not be logged: %s", exc.message)
            return _Offline(exc.message)
        return cls(client, run.info.run_id, experiment_id)

    def log_trial(self, trial: Any) -> None:
        from mlflow.entities import Metric, Param

        if self.error:
            return
        try:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"trial {trial.number}",
                tags={"mlflow.parentRunId": self.parent, "regressops.tuning": "trial"},
            )
            now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            cv = trial.user_attrs.get("cv", {})
            metrics = [Metric(k, float(v), now, 0) for k, v in cv.items()]
            params = [Param(k, str(v)) for k, v in trial.params.items()]
            self.client.log_batch(run.info.run_id, metrics=metrics, params=params)
            status = "FINISHED" if trial.state.name == "COMPLETE" else "KILLED"
            if trial.state.name == "FAIL":
                status = "FAILED"
            self.client.set_tag(run.info.run_id, "optuna.state", trial.state.name)
            self.client.set_terminated(run.info.run_id, status=status)
        except Exception as exc:  # the study goes on; the report says why logging stopped
            self.error = f"logging stopped after trial {trial.number}: {type(exc).__name__}"
            logger.warning("%s", self.error)

    def finish(self, result: TuneResult | None, trials: Any, failed: bool) -> str | None:
        from mlflow.entities import Metric, Param

        with contextlib.suppress(Exception):
            if result is not None:
                now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
                self.client.log_batch(
                    self.parent,
                    metrics=[Metric(f"best_{k}", v, now, 0) for k, v in result.best_cv.items()],
                    params=[Param(f"best.{k}", str(v)) for k, v in result.best_params.items()],
                )
                self.client.log_dict(
                    self.parent,
                    {
                        "best_params": result.best_params,
                        "best_cv": result.best_cv,
                        "trials": result.trials,
                    },
                    "tuning.json",
                )
            self.client.set_terminated(self.parent, status="FAILED" if failed else "FINISHED")
            return self.parent
        self.error = self.error or "could not finish the parent run"
        return self.parent


class _Offline:
    """Stands in for :class:`_Tracker` when the store is unreachable: records why."""

    def __init__(self, error: str) -> None:
        self.error: str | None = error

    def log_trial(self, trial: Any) -> None:
        """Nothing is logged."""

    def finish(self, result: TuneResult | None, trials: Any, failed: bool) -> str | None:
        """Nothing was logged."""
        return None
