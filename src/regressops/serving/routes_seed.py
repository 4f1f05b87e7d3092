"""The seed API: ``/model-check``, ``/stream``, ``/batch`` and ``/predict``.

``/stream`` and ``/batch`` take ``{"data": ...}`` in three forms: JSON text of the input (the
seed clients send ``json.dumps(X)`` inside JSON), positional lists, or named records.
``/predict`` takes the same ``data`` plus ``"on_error": "report"`` to list invalid records in
``errors`` instead of failing the batch, or, as the seed service's ``basic_predict(input_data:
list[dict])`` does, a bare JSON list of records (``[{"bmi": 0.06}, {"bmi": 0.01}]``).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import APIRouter, Request

from regressops.features import NumericFeature
from regressops.serving.edge import HotReply, HotRequest, decode_json, dumps, require_json
from regressops.serving.problems import ApiError
from regressops.serving.schemas import ErrorResponse, FeatureInfo, ModelCheck
from regressops.serving.state import ServingState

router = APIRouter(tags=["seed API"])


def _data(req: HotRequest, *, bare_list: bool = False) -> tuple[dict[str, Any], Any]:
    """The request's document and its input; ``bare_list`` also takes a JSON list as the input."""
    require_json(req)
    doc = decode_json(req.body)
    if bare_list and isinstance(doc, list):
        return {}, doc
    if not isinstance(doc, dict) or "data" not in doc:
        expected = "a JSON list of records, or " if bare_list else ""
        raise ApiError(
            400,
            "invalid_body",
            f'expected {expected}a JSON object with a "data" field holding the input',
        )
    data = doc["data"]
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ApiError(
                400, "malformed_json", f'"data" is a string but not JSON text of the input: {exc}'
            ) from None
    return doc, data


def stream(state: ServingState, req: HotRequest) -> HotReply:
    """``POST /stream``: one record → ``{"prediction", "model_version", "request_id"}``."""
    predictor = state.require_predictor()
    _, data = _data(req)
    scored = predictor.predict_one(data)
    body = orjson.dumps(
        {
            "prediction": float(scored.predictions[0]),
            "model_version": predictor.version,
            "request_id": req.request_id,
        }
    )
    return HotReply(body, scored=scored, predictor=predictor)


def batch(state: ServingState, req: HotRequest) -> HotReply:
    """``POST /batch``: many records → ``{"predictions", "model_version", "request_id"}``."""
    predictor = state.require_predictor()
    _, data = _data(req)
    scored = predictor.predict_batch(data)
    body = dumps(
        {
            "predictions": scored.predictions,
            "model_version": predictor.version,
            "request_id": req.request_id,
        }
    )
    return HotReply(body, scored=scored, predictor=predictor)


def predict(state: ServingState, req: HotRequest) -> HotReply:
    """``POST /predict``: named records (bare, or under ``data``) → ``{"predictions", "version",
    "errors"}``."""
    predictor = state.require_predictor()
    doc, data = _data(req, bare_list=True)
    on_error = doc.get("on_error", "fail")
    if on_error not in ("fail", "report"):
        raise ApiError(400, "invalid_body", '"on_error" must be "fail" or "report"')
    if on_error == "fail":
        scored = predictor.predict_batch(data)
        body = dumps(
            {"predictions": scored.predictions, "version": predictor.version, "errors": None}
        )
        return HotReply(body, scored=scored, predictor=predictor)
    predictions, errors, valid = predictor.predict_each(data)
    body = orjson.dumps(
        {
            "predictions": predictions,
            "version": predictor.version,
            "errors": [e.to_dict() for e in errors] or None,
        }
    )
    return HotReply(body, scored=valid, predictor=predictor)


@router.get(
    "/model-check",
    response_model=ModelCheck,
    responses={503: {"model": ErrorResponse, "description": "no model loaded"}},
    summary="Health, identity, features, metrics and lineage of the served model",
)
def model_check(request: Request) -> ModelCheck:
    """Describe the served model."""
    state: ServingState = request.app.state.serving
    predictor = state.require_predictor()
    bundle = predictor.bundle
    features = []
    for f in bundle.spec.features:
        if isinstance(f, NumericFeature):
            features.append(
                FeatureInfo(
                    name=f.name,
                    type="numeric",
                    min=_finite(f.min),
                    max=_finite(f.max),
                    mean=_finite(f.mean),
                )
            )
        else:
            features.append(
                FeatureInfo(name=f.name, type="categorical", categories=list(f.categories))
            )
    return ModelCheck(
        status="ready",
        name=bundle.name,
        version=bundle.version,
        kind=bundle.kind,
        trained_at=bundle.created_at,
        features=features,
        metrics=bundle.metrics,
        lineage=bundle.lineage,
        last_reload=state.last_reload or None,
        shadow=state.shadow.identity() if state.shadow is not None else None,
    )


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None
