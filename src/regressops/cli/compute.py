"""``train`` and ``predict`` on a compute engine (``--engine dask --scheduler ...``).

The commands in :mod:`regressops.cli.train` hand over here when an engine is named (on the
command line or in ``[compute]``); the work runs over partitions
(:func:`regressops.training.partitioned.train_partitioned`,
:func:`regressops.compute.scoring.predict_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regressops.cli.support import metrics_table, out, print_json, run, shown, with_progress


def fail_config(message: str) -> None:
    """Exit with a one-line configuration error (exit code 2)."""
    from regressops.errors import ConfigError

    def refuse() -> None:
        raise ConfigError(message, reason="unsupported_option")

    run(refuse)


def engine_requested(engine: str | None, scheduler: str | None) -> bool:
    """Whether a command should run on an engine: named, implied by --scheduler, or the setting."""
    if engine is not None or scheduler is not None:
        return engine != "numpy"
    from regressops.config import get_settings

    return get_settings().compute.engine != "numpy"


def request(engine: str | None, scheduler: str | None) -> Any:
    """The compute request of the ``[compute]`` settings with the command-line overrides."""
    from regressops.compute.engines import ComputeRequest
    from regressops.config import get_settings

    return run(
        ComputeRequest.from_settings,
        get_settings(),
        engine=engine or ("dask" if scheduler else None),
        scheduler=scheduler,
    )


def train(
    *,
    engine: str | None,
    scheduler: str | None,
    options: dict[str, Any],
    json_output: bool,
) -> None:
    """``regressops train --engine dask``: a linear model fitted over partitions."""
    from regressops.compute.inputs import InputSelection
    from regressops.compute.linear import LinearFitPlan
    from regressops.compute.rows import SplitPlan
    from regressops.config import get_settings
    from regressops.training.partitioned import train_partitioned

    settings = get_settings()
    compute = request(engine, scheduler)
    features = options.get("features")
    selection = run(
        InputSelection,
        path=str(options["data"]) if options.get("data") is not None else None,
        dataset=options.get("dataset"),
        version=options.get("data_version"),
        target=options.get("target"),
        features=tuple(features.split(",")) if features else None,
    )
    if (options.get("model") or ["linear"]) != ["linear"] or options.get("quantize"):
        fail_config(
            "the dask engine trains one linear model (no other kind, no quantisation yet); "
            "drop --model and --quantize"
        )
    from regressops.training.candidates import RecordPlan

    track = options.get("track")
    register = bool(options.get("register"))
    record = run(
        RecordPlan,
        cv=0,  # no cross-validation over partitions: the gates use held-out rows
        track=settings.train.track if track is None else track,
        register=register,
        tracking_uri=options.get("tracking_uri"),
    )
    recording = record.track or record.register
    seed = options.get("random_state")
    seed = settings.train.random_state if seed is None else seed
    fit = LinearFitPlan(
        solver=options.get("solver") or settings.train.solver,
        alpha=options.get("alpha") or 0.0,
        epochs=options.get("max_iter") or LinearFitPlan.epochs,
        batch_size=options.get("batch_size") or LinearFitPlan.batch_size,
        random_state=seed,
        params={"learning_rate": options["learning_rate"]} if options.get("learning_rate") else {},
    )
    size = options.get("test_size")
    split = run(SplitPlan, settings.train.test_size if size is None else float(size), seed)
    result = run(
        with_progress(train_partitioned, show=not json_output),
        selection=selection,
        fit=fit,
        split=split,
        compute=compute,
        name=options.get("model_name"),
        output=options.get("output"),
        settings=settings,
        held_out_rows=settings.compute.gate_rows if recording else 0,
    )
    recorded = None
    if recording:
        from regressops.cli.support import quiet_mlflow
        from regressops.training.candidates import record_training

        quiet_mlflow()
        recorded = run(record_training, [result], record, settings=settings)
    if json_output:
        doc = result.to_dict()
        if recorded is not None:
            doc["tracking"] = recorded.to_dict()
        print_json(doc)
    else:
        m = result.metrics
        title = f"{result.bundle.name}: linear ({m['fit']['solver']}, {compute.engine} engine)"
        metrics_table(title, {"test": {**m, "n": m.get("n_test")}, "train": m.get("train", {})})
        out().print(f"bundle: {shown(result.path)}  ({result.seconds:.2f}s)", markup=False)
    if recorded is not None:
        from regressops.cli.train import exit_for, show_recorded

        if not json_output:
            show_recorded(recorded, register)
        exit_for(recorded, register)


def predict(
    *,
    engine: str | None,
    scheduler: str | None,
    model: str | Path,
    input_path: Path,
    output: Path,
    json_output: bool,
) -> None:
    """``regressops predict --engine dask``: a folder of Parquet files, one per partition."""
    from regressops.compute.scoring import predict_files
    from regressops.registry.resolve import model_bundle_dir

    bundle_dir = run(model_bundle_dir, model)  # a directory, models:/NAME@ALIAS or /VERSION
    result = run(predict_files, bundle_dir, input_path, output, request(engine, scheduler))
    if json_output:
        print_json({"output": str(result.output), "rows": result.rows, "files": result.files})
        return
    out().print(
        f"wrote {result.rows} predictions in {result.files} Parquet file(s) to "
        f"{shown(result.output)}",
        markup=False,
    )
