"""What a client sends on the live stream, over a real socket: anything it cannot read is answered with
``{"type": "error"}`` and the socket stays open and usable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from .server import ServerThread
from .test_stream import login, subscribe, ws_url

BAD_FILTERS = [
    '{"subscribe": [{"market_id": Infinity}]}',
    '{"subscribe": [{"market_id": -Infinity}]}',
    '{"subscribe": [{"market_id": NaN}]}',
    '{"subscribe": [{"market_id": 1e300}]}',
    '{"subscribe": {"market_id": 1e300, "timeframe": "1m"}}',
    '{"markets": [1e300]}',
    '{"markets": [Infinity]}',
    '{"markets": [NaN]}',
    '{"markets": [100000000000000000000000000000]}',
    '{"markets": [' + "9" * 5000 + "]}",
    '{"markets": [2147483648]}',
    '{"markets": [-1]}',
    '{"markets": [0]}',
    '{"subscribe": [{"market_id": 1.5}]}',
    '{"subscribe": [{"market_id": "1"}]}',
    '{"subscribe": [{"market_id": true}]}',
    '{"subscribe": [{"market_id": null}]}',
    '{"subscribe": [{"market_id": [1]}]}',
    '{"subscribe": [{"market_id": {"id": 1}}]}',
    '{"subscribe": [{"timeframe": "1m"}]}',
    '{"subscribe": [{"market_id": 1, "timeframe": ["1m"]}]}',
    '{"subscribe": [{"market_id": 1, "timeframe": 5}]}',
    '{"subscribe": [{"market_id": 1, "timeframe": "7m"}]}',
    '{"subscribe": [1]}',
    '{"subscribe": "1"}',
    '{"subscribe": null}',
    '{"markets": "12"}',
    '{"markets": {"1": 1}}',
    '{"markets": null}',
    "{}",
    "[1]",
    '"subscribe"',
    "null",
    "1e999",
    "not json",
    "[" * 5000 + "]" * 5000,
]


@pytest.fixture
async def server(tmp_path: Path, nats_url: str) -> AsyncIterator[ServerThread]:
    srv = ServerThread(tmp_path / "srv", nats_url=nats_url)
    (tmp_path / "srv").mkdir()
    await asyncio.to_thread(srv.__enter__)
    yield srv
    await asyncio.to_thread(srv.__exit__)


async def test_a_bad_filter_is_answered_with_an_error_and_the_socket_stays_usable(server) -> None:  # type: ignore[no-untyped-def]
    token, _, _ = await login(server, "filters@example.com")
    async with connect(ws_url(server, token)) as ws:
        for text in BAD_FILTERS:
            await ws.send(text)
            answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert answer["type"] == "error" and answer["detail"], (text[:60], answer)
        await ws.send(b'{"markets": [1]}')  # a binary frame is not read either
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer["type"] == "error", answer
        assert await subscribe(ws, [{"market_id": 1, "timeframe": "5m"}]) == {
            "type": "subscribed",
            "markets": [1],
        }
        await ws.send(json.dumps({"markets": [1, 2147483647]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "subscribed", "markets": [1]}


async def test_the_error_names_what_is_wrong(server) -> None:  # type: ignore[no-untyped-def]
    token, _, _ = await login(server, "detail@example.com")
    async with connect(ws_url(server, token)) as ws:
        await ws.send('{"subscribe": [{"market_id": 1}, {"market_id": 1e300}]}')
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert answer["type"] == "error" and "subscribe.1.market_id" in answer["detail"], answer
