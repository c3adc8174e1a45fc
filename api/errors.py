"""One error shape for every failure: {"error": {"code": "...", "message": "...", ...}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.errors import InvalidRequest

log = logging.getLogger(__name__)


class APIError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.headers = headers
        self.extra = extra


class NotFound(APIError):
    status_code = 404
    code = "not_found"


class PayloadTooLarge(APIError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(APIError):
    status_code = 415
    code = "unsupported_media_type"


class Unauthorized(APIError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "A valid API key is required.") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class JobFinished(APIError):
    status_code = 409
    code = "job_finished"


class RateLimited(APIError):
    status_code = 429
    code = "rate_limited"


class TooManyJobs(APIError):
    status_code = 429
    code = "too_many_active_jobs"


class JobNotFinished(APIError):
    status_code = 409
    code = "job_not_finished"


class Conflict(APIError):
    """The row kept changing under a request that acts on its state: look again."""

    status_code = 409
    code = "conflict"


class NotRetryable(APIError):
    status_code = 409
    code = "not_retryable"


class IdempotencyKeyReused(APIError):
    status_code = 422
    code = "idempotency_key_reused"


class CsrfFailed(APIError):
    status_code = 403
    code = "csrf_failed"


class BudgetExceeded(APIError):
    """The job's estimate would take the client over its daily or monthly credit budget."""

    status_code = 402
    code = "budget_exceeded"


class TooManyWaiters(APIError):
    status_code = 429
    code = "too_many_waiting_requests"


class TestModeUnavailable(APIError):
    """A test-mode key on a server with no sandbox to send its jobs to (TEST_MODE_KIE_URL)."""

    status_code = 503
    code = "test_mode_unavailable"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def validation_error(
    fields: list[dict[str, str]], code: str = "validation_error", **extra: Any
) -> JSONResponse:
    first = fields[0]
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return JSONResponse(error_body(code, message, fields=fields, **extra), status_code=422)


def _field_name(loc: tuple[Any, ...]) -> str:
    # ("body", "prompt") -> "prompt"; ("query", "limit") -> "limit";
    # ("body", "jobs", 4, "prompt") -> "jobs[4].prompt"
    name = ""
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name


def pydantic_fields(errors: list[Any]) -> list[dict[str, str]]:
    return [
        {"field": _field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
        for e in errors
    ] or [{"field": "", "message": "invalid request"}]


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route takes at this path (asked of the router as a request would)."""
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, **exc.extra),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(InvalidRequest)
    async def invalid_request(_: Request, exc: InvalidRequest) -> JSONResponse:
        return validation_error(
            [{"field": exc.field, "message": exc.message}], code=exc.code, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(pydantic_fields(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        return validation_error(pydantic_fields(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names the methods of the first route whose path matched; RFC 9110
            # wants every method the path takes (GET and POST /jobs are two routes).
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(app, request))}
        if exc.status_code == 400:
            # FastAPI's "error parsing the body" (bytes that are not UTF-8 JSON): the same 422
            # as any other unreadable request body, naming the body.
            return validation_error([{"field": "body", "message": str(exc.detail)}])
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.error("database error: %s", type(exc).__name__)
        return JSONResponse(
            error_body("database_unavailable", "The database is unavailable; try again shortly."),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side."), status_code=500
        )
