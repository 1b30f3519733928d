"""The FastAPI application: API routes, error shape, limits, the single-page app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from nats.aio.client import Client
from prometheus_client import Counter, Histogram

from tradewind import __version__
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage.db import SessionFactory
from tradewind.web import errors, stream
from tradewind.web.deps import WebState
from tradewind.web.routes import activity, assignments, auth, markets, strategies, system, traders

STATIC = Path(__file__).parent / "static" / "app"
MAX_BODY = 256 * 1024
REQUESTS = Counter("tradewind_http_requests_total", "HTTP requests", ["method", "status"])
LATENCY = Histogram("tradewind_http_request_seconds", "HTTP request latency", ["method"])


def create_app(settings: Settings, session_factory: SessionFactory, nc: Client | None, secret_box: SecretBox) -> FastAPI:
    app = FastAPI(
        title="tradewind", version=__version__, openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None,
        description="Write trading strategies in Lua, backtest them, run them on live markets.",
    )  # fmt: skip
    app.state.tw = WebState(settings, session_factory, nc, secret_box)
    errors.install(app)

    @app.middleware("http")
    async def limits(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"detail": f"request body larger than {MAX_BODY // 1024} KiB", "errors": []}, status_code=413)
        if request.method in ("POST", "PUT", "PATCH") and length is None and "chunked" in request.headers.get("transfer-encoding", ""):
            return JSONResponse({"detail": "send a Content-Length", "errors": []}, status_code=411)
        started = time.perf_counter()
        response: Response = await call_next(request)
        LATENCY.labels(request.method).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    for module in (auth, strategies, traders, assignments, markets, activity, system, stream):
        app.include_router(module.router)
    try:
        from tradewind.web.routes import backtests
    except ImportError:  # pragma: no cover
        backtests = None  # type: ignore[assignment]
    if backtests is not None:
        app.include_router(backtests.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/")

    if (STATIC / "assets").is_dir():
        app.mount("/app/assets", StaticFiles(directory=STATIC / "assets"), name="assets")

    @app.get("/app/{path:path}", include_in_schema=False)
    async def spa(path: str) -> Response:
        index = STATIC / "index.html"
        if not index.exists():
            return JSONResponse({"detail": "the web app is not built; run `make install`", "errors": []}, status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document without a running server (for the frontend's generated client)."""
    from tradewind.config import Settings

    settings = Settings(data_dir=Path("/nonexistent"))
    return create_app(settings, None, None, SecretBox([__import__("cryptography.fernet").fernet.Fernet.generate_key().decode()])).openapi()  # type: ignore[arg-type]
