"""Model bundle: a directory a model is saved to and loaded from, never with pickle.

Layout::

    <bundle>/
      model.json     format version, name, kind, estimator parameters, feature spec, and
                     for linear kinds the coefficients and intercept (model-space, i.e. for
                     the spec's output columns) — for ``linear-int8`` the int8 values and
                     scales under ``quantization`` instead of ``coef``; for other kinds a
                     pointer to a safely serialised artefact (``artifact``, relative to the
                     bundle)
      metrics.json   evaluation metrics (test-set ``r2``, ``rmse``, ``mse``, ``mae`` at the top
                     level; more under nested keys)
      lineage.json   where the training data came from (source, rows, hash, split, seed,
                     package versions)
      reference.json the drift reference: a profile of the training rows and predictions
                     (:mod:`regressops.monitoring.reference`); absent in older bundles

Loading a linear bundle needs numpy only. Bundles are written atomically: to a temporary
sibling directory, then renamed into place, so a failed save leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from regressops.errors import BundleError, DataError
from regressops.features import FeatureSpec
from regressops.models.quantize import INT8_KIND, QuantizedCoefficients

logger = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
LINEAR_KINDS = frozenset({"linear", "ridge", INT8_KIND})
MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
LINEAGE_FILE = "lineage.json"

# The artefact format of non-linear kinds (``model.json["artifact_format"]``): skops, read by
# regressops.models.skops_io, imported only for such a bundle (a linear bundle needs numpy only).
SKOPS_FORMAT = "skops"


@dataclass
class ModelBundle:
    """A trained model with its feature spec, metrics and lineage.

    Parameters
    ----------
    name : str
        Model name (by default the dataset's name).
    kind : str
        Model kind: ``"linear"``, ``"ridge"``, or a non-linear kind with an artefact.
    spec : FeatureSpec
        The fitted features the model takes.
    coef : ndarray of shape (n_outputs,), optional
        Coefficients over ``spec.output_names`` (linear kinds).
    intercept : float, default=0.0
        Intercept (linear kinds).
    params : dict
        The estimator's hyper-parameters, for the record.
    metrics : dict
        Evaluation metrics; ``metrics.json``.
    lineage : dict
        Provenance of the training data; ``lineage.json``.
    version : str
        Model version label (a registry version once registered; ``"local"`` otherwise).
    created_at : str
        ISO-8601 UTC time of training.
    estimator : object, optional
        The in-memory estimator for non-linear kinds (loaded from its artefact).
    quantized : QuantizedCoefficients, optional
        For kind ``linear-int8``: the stored int8 coefficients; ``coef`` then holds their
        dequantised float values, which predictions use.
    extra : dict
        Further JSON-serialisable fields kept in ``model.json`` (e.g. ``artifact``).
    """

    name: str
    kind: str
    spec: FeatureSpec
    coef: np.ndarray | None = None
    intercept: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    version: str = "local"
    created_at: str = ""
    estimator: Any = None
    quantized: QuantizedCoefficients | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_linear(self) -> bool:
        """True when the model is ``X @ coef + intercept`` (served with numpy only)."""
        return self.kind in LINEAR_KINDS and self.coef is not None

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Predict from the model matrix (the output of the spec's transform)."""
        if self.is_linear:
            assert self.coef is not None
            return X @ self.coef + self.intercept
        if self.estimator is None:
            raise BundleError(f"bundle {self.name!r} of kind {self.kind!r} has no estimator loaded")
        return np.asarray(self.estimator.predict(X), dtype=np.float64)

    def predict_records(
        self, records: Sequence[Mapping[str, Any]], *, impute: bool = True
    ) -> np.ndarray:
        """Predict named records (``[{"bmi": 0.06}, ...]``).

        A missing value (``None`` or NaN) gets the impute value learned at training, exactly as
        training and :meth:`predict_frame` treat it; ``impute=False`` refuses it instead.
        """
        return self.predict_matrix(self.spec.transform_records(records, impute=impute))

    def predict_frame(self, frame: Any) -> np.ndarray:
        """Predict a DataFrame (or mapping of columns); missing values are imputed."""
        return self.predict_matrix(self.spec.transform(frame))

    def predict_finite(self, frame: Any) -> np.ndarray:
        """:meth:`predict_frame`, refusing a prediction that is not finite (as the API does).

        Raises
        ------
        DataError
            ``non_finite_prediction``: an input such as ``1e308`` overflows the model.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            preds = np.asarray(self.predict_frame(frame), dtype=np.float64).reshape(-1)
        return finite_predictions(preds)

    def model_json(self) -> dict[str, Any]:
        """Return the content of ``model.json``."""
        doc: dict[str, Any] = {
            "format_version": BUNDLE_FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "created_at": self.created_at,
            "params": _jsonable(self.params),
            "feature_spec": self.spec.to_dict(),
            "output_names": self.spec.output_names,
        }
        if self.quantized is not None:
            doc["quantization"] = self.quantized.to_dict()
            doc["intercept"] = float(self.intercept)
        elif self.coef is not None:
            doc["coef"] = [float(c) for c in np.asarray(self.coef, dtype=np.float64)]
            doc["intercept"] = float(self.intercept)
        doc.update(_jsonable(self.extra))
        return doc

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = True,
        write_artifacts: Callable[[Path], dict[str, Any]] | None = None,
    ) -> Path:
        """Write the bundle to ``path`` atomically.

        Parameters
        ----------
        path : path-like
            Target directory; created, or replaced when ``overwrite``.
        overwrite : bool, default=True
            Replace an existing bundle at ``path``; otherwise raise :class:`BundleError`.
        write_artifacts : callable, optional
            ``write_artifacts(tmp_dir) -> dict`` writes extra files (e.g. a skops tree) into
            the temporary directory and returns fields merged into ``model.json``.

        Returns
        -------
        Path
            The bundle directory.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise BundleError(f"bundle directory {target} exists; pass overwrite=True")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            doc = self.model_json()
            if write_artifacts is not None:
                doc.update(_jsonable(write_artifacts(tmp)))
            _write_json(tmp / MODEL_FILE, doc)
            _write_json(tmp / METRICS_FILE, _jsonable(self.metrics))
            _write_json(tmp / LINEAGE_FILE, _jsonable(self.lineage))
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("saved %s bundle %r to %s", self.kind, self.name, target)
        return target


def load_bundle(path: str | os.PathLike[str]) -> ModelBundle:
    """Load a bundle saved by :meth:`ModelBundle.save`.

    Linear bundles load with numpy only. Other kinds are loaded by the artefact loader
    registered for their ``artifact_format`` (never pickle).

    Raises
    ------
    BundleError
        The directory or ``model.json`` is missing, unreadable, of an unsupported format
        version, or inconsistent (coefficient count not matching the feature spec).
    """
    root = Path(path)
    model_file = root / MODEL_FILE
    if not model_file.is_file():
        raise BundleError(
            f"no model bundle at {root} (expected {MODEL_FILE} in that directory)",
            reason="bundle_not_found",
        )
    doc = read_json_object(model_file)
    version = doc.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"bundle {root} has format version {version!r}; this regressops reads "
            f"{BUNDLE_FORMAT_VERSION}",
            reason="unsupported_format",
        )
    try:
        spec = FeatureSpec.from_dict(doc["feature_spec"])
        kind = str(doc["kind"])
        name = str(doc["name"])
    except Exception as exc:
        raise BundleError(f"bundle {root} has an invalid model.json: {exc}") from None
    coef = None
    quantized = None
    if kind == INT8_KIND:
        if not isinstance(doc.get("quantization"), Mapping):
            raise BundleError(f"bundle {root} of kind {kind!r} has no quantization section")
        quantized = QuantizedCoefficients.from_dict(doc["quantization"], spec)
        coef = quantized.dequantize()
    elif "coef" in doc:
        coef = np.asarray(doc["coef"], dtype=np.float64)
        if coef.shape != (spec.n_outputs,) or not np.isfinite(coef).all():
            raise BundleError(
                f"bundle {root}: {coef.size} coefficients for {spec.n_outputs} model columns, "
                "or non-finite values"
            )
    estimator = None
    fmt = doc.get("artifact_format")
    if coef is None:
        if fmt != SKOPS_FORMAT:
            raise BundleError(
                f"bundle {root} of kind {kind!r} has artefact format {fmt!r}; expected "
                f"{SKOPS_FORMAT!r}",
                reason="unsupported_kind",
            )
        from regressops.models.skops_io import load_skops_estimator

        estimator = load_skops_estimator(root, doc)
    known = {
        "format_version", "name", "version", "kind", "created_at", "params",
        "feature_spec", "output_names", "coef", "intercept", "quantization",
    }  # fmt: skip
    return ModelBundle(
        name=name,
        kind=kind,
        spec=spec,
        coef=coef,
        intercept=float(doc.get("intercept", 0.0)),
        params=dict(doc.get("params", {})),
        metrics=read_json_object(root / METRICS_FILE) if (root / METRICS_FILE).exists() else {},
        lineage=read_json_object(root / LINEAGE_FILE) if (root / LINEAGE_FILE).exists() else {},
        version=str(doc.get("version", "local")),
        created_at=str(doc.get("created_at", "")),
        estimator=estimator,
        quantized=quantized,
        extra={k: v for k, v in doc.items() if k not in known},
    )


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON file holding an object; :class:`BundleError` when it cannot.

    orjson reads it (a drift reference of 4 MB: 0.02 s instead of the json module's 0.11 s);
    what orjson refuses but the json module takes (``NaN``, integers beyond 64 bits in a
    hand-edited file) is read by the json module, whose error is the one reported.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise BundleError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path} does not hold a JSON object")
    return data


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, allow_nan=False)
        fh.write("\n")


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def finite_predictions(preds: np.ndarray) -> np.ndarray:
    """Return ``preds`` when every one is finite; else the one error every path gives.

    Raises
    ------
    DataError
        ``non_finite_prediction``, naming the first record (0-based) whose prediction is not
        finite.
    """
    finite = np.isfinite(preds)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"the prediction for record {i} is not a finite number; its inputs are far "
            "outside the range the model was trained on",
            reason="non_finite_prediction",
            row=i,
        )
    return preds
