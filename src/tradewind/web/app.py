"""The FastAPI application: API routes, error shape, limits, the single-page app."""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from nats.aio.client import Client

from tradewind import __version__
from tradewind.config import Settings
from tradewind.eval.validation import ValidationPool
from tradewind.secrets import SecretBox
from tradewind.storage.db import SessionFactory
from tradewind.web import errors, stream
from tradewind.web.deps import WebState
from tradewind.web.middleware import LimitsMiddleware
from tradewind.web.openapi import install_openapi
from tradewind.web.routes import (
    activity,
    alerts,
    assignments,
    auth,
    markets,
    strategies,
    system,
    traders,
    trades,
)
from tradewind.web.security import LoginGuard

STATIC = Path(__file__).parent / "static" / "app"
MAX_BODY = 256 * 1024


def create_app(
    settings: Settings,
    session_factory: SessionFactory,
    nc: Client | None,
    secret_box: SecretBox,
    more_metrics: Callable[[bytes], Awaitable[bytes]] | None = None,
    throttle: LoginGuard | None = None,
) -> FastAPI:
    """The app; ``more_metrics`` (in `tradewind up`) adds the other processes' metrics to this one's for /metrics;
    ``throttle``: the login throttle, when another process keeps it (a new one of this app's own by default)."""
    validator = ValidationPool()  # strategy code is checked in its child processes, started with the app
    app = FastAPI(
        title="tradewind",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        description="Write trading strategies in Lua, backtest them, run them on live markets.",
        lifespan=validator.lifespan,
    )
    app.state.validator = validator
    app.state.tw = WebState(settings, session_factory, nc, secret_box, more_metrics=more_metrics)
    if throttle is not None:
        app.state.tw.throttle = throttle
    errors.install(app)

    app.add_middleware(LimitsMiddleware, max_body=MAX_BODY)
    install_openapi(app)

    for module in (auth, strategies, traders, assignments, markets, activity, system, stream, alerts, trades):
        app.include_router(module.router)
    # The backtest routes are written alongside the backtest engine; mounted when they exist. (Not a
    # try/except ImportError: that would also hide a broken import inside the module.)
    if importlib.util.find_spec("tradewind.web.routes.backtests") is not None:
        from tradewind.web.routes import backtests

        app.include_router(backtests.router)
        from tradewind.web.routes import runs, studies, walkforwards

        app.include_router(studies.router)
        app.include_router(walkforwards.router)
        app.include_router(runs.router)
    _redact_tokens_in_access_log()

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/")

    # The web app's log-in and sign-up pages where people (and other apps' habits) look for them first.
    @app.get("/login", include_in_schema=False)
    async def login_page() -> RedirectResponse:
        return RedirectResponse("/app/login")

    @app.get("/register", include_in_schema=False)
    async def register_page() -> RedirectResponse:
        return RedirectResponse("/app/register")

    if (STATIC / "assets").is_dir():
        app.mount("/app/assets", StaticFiles(directory=STATIC / "assets"), name="assets")

    @app.get("/app/{path:path}", include_in_schema=False)
    async def spa(path: str) -> Response:
        index = STATIC / "index.html"
        if not index.exists():
            return JSONResponse(
                {"detail": "the web app is not built; run `make install`", "errors": []}, status_code=404
            )
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return app


class _RedactTokens(logging.Filter):
    """``/api/stream?token=...`` would put a bearer token into uvicorn's log lines: mask it."""

    PATTERN = re.compile(r"([?&]token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _redact_tokens_in_access_log() -> None:
    # HTTP requests are logged on uvicorn.access, WebSocket handshakes on uvicorn.error.
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())
