"""Train a model: load the data, split it, fit features and estimator, evaluate, save a bundle.

:func:`train` is the one function behind ``regressops train`` and ``regressops quickstart``;
tests and pipelines call it too. It is deterministic: the same data, parameters and seed give
the same split, the same coefficients and the same metrics.

It takes three request objects, each checked when built: *what data*
(:class:`~regressops.data.selection.DataSelection`, or the data already loaded), *how it is
split* (:class:`~regressops.data.split.SplitPlan`) and *how the model is fitted*
(:class:`~regressops.training.estimator.EstimatorParams`).

Steps: load and check the data (:func:`~regressops.training.sources.load_training_data`);
split the rows (:func:`~regressops.data.split.split_rows`); fit the
:class:`~regressops.features.FeatureSpec` on the training rows only; fit the estimator of the
model kind (:mod:`regressops.models.catalog`; ``linear`` is our
:class:`~regressops.models.linear.LinearRegressor`); score the test and the training rows;
save the bundle (``model.json``, ``metrics.json``, ``lineage.json`` and the plots in
``plots/``) atomically.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.data.selection import DataSelection
from regressops.data.split import Split, SplitPlan, split_rows
from regressops.errors import BundleError, ConfigError
from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle
from regressops.provenance import environment
from regressops.training.estimator import EstimatorParams, fit, fit_details
from regressops.training.metrics import regression_metrics
from regressops.training.sources import TrainingData, load_training_data

if TYPE_CHECKING:
    from regressops.monitoring.reference import ReferenceProfile

logger = logging.getLogger(__name__)

PLOTS_DIR = "plots"


@dataclass(frozen=True)
class TrainEvent:
    """What a ``progress`` callback of :func:`train` receives.

    Attributes
    ----------
    stage : {"load", "split", "fit", "evaluate", "save", "done"}
        The step starting (or, for ``"fit"``, under way).
    step, total : int
        Epochs done and ``max_iter`` during an iterative fit; 0 and ``None`` otherwise.
    loss : float or None
        Training loss after the epoch (iterative fits).
    """

    stage: str
    step: int = 0
    total: int | None = None
    loss: float | None = None


Progress = Callable[[TrainEvent], object]


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    bundle : ModelBundle
        The trained model with its metrics and lineage (as saved).
    path : Path
        The bundle directory.
    metrics : dict
        Test-set ``r2``, ``rmse``, ``mse``, ``mae`` (and ``n_test``), ``train`` metrics and
        ``fit`` details; the content of ``metrics.json``.
    plots : list of Path
        The PNG files written into the bundle.
    estimator : object
        The fitted estimator.
    converged : bool
        False when an iterative solver stopped at ``max_iter``.
    seconds : float
        Wall time of the whole run.
    data : TrainingData
        The data trained on (kept for gates and tracking, so they do not load it again).
    split : Split
        The train/test split of ``data``.
    """

    bundle: ModelBundle
    path: Path
    metrics: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    estimator: Any = None
    converged: bool = True
    seconds: float = 0.0
    data: TrainingData | None = field(default=None, repr=False)
    split: Split | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (for ``--json`` output)."""
        return {
            "model": self.bundle.name,
            "kind": self.bundle.kind,
            "path": str(self.path),
            "metrics": self.metrics,
            "params": self.bundle.params,
            "plots": [str(p) for p in self.plots],
            "converged": self.converged,
            "seconds": round(self.seconds, 3),
            "lineage": self.bundle.lineage,
        }


def train(
    data: DataSelection | TrainingData,
    split: SplitPlan | None = None,
    estimator: EstimatorParams | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    name: str | None = None,
    plots: bool = True,
    drop_drifting: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a model on a dataset or file and save it as a bundle.

    Parameters
    ----------
    data : DataSelection or TrainingData
        What to train on: a selection (loaded here) or data already loaded by
        :func:`~regressops.training.sources.load_training_data` (several candidates share it;
        it must then hold the keys of ``split.key``).
    split : SplitPlan, optional
        Test size, shuffling, seed and split key; default the settings' test size and seed.
        The seed also seeds the estimator.
    estimator : EstimatorParams, optional
        Model kind and parameters; default ``linear`` with ``settings.train.solver``.
    output : path-like, optional
        Bundle directory; default ``settings.models_dir / name``. Replaced if it exists.
    name : str, optional
        Model name; default the dataset's name or the file's stem.
    plots : bool, default=True
        Write the evaluation plots into the bundle.
    drop_drifting : path-like, optional
        A ``drift.json`` of ``regressops monitor``: train without the features it found drifted
        (recorded in the lineage under ``dropped_drifting``).
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.
    progress : callable, optional
        Called with a :class:`TrainEvent` at each step and after every epoch of an iterative
        fit.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        An invalid split for this data (too few rows, a key with missing values).
    DataError
        The data cannot be loaded or checked (see ``load_training_data``).
    DivergenceError
        An iterative solver diverged.
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    notify = progress or (lambda event: None)
    plan = split or default_split_plan(settings)
    spec_params = (estimator or EstimatorParams()).with_default_solver(settings.train.solver)
    model = spec_params.make(plan.seed)

    notify(TrainEvent("load"))
    td = (
        load_training_data(data, settings=settings, key=plan.key)
        if isinstance(data, DataSelection)
        else data
    )
    name = name or td.name
    dropped = _drop_drifting(td, drop_drifting) if drop_drifting is not None else None
    if dropped is not None:
        gone = set(dropped["features"])
        td = replace(
            td,
            features=[f for f in td.features if f not in gone],
            categorical=[c for c in td.categorical if c not in gone],
        )

    notify(TrainEvent("split"))
    rows = split_rows(plan, len(td.frame), keys=td.keys)
    train_rows, test_rows = td.frame.iloc[rows.train], td.frame.iloc[rows.test]
    spec = FeatureSpec.fit(
        train_rows, features=td.features, target=td.target, categorical=td.categorical
    )
    X_train, y_train = spec.transform(train_rows), train_rows[td.target].to_numpy(np.float64)
    # Categories first seen in the test rows have no coefficient: score them as all zeros.
    X_test = replace(spec, unknown="ignore").transform(test_rows)
    y_test = test_rows[td.target].to_numpy(np.float64)

    if getattr(model, "callback", "absent") is None and spec_params.iterative:
        model.set_params(callback=lambda p: notify(TrainEvent("fit", p.step, p.total, p.loss)))
    notify(TrainEvent("fit", 0, getattr(model, "max_iter", None)))
    converged = fit(model, X_train, y_train)

    notify(TrainEvent("evaluate"))
    pred_test = np.asarray(model.predict(X_test), dtype=np.float64)
    pred_train = np.asarray(model.predict(X_train), dtype=np.float64)
    metrics: dict[str, Any] = {**regression_metrics(y_test, pred_test), "n_test": len(y_test)}
    metrics["train"] = {**regression_metrics(y_train, pred_train), "n": len(y_train)}
    loss_curve = [float(v) for v in getattr(model, "loss_curve_", [])]
    metrics["fit"] = fit_details(model, spec_params.solver, converged, loss_curve)

    notify(TrainEvent("save"))
    from regressops.models.catalog import to_bundle

    bundle = to_bundle(
        spec_params.kind,
        model,
        name=name,
        spec=spec,
        metrics=metrics,
        lineage={
            **td.lineage,
            "split": rows.description,
            "seed": plan.seed,
            **environment(),
            **({"dropped_drifting": dropped} if dropped else {}),
        },
        created_at=_now(),
    )
    out = Path(output) if output is not None else settings.models_dir / name
    from regressops.monitoring.reference import build_reference

    reference = build_reference(  # the drift reference: monitoring needs no training data
        train_rows,
        kinds={f.name: f.kind for f in spec.features},
        source=f"training rows of {name} ({td.lineage.get('dataset') or td.lineage.get('path')})",
        predictions=pred_train,
        target=td.target,
        sample_size=settings.monitor.reference_sample,
    )
    writer = _artifact_writer(
        bundle,
        y_test,
        pred_test,
        loss_curve if spec_params.iterative else None,
        plots=plots,
        reference=reference,
    )
    try:
        path = bundle.save(out, write_artifacts=writer)
    except OSError as exc:
        raise BundleError(
            f"cannot write the bundle to {out}: {exc.strerror or exc}", reason="write_failed"
        ) from None
    plot_files = [path / p for p in bundle.extra.get("plots", [])]
    seconds = time.perf_counter() - started
    logger.info(
        "trained %s %r in %.2fs: test r2=%.4f rmse=%.4g",
        spec_params.kind,
        name,
        seconds,
        metrics["r2"],
        metrics["rmse"],
    )
    notify(TrainEvent("done"))
    return TrainResult(
        bundle, path, metrics, plot_files, model, converged, seconds, data=td, split=rows
    )


def default_split_plan(settings: Settings) -> SplitPlan:
    """The settings' split: ``train.test_size`` and ``train.random_state``, shuffled."""
    return SplitPlan(test_size=settings.train.test_size, seed=settings.train.random_state)


