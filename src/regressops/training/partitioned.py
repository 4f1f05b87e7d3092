"""Train a linear model over partitions (``regressops train --engine dask``), save a bundle.

:func:`train_partitioned` is the partitioned counterpart of
:func:`regressops.training.train.train` for data one process cannot hold: Parquet/CSV files or
a lake dataset's clean Delta version, read by the workers of an engine
(:mod:`regressops.compute.engines`). Passes over the data:

1. profile the training rows: the FeatureSpec (exact means and spreads, categories; medians
   within a reported rank error), row counts, schema agreement between partitions, and a
   uniform sample of ``monitor.reference_sample`` rows for the drift reference; for the exact
   fit of numeric features with no missing value, the same pass folds the raw rows into the
   TSQR factor (:func:`~regressops.compute.linear.profile_and_factor`);
2. fit: the exact TSQR fit (its own pass only when the first could not factor: categorical
   features, or gaps imputed by the learned medians; plus two refinement passes on an
   ill-conditioned design) or the streamed minibatch fit (``epochs`` passes);
3. score the training and the test rows (metrics combined over partitions);
4. with ``held_out_rows``, gather up to that many of the test rows (the first of each
   partition's share) for the quality gates and the MLflow run
   (:func:`regressops.training.candidates.record_training`, as ``regressops train`` in
   process): the gates are then measured on that sample (all test rows when fewer).

The train/test split is drawn per row by a seeded hash (:mod:`regressops.compute.rows`), so it
does not depend on the partitioning. The bundle is the same format as an in-process fit's and
is served, registered and monitored the same way; it has no evaluation plots (they would need
every test prediction on one machine).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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

if TYPE_CHECKING:
    import pandas as pd

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
    held_out_rows: int = 0,
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
    held_out_rows : int, default=0
        Test rows to gather into :attr:`TrainResult.data` (with a :attr:`TrainResult.split`
        whose test side is all of them) for gates and tracking; 0 gathers none.

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
            sample_size=settings.monitor.reference_sample,  # the drift reference's rows
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
        held_out = (
            _held_out(engine, data.partitions, [*columns, target], split, held_out_rows)
            if held_out_rows > 0
            else None
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
    assert profile.sample is not None
    sample = profile.sample.frame()
    reference = _reference(result, sample, profile, target, settings.monitor.reference_sample)
    path = _write(result, output or settings.models_dir / result.name, reference)
    seconds = time.perf_counter() - started
    logger.info(
        "trained %r over %d partitions in %.2fs", result.name, len(data.partitions), seconds
    )
    notify(TrainEvent("done"))
    if held_out is None:
        return TrainResult(result, path, metrics, [], est, True, seconds)
    from regressops.data.split import Split
    from regressops.training.sources import TrainingData

    td = TrainingData(
        frame=held_out,
        target=target,
        features=list(columns),
        categorical=[f.name for f in spec.features if f.kind == "categorical"],
        lineage=result.lineage,
    )
    held = Split(np.empty(0, np.int64), np.arange(len(held_out)), split.describe())
    return TrainResult(result, path, metrics, [], est, True, seconds, data=td, split=held)


def _held_out(
    engine: Any, partitions: Any, columns: list[str], split: SplitPlan, limit: int
) -> pd.DataFrame:
    """Up to ``limit`` test rows: the first ``limit / partitions`` of each partition's share."""
    import pandas as pd

    share = max(1, -(-limit // len(partitions)))
    task = functools.partial(_test_rows, columns=columns, plan=split, limit=share)
    frames = [f for f in engine.map(task, list(partitions)) if len(f)]
    if not frames:
        raise DataError("the input has no test rows for the gates", reason="empty")
    return pd.concat(frames, ignore_index=True).head(limit)


def _test_rows(part: Any, *, columns: list[str], plan: SplitPlan, limit: int) -> pd.DataFrame:
    import pandas as pd

    from regressops.compute.partitions import read_columns
    from regressops.compute.rows import select

    rows = select(read_columns(part, columns), part, plan, "test")
    return pd.DataFrame({name: rows[name][:limit] for name in columns})


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


def _reference(bundle: Any, sample: pd.DataFrame, profile: Any, target: str, size: int) -> Any:
    """The drift reference of the training rows, stored in the bundle as ``train`` stores it.

    The numeric samples (and the predictions' profile) come from ``sample``; every count,
    mean and standard deviation of the features and the target from the exact ``profile``.
    """
    from regressops.monitoring.reference import (
        CategoricalProfile,
        NumericProfile,
        build_reference,
    )

    where = bundle.lineage.get("dataset") or bundle.lineage.get("path")
    spec = dataclasses.replace(bundle.spec, unknown="ignore")
    predictions = bundle.predict_matrix(spec.transform(sample)) if len(sample) else None
    built = build_reference(
        sample,
        kinds={f.name: f.kind for f in bundle.spec.features},
        source=f"training rows of {bundle.name} ({where})",
        predictions=predictions,
        target=target,
        sample_size=size,
    )

    def exact(name: str, drawn: Any) -> Any:
        col = profile.columns[name]
        if isinstance(drawn, NumericProfile):
            m = col.moments
            return dataclasses.replace(
                drawn, rows=m.count, missing=m.missing, mean=m.mean, std=m.std
            )
        if isinstance(drawn, CategoricalProfile) and col.counts is not None:
            counts = dict(col.counts.counts)
            return dataclasses.replace(
                drawn, rows=sum(counts.values()), missing=col.moments.missing, counts=counts
            )
        return drawn

    return dataclasses.replace(
        built,
        rows=profile.n_rows,
        features={n: exact(n, p) for n, p in built.features.items()},
        target=exact(target, built.target) if built.target is not None else None,
    )


def _write(bundle: Any, out: str | Path, reference: Any) -> Path:
    def artifacts(directory: Path) -> dict[str, Any]:
        reference.save(directory)
        return {}

    try:
        return Path(bundle.save(Path(out), write_artifacts=artifacts))
    except OSError as exc:
        raise BundleError(
            f"cannot write the bundle to {out}: {exc.strerror or exc}", reason="write_failed"
        ) from None
