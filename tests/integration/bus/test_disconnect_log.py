"""A connection closed at shutdown is not reported as lost; a server that goes away is."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats


async def test_closing_is_quiet_and_losing_the_server_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    url = await server.start()
    caplog.set_level(logging.INFO, logger="tradewind.bus.connection")
    try:
        quiet = await connect(url, "quiet")
        await quiet.drain()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        lost = await connect(url, "lost")
        await server.stop()
        for _ in range(100):
            if any("lost: disconnected from NATS" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        assert [r.levelname for r in caplog.records if "lost: disconnected" in r.getMessage()] == ["WARNING"]
        await lost.close()
    finally:
        await server.stop()
