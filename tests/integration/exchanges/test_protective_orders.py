"""Limit, stop, take-profit (with its OCO stop) and trailing-stop orders on the real-exchange adapters,
against the local Bitfinex and Binance: what goes on the wire, how each order's status goes from placed
to filled (an OCO pair's other leg canceled), cancelling, and types a venue cannot hold refused."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradewind.config import Settings
from tradewind.exchanges.base import Credentials, OrderRejected, OrderSpec
from tradewind.exchanges.bitfinex import BitfinexAdapter, cid_of
from tradewind.exchanges.bitfinex.adapter import order_status
from tradewind.exchanges.ccxt_adapter import CcxtAdapter
from tradewind.exchanges.ccxt_adapter.adapter import order_types_of

from .conftest import Row, consecutive, load_rows
from .fake_binance import FakeBinance
from .fake_bitfinex import FakeBitfinex

CREDS = Credentials(trader_id=1, api_key="KEY", api_secret="SECRET")
D = Decimal


def spec(
    cid: str, type: str, side: str = "sell", amount: str = "0.1", symbol: str = "BTC/USD", **kw: Any
) -> OrderSpec:
    return OrderSpec(client_order_id=cid, symbol=symbol, side=side, amount=D(amount), type=type, **kw)


# -- Bitfinex -------------------------------------------------------------------------------------------
FLAT: list[Row] = [
    (1_700_000_000_000 + i * 60_000, 40000.0, 40000.0, 40000.0, 40000.0, 1.0) for i in range(20)
]


@pytest.fixture
async def bfx(tmp_path: Path) -> AsyncIterator[tuple[FakeBitfinex, BitfinexAdapter]]:
    server = FakeBitfinex(rows=FLAT, start_at=10, wallets={"USD": D("100000"), "BTC": D("1")})
    await server.start()
    settings = Settings(
        data_dir=tmp_path,
        bitfinex_ws_url=server.ws_url,
        bitfinex_rest_url=server.rest_url,
        bitfinex_auth_url=server.rest_url,
        bitfinex_symbols=["tBTCUSD"],
    )
    adapter = BitfinexAdapter(settings)
    yield server, adapter
    await adapter.close()
    await server.stop()


def submitted(server: FakeBitfinex) -> list[dict[str, Any]]:
    return [body for path, body in server.calls if path == "auth/w/order/submit"]


async def test_bitfinex_declares_what_it_holds_and_sends_each_type_as_bitfinex_wants(bfx) -> None:
    server, adapter = bfx
    assert adapter.capabilities.order_types == {"limit", "stop", "take_profit", "trailing_stop", "oco"}
    expires = int(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp() * 1000)
    orders = [
        spec("lim", "limit", side="buy", price=D("39000"), expires_at=expires),
        spec("stop", "stop", stop_price=D("38000")),
        spec("stop-2", "stop", stop_price=D("40000") * (1 - D("0.0312345"))),  # 38750.62: 5 digits kept
        spec("tp", "take_profit", price=D("44000")),
        spec("oco", "take_profit", price=D("44000"), stop_price=D("38000")),
        spec("trail-ref", "trailing_stop", trail=D("0.05"), price=D("41000")),
        spec("trail-lvl", "trailing_stop", trail=D("0.05"), stop_price=D("38000")),  # ref 38000 / 0.95
    ]
    for o in orders:
        placed = await adapter.place_order(CREDS, o)
        assert placed.status == "open" and placed.filled == 0 and placed.price is None
    base = {"symbol": "tBTCUSD", "amount": "-0.1"}
    assert submitted(server) == [
        {
            "symbol": "tBTCUSD",
            "amount": "0.1",
            "cid": cid_of("lim"),
            "type": "EXCHANGE LIMIT",
            "price": "39000",
            "tif": "2031-05-06 07:08:09",
        },
        {**base, "cid": cid_of("stop"), "type": "EXCHANGE STOP", "price": "38000"},
        {**base, "cid": cid_of("stop-2"), "type": "EXCHANGE STOP", "price": "38751"},
        {**base, "cid": cid_of("tp"), "type": "EXCHANGE LIMIT", "price": "44000"},
        {
            **base,
            "cid": cid_of("oco"),
            "type": "EXCHANGE LIMIT",
            "price": "44000",
            "flags": 16384,
            "price_oco_stop": "38000",
        },
        {**base, "cid": cid_of("trail-ref"), "type": "EXCHANGE TRAILING STOP", "price_trailing": "2050"},
        {**base, "cid": cid_of("trail-lvl"), "type": "EXCHANGE TRAILING STOP", "price_trailing": "2000"},
    ]
    # The exchange lists what it holds: the OCO pair as two orders, its stop leg placed by the limit.
    listed = {o.cid: o for o in server.orders if o.open}
    oco_stop = next(o for o in server.orders if o.placed_id == listed[cid_of("oco")].id)
    assert (oco_stop.type, oco_stop.price, oco_stop.flags) == ("EXCHANGE STOP", D("38000"), 16384)
    assert listed[cid_of("trail-ref")].array()[18] == 2050.0 and listed[cid_of("lim")].array()[10] == expires
    # Sells reserve what they sell: the OCO pair once.
    balances = await adapter.fetch_balances(CREDS)
    assert balances["BTC"] == D("0.4") and balances["USD"] == D("100000") - D("3900")


@pytest.mark.parametrize("leg_has_cid", [False, True], ids=["stop-leg-without-cid", "stop-leg-with-cid"])
@pytest.mark.parametrize("fires", ["limit", "stop"])
async def test_bitfinex_oco_pair_fills_one_leg_and_the_exchange_cancels_the_other(
    bfx, fires: str, leg_has_cid: bool
) -> None:
    server, adapter = bfx
    server.oco_leg_cid = leg_has_cid
    o = spec("tw-1-1-tp", "take_profit", price=D("44000"), stop_price=D("38000"))
    placed = await adapter.place_order(CREDS, o)
    limit, stop = server.orders
    assert placed.exchange_order_id == str(limit.id) and stop.placed_id == limit.id
    assert server.trade_through(41000) == []
    found = await adapter.fetch_order(CREDS, o.client_order_id, "BTC/USD")
    assert found is not None and found.status == "open" and found.exchange_order_id == str(limit.id)
    price = 44100 if fires == "limit" else 37900
    (fired,) = server.trade_through(price)
    assert fired is (limit if fires == "limit" else stop)
    other = stop if fires == "limit" else limit
    assert other.status == "CANCELED" and order_status(other.status) == "canceled"
    found = await adapter.fetch_order(CREDS, o.client_order_id, "BTC/USD")
    at = D("44000") if fires == "limit" else D("37900")  # a limit fills at its price, a stop at the market
    assert found is not None and (found.status, found.filled, found.price) == ("filled", D("0.1"), at)
    assert found.exchange_order_id == str(fired.id) and found.fee == D("0.1") * at * server.fee_rate
    assert found.reason == (
        "take_profit" if fires == "limit" else "stop_loss"
    )  # which leg: core's exit reason
    if fires == "stop":
        assert (stop.type, stop.type_prev) == ("EXCHANGE MARKET", "EXCHANGE STOP")
    assert (await adapter.cancel_order(CREDS, o.client_order_id, "BTC/USD")).status == "filled"
    assert (await adapter.fetch_balances(CREDS))["BTC"] == D("0.9")


async def test_bitfinex_stop_and_trailing_stop_go_from_open_to_filled_when_the_market_trades_through(
    bfx,
) -> None:
    server, adapter = bfx
    stop = spec("tw-1-2-sl", "stop", stop_price=D("38000"))
    trail = spec("tw-1-2-ts", "trailing_stop", trail=D("0.05"), price=D("40000"))  # 2000 below the peak
    for o in (stop, trail):
        assert (await adapter.place_order(CREDS, o)).status == "open"
    assert server.trade_through(42000) == []  # the peak is 42000 now: the trailing level is 40000
    assert server.trade_through(40100) == []
    assert [o.cid for o in server.trade_through(40000)] == [cid_of(trail.client_order_id)]
    got = await adapter.fetch_order(CREDS, trail.client_order_id, "BTC/USD")
    assert got is not None and (got.status, got.filled, got.price) == ("filled", D("0.1"), D("40000"))
    assert (await adapter.fetch_order(CREDS, stop.client_order_id, "BTC/USD")).status == "open"  # type: ignore[union-attr]
    server.trade_through(37990)
    got = await adapter.fetch_order(CREDS, stop.client_order_id, "BTC/USD")
    assert got is not None and (got.status, got.filled, got.price) == ("filled", D("0.1"), D("37990"))


async def test_bitfinex_limit_fills_at_its_price_or_expires_at_its_tif(bfx) -> None:
    server, adapter = bfx
    soon = int((time.time() + 60) * 1000)
    entry = spec("tw-1-3-l", "limit", side="buy", price=D("39000"), expires_at=soon)
    late = spec("tw-1-3-x", "limit", side="buy", price=D("30000"), expires_at=soon)
    for o in (entry, late):
        assert (await adapter.place_order(CREDS, o)).status == "open"
    server.trade_through(38900)
    got = await adapter.fetch_order(CREDS, entry.client_order_id, "BTC/USD")
    assert got is not None and (got.status, got.filled, got.price) == ("filled", D("0.1"), D("39000"))
    server.clock = lambda: time.time() + 120  # type: ignore[method-assign]  # the tif has passed
    got = await adapter.fetch_order(CREDS, late.client_order_id, "BTC/USD")
    assert got is not None and got.status == "canceled" and got.filled == 0


async def test_bitfinex_cancel_takes_an_order_down_and_an_oco_pair_with_both_legs(bfx) -> None:
    server, adapter = bfx
    stop = spec("tw-1-4-sl", "stop", stop_price=D("38000"))
    pair = spec("tw-1-4-tp", "take_profit", price=D("44000"), stop_price=D("38000"))
    for o in (stop, pair):
        await adapter.place_order(CREDS, o)
    done = await adapter.cancel_order(CREDS, stop.client_order_id, "BTC/USD")
    assert done.status == "canceled" and done.filled == 0
    done = await adapter.cancel_order(CREDS, pair.client_order_id, "BTC/USD")
    assert done.status == "canceled"
    assert [o.status for o in server.orders] == ["CANCELED"] * 3
    # The stop, placed by this process, by its cid and day in one call; the pair by id, leg by leg.
    assert [body for path, body in server.calls if path == "auth/w/order/cancel"] == [
        {"cid": server.orders[0].cid, "cid_date": server.orders[0].cid_date},
        {"id": server.orders[1].id},
    ]
    again = await adapter.cancel_order(CREDS, pair.client_order_id, "BTC/USD")  # already down: its state
    assert again.status == "canceled"
    assert server.trade_through(30000) == []  # nothing left to fire
    assert (await adapter.fetch_balances(CREDS))["BTC"] == D("1")


async def test_bitfinex_watches_many_orders_in_one_lookup_and_cancels_by_cid(bfx) -> None:
    """What keeps a market maker inside Bitfinex's budget: the orders of an account are looked up together
    (one call for the open ones, one for those that ended), and a cancel is one call by cid and day, its
    outcome read from the closed orders; an order that filled before the cancel reached it is reported
    filled, with its fee."""
    server, adapter = bfx
    quotes = [spec(f"tw-9-q{i}", "limit", side="buy", price=D(39000 + i), post_only=True) for i in range(3)]
    for q in quotes:
        await adapter.place_order(CREDS, q)
    assert len(server.trade_through(39002)) == 1  # the highest bid fills
    server.calls.clear()
    wanted = [(q.client_order_id, "BTC/USD") for q in quotes] + [("tw-9-never", "BTC/USD")]
    found = await adapter.fetch_orders(CREDS, wanted)
    assert [path for path, _ in server.calls][:2] == ["auth/r/orders", "auth/r/orders/hist"]
    assert {k: v.status if v else None for k, v in found.items()} == {
        "tw-9-q0": "open",
        "tw-9-q1": "open",
        "tw-9-q2": "filled",
        "tw-9-never": None,
    }
    filled = found["tw-9-q2"]
    assert filled is not None and filled.filled == D("0.1") and filled.fee > 0

    server.calls.clear()
    done = await adapter.cancel_order(CREDS, "tw-9-q0", "BTC/USD")
    assert done.status == "canceled" and done.filled == 0
    assert [path for path, _ in server.calls] == ["auth/w/order/cancel", "auth/r/orders/hist"]
    assert server.calls[0][1] == {"cid": cid_of("tw-9-q0"), "cid_date": server.orders[0].cid_date}

    assert len(server.trade_through(39001)) == 1  # filled before the cancel arrives
    late = await adapter.cancel_order(CREDS, "tw-9-q1", "BTC/USD")
    assert late.status == "filled" and late.filled == D("0.1") and late.fee > 0


async def test_bitfinex_cancels_an_order_of_an_earlier_run_after_looking_it_up(bfx, tmp_path: Path) -> None:
    """After a restart the adapter does not know the day an order was placed on (its cid_date): it finds the
    order first, then cancels it by Bitfinex's id."""
    server, adapter = bfx
    await adapter.place_order(CREDS, spec("tw-9-old", "limit", side="buy", price=D("39000")))
    restarted = BitfinexAdapter(adapter.settings)
    try:
        server.calls.clear()
        done = await restarted.cancel_order(CREDS, "tw-9-old", "BTC/USD")
    finally:
        await restarted.close()
    assert done.status == "canceled"
    assert [path for path, _ in server.calls][:2] == ["auth/r/orders", "auth/w/order/cancel"]
    assert server.calls[1][1] == {"id": server.orders[0].id}


