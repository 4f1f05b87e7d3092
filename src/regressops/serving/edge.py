"""The ASGI edge every request passes: request id, keys, body limit, headers, metrics — and the
prediction routes themselves.

The prediction routes (``/stream``, ``/batch``, ``/predict``, ``/invocations`` and
``/v2/models/{name}[/versions/{version}]/infer``) are answered here, in plain ASGI: the body is
read once, decoded once with orjson, validated with vectorised checks and answered with orjson
bytes, without a framework's per-request dependency resolution or body models. They are
documented in ``/openapi.json`` by :mod:`regressops.serving.openapi` from the served model's
feature spec. Every other route goes on to the FastAPI app, with the same headers, limits and
metrics applied here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from regressops.errors import RegressopsError
from regressops.serving.predictor import Predictor, Scored
from regressops.serving.problems import ApiError, error_body, protocol_of, status_of
from regressops.serving.security import API_CSP, SECURITY_HEADERS, is_admin, request_id
from regressops.serving.state import ServingState

logger = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
JSON = b"application/json"
_V2_INFER = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass
class HotRequest:
    """A prediction request as the protocol handlers see it."""

    body: bytes
    content_type: bytes
    request_id: str
    path_params: dict[str, str]
    headers: dict[bytes, bytes]
    started: float


@dataclass
class HotReply:
    """A handler's answer; ``scored`` (with its ``predictor``) feeds metrics and the log."""

    body: bytes
    status: int = 200
    content_type: bytes = JSON
    scored: Scored | None = None
    predictor: Predictor | None = None


Handler = Callable[[ServingState, HotRequest], HotReply]


def mime_type(content_type: bytes) -> bytes:
    """``b"application/json; charset=utf-8"`` → ``b"application/json"``."""
    return content_type.split(b";", 1)[0].strip().lower()


def require_json(req: HotRequest) -> None:
    """Refuse bodies declared as something other than JSON (415); a missing type is JSON."""
    mime = mime_type(req.content_type)
    if mime and mime != JSON and not mime.endswith(b"+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content type {mime.decode('latin-1')!r} is not supported; send application/json",
        )


def decode_json(body: bytes) -> Any:
    """Decode a JSON body once (strict: NaN and Infinity are not JSON)."""
    if not body:
        raise ApiError(400, "malformed_json", "the request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "malformed_json", f"the request body is not valid JSON: {exc}"
        ) from None


