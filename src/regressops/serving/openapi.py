"""``/openapi.json``: FastAPI's document plus the prediction routes, built from the model's spec.

The prediction routes are answered by the ASGI edge (:mod:`regressops.serving.edge`), so they
are described here: request bodies from the served model's FeatureSpec (names, types,
categories, row width, batch limit), responses from the pydantic models in
:mod:`regressops.serving.schemas`, and every status the route can answer. The document is
rebuilt when a reload changes the model.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from regressops.serving.problems import protocol_of
from regressops.serving.routes_v2 import NUMERIC_DATATYPES
from regressops.serving.schemas import (
    RESPONSE_MODELS,
    batch_schema,
    columns_schema,
    record_schema,
    row_schema,
)
from regressops.serving.security import OPEN_PATHS
from regressops.serving.state import ServingState

_REF = "#/components/schemas/{model}"
_SEED, _MLFLOW, _V2 = "seed API", "MLflow scoring protocol", "Open Inference Protocol (V2)"
_ERROR_MODEL = {"seed": "ErrorResponse", "mlflow": "MlflowError", "v2": "V2Error"}
_STATUS_TEXT = {
    400: "malformed body",
    401: "API key missing or invalid",
    404: "unknown model or version",
    413: "body or batch too large",
    415: "unsupported content type",
    422: "input does not match the model's features",
    503: "no model loaded, or the prediction log sink is not keeping up",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(
    *,
    op_id: str,
    tag: str,
    summary: str,
    description: str,
    body: dict[str, Any],
    ok: str,
    error: str,
    statuses: tuple[int, ...],
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "predictions", "content": _json(_ref(ok))}}
    for status in statuses:
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": _json(_ref(error)),
        }
    op: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "description": description,
        "operationId": op_id,
        "requestBody": {"required": True, "content": body},
        "responses": responses,
    }
    if parameters:
        op["parameters"] = parameters
    return op


def prediction_paths(state: ServingState) -> dict[str, Any]:
    """OpenAPI path items of the prediction routes for the currently served model."""
    spec = state.predictor.spec if state.predictor is not None else None
    max_rows = state.settings.serve.max_rows
    row, record, batch = row_schema(spec), record_schema(spec), batch_schema(spec, max_rows)
    one = {
        "oneOf": [
            row,
            record,
            {"type": "array", "items": {"oneOf": [row, record]}, "minItems": 1, "maxItems": 1},
            {"type": "string", "description": "JSON text of one row or record (json.dumps(X))"},
        ]
    }
    seed_status = (400, 413, 415, 422, 503)
    predict_object = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": batch,
            "on_error": {
                "type": "string",
                "enum": ["fail", "report"],
                "default": "fail",
                "description": "report: list invalid records in errors and score the rest",
            },
        },
    }
    predict_body = {
        "oneOf": [
            predict_object,
            {
                "type": "array",
                "items": record,
                "minItems": 1,
                "maxItems": max_rows,
                "description": "a bare list of records (the seed service's list[dict] form)",
            },
        ]
    }
    mlflow_json = {
        "type": "object",
        "description": "exactly one of the four input formats (params is ignored)",
        "oneOf": [
            {
                "type": "object",
                "required": ["dataframe_split"],
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "required": ["columns", "data"],
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": row, "minItems": 1},
                        },
                    }
                },
            },
            {
                "type": "object",
                "required": ["dataframe_records"],
                "properties": {
                    "dataframe_records": {"type": "array", "items": record, "minItems": 1}
                },
            },
            *(
                {
                    "type": "object",
                    "required": [key],
                    "properties": {
                        key: {"oneOf": [batch["oneOf"][0], batch["oneOf"][1], columns_schema(spec)]}
                    },
                }
                for key in ("instances", "inputs")
            ),
        ],
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": [*sorted(NUMERIC_DATATYPES), "BYTES"]},
            "data": {"type": "array", "items": {"type": ["number", "string", "array"]}},
            "parameters": {"type": "object"},
        },
    }
    infer_body = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        },
    }
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    infer_doc = (
        "One [N, F] numeric tensor (features in model order), or one input per feature with "
        'parameters.content_type "pd" (BYTES for categorical features). Answers output '
        "'predict', shape [N], FP64."
    )
    return {
        "/stream": {
            "post": _operation(
                op_id="stream",
                tag=_SEED,
                summary="Predict one record",
                description="data: a positional row, a named record, or JSON text of either.",
                body=_json({"type": "object", "required": ["data"], "properties": {"data": one}}),
                ok="StreamResponse",
                error="ErrorResponse",
                statuses=seed_status,
            )
        },
        "/batch": {
            "post": _operation(
                op_id="batch",
                tag=_SEED,
                summary="Predict many records",
                description=f"data: rows, records, or JSON text of either; at most {max_rows}.",
                body=_json({"type": "object", "required": ["data"], "properties": {"data": batch}}),
                ok="BatchResponse",
                error="ErrorResponse",
                statuses=seed_status,
            )
        },
        "/predict": {
            "post": _operation(
                op_id="predict",
                tag=_SEED,
                summary="Predict named records, optionally per record",
                description='A bare list of records, or {"data": ..., "on_error": ...}; with '
                '"on_error": "report" invalid records are listed in errors.',
                body=_json(predict_body),
                ok="PredictResponse",
                error="ErrorResponse",
                statuses=seed_status,
            )
        },
        "/invocations": {
            "post": _operation(
                op_id="invocations",
                tag=_MLFLOW,
                summary="MLflow scoring protocol",
                description="JSON (dataframe_split, dataframe_records, instances, inputs) or CSV.",
                body={**_json(mlflow_json), "text/csv": {"schema": {"type": "string"}}},
                ok="MlflowPredictions",
                error="MlflowError",
                statuses=(400, 413, 415, 503),
            )
        },
        "/v2/models/{name}/infer": {
            "post": _operation(
                op_id="v2_infer",
                tag=_V2,
                summary="Inference",
                description=infer_doc,
                body=_json(infer_body),
                ok="V2InferResponse",
                error="V2Error",
                statuses=(400, 404, 413, 415, 503),
                parameters=[name_param],
            )
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": _operation(
                op_id="v2_infer_version",
                tag=_V2,
                summary="Inference on a model version",
                description=infer_doc,
                body=_json(infer_body),
                ok="V2InferResponse",
                error="V2Error",
                statuses=(400, 404, 413, 415, 503),
                parameters=[name_param, version_param],
            )
        },
    }


def build_openapi(app: FastAPI, state: ServingState) -> dict[str, Any]:
    """The whole OpenAPI document of the app."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _, defs = models_json_schema([(m, "serialization") for m in RESPONSE_MODELS], ref_template=_REF)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(defs.get("$defs", {}))
    schema["paths"].update(prediction_paths(state))
    if state.guard.enabled:
        components["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        }
        for path, item in schema["paths"].items():
            if path in OPEN_PATHS:
                continue
            for op in item.values():
                op["security"] = [{"ApiKey": []}, {"Bearer": []}]
                op["responses"].setdefault(
                    "401",
                    {
                        "description": _STATUS_TEXT[401],
                        "content": _json(_ref(_ERROR_MODEL[protocol_of(path)])),
                    },
                )
    return schema