async def test_bitfinex_refuses_what_it_cannot_take(bfx) -> None:
    server, adapter = bfx
    # The adapter refuses, before any call, an order it cannot express.
    for bad, why in [
        (spec("a", "iceberg", price=D("1")), "no order type 'iceberg'"),
        (spec("b", "stop"), "needs a stop price"),
        (spec("c", "trailing_stop", trail=D("0.05")), "reference price"),
        (spec("d", "trailing_stop", trail=D("1.5"), price=D("40000")), "trail between 0 and 1"),
        (spec("e", "stop", stop_price=D("38000"), expires_at=1), "only a limit order can expire"),
    ]:
        with pytest.raises(OrderRejected, match=why):
            await adapter.place_order(CREDS, bad)
    assert submitted(server) == []
    # The exchange refuses a malformed order with an error array, and the adapter says why.
    base = {"symbol": "tBTCUSD", "amount": "-0.1", "cid": 1}
    for body, why in [
        ({**base, "type": "EXCHANGE STOP LIMIT", "price": "38000"}, "type: invalid"),
        ({**base, "type": "STOP", "price": "38000"}, "type: invalid"),  # a margin order
        ({**base, "type": "EXCHANGE STOP"}, "price: invalid"),
        ({**base, "type": "EXCHANGE TRAILING STOP"}, "price_trailing: invalid"),
        ({**base, "type": "EXCHANGE TRAILING STOP", "price_trailing": "-5"}, "price_trailing: invalid"),
        (
            {**base, "type": "EXCHANGE LIMIT", "price": "44000", "price_oco_stop": "38000"},
            "price_oco_stop: invalid",
        ),
        ({**base, "type": "EXCHANGE LIMIT", "price": "44000", "flags": 16384}, "price_oco_stop: invalid"),
        (
            {**base, "type": "EXCHANGE LIMIT", "price": "44000", "flags": 16384, "price_oco_stop": "45000"},
            "other side of the limit",
        ),
        ({**base, "type": "EXCHANGE STOP", "price": "38000", "tif": "2031-01-01 00:00:00"}, "tif: invalid"),
        ({**base, "type": "EXCHANGE LIMIT", "price": "44000", "tif": "2031-01-01T00:00:00Z"}, "tif: invalid"),
        ({**base, "type": "EXCHANGE LIMIT", "price": 44000}, "price: invalid"),  # not a decimal string
        ({**base, "type": "EXCHANGE LIMIT", "price": "44000", "trail": "0.05"}, "trail: invalid"),
        ({**base, "type": "EXCHANGE LIMIT", "amount": "-2", "price": "44000"}, "not enough exchange balance"),
    ]:
        with pytest.raises(OrderRejected, match=why):
            await adapter.http.auth(CREDS, "auth/w/order/submit", body)
    assert server.orders == []


