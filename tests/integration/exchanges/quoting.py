"""The quote lifecycle on a real venue's API, end to end: the components of `tradewind up` (the web API, an
exchange service hosting the venue's adapter, core, an eval worker; one embedded NATS server, one
database) run the market maker of docs/strategies.md, as written there, against a local venue server.

What a user should see on the venue: one post-only buy quote below the bid (and, holding inventory, one
sell above the ask), each under a client id of its own; a quote replaced when the book moves, the old one
cancelled on the venue; quotes filled when the market trades through them, the inventory following; never
two quotes resting on one side; and nothing left resting after a pause, after the kill switch and after
shutdown. Shared by test_bitfinex_quoting_e2e (the native adapter) and test_ccxt_quoting_e2e (ccxt).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import func, select

from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.core.service import CoreService
from tradewind.eval.worker import EvalWorker
from tradewind.exchanges.base import ExchangeAdapter
from tradewind.exchanges.service import ExchangeService
from tradewind.secrets import SecretBox
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import CandleRow, Order
from tradewind.web.app import create_app

BOX_KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
PASSWORD = "correct horse battery staple"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"
HALF_SPREAD = Decimal("0.0002")  # the venue's book: bid and ask this fraction either side of the mid
THROUGH = Decimal("0.0001")  # a trade this fraction beyond a quote's price fills it
RESEND_S = 0.5  # a venue repeats its ticker: the same book again after this long without the awaited change


def documented_market_maker() -> str:
    """The example strategy of docs/strategies.md's market-making section, as it is written there."""
    section = DOCS.read_text().split("## Market making: `on_tick` and quotes", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```lua\n(.*?)```", section, re.S)
    assert found, "the market-making section has a Lua example"
    return found.group(1)


@dataclass(frozen=True)
class Resting:
    """An order resting on the venue, as the venue holds it."""

    client_id: str  # the client id the venue holds it under (Bitfinex: its integer cid, as a string)
    side: str  # "buy" or "sell"
    price: Decimal


class Venue(Protocol):
    """What the lifecycle needs of a local venue server."""

    async def book(self, bid: Decimal, ask: Decimal) -> None:
        """The top of the book moves to ``bid`` / ``ask``, and the venue tells its subscribers (or its pollers)."""

    def trade(self, price: Decimal) -> int:
        """The market trades at ``price``: the resting orders it reaches fill; returns how many did."""

    def resting(self) -> list[Resting]: ...

    def status(self, client_id: str) -> str:
        """Our status of the order the venue holds under ``client_id``: open, filled, canceled or rejected."""

    def most_resting(self) -> dict[str, int]:
        """The most limit orders that rested at once on each side ("buy", "sell") since the server started."""

    def client_id(self, ours: str) -> str:
        """Our client order id as the venue holds it."""


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 8.0) -> Any:
    try:
        async with asyncio.timeout(timeout):
            while not (found := await check()):
                await asyncio.sleep(0.05)
            return found
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class Platform:
    """The components of one tradewind in this process, wired and stopped as `tradewind up` does it."""

    def __init__(self, tmp_path: Path, settings: Settings, adapter: ExchangeAdapter) -> None:
        self.tmp = tmp_path
        self.settings = settings
        self.adapter = adapter
        self.url = settings.database_url
        self.stoppers: list[Callable[[], Awaitable[Any]]] = []

    async def start(self) -> None:
        nats = EmbeddedNats(self.tmp / "nats")
        nats_url = await nats.start()
        self.stoppers.append(nats.stop)
        await upgrade_async(self.url)
        engine = make_engine(self.url)
        self.stoppers.append(engine.dispose)
        self.sf = sf = make_session_factory(engine)
        box = SecretBox([BOX_KEY])
        clients = []
        for name in ("exchange", "core", "eval", "web"):
            nc = await connect(nats_url, name)
            clients.append(nc)
            self.stoppers.append(nc.drain)
        exchange_nc, core_nc, eval_nc, web_nc = clients
        await ensure_md_stream(core_nc.jetstream())
        worker = EvalWorker(self.settings, eval_nc, sf, name="eval-1")
        self.core = CoreService(self.settings, core_nc, core_nc.jetstream(), sf)
        exchange = ExchangeService(self.settings, self.adapter, exchange_nc, exchange_nc.jetstream(), sf, box)
        for component in (worker, self.core, exchange):
            await component.start()
            self.stoppers.append(component.stop)
        # As runtime.up stacks it: stopped first, the quotes come down while the exchange is there to cancel them.
        self.stoppers.append(self.core.quotes.stop)
        self.app = create_app(self.settings, sf, web_nc, box)

    async def stop(self) -> None:
        """Stop everything, last started first (a second call has nothing left to stop)."""
        while self.stoppers:
            try:
                await self.stoppers.pop()()
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

    async def candles(self, market_id: int) -> int:
        async with self.sf() as s:
            return int(
                await s.scalar(
                    select(func.count())
                    .select_from(CandleRow)
                    .where(CandleRow.market_id == market_id, CandleRow.tf == "1m")
                )
                or 0
            )