class EdgeMiddleware:
    """Pure-ASGI middleware: the first and last thing every HTTP request meets.

    Parameters
    ----------
    app : ASGI app
        The FastAPI app for every route not in ``routes``.
    state : ServingState
        Keys, limits, metrics and the current predictor.
    routes : dict
        ``{(method, path): (endpoint_label, handler)}`` for the prediction routes.
    v2_infer : tuple, optional
        ``(endpoint_label, handler)`` for ``/v2/models/{name}[/versions/{v}]/infer``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: ServingState,
        routes: dict[tuple[str, str], tuple[str, Handler]],
        v2_infer: tuple[str, Handler] | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.routes = routes
        self.paths = {path for _, path in routes}
        self.v2_infer = v2_infer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: dict[bytes, bytes] = dict(scope["headers"])
        rid = request_id(headers.get(b"x-request-id"))
        path: str = scope["path"]
        method: str = scope["method"]
        state = self.state
        metrics = state.metrics
        metrics.in_flight_now += 1
        endpoint = "unmatched"
        status = 500
        try:
            route = self.routes.get((method, path))
            path_params: dict[str, str] = {}
            if route is None and self.v2_infer is not None and path.startswith("/v2/models/"):
                m = _V2_INFER.match(path)
                if m is not None:
                    path_params = {k: v for k, v in m.groupdict().items() if v is not None}
                    route = self.v2_infer if method == "POST" else None
                    if route is None:
                        endpoint = self.v2_infer[0]
                        raise ApiError(
                            405, "method_not_allowed", f"{method} is not allowed; use POST"
                        )
            if route is None and path in self.paths:
                endpoint = path
                raise ApiError(405, "method_not_allowed", f"{method} is not allowed; use POST")
            if (
                state.guard.enabled
                and not state.guard.is_open(path)
                and not (state.admin_guard.enabled and is_admin(path))
                and not state.guard.check(headers.get(b"x-api-key"), headers.get(b"authorization"))
            ):
                if route is not None:
                    endpoint = route[0]
                raise ApiError(
                    401,
                    "unauthorized",
                    "missing or invalid API key; send X-API-Key: KEY or Authorization: Bearer KEY",
                )
            if route is None:
                status, endpoint = await self._forward(scope, receive, send, headers, rid)
                return
            endpoint, handler = route
            body = await self._read_body(receive, headers)
            plog = state.plog
            log = True
            if plog is not None and plog.backlogged and not await plog.wait_for_room():
                if state.settings.serve.log_when_unwritable != "drop":
                    raise ApiError(
                        503,
                        "prediction_log_backlogged",
                        "the prediction log sink is not keeping up (or failing); retry shortly",
                    )
                log = False  # the operator chose answers over a complete log: counted
            req = HotRequest(
                body, headers.get(b"content-type", b""), rid, path_params, headers, started
            )
            reply = handler(state, req)
            if reply.scored is not None and reply.predictor is not None:
                state.record(
                    endpoint=endpoint,
                    request_id=rid,
                    predictor=reply.predictor,
                    scored=reply.scored,
                    started=started,
                    log=log,
                )
            status = reply.status
            await _respond(send, status, reply.body, reply.content_type, rid)
        except RegressopsError as exc:
            protocol = protocol_of(path)
            status = status_of(exc)
            body = error_body(protocol, status, exc.reason, exc.message, rid)
            if protocol != "seed" and status == 422:
                status = 400  # MLflow and V2 answer every input problem with 400
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            if status == 405:
                extra.append((b"allow", b"POST"))
            await _respond(send, status, body, JSON, rid, extra)
        except _DisconnectedError:
            status = 499
        except Exception:
            logger.exception("unexpected error answering %s %s", method, path)
            status = 500
            body = error_body(protocol_of(path), 500, "internal", "internal error", rid)
            await _respond(send, 500, body, JSON, rid)
        finally:
            metrics.in_flight_now -= 1
            metrics.observe_request(endpoint, method, status, time.perf_counter() - started)

    async def _read_body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes:
        limit = self.state.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise _DisconnectedError
        body: bytes = msg.get("body", b"")
        if not msg.get("more_body", False):
            if len(body) > limit:
                raise _too_large(limit)
            return body
        chunks = [body]
        size = len(body)
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise _DisconnectedError
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    async def _forward(
        self, scope: dict[str, Any], receive: Any, send: Any, headers: dict[bytes, bytes], rid: str
    ) -> tuple[int, str]:
        """Hand a request to the FastAPI app, adding the edge's headers to its answer."""
        if scope["method"] in _BODY_METHODS:
            body = await self._read_body(receive, headers)
            sent = False

            async def replay() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive = replay
        status = 500
        rid_bytes = rid.encode()

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                hdrs = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"x-request-id", b"server")
                ]
                hdrs.append((b"x-request-id", rid_bytes))
                present = {k.lower() for k, _ in hdrs}
                hdrs.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": hdrs}
            await send(message)

        scope.setdefault("state", {})["request_id"] = rid
        await self.app(scope, receive, send_with_headers)
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or ("unmatched" if status == 404 else "other")
        return status, endpoint


class _DisconnectedError(Exception):
    """The client went away before sending its whole body."""


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body exceeds the limit of {limit} bytes")


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    content_type: bytes,
    rid: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid.encode()),
        *SECURITY_HEADERS,
        API_CSP,
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def dumps(doc: Any) -> bytes:
    """orjson with numpy arrays serialised natively."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