# -- ccxt / Binance spot --------------------------------------------------------------------------------
ROWS = consecutive(load_rows("ETH-BTC-5m.csv"), 36, step=300_000)


@pytest.fixture
async def bnb(tmp_path: Path) -> AsyncIterator[tuple[FakeBinance, CcxtAdapter]]:
    server = FakeBinance(ROWS, balances={"BTC": D("1"), "ETH": D("10")})
    await server.start()
    settings = Settings(
        data_dir=tmp_path, ccxt_urls={"binance": server.url}, ccxt_symbols={"binance": ["ETH/BTC"]}
    )
    adapter = CcxtAdapter("binance", settings)
    yield server, adapter
    await adapter.close()
    await server.stop()


def posted(server: FakeBinance) -> list[dict[str, str]]:
    drop = {"timestamp", "signature", "recvWindow", "newOrderRespType", "symbol"}
    return [{k: v for k, v in p.items() if k not in drop} for m, path, p in server.requests if m == "POST"]


def eth(cid: str, type: str, side: str = "sell", amount: str = "1", **kw: Any) -> OrderSpec:
    return spec(cid, type, side=side, amount=amount, symbol="ETH/BTC", **kw)


async def test_binance_holds_what_ccxt_has_and_gets_binance_spot_order_types(bnb) -> None:
    server, adapter = bnb
    assert adapter.capabilities.order_types == {"limit", "stop", "take_profit", "trailing_stop"}
    assert server.last_price() == D("0.09469812")
    orders = [  # the limit's expiry is core's to keep on ccxt venues: it goes out good-till-cancelled
        eth("tw-2-1-l", "limit", side="buy", price=D("0.093"), expires_at=int(time.time() * 1000) + 60_000),
        eth("tw-2-1-sl", "stop", stop_price=D("0.092")),
        eth("tw-2-1-tp", "take_profit", price=D("0.1")),
        eth("tw-2-1-ts", "trailing_stop", trail=D("0.015")),
    ]
    for o in orders:
        placed = await adapter.place_order(CREDS, o)
        assert placed.status == "open" and placed.filled == 0
    assert posted(server) == [
        {
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1",
            "price": "0.093",
            "timeInForce": "GTC",
            "newClientOrderId": "tw-2-1-l",
        },
        {
            "side": "SELL",
            "type": "STOP_LOSS",
            "quantity": "1",
            "stopPrice": "0.092",
            "newClientOrderId": "tw-2-1-sl",
        },
        {
            "side": "SELL",
            "type": "TAKE_PROFIT_LIMIT",
            "quantity": "1",
            "price": "0.1",
            "stopPrice": "0.1",
            "timeInForce": "GTC",
            "newClientOrderId": "tw-2-1-tp",
        },
        {
            "side": "SELL",
            "type": "STOP_LOSS",
            "quantity": "1",
            "trailingDelta": "150",
            "newClientOrderId": "tw-2-1-ts",
        },
    ]
    account = await adapter.fetch_balances(CREDS)  # sells lock what they sell, a buy its cost
    assert account["ETH"] == D("7") and account["BTC"] == D("1") - D("0.093")


