"""The exchange component: hosts one adapter on the bus.

It backfills history into the candle store, publishes live candles to the durable market-data stream,
and answers balance, order, status, cancel and key-check requests. Exchange keys are decrypted here,
for one call, and nowhere else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, Protocol, cast

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import unsubscribe_all
from tradewind.config import Settings
from tradewind.exchanges.base import (
    AuthError,
    Credentials,
    ExchangeAdapter,
    ExchangeError,
    ExchangeUnavailable,
    OrderRejected,
    OrderResult,
    OrderSpec,
    Protect,
    refused_after,
)
from tradewind.marketdata import as_row
from tradewind.marketdata.accept import Accepted, accept_rows
from tradewind.marketdata.candles import OPEN
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Trader

log = logging.getLogger(__name__)
DAY = 86_400_000
RESTING_POLL_S = 15.0
QUOTE_POLL_S = 1.0
LOOKUP_GATHER_S = 0.02  # lookups of one account's watched orders this close together go out as one call

CANDLES_PUBLISHED = Counter("tradewind_exchange_candles_published_total", "Candles published", ["exchange"])
TICKS_PUBLISHED = Counter("tradewind_exchange_ticks_published_total", "Ticks published", ["exchange"])
ORDER_CALLS = Counter(
    "tradewind_exchange_order_calls_total", "Order calls by outcome", ["exchange", "status"]
)


class UnknownTrader(Exception):
    pass


class TickStreaming(Protocol):
    """What an adapter with ``capabilities.streams_ticks`` has besides ExchangeAdapter's methods."""

    def stream_ticks(self, symbols: list[str]) -> AsyncIterator[m.Tick]: ...


class BatchPlacing(Protocol):
    """What an adapter with ``capabilities.batch_orders`` has besides ExchangeAdapter's methods."""

    async def place_orders(self, orders: list[tuple[Credentials, OrderSpec]]) -> list[OrderResult]: ...