@dataclass
class Lifecycle:
    """What the lifecycle saw, for the venue's own checks."""

    assignment_id: int
    quotes: list[dict[str, Resting]]  # what rested after each move of the book, by side


async def run_lifecycle(
    p: Platform,
    venue: Venue,
    *,
    exchange: str,
    symbol: str,
    mid: Decimal,
    size: Decimal,
    allocation: str,
    params: dict[str, Any] | None = None,
) -> Lifecycle:
    """The documented market maker through its whole life on ``venue``; returns what rested along the way.
    ``mid``: where the book starts; ``size``: the strategy's quote size (its ``size`` parameter or default)."""
    api = await p.user("maker@example.com")
    r = await api.post(
        "/api/traders",
        json={
            "name": exchange,
            "exchange": exchange,
            "paper": False,
            "api_key": "KEY",
            "api_secret": "SECRET",
        },
    )
    assert r.status_code == 201, r.text
    trader_id = r.json()["id"]
    r = await api.post("/api/strategies", json={"name": "maker", "code": documented_market_maker()})
    assert r.status_code == 201, r.text
    strategy_id = r.json()["id"]

    async def market() -> int | None:
        items = (await api.get("/api/markets")).json()["items"]
        return next((mk["id"] for mk in items if (mk["exchange"], mk["symbol"]) == (exchange, symbol)), None)

    market_id = await wait_for(f"the {exchange} market", market)
    # on_tick reads the candles up to the newest closed one: without any, it would fail
    await wait_for("closed candles stored", lambda: p.candles(market_id))
    r = await api.post(
        "/api/assignments",
        json={
            "strategy_id": strategy_id,
            "market_id": market_id,
            "trader_id": trader_id,
            "allocation": allocation,
            "params": params or {},
            "trigger": "tick",
            "min_interval_ms": 100,
        },
    )
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    assert r.json()["trigger"] == "tick"

    async def ours() -> dict[str, Any]:
        """The assignment's quotes as core recorded them (the API), checked: one open per side at most (a
        replacement is pending while the venue cancels the quote it replaces: that one is open until then)."""
        r = await api.get(f"/api/assignments/{aid}/quotes")
        assert r.status_code == 200, r.text
        q = r.json()
        sides = [x["side"] for x in q["quotes"] if x["status"] == "open"]
        assert len(sides) == len(set(sides)), f"two open quotes of one side: {q['quotes']}"
        return q

    def on_venue() -> dict[str, Resting]:
        """What rests on the venue, checked: one order per side at most."""
        resting = venue.resting()
        sides = [o.side for o in resting]
        assert len(sides) == len(set(sides)), f"two orders resting on one side of the venue: {resting}"
        return {o.side: o for o in resting}

    seen: list[dict[str, Resting]] = []

    async def quoted(m: Decimal, sides: set[str]) -> dict[str, Resting]:
        """The book moves to ``m``: wait until exactly ``sides`` rest on the venue, each a quote core knows
        as open, outside the book (a buy at or below the bid, a sell at or above the ask) and new since
        the book moved."""
        bid, ask = m * (1 - HALF_SPREAD), m * (1 + HALF_SPREAD)
        before = {o.client_id for o in venue.resting()}

        async def settled() -> dict[str, Resting] | None:
            resting = on_venue()
            q = await ours()
            mine = {venue.client_id(x["client_order_id"]): x for x in q["quotes"]}
            if set(resting) != sides or any(o.client_id in before for o in resting.values()):
                return None
            if set(mine) != {o.client_id for o in resting.values()}:
                return None  # the venue holds them, core has not booked its answers yet
            if any(x["status"] != "open" for x in mine.values()):
                return None
            return resting

        async def keep_quoting() -> dict[str, Resting]:
            loop = asyncio.get_running_loop()
            while True:
                await venue.book(bid, ask)
                again = loop.time() + RESEND_S
                while loop.time() < again:
                    if (got := await settled()) is not None:
                        return got
                    await asyncio.sleep(0.05)

        got = await wait_for(f"{sorted(sides)} quoted around {bid} / {ask}", keep_quoting)
        if "buy" in got:
            assert got["buy"].price <= bid, f"a buy quote above the bid {bid}: {got['buy']}"
        if "sell" in got:
            assert got["sell"].price >= ask, f"a sell quote below the ask {ask}: {got['sell']}"
        seen.append(got)
        return got

    async def filled(side: str, n: int, inventory: Decimal) -> None:
        async def booked() -> bool:
            q = await ours()
            return q[f"{side}s_filled"] == n and Decimal(q["inventory"]) == inventory

        await wait_for(f"{n} {side} fill(s) booked, holding {inventory}", booked)

    async def nothing_rests(after: str) -> None:
        async def gone() -> bool:
            return not on_venue() and not (await ours())["quotes"]

        await wait_for(f"no quote left after {after}", gone)
        # and none comes back while the market moves on
        await venue.book(mid * (1 - 2 * HALF_SPREAD), mid)
        await asyncio.sleep(0.5)
        assert not on_venue() and not (await ours())["quotes"], f"a quote came back after {after}"

    step = Decimal("0.0025")  # each move of the book: 0.25 %, a quote moves more than a fifth of its spread

    def mid_at(i: int) -> Decimal:
        return mid * (1 + step * i)

    # -- quoting, replacing, fills on both sides ------------------------------------------------------------
    first = await quoted(mid_at(0), {"buy"})  # nothing held: nothing to sell
    moved = await quoted(mid_at(1), {"buy"})
    assert venue.status(first["buy"].client_id) == "canceled", "the replaced quote is still on the venue"

    assert venue.trade(moved["buy"].price * (1 - THROUGH)) == 1
    await filled("buy", 1, size)
    both = await quoted(mid_at(2), {"buy", "sell"})
    assert venue.trade(both["buy"].price * (1 - THROUGH)) == 1
    await filled("buy", 2, 2 * size)
    again = await quoted(mid_at(3), {"buy", "sell"})
    assert venue.status(both["sell"].client_id) == "canceled", "the replaced sell quote is still on the venue"
    assert venue.trade(again["sell"].price * (1 + THROUGH)) == 1
    await filled("sell", 1, size)
    assert venue.status(again["buy"].client_id) == "open"  # a trade above the bid leaves the buy alone

    # -- pause ----------------------------------------------------------------------------------------------
    paused = await quoted(mid_at(4), {"buy", "sell"})
    r = await api.post(f"/api/assignments/{aid}/pause", json={})
    assert r.status_code == 200, r.text
    await nothing_rests("the pause")
    assert {venue.status(o.client_id) for o in paused.values()} == {"canceled"}

    # -- the kill switch ------------------------------------------------------------------------------------
    r = await api.post(f"/api/assignments/{aid}/resume", json={})
    assert r.status_code == 200, r.text
    killed = await quoted(mid_at(5), {"buy", "sell"})
    r = await api.post("/api/killswitch", json={})
    assert r.status_code == 200, r.text
    await nothing_rests("the kill switch")
    assert {venue.status(o.client_id) for o in killed.values()} == {"canceled"}
    r = await api.delete("/api/killswitch")
    assert r.status_code == 200, r.text
    r = await api.post(f"/api/assignments/{aid}/resume", json={})
    assert r.status_code == 200, r.text

    # -- shutdown -------------------------------------------------------------------------------------------
    last = await quoted(mid_at(6), {"buy", "sell"})
    await p.stop()
    assert not venue.resting(), f"quotes left resting after shutdown: {venue.resting()}"
    assert {venue.status(o.client_id) for o in last.values()} == {"canceled"}
    engine = make_engine(p.url)  # the platform's own is closed: core's records, read afterwards
    try:
        async with make_session_factory(engine)() as s:
            left = (
                await s.execute(
                    select(Order.client_order_id, Order.status).where(
                        Order.type == "quote", Order.status.in_(("open", "pending"))
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert not left, f"core still counts quotes as resting after shutdown: {left}"

    assert venue.most_resting() == {"buy": 1, "sell": 1}, "two quotes rested on one side at once"
    return Lifecycle(aid, seen)
