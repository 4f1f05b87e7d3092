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
from regressops.reasons import Reason

Protocol = Literal["seed", "mlflow", "v2"]

#: HTTP status of the reasons that are not 422 (a DataError) or 400 (any other error).
STATUS_BY_REASON: dict[Reason, int] = {
    Reason.MALFORMED_JSON: 400,
    Reason.INVALID_BODY: 400,
    Reason.UNAUTHORIZED: 401,
    Reason.FORBIDDEN: 403,
    Reason.NOT_FOUND: 404,
    Reason.METHOD_NOT_ALLOWED: 405,
    Reason.RELOAD_FAILED: 409,
    Reason.BODY_TOO_LARGE: 413,
    Reason.TOO_MANY_ROWS: 413,
    Reason.UNSUPPORTED_MEDIA_TYPE: 415,
    Reason.NOT_READY: 503,
    Reason.PREDICTION_LOG_BACKLOGGED: 503,
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
    if exc.reason in STATUS_BY_REASON:
        return STATUS_BY_REASON[Reason(exc.reason)]
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
