"""The MLflow scoring protocol: ``POST /invocations``, ``GET /ping``, ``/health``, ``/version``.

``/invocations`` takes ``application/json`` with exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (``params`` is accepted and ignored), or
``text/csv`` with a header row; it answers ``{"predictions": [...]}``. Other content types get
415; input problems get 400 ``{"error_code", "message"}`` naming the problem but never echoing
the caller's data or the whole schema.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from regressops import __version__
from regressops.errors import SchemaError
from regressops.serving.edge import JSON, HotReply, HotRequest, decode_json, dumps, mime_type
from regressops.serving.predictor import Predictor, Scored
from regressops.serving.problems import ApiError
from regressops.serving.schemas import MlflowError
from regressops.serving.state import ServingState

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CSV = b"text/csv"

router = APIRouter(tags=["MLflow scoring protocol"])


def invocations(state: ServingState, req: HotRequest) -> HotReply:
    """``POST /invocations``."""
    predictor = state.require_predictor()
    mime, _, params = req.content_type.partition(b";")
    mime = mime_type(mime)
    for param in filter(None, (p.strip() for p in params.split(b";"))):
        key, _, value = param.partition(b"=")
        if key.strip().lower() != b"charset" or value.strip().strip(b'"').lower() not in (
            b"utf-8",
            b"utf8",
        ):
            raise ApiError(
                415,
                "unsupported_media_type",
                "only the content type parameter charset=utf-8 is supported",
            )
    if mime == CSV:
        scored = predictor.predict_columns(_csv_columns(req.body, predictor))
    elif mime in (JSON, b""):
        scored = _from_json(decode_json(req.body), predictor)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content type {mime.decode('latin-1')!r} is not supported; send application/json "
            "or text/csv",
        )
    return HotReply(dumps({"predictions": scored.predictions}), scored=scored, predictor=predictor)


def _from_json(doc: Any, predictor: Predictor) -> Scored:
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid_body", f"expected a JSON object with one of {list(FORMATS)}")
    keys = [k for k in FORMATS if k in doc]
    if len(keys) != 1:
        raise ApiError(
            400,
            "invalid_body",
            f"expected exactly one of {list(FORMATS)} in the JSON object, got "
            f"{len(keys)}" + (f" ({keys})" if keys else ""),
        )
    key = keys[0]
    data = doc[key]
    if key == "dataframe_split":
        return _from_split(data, predictor)
    if key == "dataframe_records":
        if not isinstance(data, list):
            raise ApiError(400, "invalid_body", '"dataframe_records" must be a list of records')
        return predictor.predict_records(data)
    if isinstance(data, dict):
        if data and not any(isinstance(v, list) for v in data.values()):
            return predictor.predict_records([data])
        return predictor.predict_columns(data)
    return predictor.predict_batch(data)


def _from_split(split: Any, predictor: Predictor) -> Scored:
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        raise ApiError(
            400,
            "invalid_body",
            '"dataframe_split" must be an object with "data" (a list of rows) and "columns"',
        )
    rows = split["data"]
    columns = split.get("columns")
    if columns is None or columns == predictor.names:
        return predictor.predict_rows(rows)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ApiError(400, "invalid_body", '"columns" must be a list of column names')
    if len(set(columns)) != len(columns):
        raise SchemaError("duplicate names in columns", reason="duplicate")
    expected = set(predictor.names)
    missing = sorted(expected - set(columns))
    if missing:  # columns that are not features are ignored, as by every path (docs/serving.md)
        raise SchemaError(
            f"missing feature(s) {missing}; expected {predictor.names}",
            reason="missing_feature",
        )
    width = len(columns)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise SchemaError(
                f"row {i} must be a list of {width} values", reason="wrong_shape", row=i
            )
    order = [columns.index(n) for n in predictor.names]
    return predictor.predict_rows([[row[j] for j in order] for row in rows])


def _csv_columns(body: bytes, predictor: Predictor) -> dict[str, list[Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_body", "the CSV body is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
        records = [r for r in reader if r]
    except StopIteration:
        raise ApiError(400, "invalid_body", "the CSV body is empty") from None
    except csv.Error as exc:
        raise ApiError(400, "invalid_body", f"the CSV body is malformed: {exc}") from None
    header = [h.strip() for h in header]
    missing = [n for n in predictor.names if n not in header]
    if missing:  # columns that are not features are ignored, as by every path
        raise SchemaError(
            f"CSV header: missing feature(s) {missing}; expected {predictor.names}",
            reason="missing_feature",
        )
    if not records:
        raise ApiError(400, "invalid_body", "the CSV body has a header but no rows")
    index = {h: j for j, h in enumerate(header)}
    numeric = set(predictor.names) - {
        f.name for f in predictor.spec.features if f.kind == "categorical"
    }
    columns: dict[str, list[Any]] = {}
    for name in predictor.names:
        j = index[name]
        col: list[Any] = []
        for i, rec in enumerate(records):
            if len(rec) != len(header):
                raise SchemaError(
                    f"CSV row {i} has {len(rec)} fields; expected {len(header)}",
                    reason="wrong_shape",
                    row=i,
                )
            value = rec[j].strip()
            if name in numeric:
                try:
                    col.append(float(value))
                except ValueError:
                    raise SchemaError(
                        f"CSV row {i}, feature {name!r} is not a number",
                        reason="invalid_type",
                        row=i,
                        feature=name,
                    ) from None
            else:
                col.append(value)
        columns[name] = col
    return columns


_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": MlflowError, "description": "no model loaded"}
}


@router.get(
    "/ping",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, **_NOT_READY},
    summary="MLflow health check",
)
def ping(request: Request) -> PlainTextResponse:
    """200 with a newline when a model is loaded (as ``mlflow models serve``)."""
    request.app.state.serving.require_predictor()
    return PlainTextResponse("\n")


@router.get(
    "/health",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, **_NOT_READY},
    summary="MLflow health check (alias of /ping)",
)
def health(request: Request) -> PlainTextResponse:
    """Same as ``/ping``."""
    return ping(request)


@router.get(
    "/version",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
    summary="Version of the server software",
)
def version() -> PlainTextResponse:
    """The regressops version (``mlflow models serve`` answers its MLflow version here)."""
    return PlainTextResponse(__version__)