# ---------------------------------------------------------------------- helpers
def _drop_drifting(td: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The drifted features of a drift report that are features here (at least one must stay)."""
    from regressops.monitoring.drift import read_drifted_features

    drifted = read_drifted_features(path)
    dropped = [f for f in td.features if f in drifted]
    if len(dropped) == len(td.features):
        raise ConfigError(
            f"{path} finds every feature drifted; nothing would be left to train on",
            reason="no_features",
        )
    if unknown := sorted(set(drifted) - set(td.features)):
        logger.warning("drifted features not among this model's features: %s", ", ".join(unknown))
    return {"drift_report": str(path), "features": dropped}


def _artifact_writer(
    bundle: ModelBundle,
    y_test: np.ndarray,
    pred_test: np.ndarray,
    loss_curve: list[float] | None,
    *,
    plots: bool,
    reference: ReferenceProfile | None = None,
) -> Callable[[Path], dict[str, Any]]:
    """Write the model artefact (non-linear kinds), the drift reference and the plots into the
    bundle's temp dir."""

    def write(directory: Path) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if reference is not None:
            reference.save(directory)
        if not bundle.is_linear:
            from regressops.models.skops_io import skops_writer

            fields.update(skops_writer(bundle.estimator)(directory))
        if plots:
            from regressops.training.plots import save_evaluation_plots

            files = save_evaluation_plots(
                directory / PLOTS_DIR, y_test, pred_test, loss_curve=loss_curve, title=bundle.name
            )
            fields["plots"] = [f"{PLOTS_DIR}/{f.name}" for f in files]
        bundle.extra.update(fields)
        return fields

    return write


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
