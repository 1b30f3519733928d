"""The trades view over HTTP (GET /api/trades: round trips, daily profit, the equity curve, from an account's
fills) and a paper account's reset (POST /api/traders/{id}/reset, through the sim exchange on NATS)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.config import Settings
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.models import (
    Assignment,
    AuditEntry,
    Evaluation,
    Market,
    Order,
    PaperFill,
    Strategy,
    Trader,
)

from .conftest import KEY

MIN = 60_000
D = Decimal
# Two round trips and an open one, on the fixture's sim BTC/USD candles (1m, minutes 1..29, close 1.5):
# 100 bought at 1.0 and sold at 1.2 (a signal), 100 bought at 1.2 and sold in two halves (the stop last),
# then 50 bought at 1.4 and held. Fees: 0.001 of each fill's value.
FILLS = [  # (minute, side, amount, price, exit reason)
    (2, "buy", "100", "1.0", None),
    (5, "sell", "100", "1.2", "signal"),
    (1440 * 1 + 0, "buy", "100", "1.2", None),
    (1440 * 1 + 3, "sell", "50", "1.3", "take_profit"),
    (1440 * 1 + 9, "sell", "50", "1.1", "stop_loss"),
    (1440 * 1 + 20, "buy", "50", "1.4", None),
]


def _fee(amount: str, price: str) -> Decimal:
    return D(amount) * D(price) * D("0.001")


async def _user_id(c) -> int:  # type: ignore[no-untyped-def]
    return int((await c.get("/api/auth/me")).json()["id"])


async def _paper_with_fills(c, sf, aid_of=None) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A paper account with FILLS (as the sim records them, and core's orders for them) and an assignment
    that made them."""
    t = (await c.post("/api/traders", json={"name": "Paper", "exchange": "sim", "paper": True})).json()["id"]
    owner = await _user_id(c)
    async with sf() as s:
        market = (await s.execute(select(Market).where(Market.exchange == "sim"))).scalar_one()
        strategy = Strategy(owner_id=owner, name="s")
        s.add(strategy)
        await s.flush()
        a = Assignment(
            owner_id=owner,
            strategy_id=strategy.id,
            market_id=market.id,
            timeframe="1m",
            trader_id=t,
            allocation=D("500"),
        )
        s.add(a)
        await s.flush()
        for i, (minute, side, amount, price, reason) in enumerate(FILLS):
            cid = f"o{t}-{i}"
            fee = _fee(amount, price)
            s.add(
                PaperFill(
                    trader_id=t,
                    client_order_id=cid,
                    symbol="BTC/USD",
                    side=side,
                    amount=D(amount),
                    price=D(price),
                    fee=fee,
                    status="filled",
                    time=minute * MIN,
                )
            )
            s.add(
                Order(
                    owner_id=owner,
                    assignment_id=a.id,
                    trader_id=t,
                    client_order_id=cid,
                    exchange="sim",
                    symbol="BTC/USD",
                    side=side,
                    amount=D(amount),
                    price=D(price),
                    filled=D(amount),
                    fee=fee,
                    status="filled",
                    exit_reason=reason,
                    type="stop"
                    if reason == "stop_loss"
                    else "take_profit"
                    if reason == "take_profit"
                    else "market",
                )
            )
        await store.insert_candles(
            s, market.id, "5m", [(5 * MIN * i, 1.0, 2.0, 0.5, 1.5, 10.0) for i in range(7)]
        )
        # a rejected order leaves a row in paper_fills too: it is no fill
        s.add(
            PaperFill(
                trader_id=t,
                client_order_id=f"r{t}",
                symbol="BTC/USD",
                side="buy",
                amount=D("1"),
                price=D("1"),
                fee=D(0),
                status="rejected",
                reason="insufficient USD",
                time=3 * MIN,
            )
        )
        await s.commit()
        return t, a.id


