"""Train a linear model over partitions (``regressops train --engine dask``), save a bundle.

:func:`train_partitioned` is the partitioned counterpart of
:func:`regressops.training.train.train` for data one process cannot hold: Parquet/CSV files or
a lake dataset's clean Delta version, read by the workers of an engine
(:mod:`regressops.compute.engines`). Passes over the data:

1. profile the training rows: the FeatureSpec (exact means and spreads, categories; medians
   within a reported rank error), row counts, schema agreement between partitions; for the
   exact fit of numeric features with no missing value, the same pass folds the raw rows into
   the TSQR factor (:func:`~regressops.compute.linear.profile_and_factor`);
2. fit: the exact TSQR fit (its own pass only when the first could not factor: categorical
   features, or gaps imputed by the learned medians; plus two refinement passes on an
   ill-conditioned design) or the streamed minibatch fit (``epochs`` passes);
3. score the training and the test rows (metrics combined over partitions).

The train/test split is drawn per row by a seeded hash (:mod:`regressops.compute.rows`), so it
does not depend on the partitioning. The bundle is the same format as an in-process fit's and
is served, registered and monitored the same way; it has no evaluation plots (they would need
every test prediction on one machine).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regressops.compute.engines import ComputeRequest, open_engine
from regressops.compute.evaluation import score_split
from regressops.compute.inputs import InputSelection, resolve_input
from regressops.compute.linear import (
    Design,
    LinearFitPlan,
    fit_exact,
    fit_minibatch,
    profile_and_factor,
)
from regressops.compute.profile import spec_from_profile
from regressops.compute.rows import SplitPlan
from regressops.config import Settings, get_settings
from regressops.errors import BundleError, ConfigError, DataError
from regressops.provenance import environment
from regressops.training.train import TrainEvent, TrainResult

logger = logging.getLogger(__name__)

SOLVERS = ("exact", "minibatch")


def train_partitioned(
    *,
    selection: InputSelection,
    fit: LinearFitPlan,
    split: SplitPlan,
    compute: ComputeRequest,
    name: str | None = None,
    output: str | Path | None = None,
    settings: Settings | None = None,
    progress: Callable[[TrainEvent], object] | None = None,
) -> TrainResult:
    """Train a ``linear`` model over the partitions of ``selection`` and save its bundle.

    Parameters
    ----------
    selection : InputSelection
        The data (files, or a lake dataset's clean version) and its columns.
    fit : LinearFitPlan
        ``exact`` or ``minibatch`` and their parameters.
    split : SplitPlan
        Test share and seed of the row-hash split.
    compute : ComputeRequest
        The engine (``numpy`` in this process, or ``dask``) and its scheduler.
    name : str, optional
        Model name; default the dataset's name or the input's stem.
    output : path-like, optional
        Bundle directory; default ``settings.models_dir / name``.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.
    progress : callable, optional
        Called with a :class:`~regressops.training.train.TrainEvent` at each pass.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        No target, an unknown solver.
    DataError
        No rows, a missing target value; :class:`~regressops.errors.SchemaError` for a
        partition with another schema.
    ComputeError
        The scheduler cannot be reached, or a worker died; nothing is written.
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    notify = progress or (lambda event: None)
    if fit.solver not in SOLVERS:
        raise ConfigError(
            f"the {compute.engine} engine fits solver exact or minibatch, not {fit.solver!r}",
            reason="unknown_solver",
        )
    notify(TrainEvent("load"))
    data = resolve_input(selection, settings=settings, compute=compute)
    if data.target is None:
        raise ConfigError("name the target column: --target COLUMN", reason="no_target")
    if not data.partitions:
        raise DataError("the input has no rows", reason="empty")
    target = data.target
    with open_engine(compute) as engine:
        columns = _columns(data)
        notify(TrainEvent("split"))
        # the exact fit's factor comes out of the profile's pass when the data allow it
        profile, raw_factor = profile_and_factor(
            engine,
            data.partitions,
            features=columns,
            target=target,
            categorical=data.categorical or (),
            plan=split,
            factor=fit.solver == "exact",
        )
        if profile.n_rows == 0:
            raise DataError("the input has no training rows", reason="empty")
        if profile.kinds.get(target) != "number":
            raise DataError(
                f"the target {target!r} holds {profile.kinds.get(target)} values; expected numbers",
                reason="invalid_target",
            )
        spec = spec_from_profile(
            profile, features=columns, target=target, categorical=data.categorical
        )
        design = Design(spec, target, split)
        notify(TrainEvent("fit"))
        if fit.solver == "exact":
            fitted = fit_exact(engine, data.partitions, design, fit, raw_factor=raw_factor)
        else:
            fitted = fit_minibatch(engine, data.partitions, design, fit)
        notify(TrainEvent("evaluate"))
        scoring = dataclasses.replace(design, spec=dataclasses.replace(spec, unknown="ignore"))
        est = fitted.estimator
        train_sums, test_sums = score_split(
            engine, data.partitions, scoring, est.coef_, est.intercept_
        )
    metrics: dict[str, Any] = {**test_sums.metrics(), "n_test": test_sums.n}
    metrics["train"] = {**train_sums.metrics(), "n": train_sums.n}
    metrics["fit"] = {
        "converged": True,
        "solver": fit.solver,
        "engine": compute.engine,
        "passes": fitted.passes,
        "refined": fitted.refined,
        "full_rank": fitted.full_rank,
        "final_loss": est.loss_curve_[-1],
    }
    notify(TrainEvent("save"))
    result = _save(data.lineage, data.name, est, spec, metrics, split, compute, profile, name)
    path = _write(result, output or settings.models_dir / result.name)
    seconds = time.perf_counter() - started
    logger.info(
        "trained %r over %d partitions in %.2fs", result.name, len(data.partitions), seconds
    )
    notify(TrainEvent("done"))
    return TrainResult(result, path, metrics, [], est, True, seconds)


def _columns(data: Any) -> list[str]:
    """The feature columns: as selected, else every column of the first partition but target."""
    if data.features is not None:
        return list(data.features)
    from regressops.compute.partitions import read_partition

    head = read_partition(data.partitions[0], None).columns
    return data.feature_columns([str(c) for c in head])


def _save(
    lineage: dict[str, Any],
    default_name: str,
    est: Any,
    spec: Any,
    metrics: dict[str, Any],
    split: SplitPlan,
    compute: ComputeRequest,
    profile: Any,
    name: str | None,
) -> Any:
    from regressops.models.catalog import to_bundle

    rank_errors = {
        c: p.summary.rank_error
        for c, p in profile.columns.items()
        if p.summary is not None and c in spec.names
    }
    return to_bundle(
        "linear",
        est,
        name=name or default_name,
        spec=spec,
        metrics=metrics,
        lineage={
            **lineage,
            "split": {
                **split.describe(),
                "n_train": metrics["train"]["n"],
                "n_test": metrics["n_test"],
            },
            "seed": split.seed,
            "engine": {"name": compute.engine, "scheduler": compute.scheduler},
            "partitions": len(profile.rows),
            "impute_median_rank_error": rank_errors,
            **environment(),
        },
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def _write(bundle: Any, out: str | Path) -> Path:
    try:
        return Path(bundle.save(Path(out)))
    except OSError as exc:
        raise BundleError(
            f"cannot write the bundle to {out}: {exc.strerror or exc}", reason="write_failed"
        ) from None
