"""Response models of every endpoint, and request schemas derived from the model's FeatureSpec.

Responses are pydantic models (they document ``/openapi.json`` and type the FastAPI routes).
Request bodies of the prediction routes are JSON Schemas built from the served model's
:class:`~regressops.features.FeatureSpec` by :func:`record_schema` and :func:`row_schema`:
exact feature names, numbers for numeric features, the known categories for categorical ones.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from regressops.features import CategoricalFeature, FeatureSpec, NumericFeature


# ---------------------------------------------------------------------- errors
class ErrorResponse(BaseModel):
    """An error from the seed and operations endpoints."""

    reason: str = Field(description="machine-readable reason code, e.g. 'missing_feature'")
    message: str = Field(description="what was wrong and what was expected")
    request_id: str | None = None


class MlflowError(BaseModel):
    """An error in the MLflow scoring protocol's format."""

    error_code: str
    message: str


class V2Error(BaseModel):
    """An error in the Open Inference Protocol's format."""

    error: str


# ---------------------------------------------------------------------- seed API
class StreamResponse(BaseModel):
    """The prediction for one record."""

    prediction: float
    model_version: str
    request_id: str


class BatchResponse(BaseModel):
    """One prediction per record, in request order."""

    predictions: list[float]
    model_version: str
    request_id: str


class RecordError(BaseModel):
    """Why one record of a ``/predict`` batch was not scored."""

    index: int
    reason: str
    message: str


class PredictResponse(BaseModel):
    """``/predict``: predictions (``null`` for records listed in ``errors``)."""

    predictions: list[float | None]
    version: str
    errors: list[RecordError] | None = None


class FeatureInfo(BaseModel):
    """One input feature of the served model."""

    name: str
    type: Literal["numeric", "categorical"]
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None


class ModelCheck(BaseModel):
    """Health and identity of the served model."""

    status: Literal["ready"]
    name: str
    version: str
    kind: str
    trained_at: str
    features: list[FeatureInfo]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    last_reload: dict[str, Any] | None = None
    shadow: dict[str, str] | None = Field(
        None, description="the challenger scoring every served row in shadow: name and version"
    )


# ---------------------------------------------------------------------- operations
class Liveness(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class LogHealth(BaseModel):
    """The prediction log's state, as ``/readyz`` reports it."""

    failing: bool
    pending_rows: int
    dropped_rows: int
    when_unwritable: str


class Readiness(BaseModel):
    """Whether a model is loaded and which (and whether the prediction log keeps up)."""

    ready: bool
    name: str | None = None
    version: str | None = None
    prediction_log: LogHealth | None = None


class ReloadResult(BaseModel):
    """A successful reload."""

    reloaded: bool
    name: str
    version: str
    previous_version: str | None
    trigger: str
    at: str
    workers: str | None = Field(
        None, description="with several workers: the in-place reload every worker then does"
    )


# ---------------------------------------------------------------------- MLflow
class MlflowPredictions(BaseModel):
    """The MLflow scoring protocol's answer."""

    predictions: list[float]


# ---------------------------------------------------------------------- Open Inference (V2)
class V2Live(BaseModel):
    """``/v2/health/live``."""

    live: bool


class V2Ready(BaseModel):
    """``/v2/health/ready``."""

    ready: bool


class V2ModelReady(BaseModel):
    """``/v2/models/{name}/ready``."""

    name: str
    ready: bool


class V2ServerMetadata(BaseModel):
    """``/v2``."""

    name: str
    version: str
    extensions: list[str]


class V2TensorMetadata(BaseModel):
    """An input or output of the model."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None


class V2ModelMetadata(BaseModel):
    """``/v2/models/{name}[/versions/{version}]``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
    parameters: dict[str, Any] | None = None


class V2OutputTensor(BaseModel):
    """The ``predict`` output."""

    name: str
    shape: list[int]
    datatype: Literal["FP64"]
    data: list[float]


class V2InferResponse(BaseModel):
    """An inference answer."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorResponse, MlflowError, V2Error, StreamResponse, BatchResponse, RecordError,
    PredictResponse, MlflowPredictions, V2InferResponse, V2OutputTensor,
)  # fmt: skip


# ---------------------------------------------------------------------- request schemas
def feature_schema(feature: NumericFeature | CategoricalFeature) -> dict[str, Any]:
    """JSON Schema of one feature value."""
    if isinstance(feature, NumericFeature):
        return {"type": "number", "description": f"numeric feature {feature.name!r}"}
    return {"type": "string", "enum": list(feature.categories)}


def record_schema(spec: FeatureSpec | None) -> dict[str, Any]:
    """JSON Schema of a named record: exactly the spec's features."""
    if spec is None:
        return {"type": "object", "description": "an object of feature values"}
    return {
        "type": "object",
        "properties": {f.name: feature_schema(f) for f in spec.features},
        "required": spec.names,
        "additionalProperties": False,
        "description": "one record: every feature by name",
    }


def row_schema(spec: FeatureSpec | None) -> dict[str, Any]:
    """JSON Schema of a positional row: the feature values in spec order."""
    if spec is None:
        return {"type": "array", "description": "feature values in model order"}
    n = len(spec.features)
    schema: dict[str, Any] = {
        "type": "array",
        "minItems": n,
        "maxItems": n,
        "description": f"feature values in order: {spec.names}",
    }
    if spec.is_numeric_only:
        schema["items"] = {"type": "number"}
    else:
        schema["prefixItems"] = [feature_schema(f) for f in spec.features]
        schema["items"] = False
    return schema


def batch_schema(spec: FeatureSpec | None, max_rows: int) -> dict[str, Any]:
    """JSON Schema of a batch: rows, records, or JSON text of either."""
    return {
        "oneOf": [
            {"type": "array", "items": row_schema(spec), "minItems": 1, "maxItems": max_rows},
            {"type": "array", "items": record_schema(spec), "minItems": 1, "maxItems": max_rows},
            {"type": "string", "description": "JSON text of rows or records (json.dumps(X))"},
        ]
    }


def columns_schema(spec: FeatureSpec | None) -> dict[str, Any]:
    """JSON Schema of columnar input: one list of values per feature."""
    if spec is None:
        return {"type": "object"}
    return {
        "type": "object",
        "properties": {
            f.name: {"type": "array", "items": feature_schema(f), "minItems": 1}
            for f in spec.features
        },
        "required": spec.names,
        "additionalProperties": False,
    }
