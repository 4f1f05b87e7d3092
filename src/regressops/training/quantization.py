"""Quantise a trained linear bundle to int8, measure what it costs, and gate it.

:func:`quantize_model` is the function behind ``regressops quantize`` and ``train --quantize
int8``: it loads a float linear bundle, reloads the rows it was tested on (the same data, lake
version and split its lineage names), quantises its coefficients
(:mod:`regressops.models.quantize`), measures R² and RMSE before and after, the largest
``|Δŷ|`` and its bound, runs the quantisation gates, and only when they pass writes the
``linear-int8`` bundle (atomically; a refused model leaves nothing behind).

The gates (:func:`quantization_checks`, also run by
:func:`~regressops.training.gates.evaluate_gates` for every ``linear-int8`` candidate):

``quantization_r2_drop``
    ``R²_float − R²_int8 ≤ gates.max_quantization_r2_drop`` (default 0.001) on the test rows.
``quantization_bound``
    On every test row the measured ``|ŷ_float − ŷ_int8|`` is within ``Σ_j (s_j/2)|x_j|`` (plus
    the float64 rounding of the two dot products).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import GateSettings, Settings, get_settings
from regressops.errors import BundleError, ConfigError, GateFailed
from regressops.models.bundle import MODEL_FILE, ModelBundle, load_bundle
from regressops.models.quantize import GRANULARITIES, QuantizationReport, measure, quantize_bundle

if TYPE_CHECKING:
    import pandas as pd

    from regressops.training.gates import GateCheck
    from regressops.training.train import TrainResult

logger = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("int8",)


@dataclass
class QuantizeResult:
    """What :func:`quantize_model` produced.

    Attributes
    ----------
    bundle : ModelBundle
        The ``linear-int8`` model (as saved).
    path : Path
        Its bundle directory.
    report : QuantizationReport
        The chosen granularity measured on the test rows.
    alternatives : dict of str to QuantizationReport
        Every granularity measured on the same rows (the chosen one included), for comparison.
    checks : list of GateCheck
        The quantisation gates.
    source_bytes, output_bytes : int
        Size of the float and of the int8 bundle's ``model.json``.
    """

    bundle: ModelBundle
    path: Path
    report: QuantizationReport
    alternatives: dict[str, QuantizationReport] = field(default_factory=dict)
    checks: list[GateCheck] = field(default_factory=list)
    source_bytes: int = 0
    output_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (``--json`` output)."""
        return {
            "model": self.bundle.name,
            "kind": self.bundle.kind,
            "path": str(self.path),
            "granularity": self.report.granularity,
            "report": self.report.to_dict(),
            "alternatives": {k: v.to_dict() for k, v in self.alternatives.items()},
            "gates": [dataclasses.asdict(c) for c in self.checks],
            "model_json_bytes": {"float": self.source_bytes, "int8": self.output_bytes},
        }