async def test_round_trips_daily_profit_and_equity_of_a_paper_account(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("trades@example.com")
    t, aid = await _paper_with_fills(c, sf)
    r = await c.get("/api/trades", params={"trader_id": t})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["paper"], doc["fills"], doc["truncated"], doc["unmatched"]) == (True, 6, False, 0)
    newest, second, first = doc["trips"]
    # the first: 100 at 1.0 out at 1.2 by a signal
    cost1, back1 = D("100") + _fee("100", "1.0"), D("120") - _fee("100", "1.2")
    assert first["pnl"] == pytest.approx(float(back1 - cost1))
    assert first["pnl_pct"] == pytest.approx(float((back1 - cost1) / cost1 * 100))
    assert first["fees"] == pytest.approx(float(_fee("100", "1.0") + _fee("100", "1.2")))
    assert (first["entry_time"], first["exit_time"], first["duration_s"]) == (2 * MIN, 5 * MIN, 180)
    assert (first["exit_reason"], first["entry_price"], first["exit_price"], first["qty"]) == (
        "signal",
        1.0,
        1.2,
        100,
    )
    assert (first["assignment_id"], first["symbol"], first["entry_type"]) == (aid, "BTC/USD", "market")
    assert first["market_id"] is not None
    # the second closes with its second sell (the stop): its exit price averages both sells
    assert (second["exit_reason"], second["exit_price"], second["exit_time"]) == (
        "stop_loss",
        1.2,
        (1440 + 9) * MIN,
    )
    cost2 = D("120") + _fee("100", "1.2")
    back2 = D("65") - _fee("50", "1.3") + D("55") - _fee("50", "1.1")
    assert second["pnl"] == pytest.approx(float(back2 - cost2))
    # the third is open
    assert (newest["exit_time"], newest["pnl"], newest["exit_reason"]) == (None, None, None)
    s = doc["summary"]
    assert (s["trades"], s["open"], s["wins"]) == (2, 1, 1)
    assert s["pnl"] == pytest.approx(float(back1 - cost1 + back2 - cost2))
    assert s["profit_factor"] == pytest.approx(float((back1 - cost1) / -(back2 - cost2)))
    assert s["avg_duration_s"] == pytest.approx((180 + 540) / 2)
    assert s["fees"] == pytest.approx(float(sum(_fee(a, p) for _, _, a, p, _ in FILLS)))
    # realized per UTC day: the first trip on day one, the second's two sells on day two
    (day1, day2) = doc["daily"]
    assert (day1["day"], day2["day"]) == ("1970-01-01", "1970-01-02")
    assert D(day1["pnl"]) == (back1 - cost1).quantize(D("0.00000001"))
    assert abs(D(day2["pnl"]) - (back2 - cost2)) < D("0.0000001")
    assert (day1["fills"], day2["fills"]) == (2, 4)
    # The curve starts from the paper cash: what is held is valued at the candles' close (1.5; a span of a
    # day is valued on 5m candles), past the last candle at the last fill's price.
    assert doc["base"] == "10000"
    assert doc["equity"][0] == [2 * MIN - 1000, 10000.0]  # a second before the first fill
    assert doc["equity"][1] == [2 * MIN, pytest.approx(float(D("10000") - cost1 + 150))]
    cash = D("10000") + (back1 - cost1) + (back2 - cost2) - D("70") - _fee("50", "1.4")
    assert doc["equity"][-1] == [(1440 + 20) * MIN, pytest.approx(float(cash + 50 * D("1.4")))]
    flat = [v for when, v in doc["equity"] if 5 * MIN <= when < 1440 * MIN]  # between the trips: cash only
    assert len(flat) >= 3 and all(v == pytest.approx(float(D("10000") + back1 - cost1)) for v in flat)
    # a limit of one: the newest trip only
    r = await c.get("/api/trades", params={"trader_id": t, "limit": 1})
    assert [x["entry_time"] for x in r.json()["trips"]] == [(1440 + 20) * MIN]


