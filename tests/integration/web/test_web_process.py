"""`tradewind up`'s web server in a process of its own (runtime.WebProcess): served on the parent's socket,
started again when it dies, and answering /metrics for both processes."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tradewind.config import Settings
from tradewind.metrics import CANDLES
from tradewind.runtime import WebProcess, listen
from tradewind.storage.migrate import upgrade_async

from .conftest import KEY, PASSWORD


async def wait_for(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_the_web_server_runs_apart_and_is_started_again_when_it_dies(
    tmp_path: Path, nats_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=KEY, log_level="WARNING")
    await upgrade_async(settings.db_url)
    sock = listen("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    web = WebProcess(settings, nats_url, sock, "127.0.0.1", sock.getsockname()[1])
    web.MAX_RESTARTS = 1
    try:
        await web.start()
        first = web.pid
        assert first is not None and first != os.getpid()
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            email = {"email": "ann@example.com", "password": PASSWORD}
            assert (await c.post("/api/auth/register", json=email)).status_code == 201
            assert (await c.get("/api/health")).json()["nats"] == "ok"

            os.kill(first, signal.SIGKILL)  # a crash: it comes back on the same port, with the same data

            async def back() -> bool:
                if web.pid == first:
                    return False
                try:
                    return (await c.post("/api/auth/login", json=email)).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(back)

            assert web.pid is not None
            os.kill(web.pid, signal.SIGKILL)  # a second crash within the minute: more than MAX_RESTARTS
            await asyncio.wait_for(web.failed.wait(), 30)
            assert "giving up" in web.failure and "-9" in web.failure
    finally:
        await web.stop()
        sock.close()


async def test_its_metrics_hold_the_other_components_once_each(tmp_path: Path, nats_url: str) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=KEY, log_level="WARNING")
    await upgrade_async(settings.db_url)
    CANDLES.labels("accepted").inc(0)  # a metric of this process (core's, in `up`)
    sock = listen("127.0.0.1", 0)
    web = WebProcess(settings, nats_url, sock, "127.0.0.1", sock.getsockname()[1])
    try:
        await web.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as c:
            await c.get("/api/health")
            text = (await c.get("/metrics")).text
        families = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
        assert len(families) == len(set(families))
        assert "tradewind_core_candles_total" in families  # this process's
        assert (
            'tradewind_http_requests_total{method="GET",route="/api/health",status="200"}' in text
        )  # its own
    finally:
        await web.stop()
        sock.close()
    assert web.failed.is_set() is False
