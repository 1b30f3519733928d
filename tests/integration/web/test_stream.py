"""The live stream over a real socket: each user gets their own events and the public candles, nobody else's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tradewind.bus import messages as m
from tradewind.bus import subjects

from .conftest import PASSWORD
from .server import ServerThread


@pytest.fixture
async def server(tmp_path: Path, nats_url: str) -> AsyncIterator[ServerThread]:
    srv = ServerThread(tmp_path / "srv", nats_url=nats_url)
    (tmp_path / "srv").mkdir()
    await asyncio.to_thread(srv.__enter__)
    yield srv
    await asyncio.to_thread(srv.__exit__)


async def login(srv: ServerThread, email: str) -> tuple[str, int, httpx.Cookies]:
    async with httpx.AsyncClient(base_url=srv.url) as c:
        await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        r = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        return r.json()["token"], r.json()["user"]["id"], c.cookies


def ws_url(srv: ServerThread, token: str | None = None) -> str:
    return srv.url.replace("http", "ws") + "/api/stream" + (f"?token={token}" if token else "")


async def subscribe(ws: ClientConnection, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """Also a barrier: the answer comes after the socket's bus subscriptions exist."""
    await ws.send(json.dumps({"subscribe": filters}))
    while True:
        msg = json.loads(await ws.recv())
        if msg["type"] in ("subscribed", "error"):
            return msg


async def drain(ws: ClientConnection, seconds: float = 0.5) -> list[dict[str, Any]]:
    out = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
    except TimeoutError:
        return out


ORDER = {
    "id": 1,
    "assignment_id": 2,
    "symbol": "BTC/USD",
    "side": "buy",
    "amount": "0.5",
    "status": "open",
    "order_type": "limit",
    "filled": "0",
    "price": None,
    "fee": "0",
    "reason": None,
    "exit_reason": None,
}
FILL = {**ORDER, "status": "filled", "filled": "0.5", "price": "100.5", "fee": "0.05"}


def candle(tf: str, t: int) -> bytes:
    return m.encode(
        m.Candle(
            exchange="sim", symbol="BTC/USD", tf=tf, time=t, open=1, high=2, low=0.5, close=1.5, volume=3
        )
    )


async def test_each_socket_gets_only_its_owners_events_and_the_public_candles(server, nats_client) -> None:  # type: ignore[no-untyped-def]
    alice_token, alice_id, _ = await login(server, "alice@example.com")
    bob_token, bob_id, _ = await login(server, "bob@example.com")
    async with connect(ws_url(server, alice_token)) as alice, connect(ws_url(server, bob_token)) as bob:
        assert (await subscribe(alice, []))["type"] == "subscribed"
        await subscribe(bob, [])
        await nats_client.publish(
            subjects.user_events(alice_id), m.encode(m.OrderEvent(**ORDER, client_order_id="alice-1"))
        )
        await nats_client.publish(
            subjects.user_events(bob_id), m.encode(m.FillEvent(**FILL, client_order_id="bob-1"))
        )
        await nats_client.publish(subjects.core_candle("sim", "BTC/USD", "1m"), candle("1m", 60_000))
        got_alice, got_bob = await drain(alice), await drain(bob)
    # the user's events reach the browser as they are, flat, with their kind as ``type``
    assert {**ORDER, "type": "order", "client_order_id": "alice-1"} in got_alice
    assert {**FILL, "type": "fill", "client_order_id": "bob-1"} in got_bob
    assert "bob-1" not in json.dumps(got_alice) and "alice-1" not in json.dumps(got_bob)
    for got in (got_alice, got_bob):
        candles = [e for e in got if e["type"] == "candle"]
        assert len(candles) == 1 and candles[0]["market_id"] == 1 and candles[0]["close"] == 1.5


async def test_a_subscription_filters_candles_by_market_and_timeframe(server, nats_client) -> None:  # type: ignore[no-untyped-def]
    token, _, _ = await login(server, "carol@example.com")
    async with connect(ws_url(server, token)) as ws:
        assert (await subscribe(ws, [{"market_id": 1, "timeframe": "5m"}]))["markets"] == [1]
        await nats_client.publish(subjects.core_candle("sim", "BTC/USD", "1m"), candle("1m", 60_000))
        await nats_client.publish(subjects.core_candle("sim", "BTC/USD", "5m"), candle("5m", 300_000))
        await nats_client.publish(
            subjects.core_candle("sim", "ETH/USD", "5m"), candle("5m", 300_000).replace(b"BTC", b"ETH")
        )
        got = await drain(ws, 3.0)  # generous: a loaded CI machine can take a while to relay
        assert [(e["symbol"], e["tf"]) for e in got] == [("BTC/USD", "5m")]
        assert (await subscribe(ws, [{"market_id": 1, "timeframe": "7m"}]))["type"] == "error"