async def test_an_assignments_trades_start_from_its_allocation(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("assigned@example.com")
    t, aid = await _paper_with_fills(c, sf)
    doc = (await c.get("/api/trades", params={"assignment_id": aid})).json()
    assert (doc["assignment_id"], doc["trader_id"], doc["base"]) == (aid, t, "500")
    assert len(doc["trips"]) == 3 and doc["equity"][0][1] == 500
    assert doc["equity"][1][1] == pytest.approx(500 - 100.1 + 150)  # held at 1.5


async def test_a_real_accounts_trades_come_from_its_orders(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("real@example.com")
    owner = await _user_id(c)
    t0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    async with sf() as s:
        trader = Trader(owner_id=owner, name="Kraken", exchange="kraken", paper=False)
        s.add(trader)
        await s.flush()
        for i, (side, price, status, filled) in enumerate(
            [
                ("buy", "100", "filled", "2"),
                ("sell", "110", "filled", "2"),
                ("buy", "90", "canceled", "0"),
                ("buy", "95", "open", "0"),
            ]
        ):
            s.add(
                Order(
                    owner_id=owner,
                    trader_id=trader.id,
                    client_order_id=f"k{i}",
                    exchange="kraken",
                    symbol="BTC/USD",
                    side=side,
                    amount=D("2"),
                    price=D(price) if filled != "0" else None,
                    filled=D(filled),
                    fee=D("0.2"),
                    status=status,
                    exit_reason="signal" if side == "sell" else None,
                    updated_at=t0 + dt.timedelta(hours=i),
                )
            )
        await s.commit()
        tid = trader.id
    doc = (await c.get("/api/trades", params={"trader_id": tid})).json()
    (trip,) = doc["trips"]
    assert trip["pnl"] == pytest.approx(220 - 0.2 - 200.2) and trip["duration_s"] == 3600
    assert trip["entry_time"] == int(t0.timestamp() * 1000)
    # the exchange's balance is not known here: the curve is the P&L of these trades, from 0
    assert doc["base"] is None and doc["paper"] is False
    assert [p[1] for p in doc["equity"]] == pytest.approx([0, -0.2, 19.6])


async def test_another_users_trades_are_not_found_and_bad_queries_are_refused(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("owner@example.com")
    t, aid = await _paper_with_fills(c, sf)
    other = await api.user("other@example.com")
    for params in ({"trader_id": t}, {"assignment_id": aid}):
        r = await other.get("/api/trades", params=params)
        assert r.status_code == 404, r.text
    for bad in (
        {},
        {"trader_id": t, "assignment_id": aid},
        {"trader_id": 0},
        {"trader_id": "x"},
        {"assignment_id": 2**63},
        {"trader_id": t, "limit": 0},
        {"trader_id": t, "limit": 10_000},
    ):
        r = await c.get("/api/trades", params=bad)
        assert r.status_code == 422, (bad, r.text)
    assert (await c.get("/api/trades")).json()["errors"][0]["field"] == "trader_id"
    r = await api.client().get("/api/trades", params={"trader_id": t})
    assert r.status_code == 401


# -- resetting a paper account ---------------------------------------------------------------------------
@pytest.fixture
async def sim(tmp_path: Path, sf, nats_client):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    adapter = SimAdapter(settings, sf)
    service = ExchangeService(settings, adapter, nats_client, nats_client.jetstream(), sf, SecretBox([KEY]))
    await service.start(stream=False)
    yield adapter
    await service.stop()


async def _order(nats_client, t: int, owner: int, cid: str, **kw) -> m.OrderAck:  # type: ignore[no-untyped-def]
    req = m.PlaceOrder(
        trader_id=t, owner_id=owner, client_order_id=cid, symbol="BTC/USD", amount="0.01", **kw
    )
    msg = await nats_client.request(subjects.exchange_order("sim"), m.encode(req), timeout=10)
    return m.decode(msg.data, m.OrderAck)


async def test_a_paper_account_is_reset_to_its_starting_cash(api_bus, sf, nats_client, sim) -> None:  # type: ignore[no-untyped-def]
    c = await api_bus.user("reset@example.com")
    owner = await _user_id(c)
    t = (await c.post("/api/traders", json={"name": "Paper", "exchange": "sim", "paper": True})).json()["id"]
    assert (await _order(nats_client, t, owner, "b1", side="buy")).status == "filled"
    before = (await c.get(f"/api/traders/{t}/balances")).json()["balances"]
    assert D(before["BTC"]) == D("0.01") and D(before["USD"]) < 10000

    # Refused while an assignment holds a position through it, or an order is open: nothing changes.
    async with sf() as s:
        market = (await s.execute(select(Market).where(Market.exchange == "sim"))).scalar_one()
        strategy = Strategy(owner_id=owner, name="s")
        s.add(strategy)
        await s.flush()
        a = Assignment(
            owner_id=owner,
            strategy_id=strategy.id,
            market_id=market.id,
            timeframe="1m",
            trader_id=t,
            position_qty=D("0.01"),
        )
        s.add(a)
        await s.commit()
    r = await c.post(f"/api/traders/{t}/reset")
    assert r.status_code == 409 and "holds a position" in r.json()["detail"]
    async with sf() as s:
        (await s.get(Assignment, a.id)).position_qty = D(0)
        s.add(
            Order(
                owner_id=owner,
                trader_id=t,
                client_order_id="pending-1",
                exchange="sim",
                symbol="BTC/USD",
                side="buy",
                amount=D("0.01"),
                status="pending",
            )
        )
        await s.commit()
    r = await c.post(f"/api/traders/{t}/reset")
    assert r.status_code == 409 and "open orders" in r.json()["detail"]
    async with sf() as s:
        (
            await s.execute(select(Order).where(Order.client_order_id == "pending-1"))
        ).scalar_one().status = "canceled"
        await s.commit()
    # An order resting on the exchange (not known to core here): the exchange itself refuses.
    price = D(repr(sim.walks["BTC/USD"].last_close))
    assert (
        await _order(nats_client, t, owner, "l1", side="buy", type="limit", price=format(price / 2, "f"))
    ).status == "open"
    r = await c.post(f"/api/traders/{t}/reset")
    assert r.status_code == 409 and "resting" in r.json()["detail"]
    await nats_client.request(
        subjects.exchange_cancel("sim"),
        m.encode(m.CancelOrder(owner_id=owner, trader_id=t, client_order_id="l1", symbol="BTC/USD")),
        timeout=10,
    )
    assert (await c.get(f"/api/traders/{t}/balances")).json()["balances"] == before

    # Another user's account is not found; a real account cannot be reset.
    other = await api_bus.user("intruder@example.com")
    assert (await other.post(f"/api/traders/{t}/reset")).status_code == 404
    async with sf() as s:
        real = Trader(owner_id=owner, name="Kraken", exchange="kraken", paper=False)
        s.add(real)
        await s.commit()
        real_id = real.id
    r = await c.post(f"/api/traders/{real_id}/reset")
    assert r.status_code == 422 and "only a paper account" in r.json()["detail"]

    r = await c.post(f"/api/traders/{t}/reset")
    assert r.status_code == 200, r.text
    assert r.json()["balances"] == {"USD": "10000"} and r.json()["time"] > 0
    assert (await c.get(f"/api/traders/{t}/balances")).json()["balances"] == {"USD": "10000"}
    async with sf() as s:
        (entry,) = (await s.execute(select(AuditEntry).where(AuditEntry.action == "trader.reset"))).scalars()
    assert entry.user_id == owner and entry.detail == {
        "trader_id": t,
        "balances": {"USD": "10000"},
        "at": r.json()["time"],
    }
    # the account's curve starts again at the reset, from its starting cash
    assert (await _order(nats_client, t, owner, "b2", side="buy")).status == "filled"
    doc = (await c.get("/api/trades", params={"trader_id": t})).json()
    assert doc["since"] == r.json()["time"] and doc["base"] == "10000"
    assert doc["equity"][0] == [r.json()["time"], 10000.0]
    # the trade before the reset is still listed, ended by the reset (its coins went with it)
    assert [(x["exit_reason"], x["pnl"]) for x in doc["trips"]] == [(None, None), ("reset", None)]


async def test_a_reset_without_an_exchange_answering_is_a_503(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("nobus@example.com")
    t = (await c.post("/api/traders", json={"name": "Paper", "exchange": "sim", "paper": True})).json()["id"]
    r = await c.post(f"/api/traders/{t}/reset")
    assert r.status_code == 503, r.text


async def test_an_evaluations_plot_is_served_with_it(api, sf) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("plots@example.com")
    _, aid = await _paper_with_fills(c, sf)
    async with sf() as s:
        s.add(
            Evaluation(
                assignment_id=aid,
                candle_time=5 * MIN,
                status="ok",
                position="long",
                plot={"sma_fast": 1.25, "sma_slow": 1.5},
            )
        )
        s.add(Evaluation(assignment_id=aid, candle_time=6 * MIN, status="ok", position="long"))
        await s.commit()
    items = (await c.get("/api/evaluations", params={"assignment_id": aid})).json()["items"]
    assert [e["plot"] for e in items] == [None, {"sma_fast": 1.25, "sma_slow": 1.5}]
    other = await api.user("plots-other@example.com")
    assert (await other.get("/api/evaluations", params={"assignment_id": aid})).json()["items"] == []
