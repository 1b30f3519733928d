"""One error shape for every 4xx and 5xx: {"detail": "...", "errors": [{"field": ..., "message": ...}]}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
FASTAPI_BODY_ERROR = "There was an error parsing the body"
ERRORS = Counter("tradewind_web_unhandled_errors_total", "Requests that failed with an unexpected error")


class ApiError(HTTPException):
    """A 4xx with an optional field-level message; a dict ``detail`` is the whole body (its own ``detail``
    and ``errors``)."""

    def __init__(
        self,
        status: int,
        detail: str | dict[str, Any],
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, headers)
        self.field = field


def field_errors(field: str, message: str) -> list[dict[str, str]]:
    return [{"field": field, "message": message}]


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            msg = e.get("msg", "invalid")
            if e.get("type") == "extra_forbidden":
                msg = "unknown field"
            elif e.get("type") == "missing":
                msg = "this field is required"
            errors.append(
                {"field": _loc(tuple(e.get("loc", ()))), "message": msg.removeprefix("Value error, ")}
            )
        detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors[:5]) or "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:
            # FastAPI's answer to a body that is not text (e.g. not UTF-8): the same 422 as malformed JSON.
            return JSONResponse(
                {
                    "detail": "the body is not valid JSON (UTF-8)",
                    "errors": field_errors("body", "not valid JSON"),
                },
                status_code=422,
            )
        body: dict[str, Any] = {"detail": exc.detail if isinstance(exc.detail, str) else "error"}
        field = getattr(exc, "field", None)
        body["errors"] = field_errors(field, body["detail"]) if field else []
        if isinstance(exc.detail, dict):
            body.update(exc.detail)
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        """Every database connection busy for ``pool_timeout``: the server is overloaded, not broken."""
        ERRORS.inc()
        log.warning("no database connection free for %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "the server is busy; try again in a few seconds", "errors": []},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ERRORS.inc()
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged", "errors": []}, status_code=500)