def quantize_model(
    *,
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    granularity: str = "per-tensor",
    settings: Settings | None = None,
) -> QuantizeResult:
    """Quantise the float linear bundle at ``model`` to a ``linear-int8`` bundle at ``output``.

    Parameters
    ----------
    model : path-like
        A float linear bundle (kind ``linear`` or ``ridge``).
    output : path-like
        Where to write the quantised bundle (replaced if it exists); must differ from ``model``.
    granularity : {"per-tensor", "per-feature"}, default="per-tensor"
        Scale granularity (see :mod:`regressops.models.quantize`).
    settings : Settings, optional
        For the data source and ``gates.max_quantization_r2_drop``.

    Returns
    -------
    QuantizeResult

    Raises
    ------
    BundleError
        ``model`` is missing or not a float linear bundle.
    ConfigError
        ``output`` is ``model``, or an unknown granularity.
    DataError
        The test rows cannot be reloaded from the data the lineage names.
    GateFailed
        The quantised model fails a quantisation gate; nothing is written.
    """
    settings = settings or get_settings()
    if granularity not in GRANULARITIES:
        raise ConfigError(
            f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}",
            reason="invalid_granularity",
        )
    source_dir, out = Path(model), Path(output)
    if out.resolve() == source_dir.resolve():
        raise ConfigError(
            "--output must differ from --model: the float model is kept", reason="same_path"
        )
    source = load_bundle(source_dir)
    quantize_bundle(source, granularity=granularity)  # refuses a non-linear kind before loading
    train_rows, test_rows = split_frames(source, settings)
    X, y = _matrix(source, test_rows)
    alternatives = {}
    for g in GRANULARITIES:
        candidate = quantize_bundle(source, granularity=g)
        assert candidate.quantized is not None and source.coef is not None
        alternatives[g] = measure(source.coef, source.intercept, candidate.quantized, X, y)
    report = alternatives[granularity]
    checks = quantization_checks(report.to_dict(), settings.gates)
    failed = [c for c in checks if not c.passed]
    if failed:
        summary = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise GateFailed(
            f"the quantised model was refused: {summary}", failed=len(failed), summary=summary
        )
    bundle = quantize_bundle(source, granularity=granularity)
    bundle.metrics = quantized_metrics(source, report, bundle, (X, y), _matrix(source, train_rows))
    try:
        path = bundle.save(out, write_artifacts=_carry_reference(source_dir))
    except OSError as exc:
        raise BundleError(
            f"cannot write the bundle to {out}: {exc.strerror or exc}", reason="write_failed"
        ) from None
    logger.info(
        "quantised %r (%s): r2 %.4f -> %.4f, max |dy| %.3g (bound %.3g)",
        bundle.name, granularity, report.float_r2, report.int8_r2, report.max_abs_error,
        report.bound_at_max,
    )  # fmt: skip
    return QuantizeResult(
        bundle=bundle,
        path=path,
        report=report,
        alternatives=alternatives,
        checks=checks,
        source_bytes=(source_dir / MODEL_FILE).stat().st_size,
        output_bytes=(path / MODEL_FILE).stat().st_size,
    )


def _carry_reference(source_dir: Path) -> Callable[[Path], dict[str, Any]]:
    """Copy the float model's drift reference into the int8 bundle (same features, same
    training rows): ``monitor`` and the server's live drift need it there too."""
    from regressops.monitoring.reference import REFERENCE_FILE

    def write(directory: Path) -> dict[str, Any]:
        source = source_dir / REFERENCE_FILE
        if source.is_file():
            shutil.copyfile(source, directory / REFERENCE_FILE)
        return {}

    return write


def quantized_result(result: TrainResult, scheme: str, settings: Settings) -> TrainResult:
    """Quantise a trained candidate into ``<bundle>-<scheme>``; the result describes the
    quantised model (``train --quantize int8``)."""
    from regressops.training.train import TrainResult

    check_scheme(scheme)
    out = result.path.with_name(f"{result.path.name}-{scheme}")
    q = quantize_model(model=result.path, output=out, settings=settings)
    return TrainResult(
        q.bundle, q.path, q.bundle.metrics, [], None, result.converged, result.seconds,
        data=result.data, split=result.split,
    )  # fmt: skip


def check_scheme(scheme: str) -> None:
    """Refuse a quantisation scheme other than :data:`QUANTIZE_CHOICES` (before training)."""
    if scheme not in QUANTIZE_CHOICES:
        raise ConfigError(
            f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {scheme!r}",
            reason="invalid_quantize",
        )


def quantization_checks(report: Mapping[str, Any], gates: GateSettings) -> list[GateCheck]:
    """The quantisation gates over a :class:`QuantizationReport`'s dict.

    Parameters
    ----------
    report : mapping
        :meth:`QuantizationReport.to_dict` of the model on its test rows.
    gates : GateSettings
        For ``max_quantization_r2_drop``.
    """
    from regressops.training.gates import GateCheck

    drop, limit = float(report["r2_drop"]), gates.max_quantization_r2_drop
    ok_drop = drop <= limit
    violations = int(report["bound_violations"])
    return [
        GateCheck(
            "quantization_r2_drop",
            ok_drop,
            value=drop,
            threshold=limit,
            detail=(
                f"r2 {report['float_r2']:.4f} -> {report['int8_r2']:.4f}: drop {drop:.2e} "
                f"{'<=' if ok_drop else '>'} {limit:g}"
            ),
        ),
        GateCheck(
            "quantization_bound",
            violations == 0,
            value=float(report["max_abs_error"]),
            threshold=float(report["bound_at_max"]),
            detail=(
                f"max |dy| {report['max_abs_error']:.3g} (bound there "
                f"{report['bound_at_max']:.3g}); {violations} of {report['n_rows']} rows over "
                "their bound"
            ),
        ),
    ]


