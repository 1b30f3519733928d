"""The platform one example of the money state machine runs on: core, the sim exchange service, a
stand-in eval worker and the web app, on a fresh copy of the template database and the shared NATS
server (see conftest.py); candles are driven one at a time, each settled before the next step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.config import Settings
from tradewind.core.service import CoreService
from tradewind.exchanges.service import ExchangeService
from tradewind.exchanges.sim import SimAdapter
from tradewind.secrets import SecretBox
from tradewind.storage.db import SessionFactory, make_engine, make_session_factory
from tradewind.storage.models import Assignment, Order, User
from tradewind.web.app import create_app
from tradewind.web.security import RateLimiter

from .conftest import KEY, MoneyEnv

SYMBOL = "BTC/USD"
MINUTE = 60_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a whole day: no derived candle is cut in half
START_PRICE = 60_000.0
OPEN = ("pending", "open")  # orders whose outcome the exchange has not given yet


async def wait_for(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        await asyncio.sleep(0.005)


# -- the platform -----------------------------------------------------------------------------------------
class ScriptedWorker:
    """A stand-in eval worker: each assignment gets the decision the state machine chose for it; an
    assignment the machine does not know (or forgot) gets "long", the riskiest answer."""

    def __init__(self, nc: Client, decisions: dict[int, str]) -> None:
        self.nc = nc
        self.decisions = decisions
        self.asked: list[tuple[int, int]] = []  # (candle time, assignment id)

    async def start(self) -> None:
        self.sub = await self.nc.subscribe(subjects.EVAL_RUN, queue=subjects.EVAL_QUEUE, cb=self._on)

    async def stop(self) -> None:
        await self.sub.unsubscribe()

    def position(self, assignment_id: int, candle_time: int) -> str:
        d = self.decisions.get(assignment_id, "long")
        if d == "flip":
            return "long" if (candle_time // MINUTE) % 2 == 0 else "short"
        return d

    async def _on(self, msg: Any) -> None:
        req = m.decode(msg.data, m.EvalRequest)
        outs = []
        for j in req.jobs:
            self.asked.append((req.candle_time, j.assignment_id))
            pos = self.position(j.assignment_id, req.candle_time)
            outs.append(m.EvalOutcome(assignment_id=j.assignment_id, status="ok", position=pos))
        await msg.respond(m.encode(m.EvalReply(outcomes=outs, worker="scripted")))


class Platform:
    """Core, the sim exchange service (its clock publishes nothing: candles come from ``candle``), the
    stand-in eval worker and the web app, on a fresh copy of the template database and the shared NATS
    server; each component has a connection of its own, as in ``tradewind up``."""

    def __init__(self, env: MoneyEnv, name: str) -> None:
        self.env = env
        self.db = env.root / f"{name}.db"
        self.decisions: dict[int, str] = {}
        self.users = {n: uid for n, (uid, _) in env.users.items()}
        self.time = T0
        self.close = START_PRICE
        self.sent = 0
        self.log: list[str] = []  # what this example did, for a failure's message (a replay may differ)

    async def start(self) -> None:
        self.db.write_bytes(self.env.template.read_bytes())
        url = f"sqlite+aiosqlite:///{self.db}"
        self.settings = Settings(
            data_dir=self.env.root, database_url=url, sim_symbols=[SYMBOL], history_days=0, eval_timeout_s=2
        )
        self.cash = Decimal(self.settings.sim_paper_cash)
        self.engine = make_engine(url)
        self.sf: SessionFactory = make_session_factory(self.engine)
        self.conns: list[Client] = []
        for name in ("driver", "web", "core", "exchange", "eval"):
            self.conns.append(await connect(self.env.nats_url, f"money-{name}"))
        driver, web, core_nc, ex_nc, eval_nc = self.conns
        self.js = driver.jetstream()
        await ensure_md_stream(self.js)
        # Not the previous example's candles, nor its core's place in them. (Purged, not deleted: a stream
        # made again at once is now and then refused with "error creating store for stream".)
        await self.js.purge_stream(subjects.MD_STREAM)
        try:
            await self.js.delete_consumer(subjects.MD_STREAM, subjects.CORE_CONSUMER)
        except NotFoundError:
            pass
        self.worker = ScriptedWorker(eval_nc, self.decisions)
        await self.worker.start()
        self.sim = SimAdapter(self.settings, self.sf)
        box = SecretBox([KEY])
        self.exchange = ExchangeService(self.settings, self.sim, ex_nc, ex_nc.jetstream(), self.sf, box)
        await self.exchange.start(stream=False)
        self.core = CoreService(self.settings, core_nc, core_nc.jetstream(), self.sf)
        await self.core.start()
        self.app = create_app(self.settings, self.sf, web, box)
        # The per-user rate limit has its own tests (test_hostile.py); here it would only slow the machine.
        self.app.state.tw.limiter = RateLimiter(rate=1e6, burst=1e6)
        self.clients = {
            name: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app),
                base_url="http://test",
                headers={"Authorization": f"Bearer {token}"},
            )
            for name, (_, token) in self.env.users.items()
        }

    async def stop(self) -> None:
        """Everything is stopped even when a part fails to (the paper engine's last flush, say): a component
        left subscribed would answer the next example's requests. The failures are raised after."""
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (f"{name}'s client", c.aclose) for name, c in getattr(self, "clients", {}).items()
        ]
        for name in ("core", "exchange", "worker"):
            if hasattr(self, name):
                steps.append((name, getattr(self, name).stop))
        steps += [(f"connection {i}", nc.close) for i, nc in enumerate(getattr(self, "conns", []))]
        if hasattr(self, "engine"):
            steps.append(("database", self.engine.dispose))
        failures = []
        for name, step in steps:
            try:
                await step()
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:400]}")
        for suffix in ("", "-wal", "-shm"):
            self.db.with_name(self.db.name + suffix).unlink(missing_ok=True)
        # The exchange's last flush failing means fills it confirmed were never stored.
        assert not failures, "stopping the platform failed:\n  " + "\n  ".join(failures)

    async def call(self, user: str, method: str, path: str, **kw: Any) -> httpx.Response:
        r = await self.clients[user].request(method, path, **kw)
        if method != "GET":
            self.log.append(f"{user} {method} {path} {kw.get('json', '')} -> {r.status_code}")
        return r

    async def candle(self, close: float) -> int:
        """Drive one closed 1m candle through the platform and return once core has processed it and
        every order it caused is settled."""
        t, o = self.time, self.close
        self.time, self.close = t + MINUTE, close
        c = m.Candle(
            exchange="sim",
            symbol=SYMBOL,
            tf="1m",
            time=t,
            open=o,
            high=max(o, close),
            low=min(o, close),
            close=close,
            volume=10.0,
            closed=True,
            trace_id=f"money-{t}",
            recv_ns=time.time_ns(),
        )
        # The sim fills a market order at the next candle's open, which is the last close of its walk:
        # the walk is moved to this candle, as the sim's own clock does before it publishes one.
        walk = self.sim.walks[SYMBOL]
        walk.last_close, walk.last_time = close, t
        await self.core_caught_up()
        # No Nats-Msg-Id: the stream would take the next example's candle at this time for a duplicate.
        await self.js.publish(subjects.md_candle("sim", SYMBOL, "1m"), m.encode(c))
        self.published_at = time.monotonic()
        self.sent += 1
        self.log.append(f"candle {t} closes at {close}")

        async def processed() -> bool:
            return self.core.processed >= self.sent

        await wait_for(processed, f"core processed the candle at {t}")
        try:
            await asyncio.wait_for(self.core.desk.drain(), 30)
        except TimeoutError:
            raise AssertionError(
                f"the orders of the candle at {t} were still being placed 30 s later"
            ) from None
        if await self.unsettled():  # an outcome the exchange did not give: ask it, as the reconciler does
            await self.core.desk.reconcile(min_age_s=0)
        left = await self.unsettled()
        assert not left, f"orders of the candle at {t} not settled: {left}"
        return t

    async def core_caught_up(self, timeout: float = 3.0) -> None:
        """Wait until core evaluates every assignment that is running: web tells it of a change over the bus,
        and it reloads a moment later. Only additions are waited for, so that a candle right after a
        pause, a deletion or the kill switch still finds out whether core trades on what it had."""
        q = (
            select(Assignment.id)
            .join(User, User.id == Assignment.owner_id)
            .where(Assignment.enabled.is_(True), User.killed.is_(False))
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.sf() as s:
                running = set((await s.execute(q)).scalars())
            if running <= self.core.index.by_id.keys():
                return
            await asyncio.sleep(0.01)

    async def unsettled(self) -> list[tuple[str, str, str | None]]:
        async with self.sf() as s:
            q = select(Order.client_order_id, Order.status, Order.reason).where(Order.status.in_(OPEN))
            return [tuple(r) for r in (await s.execute(q)).all()]  # type: ignore[misc]