async def test_binance_stop_take_profit_and_trailing_stop_trigger_and_fill(bnb) -> None:
    server, adapter = bnb
    stop = eth("tw-2-2-sl", "stop", stop_price=D("0.092"))
    take = eth("tw-2-2-tp", "take_profit", price=D("0.1"))
    trail = eth("tw-2-2-ts", "trailing_stop", trail=D("0.02"))  # 200 basis points below the peak
    for o in (stop, take, trail):
        await adapter.place_order(CREDS, o)

    async def state(o: OrderSpec) -> tuple[str, Decimal, Decimal | None]:
        got = await adapter.fetch_order(CREDS, o.client_order_id, "ETH/BTC")
        assert got is not None
        return got.status, got.filled, got.price

    assert server.trade_through("0.098") == []  # trailing peak 0.098: its level 0.09604
    assert await state(take) == ("open", 0, D("0.1"))
    assert [o["clientOrderId"] for o in server.trade_through("0.101")] == ["tw-2-2-tp"]
    assert await state(take) == ("filled", 1, D("0.1"))  # the limit's price, once triggered
    assert [o["clientOrderId"] for o in server.trade_through("0.0989")] == ["tw-2-2-ts"]  # < 0.101 * 0.98
    assert await state(trail) == ("filled", 1, D("0.0989"))
    assert await state(stop) == ("open", 0, None)
    assert [o["clientOrderId"] for o in server.trade_through("0.0915")] == ["tw-2-2-sl"]
    assert await state(stop) == ("filled", 1, D("0.0915"))
    assert (await adapter.fetch_balances(CREDS))["ETH"] == D("7")


