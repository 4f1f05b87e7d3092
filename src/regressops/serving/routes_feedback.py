"""``POST /feedback``: the true values of logged predictions, for performance monitoring.

The body is a list of ``{"request_id", "row", "label"}``: the request id a prediction answer
carried (``X-Request-ID``), the row's index in that request, and the true value. Labels are
appended to the labels sink beside the prediction log
(:mod:`regressops.serving.log.labels`); ``regressops monitor`` joins them with the log. The same
API keys as the prediction endpoints apply. Unknown request ids are accepted here and counted by
the monitor (the log and the labels may arrive in any order).
"""

from __future__ import annotations

import logging
from typing import Annotated

import anyio
from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from regressops.serving.problems import ApiError
from regressops.serving.schemas import ErrorResponse
from regressops.serving.state import ServingState

logger = logging.getLogger(__name__)
router = APIRouter(tags=["monitoring"])
MAX_LABELS = 100_000


class Label(BaseModel):
    """The true value of one logged row."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128, description="X-Request-ID of the answer")
    row: int = Field(
        ge=0, le=2**31 - 1, description="index of the row in its request (0 for /stream)"
    )
    label: float = Field(allow_inf_nan=False, description="the true value of the target")


class FeedbackResult(BaseModel):
    """How many labels were stored."""

    accepted: int


@router.post(
    "/feedback",
    response_model=FeedbackResult,
    responses={
        400: {"model": ErrorResponse, "description": "the body is not JSON"},
        401: {"model": ErrorResponse, "description": "missing or invalid API key"},
        422: {"model": ErrorResponse, "description": "a label is malformed (the message names it)"},
        503: {"model": ErrorResponse, "description": "the labels sink cannot be written"},
    },
    summary="Store the true values of logged predictions",
)
async def feedback(
    request: Request,
    labels: Annotated[list[Label], Body(min_length=1, max_length=MAX_LABELS)],
) -> FeedbackResult:
    """Append the labels to the labels sink beside the prediction log."""
    state: ServingState = request.app.state.serving
    sink = await anyio.to_thread.run_sync(state.label_sink)
    rows = [(item.request_id, item.row, item.label) for item in labels]
    try:
        accepted = await anyio.to_thread.run_sync(sink.write, rows)
    except Exception as exc:  # a full disk, a database down: the client may retry
        logger.warning("labels not stored: %s", exc.__class__.__name__)
        raise ApiError(
            503, "labels_unwritable", "the labels could not be stored; retry shortly"
        ) from None
    return FeedbackResult(accepted=accepted)
