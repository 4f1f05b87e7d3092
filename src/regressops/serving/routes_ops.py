"""Operations: ``/healthz``, ``/readyz``, ``/metrics``, ``/admin/reload``, ``/docs``, ``/redoc``.

The documentation pages load Swagger UI and ReDoc from ``/docs-assets/`` (the files shipped in
the ``fastapi-offline`` wheel), so they work with no internet access.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from regressops.reasons import Reason
from regressops.serving.metrics import CONTENT_TYPE
from regressops.serving.problems import ApiError
from regressops.serving.schemas import ErrorResponse, Liveness, LogHealth, Readiness, ReloadResult
from regressops.serving.security import admin_refusal, is_loopback
from regressops.serving.state import ServingState

ASSETS_PATH = "/docs-assets"
SUPERVISOR_ENV = "REGRESSOPS_SUPERVISOR_PID"

router = APIRouter(tags=["operations"])


def assets_dir() -> Path:
    """Folder holding ``swagger-ui-bundle.js``, ``swagger-ui.css`` and ``redoc.standalone.js``."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-offline package (documentation assets) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process answers")
def healthz() -> Liveness:
    """Always 200 while the process runs."""
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "no model loaded yet, or the prediction log is failing with a full "
            "backlog and serve.log_when_unwritable is refuse",
        }
    },
    summary="Readiness: a model is loaded and the prediction log keeps up",
)
def readyz(request: Request) -> Any:
    """200 with the model's name and version once loaded; 503 before, and while the log sink
    fails with a full backlog under the ``refuse`` policy (requests would get 503 too)."""
    state: ServingState = request.app.state.serving
    predictor = state.predictor
    if predictor is None:
        return JSONResponse({"ready": False, "name": None, "version": None}, status_code=503)
    health = None
    if state.plog is not None:
        plog, policy = state.plog, state.settings.serve.log_when_unwritable
        health = LogHealth(
            failing=plog.failing,
            pending_rows=plog.pending_rows,
            dropped_rows=plog.rows_dropped,
            when_unwritable=policy,
        )
        if policy == "refuse" and plog.failing and plog.backlogged:
            doc = Readiness(ready=False, name=predictor.name, version=predictor.version)
            doc.prediction_log = health
            return JSONResponse(doc.model_dump(), status_code=503)
    return Readiness(
        ready=True, name=predictor.name, version=predictor.version, prediction_log=health
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
    summary="Prometheus metrics (all workers)",
)
def metrics(request: Request) -> Response:
    """Requests, latency, rows, prediction values, model info, in-flight requests."""
    state: ServingState = request.app.state.serving
    if state.plog is not None:
        state.metrics.set_log(state.plog)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


@router.post(
    "/admin/reload",
    response_model=ReloadResult,
    responses={
        401: {"model": ErrorResponse, "description": "API (or admin) key missing or invalid"},
        403: {
            "model": ErrorResponse,
            "description": "a prediction key while admin keys are set; or no keys configured "
            "and the caller not local",
        },
        409: {"model": ErrorResponse, "description": "load failed; the old model keeps serving"},
    },
    summary="Load the model again and swap it in without downtime",
)
async def reload(request: Request) -> dict[str, Any]:
    """Reload the configured model (a new bundle, or the alias's new version).

    With admin keys (``REGRESSOPS_ADMIN_KEYS``) only they may reload (a prediction key gets
    403); otherwise an API key is needed when keys are configured, and without any keys only
    local callers may reload. With several workers this worker checks that the model loads,
    then every worker reloads in place.
    """
    state: ServingState = request.app.state.serving
    client = request.client.host if request.client else ""
    if state.admin_guard.enabled:
        headers = request.headers
        key, auth = headers.get("x-api-key"), headers.get("authorization")
        refusal = admin_refusal(
            state.admin_guard,
            state.guard,
            key.encode("latin-1") if key is not None else None,
            auth.encode("latin-1") if auth is not None else None,
        )
        if refusal is not None:
            status, message = refusal
            raise ApiError(
                status, Reason.UNAUTHORIZED if status == 401 else Reason.FORBIDDEN, message
            )
    elif not state.guard.enabled and not is_loopback(client):
        raise ApiError(
            403, "forbidden", "reload is allowed from this machine only unless API keys are set"
        )
    result = dict(await state.reload("api"))
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor and supervisor.isdigit() and int(supervisor) == os.getppid():
        os.kill(int(supervisor), signal.SIGHUP)
        result["workers"] = "every worker is reloading in place"
    return result


def docs_routes(title: str, openapi_url: str) -> APIRouter:
    """The ``/docs`` and ``/redoc`` pages, pointing at the local assets."""
    docs = APIRouter(include_in_schema=False)

    @docs.get("/docs")
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} — Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    @docs.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} — ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    return docs
