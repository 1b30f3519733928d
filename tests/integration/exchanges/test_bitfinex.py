"""The Bitfinex adapter against a local server speaking Bitfinex's websocket v2 and REST v2 formats."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tradewind.config import Settings
from tradewind.exchanges.base import (
    AuthError,
    Credentials,
    ExchangeError,
    ExchangeUnavailable,
    OrderRejected,
    OrderSpec,
)
from tradewind.exchanges.bitfinex import BitfinexAdapter, StreamTiming, cid_of
from tradewind.exchanges.bitfinex.rest import sign

from .conftest import Row, consecutive, load_rows
from .fake_bitfinex import FakeBitfinex

ROWS = consecutive(load_rows("UNITTEST-BTC-1m.csv"), 20)
FAST = StreamTiming(
    silence_s=0.25, maintenance_s=3.0, backoff_initial_s=0.02, backoff_max_s=0.2, close_grace_s=None
)
CREDS = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET")


def settings_for(server: FakeBitfinex, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        bitfinex_ws_url=server.ws_url,
        bitfinex_rest_url=server.rest_url,
        bitfinex_auth_url=server.rest_url,
        bitfinex_symbols=["tBTCUSD"],
    )


@pytest.fixture
async def make_server() -> AsyncIterator:
    servers: list[FakeBitfinex] = []

    async def make(**kw) -> FakeBitfinex:
        server = FakeBitfinex(**{"rows": ROWS, "start_at": 10, **kw})
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


async def collect(adapter: BitfinexAdapter, n: int, timeout: float = 15) -> list[Row]:
    out: list[Row] = []
    stream = adapter.stream_candles(["BTC/USD"], "1m")
    try:
        async with asyncio.timeout(timeout):
            async for c in stream:
                assert (
                    c.exchange == "bitfinex"
                    and c.symbol == "BTC/USD"
                    and c.closed
                    and c.trace_id
                    and c.recv_ns
                )
                out.append((c.time, c.open, c.high, c.low, c.close, c.volume))
                if len(out) >= n:
                    break
    finally:
        await stream.aclose()
        await adapter.close()
    return out


async def test_stream_yields_every_closed_minute_once_with_the_final_ohlc(make_server, tmp_path) -> None:
    server = await make_server()
    got = await collect(BitfinexAdapter(settings_for(server, tmp_path), timing=FAST), len(ROWS) - 1)
    assert got == ROWS[:-1]  # the last minute is still open: never emitted early, never twice
    assert server.connections == 1


@pytest.mark.parametrize(
    "script",
    [
        pytest.param({20: ("drop", 4)}, id="dropped-connection"),
        pytest.param({20: ("silence", 4)}, id="silent-connection"),
        pytest.param({20: ("restart", 0)}, id="info-20051-restart"),
        pytest.param({20: ("maintenance", 5)}, id="maintenance-20060-20061"),
        pytest.param({14: ("drop", 3), 30: ("silence", 2), 45: ("restart", 0)}, id="all-of-them"),
    ],
)
async def test_stream_survives_faults_with_each_minute_exactly_once(make_server, tmp_path, script) -> None:
    server = await make_server(script=dict(script))
    got = await collect(BitfinexAdapter(settings_for(server, tmp_path), timing=FAST), len(ROWS) - 1)
    assert got == ROWS[:-1]
    assert server.connections == 1 + len(script)  # it reconnected once per fault, and resubscribed each time
    assert server.subscriptions == ["trade:1m:tBTCUSD"] * server.connections
    assert "client left during maintenance" not in server.faults


async def test_gap_longer_than_the_snapshot_is_backfilled_from_rest(make_server, tmp_path) -> None:
    # Away for 5 minutes while the snapshot after reconnecting shows only the newest 2 (the first
    # snapshot too: the stream starts at minute 2). Minute 6 was open at the drop: its final values
    # come from the backfill, not from the stale state the adapter last saw.
    server = await make_server(snapshot_size=2, script={20: ("drop", 15)})
    got = await collect(BitfinexAdapter(settings_for(server, tmp_path), timing=FAST), len(ROWS) - 3)
    assert got == ROWS[2:-1]
    backfills = [q for kind, q in server.calls if kind == "candles"]
    assert len(backfills) == 1 and int(backfills[0]["start"]) == ROWS[6][0]


async def test_a_minute_without_trades_becomes_a_flat_candle_at_the_previous_close(
    make_server, tmp_path
) -> None:
    rows = ROWS[:8] + ROWS[9:]  # nobody traded in minute 8: Bitfinex sends no candle for it
    server = await make_server(rows=rows)
    got = await collect(BitfinexAdapter(settings_for(server, tmp_path), timing=FAST), len(ROWS) - 1)
    prev_close = ROWS[7][4]
    assert got[8] == (ROWS[8][0], prev_close, prev_close, prev_close, prev_close, 0.0)
    assert got[:8] + got[9:] == rows[:-1]


async def test_a_quiet_market_closes_its_last_candle_after_the_grace(make_server, tmp_path) -> None:
    now = [ROWS[0][0] / 1000]
    server = await make_server()
    timing = StreamTiming(silence_s=1, backoff_initial_s=0.02, close_grace_s=0.1)
    adapter = BitfinexAdapter(settings_for(server, tmp_path), timing=timing, clock=lambda: now[0])
    stream = adapter.stream_candles(["BTC/USD"], "1m")
    got = []
    async with asyncio.timeout(10):
        async for c in stream:
            got.append(c.time)
            if len(got) == len(ROWS) - 1:
                now[0] = ROWS[-1][0] / 1000 + 60.2  # the minute and its 0.1 s grace ended, nothing newer came
            if len(got) == len(ROWS):
                break
    await stream.aclose()
    await adapter.close()
    assert got == [r[0] for r in ROWS]


async def test_history_pages_come_from_rest_oldest_first(make_server, tmp_path) -> None:
    server = await make_server(start_at=len(ROWS) * 3)
    adapter = BitfinexAdapter(settings_for(server, tmp_path))
    candles = await adapter.fetch_history("BTC/USD", "1m", ROWS[2][0], ROWS[12][0])
    await adapter.close()
    assert [(c.time, c.open, c.high, c.low, c.close, c.volume) for c in candles] == ROWS[2:12]


# -- authenticated REST --------------------------------------------------------------------------------
async def test_balances_are_signed_and_nonces_grow_across_a_restart(make_server, tmp_path) -> None:
    server = await make_server()
    for _ in range(2):  # a second adapter = a restarted process, a moment later
        adapter = BitfinexAdapter(settings_for(server, tmp_path))
        assert await adapter.fetch_balances(CREDS) == {"USD": Decimal("10000"), "BTC": Decimal("1")}
        assert await adapter.fetch_balances(CREDS) == {"USD": Decimal("10000"), "BTC": Decimal("1")}
        await adapter.close()
    assert server.rejected_auth == [] and len(server.calls) == 4


async def test_server_rejects_a_bad_signature_and_a_repeated_nonce(make_server, tmp_path) -> None:
    server = await make_server()
    adapter = BitfinexAdapter(settings_for(server, tmp_path))
    with pytest.raises(AuthError, match="digest invalid"):
        await adapter.fetch_balances(Credentials(trader_id=1, api_key="KEY", api_secret="WRONG"))
    with pytest.raises(AuthError, match="apikey: invalid"):
        await adapter.fetch_balances(Credentials(trader_id=1, api_key="NOPE", api_secret="SECRET"))
    await adapter.fetch_balances(CREDS)
    await adapter.close()
    nonce = str(server.nonces["KEY"])  # replay the last nonce with a valid signature
    headers = {
        "bfx-apikey": "KEY",
        "bfx-nonce": nonce,
        "bfx-signature": sign("SECRET", "auth/r/wallets", nonce, "{}"),
    }
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{server.rest_url}/auth/r/wallets", content="{}", headers=headers)
    assert r.status_code == 500 and r.json() == ["error", 10114, "nonce: small"]
    assert server.rejected_auth == ["signature", "key", "nonce"]


async def test_one_order_per_client_id_even_when_placed_twice(make_server, tmp_path) -> None:
    server = await make_server()
    adapter = BitfinexAdapter(settings_for(server, tmp_path))
    spec = OrderSpec(client_order_id="tw-7-1700000000-l", symbol="BTC/USD", side="buy", amount=Decimal("0.5"))
    first = await adapter.place_order(CREDS, spec)
    again = await adapter.place_order(CREDS, spec)
    assert len(server.orders) == 1 and server.orders[0].cid == cid_of(spec.client_order_id)
    assert first.exchange_order_id == again.exchange_order_id == str(server.orders[0].id)
    found = await adapter.fetch_order(CREDS, spec.client_order_id, "BTC/USD")
    await adapter.close()
    assert found is not None and found.status == "filled" and found.filled == Decimal("0.5")
    assert found.price == Decimal(repr(server.orders[0].price_avg)) and found.fee == server.orders[0].fee
    submit = next(body for path, body in server.calls if path == "auth/w/order/submit")
    assert (
        submit["type"] == "EXCHANGE MARKET" and submit["amount"] == "0.5" and isinstance(submit["cid"], int)
    )


async def test_sell_amount_is_negative_and_a_refused_order_says_why(make_server, tmp_path) -> None:
    server = await make_server()
    adapter = BitfinexAdapter(settings_for(server, tmp_path))
    spec = OrderSpec(client_order_id="tw-7-1700000060-s", symbol="BTC/USD", side="sell", amount=Decimal("5"))
    with pytest.raises(OrderRejected, match="not enough exchange balance"):
        await adapter.place_order(CREDS, spec)
    assert await adapter.fetch_order(CREDS, spec.client_order_id, "BTC/USD") is None
    await adapter.close()
    submits = [body for path, body in server.calls if path == "auth/w/order/submit"]
    assert len(submits) == 1 and submits[0]["amount"] == "-5"  # refused once, never retried


async def test_an_account_marked_for_a_testnet_is_refused_before_any_call(make_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = await make_server()
    adapter = BitfinexAdapter(settings_for(server, tmp_path))
    on_testnet = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET", sandbox=True)
    spec = OrderSpec(client_order_id="tw-9-0-l", symbol="BTC/USD", side="buy", amount=Decimal("0.01"))
    with pytest.raises(ExchangeError, match="Bitfinex has no testnet"):
        await adapter.fetch_balances(on_testnet)
    with pytest.raises(ExchangeError, match="Bitfinex has no testnet"):
        await adapter.place_order(on_testnet, spec)
    await adapter.close()
    assert server.calls == [] and server.orders == []  # nothing reached the live exchange


async def test_order_that_timed_out_after_being_placed_is_found_once_after_a_restart(
    make_server, tmp_path
) -> None:
    server = await make_server(submit_delay_s=1.0)
    adapter = BitfinexAdapter(settings_for(server, tmp_path), request_timeout_s=0.3)
    spec = OrderSpec(
        client_order_id="tw-9-1700000120-l", symbol="BTC/USD", side="buy", amount=Decimal("0.25")
    )
    started = time.monotonic()
    with pytest.raises(ExchangeUnavailable):
        await adapter.place_order(CREDS, spec)
    assert time.monotonic() - started < 1.0
    await adapter.close()
    restarted = BitfinexAdapter(settings_for(server, tmp_path))  # knows nothing of the first attempt
    found = await restarted.fetch_order(CREDS, spec.client_order_id, "BTC/USD")
    await restarted.close()
    assert found is not None and found.status == "filled" and found.filled == Decimal("0.25")
    assert len(server.orders) == 1


def test_cid_is_a_stable_45_bit_integer() -> None:
    assert cid_of("tw-1-2-l") == cid_of("tw-1-2-l") != cid_of("tw-1-2-s")
    assert 0 <= cid_of("x" * 64) < 2**45
    assert json.dumps(cid_of("tw-1-2-l")).isdigit()
