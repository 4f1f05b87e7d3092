"""Request problems and how each protocol spells them.

Every refusal the service makes is an :class:`ApiError` (or a
:class:`~regressops.errors.RegressopsError` raised by the predictor), turned into a 4xx JSON body
in the format of the protocol the path belongs to:

- seed and operations endpoints: ``{"reason": ..., "message": ..., "request_id": ...}``;
- MLflow scoring protocol: ``{"error_code": ..., "message": ...}`` (never the caller's data);
- Open Inference Protocol (``/v2``): ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from regressops.errors import DataError, RegressopsError

Protocol = Literal["seed", "mlflow", "v2"]

_STATUS_BY_REASON = {
    "malformed_json": 400,
    "invalid_body": 400,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "reload_failed": 409,
    "body_too_large": 413,
    "too_many_rows": 413,
    "unsupported_media_type": 415,
    "not_ready": 503,
}
_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "ENDPOINT_NOT_FOUND",
    405: "BAD_REQUEST",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
    503: "TEMPORARILY_UNAVAILABLE",
}
_MLFLOW_PATHS = frozenset({"/invocations", "/ping", "/health", "/version"})


class ApiError(RegressopsError):
    """A request the service refuses, with its HTTP status.

    Parameters
    ----------
    status : int
        HTTP status (4xx, or 503 while no model is loaded).
    reason : str
        Machine-readable reason code.
    message : str
        One line naming what was wrong and what was expected; never the caller's data.
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.status = status


def status_of(exc: RegressopsError) -> int:
    """Return the HTTP status for an error raised while answering a request."""
    if isinstance(exc, ApiError):
        return exc.status
    if exc.reason in _STATUS_BY_REASON:
        return _STATUS_BY_REASON[exc.reason]
    return 422 if isinstance(exc, DataError) else 400


def protocol_of(path: str) -> Protocol:
    """Return which protocol's error format a path uses."""
    if path == "/v2" or path.startswith("/v2/"):
        return "v2"
    if path in _MLFLOW_PATHS:
        return "mlflow"
    return "seed"


def error_body(
    protocol: Protocol, status: int, reason: str, message: str, request_id: str | None
) -> bytes:
    """Serialise an error in the format of ``protocol``."""
    doc: dict[str, Any]
    if protocol == "v2":
        doc = {"error": message}
    elif protocol == "mlflow":
        doc = {"error_code": _MLFLOW_CODES.get(status, "BAD_REQUEST"), "message": message}
    else:
        doc = {"reason": reason, "message": message, "request_id": request_id}
    return orjson.dumps(doc)