def quantization_gate(
    candidate: ModelBundle,
    eval_frame: pd.DataFrame | None,
    gates: GateSettings,
    *,
    reference: ModelBundle | None = None,
) -> list[GateCheck]:
    """Quantisation gates of a ``linear-int8`` candidate (for ``evaluate_gates``).

    With the float ``reference`` the gates are measured again on ``eval_frame``; without it
    they check the figures the quantisation recorded on the same test rows
    (``metrics.json`` → ``quantization``).
    """
    from regressops.training.gates import GateCheck

    if candidate.quantized is None:
        return []
    if reference is not None and reference.coef is not None and eval_frame is not None:
        X, y = _matrix(reference, eval_frame)
        doc = measure(reference.coef, reference.intercept, candidate.quantized, X, y).to_dict()
        return quantization_checks(doc, gates)
    recorded = candidate.metrics.get("quantization")
    if not isinstance(recorded, Mapping) or "r2_drop" not in recorded:
        return [GateCheck("quantization", False, detail="no quantisation report in the bundle")]
    return quantization_checks(recorded, gates)


def heldout_matrix(bundle: ModelBundle, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The model matrix and targets of the rows ``bundle`` was tested on (:func:`heldout_rows`)."""
    return _matrix(bundle, heldout_rows(bundle, settings))


def heldout_rows(bundle: ModelBundle, settings: Settings) -> pd.DataFrame:
    """Reload the rows ``bundle`` was tested on (features and target; :func:`split_frames`)."""
    return split_frames(bundle, settings)[1]


def split_frames(bundle: ModelBundle, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reload the rows ``bundle`` was trained and tested on: ``(train, test)`` frames.

    The data, the clean lake version and the split come from the bundle's lineage, as
    ``train`` recorded them.

    Raises
    ------
    BundleError
        The lineage does not say where the data or the split came from.
    """
    from regressops.data.selection import DataSelection
    from regressops.data.split import split_from_description
    from regressops.training.sources import load_training_data

    lineage = bundle.lineage
    split = lineage.get("split")
    source = lineage.get("source")
    if not isinstance(split, Mapping) or source not in ("dataset", "lake", "file"):
        raise BundleError(
            f"bundle {bundle.name!r} does not record its data and split (lineage.json), so its "
            "test rows cannot be found",
            reason="no_lineage",
        )
    selection = DataSelection(
        dataset=None if source == "file" else str(lineage.get("dataset")),
        data=str(lineage["path"]) if source == "file" else None,
        target=bundle.spec.target,
        features=bundle.spec.names,
        data_version=lineage.get("clean_version") if source == "lake" else None,
    )
    td = load_training_data(
        selection,
        settings=settings,
        key=split.get("key") if split.get("method") == "key_hash" else None,
    )
    rows = split_from_description(dict(split), keys=td.keys)
    return td.frame.iloc[rows.train], td.frame.iloc[rows.test]


def quantized_metrics(
    source: ModelBundle,
    report: QuantizationReport,
    bundle: ModelBundle,
    test: tuple[np.ndarray, np.ndarray],
    train: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """``metrics.json`` of the quantised bundle: its own test and training metrics (as
    ``train`` writes them), the float model's under ``float``, the quantisation report, and
    the float fit's details under ``fit``."""
    from regressops.training.metrics import regression_metrics

    (X, y), (X_train, y_train) = test, train
    metrics: dict[str, Any] = {
        **regression_metrics(y, bundle.predict_matrix(X)),
        "n_test": len(y),
        "train": {**regression_metrics(y_train, bundle.predict_matrix(X_train)), "n": len(y_train)},
        "float": {
            k: source.metrics[k] for k in ("r2", "rmse", "mse", "mae", "train")
            if k in source.metrics
        },
        "quantization": report.to_dict(),
    }  # fmt: skip
    if "fit" in source.metrics:
        metrics["fit"] = source.metrics["fit"]
    return metrics


def _matrix(bundle: ModelBundle, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    spec = dataclasses.replace(bundle.spec, unknown="ignore")
    target = bundle.spec.target
    if target is None or target not in frame.columns:
        raise BundleError(f"the test rows lack the target column {target!r}", reason="no_target")
    return spec.transform(frame), frame[target].to_numpy(dtype=np.float64)
