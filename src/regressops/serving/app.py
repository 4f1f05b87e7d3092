"""Assemble the prediction service: ``create_app(settings)`` returns the FastAPI app.

One :class:`~regressops.serving.state.ServingState` per app holds the predictor (loaded once,
in the app's lifespan), the prediction log, the metrics and the keys. The prediction routes are
answered by :class:`~regressops.serving.edge.EdgeMiddleware`; the rest are FastAPI routes.

Examples
--------
>>> from regressops.config import Settings
>>> app = create_app(Settings(), model="path/to/bundle")  # doctest: +SKIP
>>> # uvicorn.run(app) — or regressops.serving.server.serve(...)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from regressops import __version__
from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, RegressopsError
from regressops.serving import routes_feedback, routes_mlflow, routes_ops, routes_seed, routes_v2
from regressops.serving.edge import JSON, EdgeMiddleware
from regressops.serving.openapi import build_openapi
from regressops.serving.problems import error_body, protocol_of, status_of
from regressops.serving.security import SECURITY_HEADERS
from regressops.serving.state import ServingState

logger = logging.getLogger(__name__)

TITLE = "regressops prediction service"
DESCRIPTION = (
    "One model, one predictor, three protocols: the seed API (/stream, /batch, /predict, "
    "/model-check), the MLflow scoring protocol (/invocations) and the Open Inference Protocol "
    "(/v2). Every response carries X-Request-ID."
)
_HTTP_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class ServingApp(FastAPI):
    """FastAPI app whose requests meet the ASGI edge first (see :mod:`~regressops.serving.edge`).

    The edge answers the prediction routes itself and hands everything else to FastAPI, so the
    hot path skips FastAPI's middleware stack while keeping the same app object for uvicorn,
    tests and ``/openapi.json``.
    """

    outer: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Send the request through the edge (and CORS when configured)."""
        if self.outer is None:
            await super().__call__(scope, receive, send)
        else:
            await self.outer(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    model: str | None = None,
    prediction_log: str | None = None,
    shadow: str | None = None,
) -> ServingApp:
    """Build the prediction service.

    Parameters
    ----------
    settings : Settings, optional
        Limits, keys, CORS origins, prediction log; default :func:`get_settings`.
    model : str, optional
        Bundle directory or ``models:/NAME@ALIAS``; default ``settings.serve.model``.
    prediction_log : str, optional
        JSON-lines path, SQLAlchemy URL, or ``"off"``; default ``settings.serve.prediction_log``
        (JSON lines under ``settings.home``).
    shadow : str, optional
        A challenger (bundle directory or ``models:/NAME@ALIAS``) that scores every served row
        off the request path; default ``settings.serve.shadow`` (none).

    Returns
    -------
    ServingApp
        The app (a FastAPI subclass); its model loads when the lifespan starts (under
        uvicorn, or ``with TestClient(app)``).

    Raises
    ------
    ConfigError
        No model is named.
    """
    settings = settings or get_settings()
    ref = model or settings.serve.model
    if not ref:
        raise ConfigError(
            "no model to serve; pass --model DIR (or models:/NAME@ALIAS) or set serve.model",
            reason="no_model",
        )
    state = ServingState(
        settings,
        str(ref),
        prediction_log=prediction_log,
        shadow_ref=shadow or settings.serve.shadow,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = ServingApp(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        # OpenTelemetry hooks off: they cost microseconds per request; /metrics covers it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.serving = state
    app.include_router(routes_seed.router)
    app.include_router(routes_mlflow.router)
    app.include_router(routes_v2.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_feedback.router)
    app.include_router(routes_ops.docs_routes(TITLE, "/openapi.json"))
    app.mount(
        routes_ops.ASSETS_PATH, StaticFiles(directory=routes_ops.assets_dir()), name="docs-assets"
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, state)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    state.on_model_change.append(lambda _: setattr(app, "openapi_schema", None))

    async def regressops_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RegressopsError)
        status = status_of(exc)
        challenge = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _error(request, status, exc.reason, exc.message, challenge)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        reason = _HTTP_REASONS.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = f"no endpoint {request.url.path}; see /docs for the API"
        return _error(request, exc.status_code, reason, message, exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:3])
        return _error(request, 422, "invalid_request", f"invalid request parameters: {where}")

    app.add_exception_handler(RegressopsError, regressops_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)

    outer: Any = EdgeMiddleware(
        partial(FastAPI.__call__, app),
        state=state,
        routes={
            ("POST", "/stream"): ("/stream", routes_seed.stream),
            ("POST", "/batch"): ("/batch", routes_seed.batch),
            ("POST", "/predict"): ("/predict", routes_seed.predict),
            ("POST", "/invocations"): ("/invocations", routes_mlflow.invocations),
        },
        v2_infer=("/v2/models/{name}/infer", routes_v2.infer),
    )
    if settings.serve.cors_origins:
        outer = CORSMiddleware(
            outer,
            allow_origins=settings.serve.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.outer = outer
    return app


def _error(
    request: Request,
    status: int,
    reason: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    path = request.url.path
    rid = getattr(request.state, "request_id", None)
    body = error_body(protocol_of(path), status, reason, message, rid)
    response = Response(
        body, status_code=status, media_type=JSON.decode(), headers=dict(headers or {})
    )
    for key, value in SECURITY_HEADERS:
        response.headers.setdefault(key.decode(), value.decode())
    return response


def app_from_settings() -> ServingApp:
    """App factory for uvicorn workers: everything comes from :func:`get_settings`."""
    return create_app(get_settings())
