"""The platform end to end against the local Bitfinex: the web API (account, strategy, assignment), the
exchange service hosting the native Bitfinex adapter, core and a real eval worker running a Lua strategy,
all on one embedded NATS server and one database, as `tradewind up` wires them.

The strategy flips its position every minute. What the user should see: every minute the exchange
streams stored once with its final OHLCV; every order on the exchange carrying the client order id of the
decision that caused it (Bitfinex's ``cid``), one per decision; an order whose answer never came settled by
the reconciler into exactly one order; a refusal kept with the exchange's reason and never sent again.
(A decision taken while its assignment still has an order in flight places none: that is core's rule.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.core.service import CoreService
from tradewind.eval.worker import EvalWorker
from tradewind.exchanges.bitfinex import BitfinexAdapter, StreamTiming, cid_of
from tradewind.exchanges.service import ExchangeService
from tradewind.secrets import SecretBox
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import CandleRow, Evaluation, Order
from tradewind.web.app import create_app

from .conftest import consecutive, load_rows
from .fake_bitfinex import FakeBitfinex

BOX_KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
PASSWORD = "correct horse battery staple"
ROWS = consecutive(load_rows("UNITTEST-BTC-1m.csv"), 80)  # ended by the test once it has seen enough
# Long on even minutes, short on odd ones: a new target position every candle.
FLIP = """
function decide(c, params)
  if (c.time[#c.time] // 60000) % 2 == 0 then return "long" end
  return "short"
end
"""
TIMING = StreamTiming(silence_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.2, close_grace_s=None)


class Platform:
    """The components of one tradewind, started in this process against ``server``."""

    def __init__(self, tmp_path: Path, server: FakeBitfinex) -> None:
        self.tmp = tmp_path
        self.server = server
        self.url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
        self.stoppers: list[Callable[[], Awaitable[Any]]] = []

    async def start(self) -> None:
        nats = EmbeddedNats(self.tmp / "nats")
        nats_url = await nats.start()
        self.stoppers.append(nats.stop)
        await upgrade_async(self.url)
        engine = make_engine(self.url)
        self.stoppers.append(engine.dispose)
        self.sf = sf = make_session_factory(engine)
        # The Bitfinex settings come from the environment, as an operator sets them (see the fixture).
        settings = Settings(data_dir=self.tmp, database_url=self.url, history_days=0, eval_timeout_s=10)
        assert settings.bitfinex_ws_url == self.server.ws_url and settings.exchanges == ["bitfinex"]
        box = SecretBox([BOX_KEY])
        clients = []
        for name in ("exchange", "core", "eval", "web"):
            nc = await connect(nats_url, name)
            clients.append(nc)
            self.stoppers.append(nc.drain)
        exchange_nc, core_nc, eval_nc, web_nc = clients
        await ensure_md_stream(core_nc.jetstream())
        worker = EvalWorker(settings, eval_nc, sf, name="eval-1")
        self.core = CoreService(settings, core_nc, core_nc.jetstream(), sf)
        self.core.desk.reconcile_after_s = 0.5  # ask about an unanswered order soon (15 s in production)
        exchange = ExchangeService(
            settings, BitfinexAdapter(settings, timing=TIMING), exchange_nc, exchange_nc.jetstream(), sf, box
        )
        for component in (worker, self.core, exchange):
            await component.start()
            self.stoppers.append(component.stop)
        self.app = create_app(settings, sf, web_nc, box)

    async def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                await stop()
            except Exception:  # one component failing to stop must not keep the others running
                pass

    async def user(self, email: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")
        self.stoppers.append(c.aclose)
        r = await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        c.cookies.clear()
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        return c

    async def orders(self) -> list[Order]:
        async with self.sf() as s:
            return list((await s.execute(select(Order).order_by(Order.id))).scalars())


@pytest.fixture
async def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Platform]:
    # A minute every 0.75 s (three updates of the open candle): an order is placed, followed to its fill
    # (Bitfinex answers market orders ACTIVE; the service polls every second) and booked within a minute
    # or two, while the decisions of the minutes in between wait for it (one order in flight per assignment).
    server = FakeBitfinex(rows=ROWS, start_at=6, step_s=0.25)
    await server.start()
    for name, value in {
        "EXCHANGES": "bitfinex",
        "BITFINEX_WS_URL": server.ws_url,
        "BITFINEX_REST_URL": server.rest_url,
        "BITFINEX_AUTH_URL": server.rest_url,
        "BITFINEX_SYMBOLS": "tBTCUSD",
        "EXCHANGE_TIMEOUT_S": "1",
    }.items():
        monkeypatch.setenv(f"TRADEWIND_{name}", value)
    p = Platform(tmp_path, server)
    try:
        await p.start()
        yield p
    finally:
        await p.stop()
        await server.stop()


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 40.0) -> Any:
    try:
        async with asyncio.timeout(timeout):
            while not (found := await check()):
                await asyncio.sleep(0.1)
            return found
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_flipping_strategy_trades_on_bitfinex_one_order_per_decision_whatever_the_exchange_does(
    platform,
) -> None:  # type: ignore[no-untyped-def]
    p, server = platform, platform.server
    api = await p.user("trader@example.com")

    # The account: a wrong secret fails Bitfinex's signature check and the user is told so, with a 422.
    r = await api.post(
        "/api/traders",
        json={"name": "bfx", "exchange": "bitfinex", "paper": False, "api_key": "KEY", "api_secret": "WRONG"},
    )
    assert r.status_code == 422, r.text
    assert "refused the key" in r.text and "digest invalid" in r.text
    assert server.rejected_auth == ["signature"]
    assert (await api.get("/api/traders")).json()["items"] == []  # nothing kept of the refused account
    r = await api.post(
        "/api/traders",
        json={
            "name": "bfx",
            "exchange": "bitfinex",
            "paper": False,
            "api_key": "KEY",
            "api_secret": "SECRET",
        },
    )
    assert r.status_code == 201, r.text
    trader_id = r.json()["id"]
    r = await api.post("/api/strategies", json={"name": "flip", "code": FLIP})
    assert r.status_code == 201, r.text
    strategy_id = r.json()["id"]

    async def market() -> int | None:  # the market exists once its first candle is stored
        items = (await api.get("/api/markets")).json()["items"]
        return next(
            (mk["id"] for mk in items if (mk["exchange"], mk["symbol"]) == ("bitfinex", "BTC/USD")), None
        )

    market_id = await wait_for("the Bitfinex market", market)
    r = await api.post(
        "/api/assignments",
        json={
            "strategy_id": strategy_id,
            "market_id": market_id,
            "trader_id": trader_id,
            "allocation": "1000",
            "lookback": 10,
        },
    )
    assert r.status_code == 201, r.text

    async def filled(n: int) -> bool:
        return sum(o.status == "filled" for o in await p.orders()) >= n

    await wait_for("three orders filled", lambda: filled(3))

    # The exchange places the next order but answers after the adapter gave up (1 s): its outcome is
    # unknown, the order stays pending, and the reconciler asks Bitfinex by cid.
    server.submit_delay_s = 2.0

    async def unanswered() -> Order | None:
        return next((o for o in await p.orders() if o.status == "pending" and o.reason), None)

    late = await wait_for("an order call that timed out", unanswered)
    assert "did not answer" in (late.reason or "")
    server.submit_delay_s = 0.0

    async def settled() -> bool:
        return any(
            o.client_order_id == late.client_order_id and o.status == "filled" for o in await p.orders()
        )

    await wait_for("the reconciler to settle the unanswered order", settled)

    # Someone moves the BTC out of the account: the next sell is refused by Bitfinex.
    async def holding() -> bool:
        orders = await p.orders()
        return orders[-1].status == "filled" and orders[-1].side == "buy"

    await wait_for("a position to sell", holding)
    server.wallets["BTC"] = Decimal("0")

    async def refused() -> Order | None:
        return next((o for o in await p.orders() if o.status == "rejected"), None)

    rejected = await wait_for("a refused order", refused)
    rows = server.end_after(2)  # two more minutes, then the market stops

    async def all_minutes() -> bool:  # the last minute never closes: the tape ends inside it
        async with p.sf() as s:
            return (
                await s.scalar(select(func.count()).select_from(CandleRow).where(CandleRow.tf == "1m"))
                >= len(rows) - 1
            )

    await wait_for("every streamed minute stored", all_minutes)

    async def last_minute_evaluated() -> bool:  # stored comes before evaluated: wait for both
        async with p.sf() as s:
            return bool(
                await s.scalar(
                    select(func.count()).select_from(Evaluation).where(Evaluation.candle_time == rows[-2][0])
                )
            )

    await wait_for("the last minute evaluated", last_minute_evaluated)
    await p.core.desk.drain()

    # -- every minute once, with its final OHLCV ------------------------------------------------------------
    async with p.sf() as s:
        candles = (
            (await s.execute(select(CandleRow).where(CandleRow.tf == "1m").order_by(CandleRow.time)))
            .scalars()
            .all()
        )
        # One read: a count taken by a second query could see the last minute's evaluation land in between.
        evaluated = [(e.candle_time, e.position) for e in (await s.execute(select(Evaluation))).scalars()]
    evaluations = dict(evaluated)
    got = [(c.time, c.open, c.high, c.low, c.close, c.volume) for c in candles]
    assert [g[0] for g in got] == [r[0] for r in rows[:-1]], "a minute missing or stored twice"
    assert all(g == pytest.approx(r) for g, r in zip(got, rows, strict=False)), (
        "a minute stored with other than its final OHLCV"
    )
    assert len(evaluated) == len(evaluations), "a minute evaluated twice"

    # -- one order on the exchange per decision, under our client order id --------------------------------
    orders = await p.orders()
    assert len({o.candle_time for o in orders}) == len(orders), "a decision made two orders"
    submits = [d["cid"] for path, d in server.calls if path == "auth/w/order/submit"]
    assert len(submits) == len(set(submits)), "an order was sent to the exchange twice"
    by_cid = {o.cid: o for o in server.orders}
    assert len(by_cid) == len(server.orders)
    assert {cid_of(o.client_order_id) for o in orders} >= set(submits), (
        "an order on the exchange without a decision"
    )
    # The decisions not sent are the ones core itself refused (its balance check), with their reason.
    assert all(
        o.status == "rejected" and o.reason for o in orders if cid_of(o.client_order_id) not in submits
    )
    for o in orders:
        assert evaluations[o.candle_time] == ("long" if o.side == "buy" else "short"), (
            "an order against its decision"
        )
        if o.status == "filled":
            on_exchange = by_cid[cid_of(o.client_order_id)]
            assert abs(on_exchange.amount_orig) == o.filled == o.amount
            assert (on_exchange.amount_orig > 0) == (o.side == "buy")
    assert sorted(cid_of(o.client_order_id) for o in orders if o.status == "filled") == sorted(by_cid)
    sides = [o.side for o in orders if o.status == "filled"]
    assert len(sides) >= 5 and all(a != b for a, b in zip(sides, sides[1:], strict=False)), sides

    # -- the unanswered order: one order, filled --------------------------------------------------------------
    assert submits.count(cid_of(late.client_order_id)) == 1 and cid_of(late.client_order_id) in by_cid

    # -- the refusal: kept with Bitfinex's reason, sent once, not on the exchange -------------------------
    assert "not enough exchange balance" in (rejected.reason or ""), rejected.reason
    assert (
        submits.count(cid_of(rejected.client_order_id)) == 1
        and cid_of(rejected.client_order_id) not in by_cid
    )
    r = await api.get("/api/orders")  # and the user sees the refusal and its reason
    assert r.status_code == 200, r.text
    shown = {o["client_order_id"]: o for o in r.json()["items"]}
    assert shown[rejected.client_order_id]["status"] == "rejected"
    assert "not enough exchange balance" in shown[rejected.client_order_id]["reason"]
