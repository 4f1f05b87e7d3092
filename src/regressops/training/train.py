"""Train a model: load the data, split it, fit features and estimator, evaluate, save a bundle.

:func:`train` is the one function behind ``regressops train`` and ``regressops quickstart``;
tests and pipelines call it too. It is deterministic: the same data, parameters and seed give
the same split, the same coefficients and the same metrics.

Steps: load and check the data (:func:`~regressops.training.sources.load_training_data`);
split the rows (:func:`~regressops.data.split.train_test_indices`); fit the
:class:`~regressops.features.FeatureSpec` on the training rows only; fit the estimator of the
model kind (:mod:`regressops.models.catalog`; ``linear`` is our
:class:`~regressops.models.linear.LinearRegressor`); score the test and the training rows;
save the bundle (``model.json``, ``metrics.json``, ``lineage.json`` and the plots in
``plots/``) atomically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.data.split import SplitSize, key_hash_indices, train_test_indices
from regressops.datasets import get_dataset
from regressops.errors import BundleError, ConfigError
from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle
from regressops.training.lineage import environment
from regressops.training.metrics import regression_metrics
from regressops.training.sources import load_training_data

if TYPE_CHECKING:
    from regressops.monitoring.reference import ReferenceProfile

logger = logging.getLogger(__name__)

PLOTS_DIR = "plots"
ITERATIVE_SOLVERS = frozenset({"gd", "sgd", "minibatch"})


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
    """

    bundle: ModelBundle
    path: Path
    metrics: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    estimator: Any = None
    converged: bool = True
    seconds: float = 0.0

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
    *,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    model: str = "linear",
    solver: str | None = None,
    learning_rate: float | None = None,
    max_iter: int | None = None,
    batch_size: int | None = None,
    alpha: float | None = None,
    params: dict[str, Any] | None = None,
    test_size: SplitSize | None = None,
    shuffle: bool = True,
    random_state: int | None = None,
    output: str | os.PathLike[str] | None = None,
    name: str | None = None,
    data_version: int | None = None,
    split_key: str | None = None,
    plots: bool = True,
    drop_drifting: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a model on a dataset or file and save it as a bundle.

    Parameters
    ----------
    dataset : str, optional
        A built-in dataset (``diabetes``, ``insurance``, ``california``).
    data : path-like, optional
        A CSV, Parquet or JSON file instead; needs ``target``.
    target : str, optional
        Target column (default: the dataset's).
    features : sequence of str, optional
        Feature columns (default: the dataset's, or every column but the target). Non-numeric
        columns are one-hot encoded.
    model : str, default="linear"
        Model kind from :data:`regressops.models.catalog.KINDS`.
    solver, learning_rate, max_iter, batch_size, alpha : optional
        Estimator parameters (``None`` keeps the estimator's default); ``solver`` defaults to
        ``settings.train.solver`` for ``linear``.
    params : dict, optional
        Further estimator parameters (overridden by the named ones above).
    test_size : float or int, optional
        Test fraction in (0, 1) or row count; default ``settings.train.test_size``.
    shuffle : bool, default=True
        Shuffle before splitting; False takes the last rows as the test set.
    random_state : int, optional
        Seed of the split and the estimator; default ``settings.train.random_state``.
    output : path-like, optional
        Bundle directory; default ``settings.models_dir / name``. Replaced if it exists.
    data_version : int, optional
        Train on this clean Delta version of ``dataset`` (time travel); the same version and
        parameters give a bit-for-bit identical model.
    split_key : str, optional
        Split by a hash of this column (e.g. ``id``) instead of by seed, so a row stays on its
        side as the data grows (:func:`~regressops.data.split.key_hash_indices`).
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
        Unknown model kind, solver or parameter, or an invalid parameter value or split.
    DataError
        The data cannot be loaded or checked (see ``load_training_data``).
    DivergenceError
        An iterative solver diverged.
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    notify = progress or (lambda event: None)
    seed = settings.train.random_state if random_state is None else random_state
    if dataset is not None:
        get_dataset(dataset)  # fail fast on a wrong name, before importing the estimator
    estimator_params = _estimator_params(
        model, params, solver, learning_rate, max_iter, batch_size, alpha, settings
    )
    estimator = _make_estimator(model, estimator_params, seed)

    notify(TrainEvent("load"))
    td = load_training_data(
        dataset,
        data,
        target,
        features,
        settings=settings,
        data_version=data_version,
        key=split_key,
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
    size = settings.train.test_size if test_size is None else test_size
    if isinstance(size, float) and size >= 1 and size.is_integer():
        size = int(size)  # a count from the settings file (``test_size = 20``)
    if split_key is not None:
        split = key_hash_indices(
            td.keys if td.keys is not None else [], test_size=size, key=split_key
        )
    else:
        split = train_test_indices(
            len(td.frame), test_size=size, shuffle=shuffle, random_state=seed
        )
    train_rows, test_rows = td.frame.iloc[split.train], td.frame.iloc[split.test]
    spec = FeatureSpec.fit(
        train_rows, features=td.features, target=td.target, categorical=td.categorical
    )
    X_train, y_train = spec.transform(train_rows), train_rows[td.target].to_numpy(np.float64)
    # Categories first seen in the test rows have no coefficient: score them as all zeros.
    X_test = replace(spec, unknown="ignore").transform(test_rows)
    y_test = test_rows[td.target].to_numpy(np.float64)

    solver_name = str(estimator_params.get("solver", ""))
    if getattr(estimator, "callback", "absent") is None and solver_name in ITERATIVE_SOLVERS:
        estimator.set_params(callback=lambda p: notify(TrainEvent("fit", p.step, p.total, p.loss)))
    notify(TrainEvent("fit", 0, getattr(estimator, "max_iter", None)))
    converged = _fit(estimator, X_train, y_train)

    notify(TrainEvent("evaluate"))
    pred_test = np.asarray(estimator.predict(X_test), dtype=np.float64)
    pred_train = np.asarray(estimator.predict(X_train), dtype=np.float64)
    metrics: dict[str, Any] = {**regression_metrics(y_test, pred_test), "n_test": len(y_test)}
    metrics["train"] = {**regression_metrics(y_train, pred_train), "n": len(y_train)}
    loss_curve = [float(v) for v in getattr(estimator, "loss_curve_", [])]
    metrics["fit"] = _fit_details(estimator, solver_name, converged, loss_curve)

    notify(TrainEvent("save"))
    from regressops.models.catalog import to_bundle

    bundle = to_bundle(
        model,
        estimator,
        name=name,
        spec=spec,
        metrics=metrics,
        lineage={
            **td.lineage,
            "split": split.description,
            "seed": seed,
            **environment(),
            **({"dropped_drifting": dropped} if dropped else {}),
        },
        created_at=_now(),
    )
    out = Path(output) if output is not None else settings.models_dir / name
    iterative = solver_name in ITERATIVE_SOLVERS
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
        loss_curve if iterative else None,
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
        model,
        name,
        seconds,
        metrics["r2"],
        metrics["rmse"],
    )
    notify(TrainEvent("done"))
    return TrainResult(bundle, path, metrics, plot_files, estimator, converged, seconds)


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


def _estimator_params(
    model: str,
    params: dict[str, Any] | None,
    solver: str | None,
    learning_rate: float | None,
    max_iter: int | None,
    batch_size: int | None,
    alpha: float | None,
    settings: Settings,
) -> dict[str, Any]:
    named = {
        "solver": solver,
        "learning_rate": learning_rate,
        "max_iter": max_iter,
        "batch_size": batch_size,
        "alpha": alpha,
    }
    merged = {**(params or {}), **{k: v for k, v in named.items() if v is not None}}
    if model == "linear":
        merged.setdefault("solver", settings.train.solver)
        from regressops.models.linear import SOLVERS

        if merged["solver"] not in SOLVERS:
            raise ConfigError(
                f"unknown solver {merged['solver']!r}; expected one of {', '.join(SOLVERS)}",
                reason="unknown_solver",
            )
    return merged


def _make_estimator(model: str, params: dict[str, Any], seed: int) -> Any:
    """Build the estimator and check its parameters before any data is loaded."""
    from regressops.models.catalog import make_estimator

    estimator = make_estimator(model, params, random_state=seed)
    validate = getattr(estimator, "_validate_params", None)  # scikit-learn's constraint check
    if validate is not None:
        with _parameter_errors():
            validate()
    return estimator


@contextlib.contextmanager
def _parameter_errors() -> Any:
    """Turn scikit-learn's InvalidParameterError into a one-line ConfigError."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        yield
    except InvalidParameterError as exc:
        raise ConfigError(str(exc), reason="invalid_parameter") from None


def _fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> bool:
    """Fit; return False when the solver warned that it did not converge."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught, _parameter_errors():
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(X, y)
    converged = True
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            converged = False
            logger.warning("%s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return converged


def _fit_details(
    estimator: Any, solver: str, converged: bool, loss_curve: list[float]
) -> dict[str, Any]:
    details: dict[str, Any] = {"converged": converged}
    if solver:
        details["solver"] = solver
    if hasattr(estimator, "n_iter_"):
        details["n_iter"] = int(np.max(estimator.n_iter_))
    if loss_curve:
        details["final_loss"] = loss_curve[-1]
        details["loss_curve"] = loss_curve
    return details


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
