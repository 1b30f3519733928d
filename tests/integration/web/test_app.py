"""The app around the API: the single-page app, docs, metrics, and what an unexpected error looks like."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.web.app import STATIC, create_app

from .conftest import KEY, PASSWORD


async def test_the_root_goes_to_the_web_app_and_every_app_path_serves_it(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client() as c:
        r = await c.get("/")
        assert r.status_code in (302, 307) and r.headers["location"] == "/app/"
        index = await c.get("/app/")
        deep = await c.get("/app/strategies/12/edit")
        if not (STATIC / "index.html").exists():
            assert index.status_code == 404 and "not built" in index.json()["detail"]
            return
        assert index.status_code == deep.status_code == 200 and index.text == deep.text
        assert "text/html" in index.headers["content-type"] and index.headers["x-frame-options"] == "DENY"
        asset = next((STATIC / "assets").iterdir())
        r = await c.get(f"/app/assets/{asset.name}")
        assert r.status_code == 200 and r.content == asset.read_bytes()
        assert (await c.get("/app/assets/../../../secrets.py")).status_code == 404


async def test_docs_openapi_and_metrics_are_served(api) -> None:  # type: ignore[no-untyped-def]
    async with api.client() as c:
        assert "swagger" in (await c.get("/api/docs")).text.lower()
        spec = (await c.get("/api/openapi.json")).json()
        assert spec["components"]["schemas"]["Error"]["required"] == ["detail", "errors"]
        assert {"bearer", "cookie"} <= set(spec["components"]["securitySchemes"])
        await c.get("/api/strategies/12345")
        metrics = (await c.get("/metrics")).text
    assert (
        'tradewind_http_requests_total{method="GET",route="/api/strategies/{strategy_id}",status="401"}'
        in metrics
    )
    assert "tradewind_http_request_seconds_bucket" in metrics
    assert "/api/strategies/12345" not in metrics  # labelled by route, not by raw path


async def test_an_unexpected_error_is_a_logged_500_without_internals(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"  # never migrated: every query fails
    engine = make_engine(url)
    app = create_app(
        Settings(data_dir=tmp_path, database_url=url), make_session_factory(engine), None, SecretBox([KEY])
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
        ) as c:
            r = await c.post("/api/auth/register", json={"email": "x@example.com", "password": PASSWORD})
            assert r.status_code == 500
            assert r.json() == {"detail": "internal error; it has been logged", "errors": []}
            assert "sqlite" not in r.text.lower() and "Traceback" not in r.text
            health = await c.get("/api/health")
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            assert health.json()["database"].startswith("error")
    finally:
        await engine.dispose()
    assert any(
        rec.levelno == logging.ERROR and "/api/auth/register" in rec.getMessage() for rec in caplog.records
    )
