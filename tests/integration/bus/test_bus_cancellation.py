"""A task cancelled while it waits for a NATS reply is cancelled, even when the reply lands at that moment.

On Python 3.11 nats-py's ``asyncio.wait_for`` hands such a task the reply and drops the cancellation; the
exchange service's candle stream then outlived its ``stop()``, which never returned (test_nats_restart hung
now and then under load). ``connect()``'s client raises the cancellation instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from tradewind.bus import subjects
from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats


@pytest.fixture
async def nc(tmp_path: Path) -> AsyncIterator[Client]:
    server = EmbeddedNats(tmp_path / "nats")
    url = await server.start()
    client = await connect(url, "test")
    yield client
    await client.close()
    await server.stop()


async def cancel_as_reply_lands(nc: Client, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` in the loop iteration in which the reply to its one request in flight arrives."""
    while not nc._resp_map:  # nats-py's futures of the requests in flight, by token
        await asyncio.sleep(0)
    (reply,) = nc._resp_map.values()
    assert not reply.done()
    reply.add_done_callback(lambda _: task.cancel())


async def test_a_request_cancelled_as_its_reply_lands_is_cancelled(nc: Client) -> None:
    async def pong(msg: Any) -> None:
        await msg.respond(b"pong")

    await nc.subscribe("ping", cb=pong)
    task = asyncio.create_task(nc.request("ping", b"", timeout=5))
    await cancel_as_reply_lands(nc, task)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_request_cancelled_as_no_responders_lands_is_cancelled(nc: Client) -> None:
    task = asyncio.create_task(nc.request("nobody.listens", b"", timeout=5))
    await cancel_as_reply_lands(nc, task)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_publishing_loop_stops_at_its_first_cancel(nc: Client) -> None:
    """The exchange service's candle stream: JetStream publishes in a loop until ``stop()`` cancels it once."""
    js = nc.jetstream()
    await ensure_md_stream(js)

    async def stream() -> None:
        while True:
            await js.publish(subjects.md_candle("sim", "BTC/USD", "1m"), b"candle", timeout=5)

    task = asyncio.create_task(stream())
    await cancel_as_reply_lands(nc, task)
    done, _ = await asyncio.wait({task}, timeout=5)
    if not done:
        task.cancel()
    assert task in done and task.cancelled(), "the loop kept publishing after it was cancelled"