async def test_binance_cancel_takes_a_resting_stop_down_by_its_client_id(bnb) -> None:
    server, adapter = bnb
    o = eth("tw-2-3-sl", "stop", stop_price=D("0.092"))
    await adapter.place_order(CREDS, o)
    done = await adapter.cancel_order(CREDS, o.client_order_id, "ETH/BTC")
    assert done.status == "canceled" and server.orders[0]["status"] == "CANCELED"
    cancel = next(p for m, path, p in server.requests if m == "DELETE")
    assert cancel["origClientOrderId"] == o.client_order_id
    assert (await adapter.cancel_order(CREDS, o.client_order_id, "ETH/BTC")).status == "canceled"
    assert server.trade_through("0.09") == []


async def test_binance_refuses_malformed_orders_and_the_adapter_what_the_venue_cannot_hold(
    bnb, tmp_path: Path
) -> None:
    server, adapter = bnb
    for bad, why in [
        (
            eth("a", "take_profit", price=D("0.1"), stop_price=D("0.092")),
            r"binance cannot hold a take-profit and stop pair \(OCO\); core watches it",
        ),
        (eth("c", "stop"), "needs a stop price"),
        (eth("d", "iceberg"), "unknown order type"),
    ]:
        with pytest.raises(OrderRejected, match=why):
            await adapter.place_order(CREDS, bad)
    assert posted(server) == []
    # A stop the market is already through, and a trailing distance outside Binance's filter.
    with pytest.raises(OrderRejected, match="Stop price would trigger immediately"):
        await adapter.place_order(CREDS, eth("e", "stop", stop_price=D("0.1")))
    with pytest.raises(OrderRejected, match="TRAILING_DELTA"):
        await adapter.place_order(CREDS, eth("f", "trailing_stop", trail=D("0.5")))
    assert [p["newClientOrderId"] for p in posted(server)] == ["e", "f"]
    # What the fake answers to parameters an order type does not take (through ccxt's raw API).
    ex = await adapter._account(CREDS)
    base = {"symbol": "ETHBTC", "side": "SELL", "quantity": "1", "timestamp": ex.milliseconds()}
    for params, code in [
        ({**base, "type": "STOP_LOSS"}, "-1102"),
        ({**base, "type": "STOP_LOSS", "stopPrice": "0.09", "price": "0.09"}, "-1106"),
        ({**base, "type": "LIMIT", "price": "0.2"}, "-1102"),  # no timeInForce
        ({**base, "type": "STOP_LOSS", "stopPrice": "0.09", "stopLossOrTakeProfit": "stopLoss"}, "-1104"),
        ({**base, "type": "TRAILING_STOP_MARKET", "callbackRate": "1"}, "-1116"),
    ]:
        with pytest.raises(Exception, match=code):
            await ex.private_post_order(params)
    assert server.orders == []
    # A venue ccxt has no trailing stop for (bybit), or no stop at all (coinbase): refused, not placed.
    settings = Settings(data_dir=tmp_path)
    for venue, kind, what in [
        ("bybit", "trailing_stop", "a trailing stop"),
        ("coinbase", "stop", "a stop-loss"),
    ]:
        other = CcxtAdapter(venue, settings, use_websocket=False)
        assert kind not in other.capabilities.order_types
        with pytest.raises(OrderRejected, match=f"^{venue} cannot hold {what}; core watches it$"):
            await other.place_order(CREDS, eth("g", kind, stop_price=D("0.09"), trail=D("0.02")))
        await other.close()
    assert order_types_of({"createStopLossOrder": "emulated", "createTakeProfitOrder": False}) == {
        "limit",
        "stop",
    }
    lacking = dataclasses.replace(adapter.capabilities, order_types=frozenset({"limit"}))
    adapter.capabilities = lacking
    with pytest.raises(OrderRejected, match="binance cannot hold a trailing stop; core watches it"):
        await adapter.place_order(CREDS, eth("h", "trailing_stop", trail=D("0.02")))
    assert len(posted(server)) == 7  # e and f above, refused by Binance, and the five raw ones