class ExchangeService:
    def __init__(
        self,
        settings: Settings,
        adapter: ExchangeAdapter,
        nc: Client,
        js: JetStreamContext,
        session_factory: SessionFactory,
        secret_box: SecretBox,
    ) -> None:
        self.settings = settings
        self.adapter = adapter
        self.name = adapter.capabilities.name
        self.nc = nc
        self.js = js
        self.sf = session_factory
        self.box = secret_box
        self._subs: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._followers: set[asyncio.Task[None]] = set()  # open orders being watched until they settle
        self._paper: dict[int, tuple[int, Credentials]] = {}  # paper account -> (owner, credentials)
        self._requests: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(512)
        self.ready = asyncio.Event()
        self._run_id = uuid.uuid4().hex[:12]  # this run's order updates are numbered from 1
        self._updates = 0
        # Watched orders' lookups waiting to go out together, per account (adapters with fetch_orders)
        self._lookups: dict[int, dict[str, tuple[str, list[asyncio.Future[OrderResult | None]]]]] = {}

    async def start(self, stream: bool = True) -> None:
        await self.adapter.start()
        set_listener = getattr(self.adapter, "set_listener", None)  # a venue that matches orders itself
        if set_listener is not None:
            set_listener(self._publish_update)
        queue = f"exchange-{self.name}"
        handlers = {
            subjects.exchange_balance(self.name): self._on_balance,
            subjects.exchange_balances(self.name): self._on_balances,
            subjects.exchange_order(self.name): self._on_order,
            subjects.exchange_orders(self.name): self._on_orders,
            subjects.exchange_order_status(self.name): self._on_status,
            subjects.exchange_cancel(self.name): self._on_cancel,
            subjects.exchange_verify(self.name): self._on_verify,
            subjects.exchange_reset(self.name): self._on_reset,
        }
        for subject, handler in handlers.items():
            self._subs.append(await self.nc.subscribe(subject, queue=queue, cb=self._guard(handler)))
        # Not in the queue group: every replica forgets what it cached about a changed account.
        self._subs.append(await self.nc.subscribe(subjects.TRADERS_CHANGED, cb=self._on_trader_changed))
        if stream:
            async with self.sf() as s:  # the markets exist from the start, even before their first candle
                for symbol in self.adapter.capabilities.symbols:
                    await store.get_or_create_market(s, self.name, symbol)
                await s.commit()
            # History first, then live candles; in the background so the platform is usable meanwhile.
            self._tasks.append(asyncio.create_task(self._stream(), name=f"{self.name}-candles"))
        self.ready.set()

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        await unsubscribe_all(subs)
        tasks, self._tasks = [*self._tasks, *self._followers], []
        self._followers = set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if subs or tasks:
            await self.adapter.close()

    # -- market data ----------------------------------------------------------------------------------
    async def backfill(self) -> None:
        """Fill the store with ``history_days`` of 1m candles (and the derived timeframes) up to now."""
        if self.settings.history_days <= 0:
            return
        now = int(time.time() * 1000)
        for symbol in self.adapter.capabilities.symbols:
            async with self.sf() as s:
                market = await store.get_or_create_market(s, self.name, symbol)
                last = await store.last_time(s, market.id, "1m")
                await s.commit()
            since = max(last + 60_000 if last is not None else 0, now - self.settings.history_days * DAY)
            report = Accepted()
            while True:
                try:
                    page = await self.adapter.fetch_history(symbol, "1m", since)
                except ExchangeError as exc:
                    log.warning("%s: history of %s unavailable: %s", self.name, symbol, exc)
                    break
                if not page:
                    break
                rows = [as_row(c) for c in page]
                async with self.sf() as s:
                    # the door checks, de-duplicates and derives; the minute still forming is left to the stream
                    done = await accept_rows(s, market.id, "1m", rows, now=self._now_ms())
                    market_obj = await s.get(type(market), market.id)
                    if market_obj is not None and done.newest is not None:
                        market_obj.last_price = done.newest[4]
                    await s.commit()
                report.add(done)
                nxt = max(r[0] for r in rows) + 60_000
                if nxt <= since:
                    break
                since = nxt
            if report.stored:
                log.info("%s: backfilled %d candles of %s", self.name, report.stored, symbol)
            if report.rejected:  # the minute still forming is expected: only bad candles are a warning
                level = logging.WARNING if set(report.rejected) - {OPEN} else logging.DEBUG
                log.log(level, "%s: backfill of %s: %s", self.name, symbol, report.rejections())

    def _now_ms(self) -> int:
        """The venue's clock: the sim's runs faster than the wall clock (its candles are ahead of it)."""
        clock = getattr(self.adapter, "sim_now", None)
        return int(clock()) if clock is not None else int(time.time() * 1000)

    async def _stream(self) -> None:
        try:
            await self.backfill()
        except Exception:
            log.exception("%s: history backfill failed; streaming live candles anyway", self.name)
        if self.adapter.capabilities.streams_ticks:  # after the history: the sim's ticks would start its walk
            self._tasks.append(asyncio.create_task(self._ticks(), name=f"{self.name}-ticks"))
        symbols = list(self.adapter.capabilities.symbols)
        while True:
            try:
                async for candle in self.adapter.stream_candles(symbols, "1m"):
                    await self._publish(candle)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: candle stream failed; restarting in 1s", self.name)
                await asyncio.sleep(1)

    async def _ticks(self) -> None:
        """Ticks go out on plain NATS as they come: the latest matters, none is stored in the stream or
        sent again (core samples them into the store, and evaluates the quoting strategies on them)."""
        symbols = list(self.adapter.capabilities.symbols)
        adapter = cast(TickStreaming, self.adapter)  # started only with capabilities.streams_ticks
        while True:
            try:
                async for tick in adapter.stream_ticks(symbols):
                    TICKS_PUBLISHED.labels(self.name).inc()
                    await self.nc.publish(subjects.md_tick(tick.exchange, tick.symbol), m.encode(tick))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: tick stream failed; restarting in 1s", self.name)
                await asyncio.sleep(1)

    async def _publish(self, candle: m.Candle) -> None:
        # the order updates published before it (a resting order's fill on this candle) are booked first
        candle = msgspec.structs.replace(candle, source=self._run_id, updates_seq=self._updates)
        subject = subjects.md_candle(candle.exchange, candle.symbol, candle.tf)
        msg_id = f"{candle.exchange}:{candle.symbol}:{candle.tf}:{candle.time}"
        for attempt in range(30):
            try:
                await self.js.publish(subject, m.encode(candle), headers={"Nats-Msg-Id": msg_id}, timeout=5)
                CANDLES_PUBLISHED.labels(self.name).inc()
                return
            except Exception as exc:  # NATS restarting: keep the candle and try again
                log.warning("%s: publish failed (%s), retry %d", self.name, exc, attempt + 1)
                await asyncio.sleep(min(0.2 * (attempt + 1), 2))
        log.error("%s: dropped candle %s after retries", self.name, msg_id)

    # -- requests -------------------------------------------------------------------------------------
    def _guard(self, handler: Any) -> Any:
        async def handle(msg: Msg) -> None:
            async with self._slots:
                try:
                    reply = await handler(msg)
                except Exception:
                    log.exception("%s: request on %s failed", self.name, msg.subject)
                    reply = m.OrderAck(
                        client_order_id="", status="error", reason="internal error in exchange service"
                    )
                if msg.reply:
                    await msg.respond(m.encode(reply))

        async def wrapped(msg: Msg) -> None:
            # nats-py runs one callback at a time per subscription: answer each request in its own task,
            # or a burst of a thousand orders queues behind one another's exchange calls.
            task = asyncio.create_task(handle(msg))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

        return wrapped

    async def credentials(self, trader_id: int, owner_id: int | None = None) -> Credentials:
        """The account's credentials; given ``owner_id`` (every order), only if the account is that user's."""
        known = self._paper.get(trader_id)
        if known is not None:  # paper accounts have no secret: remember them, off the order path's database
            owner, creds = known
        else:
            async with self.sf() as s:
                trader = await s.get(Trader, trader_id)
            if trader is None or trader.exchange != self.name:
                raise UnknownTrader(f"no trading account {trader_id} on {self.name}")
            owner = trader.owner_id
            if self.adapter.capabilities.paper:
                creds = Credentials(trader_id=trader_id, paper=True)
                self._paper[trader_id] = (owner, creds)
            elif not (trader.api_key_enc and trader.api_secret_enc):
                raise AuthError("this trading account has no API key")
            else:
                creds = Credentials(
                    trader_id=trader_id,
                    api_key=self.box.decrypt(trader.api_key_enc),
                    api_secret=self.box.decrypt(trader.api_secret_enc),
                    sandbox=trader.sandbox,
                )
        if owner_id is not None and owner_id != owner:
            log.error(
                "%s: refused an order for user %s on account %s of user %s",
                self.name,
                owner_id,
                trader_id,
                owner,
            )
            raise UnknownTrader(f"no trading account {trader_id} on {self.name} for this user")
        return creds

    async def _order_credentials(self, req: m.PlaceOrder) -> Credentials:
        """An order moves money: it names its owner, and the account must be theirs."""
        if req.owner_id is None:
            raise UnknownTrader("an order must name the user it is for")
        return await self.credentials(req.trader_id, req.owner_id)

    async def _on_trader_changed(self, msg: Msg) -> None:
        try:
            changed = m.decode(msg.data, m.TraderChanged)
        except Exception:
            log.warning("%s: unreadable account change", self.name)
            return
        self._paper.pop(changed.trader_id, None)
        forget = getattr(self.adapter, "forget_account", None)  # only adapters that keep accounts' state
        if changed.deleted and forget is not None:
            await forget(changed.trader_id)

    async def _on_balance(self, msg: Msg) -> m.BalanceReply:
        req = m.decode(msg.data, m.BalanceRequest)
        try:
            bal = await self.adapter.fetch_balances(await self.credentials(req.trader_id))
        except (ExchangeError, UnknownTrader) as exc:
            return m.BalanceReply(error=str(exc))
        return m.BalanceReply(balances={k: format(v, "f") for k, v in bal.items()})

    async def _on_balances(self, msg: Msg) -> m.BalancesReply:
        """Each account's balances, fetched concurrently; one failing account does not fail the others."""
        req = m.decode(msg.data, m.BalancesRequest)

        async def one(trader_id: int) -> tuple[int, dict[str, str] | None, str | None]:
            try:
                bal = await self.adapter.fetch_balances(await self.credentials(trader_id))
            except (ExchangeError, UnknownTrader) as exc:
                return trader_id, None, str(exc)
            return trader_id, {k: format(v, "f") for k, v in bal.items()}, None

        found = await asyncio.gather(*(one(t) for t in dict.fromkeys(req.trader_ids)))
        return m.BalancesReply(
            balances={t: bal for t, bal, _ in found if bal is not None},
            errors={t: err for t, _, err in found if err is not None},
        )

    async def _on_reset(self, msg: Msg) -> m.ResetReply:
        """A paper account back to its starting cash: only the owner's, only where the adapter keeps paper
        accounts (the sim)."""
        req = m.decode(msg.data, m.ResetPaper)
        reset = getattr(self.adapter, "reset_account", None)
        try:
            creds = await self.credentials(req.trader_id, req.owner_id)
        except (ExchangeError, UnknownTrader) as exc:
            return m.ResetReply(ok=False, error=str(exc))
        if reset is None or not creds.paper:
            return m.ResetReply(ok=False, error=f"{self.name} has no paper accounts to reset")
        try:
            error, balances, at = await reset(req.trader_id, req.last_fill_id)
        except Exception:  # the database, most likely: nothing was changed (one transaction)
            log.exception("%s: resetting paper account %s failed", self.name, req.trader_id)
            return m.ResetReply(ok=False, error="the reset failed on the exchange's side; try again")
        if error is not None:
            return m.ResetReply(ok=False, error=error)
        log.info("%s: paper account %s reset to its starting cash", self.name, req.trader_id)
        return m.ResetReply(ok=True, balances={k: format(v, "f") for k, v in balances.items()}, time=at)

    async def _on_verify(self, msg: Msg) -> m.VerifyReply:
        req = m.decode(msg.data, m.VerifyTrader)
        try:
            await self.adapter.fetch_balances(await self.credentials(req.trader_id))
        except AuthError as exc:
            return m.VerifyReply(ok=False, error=f"the exchange refused the key: {exc}")
        except ExchangeUnavailable as exc:
            return m.VerifyReply(ok=False, error=f"{self.name} is not reachable: {exc}")
        except ExchangeError as exc:  # it answered, or the account cannot be served (a testnet it has not)
            return m.VerifyReply(ok=False, error=f"{self.name}: {exc}")
        except UnknownTrader as exc:
            return m.VerifyReply(ok=False, error=str(exc))
        return m.VerifyReply(ok=True)

    async def _on_order(self, msg: Msg) -> m.OrderAck:
        return await self._place(m.decode(msg.data, m.PlaceOrder))

    async def _on_orders(self, msg: Msg) -> m.OrderAcks:
        """Every order of the batch at once: each is its own exchange call (the adapter's rate limits apply),
        and one failing never holds up or changes the others."""
        batch = m.decode(msg.data, m.PlaceOrders)
        if self.adapter.capabilities.batch_orders:
            return m.OrderAcks(acks=await self._place_batch(batch.orders))
        return m.OrderAcks(acks=list(await asyncio.gather(*(self._place(req) for req in batch.orders))))

    async def _cancel_first(self, creds: Credentials, spec: OrderSpec) -> None:
        """Cancel the orders an order names in ``cancels`` before it is placed (a signal exit takes the
        position's protective orders down, a moved stop its old orders), publishing each outcome. One that
        is gone already (filled, cancelled) is answered with its final state, which is published too.
        Raises OrderRejected when one of them had filled, fully or partly (``base.refused_after``):
        the order was decided for a position that has changed, and is not placed."""
        outcomes: list[OrderResult] = []
        for cid in spec.cancels:
            try:
                result = await self.adapter.cancel_order(creds, cid, spec.symbol)
            except ExchangeError as exc:
                log.warning("%s: cancelling %s before %s: %s", self.name, cid, spec.client_order_id, exc)
                continue
            await self._publish_update(creds.trader_id, result)
            outcomes.append(result)
        refused = refused_after(outcomes)
        if refused is not None:
            log.info("%s: %s %s", self.name, spec.client_order_id, refused)
            raise OrderRejected(refused)

    async def _place_batch(self, reqs: list[m.PlaceOrder]) -> list[m.OrderAck]:
        """An adapter that takes a batch in one call (the sim): the orders it can take go together; an
        order that cannot be parsed or whose account is unknown is answered on its own. Each account is
        checked against the owner its orders name once per batch (a batch holds a few accounts' orders)."""
        acks: dict[int, m.OrderAck] = {}
        ready: list[tuple[int, Credentials, OrderSpec]] = []
        checked: dict[tuple[int, int | None], Credentials | Exception] = {}
        counts: dict[str, int] = {}
        for i, req in enumerate(reqs):
            key = (req.trader_id, req.owner_id)
            creds = checked.get(key)
            if creds is None:
                try:
                    creds = checked[key] = await self._order_credentials(req)
                except (ExchangeError, UnknownTrader) as exc:
                    creds = checked[key] = exc
            if isinstance(creds, Exception):
                counts["error"] = counts.get("error", 0) + 1
                acks[i] = m.OrderAck(client_order_id=req.client_order_id, status="error", reason=str(creds))
                continue
            try:
                # the batch adapter (the sim) cancels ``spec.cancels`` itself, in the order's own transaction
                ready.append((i, creds, _spec(req)))
            except (ArithmeticError, ValueError):
                acks[i] = self._unparsable(req)
        if ready:
            try:
                adapter = cast(BatchPlacing, self.adapter)  # called only with capabilities.batch_orders
                results = await adapter.place_orders([(c, spec) for _, c, spec in ready])
            except ExchangeError as exc:
                results = None
                reason, retryable = str(exc), getattr(exc, "retryable", False)
            except Exception:
                log.exception("%s: placing a batch of %d failed", self.name, len(ready))
                results = None
                reason, retryable = "internal error in exchange service", True
            for j, (i, _, spec) in enumerate(ready):
                if results is None:
                    counts["error"] = counts.get("error", 0) + 1
                    acks[i] = m.OrderAck(
                        client_order_id=spec.client_order_id,
                        status="error",
                        reason=reason,
                        retryable=retryable,
                    )
                else:
                    status = results[j].status
                    counts[status] = counts.get(status, 0) + 1
                    acks[i] = _ack(results[j])
        for status, n in counts.items():  # counted once per batch, not per order
            ORDER_CALLS.labels(self.name, status).inc(n)
        return [acks[i] for i in range(len(reqs))]

    def _unparsable(self, req: m.PlaceOrder) -> m.OrderAck:
        ORDER_CALLS.labels(self.name, "rejected").inc()
        return m.OrderAck(
            client_order_id=req.client_order_id,
            status="rejected",
            reason=f"amount or price is not a number: {req.amount!r}",
        )

    async def _place(self, req: m.PlaceOrder) -> m.OrderAck:
        try:
            spec = _spec(req)
        except (ArithmeticError, ValueError):
            return self._unparsable(req)
        try:
            creds = await self._order_credentials(req)
            if spec.cancels:
                await self._cancel_first(creds, spec)
            result = await self.adapter.place_order(creds, spec)
        except OrderRejected as exc:
            ORDER_CALLS.labels(self.name, "rejected").inc()
            return m.OrderAck(client_order_id=req.client_order_id, status="rejected", reason=str(exc))
        except (ExchangeError, UnknownTrader) as exc:
            ORDER_CALLS.labels(self.name, "error").inc()
            retryable = getattr(exc, "retryable", False)
            return m.OrderAck(
                client_order_id=req.client_order_id, status="error", reason=str(exc), retryable=retryable
            )
        except Exception:  # a bug in an adapter: this order's outcome is unknown, the reconciler will ask
            log.exception("%s: placing %s failed", self.name, req.client_order_id)
            ORDER_CALLS.labels(self.name, "error").inc()
            return m.OrderAck(
                client_order_id=req.client_order_id,
                status="error",
                reason="internal error in exchange service",
                retryable=True,
            )
        ORDER_CALLS.labels(self.name, result.status).inc()
        if result.status == "open" and not self.adapter.capabilities.pushes_fills:
            # A task per open order until it settles, then forgotten: the long-lived list above would
            # keep every finished one for as long as the service runs.
            follower = asyncio.create_task(
                self._follow(
                    creds,
                    req.client_order_id,
                    req.symbol,
                    resting=spec.type != "market",
                    quote=spec.post_only,
                )
            )
            self._followers.add(follower)
            follower.add_done_callback(self._followers.discard)
        return _ack(result)

    async def _on_status(self, msg: Msg) -> m.OrderAck:
        req = m.decode(msg.data, m.OrderStatusRequest)
        try:
            result = await self.adapter.fetch_order(
                await self.credentials(req.trader_id), req.client_order_id, req.symbol
            )
        except (ExchangeError, UnknownTrader) as exc:
            return m.OrderAck(
                client_order_id=req.client_order_id, status="error", reason=str(exc), retryable=True
            )
        if result is None:
            return m.OrderAck(client_order_id=req.client_order_id, status="not_found")
        return _ack(result)

    async def _on_cancel(self, msg: Msg) -> m.OrderAck:
        req = m.decode(msg.data, m.CancelOrder)
        try:
            if req.owner_id is None:  # cancelling someone's stop can cost them as much as an order
                raise UnknownTrader("a cancel must name the user it is for")
            result = await self.adapter.cancel_order(
                await self.credentials(req.trader_id, req.owner_id), req.client_order_id, req.symbol
            )
        except (ExchangeError, UnknownTrader) as exc:
            return m.OrderAck(client_order_id=req.client_order_id, status="error", reason=str(exc))
        await self._publish_update(req.trader_id, result)
        return _ack(result)

    async def _follow(
        self,
        creds: Credentials,
        client_order_id: str,
        symbol: str,
        resting: bool = False,
        quote: bool = False,
    ) -> None:
        """Poll an open order until it is done, publishing each change (venues that push no fills). A market
        order is watched closely for an hour; an order resting on purpose (a limit entry, a protective exit)
        every ``RESTING_POLL_S`` for as long as it rests (core's reconciler also asks about it every few
        minutes, and after a restart of this service); a quote every ``QUOTE_POLL_S`` (its fill changes
        what the strategy quotes next)."""
        every = QUOTE_POLL_S if quote else RESTING_POLL_S if resting else 0.2
        interval = max(self.adapter.capabilities.min_poll_interval_s, every)
        last_status = "open"
        for _ in itertools.count() if resting else range(int(3600 / interval)):
            # On a grid of the interval: an account's watched orders wake together, and an adapter that
            # looks up many orders in one call (fetch_orders) answers them all at once.
            await asyncio.sleep(interval - time.monotonic() % interval)
            try:
                result = await self._lookup(creds, client_order_id, symbol)
            except ExchangeError:
                continue
            if result is None:
                continue
            if result.status != last_status:
                last_status = result.status
                await self._publish_update(creds.trader_id, result)
            if result.status in ("filled", "canceled", "rejected"):
                return

    async def _lookup(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult | None:
        """A watched order's state. Where the adapter has ``fetch_orders`` (Bitfinex: every open order of a
        key in one call), the lookups of one account made within ``LOOKUP_GATHER_S`` go out as one call, so
        that a market maker's resting quotes cost one call a second, not one each, of the key's budget."""
        many = getattr(self.adapter, "fetch_orders", None)
        if many is None:
            return await self.adapter.fetch_order(creds, client_order_id, symbol)
        waiting = self._lookups.get(creds.trader_id)
        if waiting is None:
            waiting = self._lookups[creds.trader_id] = {}
            task = asyncio.create_task(self._look_up_together(creds, many))
            self._followers.add(task)
            task.add_done_callback(self._followers.discard)
        future: asyncio.Future[OrderResult | None] = asyncio.get_running_loop().create_future()
        waiting.setdefault(client_order_id, (symbol, []))[1].append(future)
        return await future

    async def _look_up_together(self, creds: Credentials, many: Any) -> None:
        await asyncio.sleep(LOOKUP_GATHER_S)
        waiting = self._lookups.pop(creds.trader_id, {})
        try:
            found: dict[str, OrderResult | None] = await many(
                creds, [(cid, symbol) for cid, (symbol, _) in waiting.items()]
            )
        except Exception as exc:  # each waiting follower sees the failure (an ExchangeError: it asks again)
            for _, futures in waiting.values():
                for f in futures:
                    if not f.done():
                        f.set_exception(exc)
            return
        for cid, (_, futures) in waiting.items():
            for f in futures:
                if not f.done():
                    f.set_result(found.get(cid))

    async def _publish_update(self, trader_id: int, r: OrderResult) -> None:
        self._updates += 1
        upd = m.OrderUpdated(
            source=self._run_id,
            seq=self._updates,
            exchange=self.name,
            trader_id=trader_id,
            client_order_id=r.client_order_id,
            status=cast(m.VenueStatus, r.status),  # the adapters map the venue's to these
            filled=format(r.filled, "f"),
            price=format(r.price, "f") if r.price is not None else None,
            fee=format(r.fee, "f"),
            fee_asset=r.fee_asset,
            time=r.time,
            reason=r.reason,
        )
        await self.nc.publish(subjects.order_updates(self.name), m.encode(upd))


def _spec(req: m.PlaceOrder) -> OrderSpec:
    def dec(v: str | None) -> Decimal | None:
        return Decimal(v) if v else None

    p = req.protect
    return OrderSpec(
        client_order_id=req.client_order_id,
        symbol=req.symbol,
        side=req.side,
        amount=Decimal(req.amount),
        type=req.type,
        price=dec(req.price),
        stop_price=dec(req.stop_price),
        trail=dec(req.trail),
        expires_at=req.expires_at,
        group=req.group,
        cancels=tuple(req.cancels),
        post_only=req.post_only,
        protect=Protect(
            stop_loss=dec(p.stop_loss),
            take_profit=dec(p.take_profit),
            trailing_stop=dec(p.trailing_stop),
            rev=p.rev,
        )
        if p
        else None,
    )


def _ack(r: OrderResult) -> m.OrderAck:
    return m.OrderAck(
        client_order_id=r.client_order_id,
        status=cast(m.VenueStatus, r.status),  # the adapters map the venue's to these
        exchange_order_id=r.exchange_order_id,
        filled=format(r.filled, "f"),
        price=format(r.price, "f") if r.price is not None else None,
        fee=format(r.fee, "f"),
        reason=r.reason,
        time=r.time,
    )