async def test_a_socket_without_a_session_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    for url in (ws_url(server), ws_url(server, "not-a-token")):
        with pytest.raises(InvalidStatus):
            async with connect(url):
                pass


async def test_a_cookie_socket_from_another_origin_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    _, _, cookies = await login(server, "dave@example.com")
    cookie = f"tw_session={cookies['tw_session']}"
    with pytest.raises(InvalidStatus):
        async with connect(
            ws_url(server), additional_headers={"Cookie": cookie}, origin="http://evil.example"
        ):  # type: ignore[arg-type]
            pass
    host = server.url.removeprefix("http://")
    async with connect(ws_url(server), additional_headers={"Cookie": cookie}, origin=f"http://{host}") as ws:  # type: ignore[arg-type]
        assert (await subscribe(ws, []))["type"] == "subscribed"


async def test_logging_out_closes_the_sessions_sockets(server) -> None:  # type: ignore[no-untyped-def]
    server.app.state.tw.stream_recheck_s = 0.2
    token, _, _ = await login(server, "erin@example.com")
    async with connect(ws_url(server, token)) as ws:
        await subscribe(ws, [])
        async with httpx.AsyncClient(base_url=server.url) as c:
            assert (
                await c.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
            ).status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_logout_closes_only_that_sessions_sockets(server, nats_client) -> None:  # type: ignore[no-untyped-def]
    # The sessions of every socket of the process are checked together (web.stream.SessionWatch).
    server.app.state.tw.stream_recheck_s = 0.2
    leaving, _, _ = await login(server, "fay@example.com")
    staying, _, _ = await login(server, "gus@example.com")
    again, _, _ = await login(server, "fay@example.com")  # fay's other session (another browser)
    async with (
        connect(ws_url(server, leaving)) as gone,
        connect(ws_url(server, staying)) as other_user,
        connect(ws_url(server, again)) as other_session,
    ):
        for ws in (gone, other_user, other_session):
            await subscribe(ws, [])
        async with httpx.AsyncClient(base_url=server.url) as c:
            r = await c.post("/api/auth/logout", headers={"Authorization": f"Bearer {leaving}"})
            assert r.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(gone.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        await asyncio.sleep(0.6)  # several rounds of checks
        await nats_client.publish(subjects.core_candle("sim", "BTC/USD", "1m"), candle("1m", 120_000))
        for ws in (other_user, other_session):
            assert any(e["type"] == "candle" for e in await drain(ws, 1.0))


async def test_many_sockets_share_one_feed_and_get_the_same_ticks_a_few_a_second(server, nats_client) -> None:  # type: ignore[no-untyped-def]
    token, _, _ = await login(server, "dave@example.com")
    async with (
        connect(ws_url(server, token)) as one,
        connect(ws_url(server, token)) as two,
        connect(ws_url(server, token)) as every,
    ):
        await subscribe(one, [{"market_id": 1}])
        await subscribe(two, [{"market_id": 1}])
        await subscribe(every, [])  # every market's candles, no ticks
        for i in range(40):  # 40 ticks in about 0.4 s: a sim at 100x
            tick = m.Tick(exchange="sim", symbol="BTC/USD", bid=100 + i, ask=101 + i, time=i)
            await nats_client.publish(subjects.md_tick("sim", "BTC/USD"), m.encode(tick))
            await asyncio.sleep(0.01)
        await nats_client.publish(subjects.core_candle("sim", "BTC/USD", "1m"), candle("1m", 60_000))
        got = [await drain(ws, 1.0) for ws in (one, two, every)]
    ticks = [[e["time"] for e in g if e["type"] == "tick"] for g in got]
    assert 1 <= len(ticks[0]) <= 4 and ticks[0] == ticks[1] and ticks[2] == []  # (TICKS_PER_S = 4)
    assert ticks[0][0] == 0  # the first tick goes out at once
    assert all([e["market_id"] for e in g if e["type"] == "candle"] == [1] for g in got)
