"""The Open Inference Protocol (KServe V2) over HTTP/JSON.

``POST /v2/models/{name}[/versions/{version}]/infer`` accepts either one ``[N, F]`` numeric
tensor (FP64, FP32, FP16, INT*, UINT*) holding the features in model order, or one input per
feature (``parameters.content_type == "pd"``, or several inputs named by feature), shape ``[N]``,
with BYTES for categorical features. It answers one output ``predict``, shape ``[N]``, FP64,
and echoes the request ``id``. Unknown parameters are ignored. Errors are ``{"error": ...}``
with 400 (bad input), 404 (unknown model or version) or 503 (not ready). The binary tensor
extension is not supported: clients send ``binary_data=False``.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from fastapi import APIRouter, Request

from regressops import __version__
from regressops.features import CategoricalFeature
from regressops.serving.edge import HotReply, HotRequest, decode_json, dumps, require_json
from regressops.serving.predictor import Predictor, Scored
from regressops.serving.problems import ApiError
from regressops.serving.schemas import (
    V2Error,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
    V2TensorMetadata,
)
from regressops.serving.state import ServingState

NUMERIC_DATATYPES = frozenset(
    {
        "FP64",
        "FP32",
        "FP16",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
OUTPUT = "predict"
_NUMBERS = frozenset({int, float})

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])


def check_model(predictor: Predictor, name: str, version: str | None) -> None:
    """404 unless ``name`` (and ``version``, when given) is the served model."""
    if name != predictor.name:
        raise ApiError(
            404, "not_found", f"unknown model {name!r}; this server serves {predictor.name!r}"
        )
    if version is not None and version != predictor.version:
        raise ApiError(
            404,
            "not_found",
            f"unknown version {version!r} of model {name!r}; serving version {predictor.version!r}",
        )


def infer(state: ServingState, req: HotRequest) -> HotReply:
    """``POST /v2/models/{name}[/versions/{version}]/infer``."""
    predictor = state.require_predictor()
    check_model(predictor, req.path_params["name"], req.path_params.get("version"))
    if b"inference-header-content-length" in req.headers:
        raise ApiError(
            400,
            "invalid_body",
            "binary tensor data is not supported; send JSON (binary_data=False)",
        )
    require_json(req)
    doc = decode_json(req.body)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise ApiError(400, "invalid_body", 'expected a JSON object with a non-empty "inputs" list')
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError(400, "invalid_body", '"id" must be a string')
    params = doc.get("parameters") or {}
    inputs = doc["inputs"]
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise ApiError(400, "invalid_body", f"input {i} must be an object with a name")
    _check_outputs(doc.get("outputs"))
    per_column = (
        (isinstance(params, dict) and params.get("content_type") == "pd")
        or len(inputs) > 1
        or any(
            isinstance(t.get("parameters"), dict) and t["parameters"].get("content_type") == "pd"
            for t in inputs
        )
        or inputs[0]["name"] in predictor.names
    )
    scored = _columns(inputs, predictor) if per_column else _tensor(inputs[0], predictor)
    out: dict[str, Any] = {
        "model_name": predictor.name,
        "model_version": predictor.version,
        "outputs": [
            {"name": OUTPUT, "shape": [len(scored)], "datatype": "FP64", "data": scored.predictions}
        ],
    }
    if request_id is not None:
        out["id"] = request_id
    return HotReply(dumps(out), scored=scored, predictor=predictor)


def _check_outputs(outputs: Any) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise ApiError(400, "invalid_body", '"outputs" must be a list of objects')
    unknown = [o.get("name") for o in outputs if o.get("name") != OUTPUT]
    if unknown:
        raise ApiError(
            400, "invalid_body", f"unknown output(s) {unknown}; this model has {[OUTPUT]}"
        )


def _shape(tensor: dict[str, Any]) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise ApiError(
            400, "invalid_body", f"input {tensor.get('name')!r}: shape must be a list of sizes"
        )
    return shape


def _flat(tensor: dict[str, Any], shape: list[int]) -> list[Any]:
    data = tensor.get("data")
    if not isinstance(data, list):
        raise ApiError(400, "invalid_body", f"input {tensor['name']!r}: data must be a list")
    if data and isinstance(data[0], list):  # nested form: flatten one level at a time
        while data and isinstance(data[0], list):
            if not all(isinstance(d, list) for d in data):
                raise ApiError(400, "invalid_body", f"input {tensor['name']!r}: ragged data")
            data = list(chain.from_iterable(data))
    size = 1
    for d in shape:
        size *= d
    if len(data) != size:
        raise ApiError(
            400,
            "invalid_body",
            f"input {tensor['name']!r}: shape {shape} needs {size} values, got {len(data)}",
        )
    return data


def _tensor(tensor: dict[str, Any], predictor: Predictor) -> Scored:
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in NUMERIC_DATATYPES:
        raise ApiError(
            400,
            "invalid_body",
            f"input {tensor['name']!r}: datatype {datatype!r} is not a numeric tensor type; send "
            'categorical features as one BYTES input per feature with content_type "pd"',
        )
    if not predictor.numeric_only:
        raise ApiError(
            400,
            "invalid_body",
            "this model has categorical features: send one input per feature "
            f'{predictor.names} with parameters.content_type "pd"',
        )
    shape = _shape(tensor)
    n_features = predictor.n_features
    if len(shape) != 2 or shape[1] != n_features:
        if not (len(shape) == 1 and n_features == 1):
            raise ApiError(
                400,
                "invalid_body",
                f"input {tensor['name']!r}: shape must be [N, {n_features}] (features "
                f"{predictor.names}), got {shape}",
            )
        shape = [shape[0], 1]
    flat = _flat(tensor, shape)
    if not set(map(type, flat)) <= _NUMBERS:
        raise ApiError(400, "invalid_body", f"input {tensor['name']!r}: data must be numbers")
    width = shape[1]
    return predictor.predict_rows([flat[i : i + width] for i in range(0, len(flat), width)])


def _columns(inputs: list[dict[str, Any]], predictor: Predictor) -> Scored:
    kinds = {f.name: isinstance(f, CategoricalFeature) for f in predictor.spec.features}
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        name = tensor["name"]
        if name not in kinds:
            continue  # an input that is not a feature is ignored, as by every path
        if name in columns:
            raise ApiError(400, "invalid_body", f"input {name!r} is given twice")
        shape = _shape(tensor)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ApiError(400, "invalid_body", f"input {name!r}: shape must be [N] or [N, 1]")
        datatype = tensor.get("datatype")
        datatype = datatype if isinstance(datatype, str) else repr(datatype)
        expected = "BYTES" if kinds[name] else "a numeric type"
        if (datatype == "BYTES") != kinds[name] or (
            not kinds[name] and datatype not in NUMERIC_DATATYPES
        ):
            raise ApiError(
                400, "invalid_body", f"input {name!r}: datatype {datatype!r}; expected {expected}"
            )
        columns[name] = _flat(tensor, shape)
    return predictor.predict_columns(columns)


# ---------------------------------------------------------------------- metadata and health
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": V2Error, "description": "unknown model or version"},
    503: {"model": V2Error, "description": "no model loaded"},
}


@router.get("/health/live", response_model=V2Live, summary="Server liveness")
def live() -> V2Live:
    """The server process answers."""
    return V2Live(live=True)


@router.get(
    "/health/ready",
    response_model=V2Ready,
    responses={503: _ERRORS[503]},
    summary="Server readiness",
)
def ready(request: Request) -> V2Ready:
    """200 once the model is loaded, 503 before."""
    request.app.state.serving.require_predictor()
    return V2Ready(ready=True)


@router.get("", response_model=V2ServerMetadata, summary="Server metadata")
def server_metadata() -> V2ServerMetadata:
    """Name, version and protocol extensions of the server."""
    return V2ServerMetadata(name="regressops", version=__version__, extensions=[])


def _metadata(predictor: Predictor) -> V2ModelMetadata:
    inputs = [
        V2TensorMetadata(
            name=f.name,
            datatype="BYTES" if isinstance(f, CategoricalFeature) else "FP64",
            shape=[-1],
        )
        for f in predictor.spec.features
    ]
    params: dict[str, Any] = {"content_type": "pd"}
    if predictor.numeric_only:
        params["tensor_input"] = {"datatype": "FP64", "shape": [-1, predictor.n_features]}
    return V2ModelMetadata(
        name=predictor.name,
        versions=[predictor.version],
        platform=f"regressops-{predictor.bundle.kind}",
        inputs=inputs,
        outputs=[V2TensorMetadata(name=OUTPUT, datatype="FP64", shape=[-1])],
        parameters=params,
    )


@router.get(
    "/models/{name}", response_model=V2ModelMetadata, responses=_ERRORS, summary="Model metadata"
)
def model_metadata(name: str, request: Request) -> V2ModelMetadata:
    """Inputs (one per feature; a single ``[N, F]`` tensor for numeric models) and output."""
    predictor = request.app.state.serving.require_predictor()
    check_model(predictor, name, None)
    return _metadata(predictor)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=V2ModelMetadata,
    responses=_ERRORS,
    summary="Model version metadata",
)
def model_version_metadata(name: str, version: str, request: Request) -> V2ModelMetadata:
    """Metadata of one version (only the served version exists)."""
    predictor = request.app.state.serving.require_predictor()
    check_model(predictor, name, version)
    return _metadata(predictor)


@router.get(
    "/models/{name}/ready",
    response_model=V2ModelReady,
    responses=_ERRORS,
    summary="Model readiness",
)
def model_ready(name: str, request: Request) -> V2ModelReady:
    """200 when the model is loaded and named ``name``."""
    predictor = request.app.state.serving.require_predictor()
    check_model(predictor, name, None)
    return V2ModelReady(name=name, ready=True)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_model=V2ModelReady,
    responses=_ERRORS,
    summary="Model version readiness",
)
def model_version_ready(name: str, version: str, request: Request) -> V2ModelReady:
    """200 when this version is the one loaded."""
    predictor = request.app.state.serving.require_predictor()
    check_model(predictor, name, version)
    return V2ModelReady(name=name, ready=True)
