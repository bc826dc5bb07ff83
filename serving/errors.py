"""The API's errors, in its documented shape (ErrorResponse): a refusal, a failure of the review
queue or the model service (503 with Retry-After), a request that does not match the schema.
None echoes evidence text back or into a log."""

from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from prescore.serving.outcomes import RETRY_AFTER_UNAVAILABLE, Refusal
from prescore.serving.schemas import ErrorDetail, ErrorResponse

logger = logging.getLogger("prescore.serving")


def error(
    status: int,
    message: str,
    details: list[ErrorDetail] | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    """The documented error shape; a 503 always says when to come back (Retry-After)."""
    body = ErrorResponse(error=message, details=details or [])
    response = JSONResponse(body.model_dump(), status_code=status)
    if status == 503:
        response.headers["Retry-After"] = str(retry_after or 1)
    return response


def refused(refusal: Refusal) -> JSONResponse:
    return error(refusal.status, refusal.error, refusal.details, refusal.retry_after)


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Any failure of the review queue or the model service, wherever in a request: a 503 to
    retry, logged by type only, since a database error can carry the row it refused."""
    logger.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    part = "review queue" if isinstance(exc, SQLAlchemyError) else "model service"
    return error(
        503,
        f"the {part} is unavailable; nothing was stored, send it again",
        retry_after=RETRY_AFTER_UNAVAILABLE,
    )


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Field and rule only: pydantic's `input` would echo evidence text back."""
    details = []
    for problem in exc.errors():
        rule = str(problem.get("type", "invalid"))
        location = [str(part) for part in problem.get("loc", ())[1:]]
        field = "body" if rule == "json_invalid" else ".".join(location) or "body"
        message = str(problem.get("msg", "invalid value"))
        if rule == "json_invalid" and location:
            message += f" at character {location[0]}"
        details.append(ErrorDetail(field=field, rule=rule, message=message))
    return error(422, "the request does not match the schema", details)
