"""The alerts component on the bus.

It hears every user's events (``events.user.*``: core's fills, pauses and daily loss limits, the web app's
kill switch and pauses), the market data (for disconnected exchanges), and the clock (the daily summary);
finds the owner's channels that take the event; and hands one alert per channel to the dispatcher. It
answers the web app's test requests, and forgets a user's cached channels when the web app says they
changed. One replica: a second would deliver every alert twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import or_, select, union, update

from tradewind.alerts import events, summary
from tradewind.alerts.channels import Channel
from tradewind.alerts.delivery import Dispatcher, Outcome, RetryPolicy
from tradewind.alerts.outcomes import OutcomeLog
from tradewind.alerts.senders import (
    BrowserSender,
    EmailSender,
    Sender,
    TelegramSender,
    WebhookSender,
    hide_tokens_in_http_logs,
)
from tradewind.alerts.targets import private_allowed
from tradewind.alerts.watch import ExchangeWatch
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import unsubscribe_all
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage.db import SessionFactory, write_gate
from tradewind.storage.models import AlertChannel, Assignment, Market, Strategy, Trader

log = logging.getLogger(__name__)
FROM_EVENTS = ("fill", "paused", "kill_switch", "loss_limit")  # user events that are alerts as they are
CACHE_S = 60.0  # a user's channels are read again after this long (and at once when the web app says)
CACHE_USERS = 10_000
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Type(msgspec.Struct):
    type: str


_type_of = msgspec.msgpack.Decoder(_Type)  # an evaluation is skipped without decoding the rest of it


class AlertService:
    def __init__(
        self,
        settings: Settings,
        nc: Client,
        sf: SessionFactory,
        box: SecretBox,
        clock: Clock = utc_now,
        senders: dict[str, Sender] | None = None,
        summary_every_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.sf = sf
        self.clock = clock
        self.summary_every_s = summary_every_s
        self.http = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": "tradewind-alerts/1"})
        allow_private = private_allowed(settings)
        timeout = settings.alerts_timeout_s
        self.senders: dict[str, Sender] = senders or {
            "webhook": WebhookSender(self.http, allow_private, timeout),
            "telegram": TelegramSender(self.http, settings.telegram_api_url, timeout),
            "email": EmailSender(settings, allow_private, timeout),
            "browser": BrowserSender(nc),
        }
        self.outcomes = OutcomeLog(sf)
        policy = RetryPolicy(settings.alerts_attempts, settings.alerts_retry_s, settings.alerts_retry_max_s)
        self.dispatcher = Dispatcher(self.senders, box, self._record, policy, settings.alerts_queue_size)
        self.watch = ExchangeWatch(settings.alerts_exchange_silence_s)
        self._cache: dict[int, tuple[float, list[Channel]]] = {}
        self._subs: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        hide_tokens_in_http_logs()
        self._subs += [
            await self.nc.subscribe(
                subjects.USER_EVENTS_ALL, queue=subjects.ALERTS_QUEUE, cb=self._on_user_event
            ),
            await self.nc.subscribe(subjects.ALERTS_TEST, queue=subjects.ALERTS_QUEUE, cb=self._on_test),
            await self.nc.subscribe(subjects.ALERTS_CHANGED, cb=self._on_changed),
            await self.nc.subscribe(subjects.MD_SUBJECTS, cb=self._on_candle),
        ]
        self._tasks.append(asyncio.create_task(self._clockwork(), name="alerts-clock"))

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        await unsubscribe_all(subs)
        tasks, self._tasks = [*self._tasks, *self._requests], []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.dispatcher.stop()
        await self.outcomes.stop()
        await self.http.aclose()

    # -- events -------------------------------------------------------------------------------------------
    async def _on_user_event(self, msg: Msg) -> None:
        try:
            kind = _type_of.decode(msg.data).type
            if kind not in FROM_EVENTS:
                return  # evaluations, orders, the alerts' own browser events
            ev = m.decode_user_event(msg.data)
            user_id = int(msg.subject.rsplit(".", 1)[1])
        except (msgspec.DecodeError, ValueError):
            log.warning("alerts: unreadable user event on %s", msg.subject)
            return
        if isinstance(ev, m.FillEvent) and ev.status != "filled":
            return
        data = msgspec.to_builtins(ev)  # the event's fields (those it carries), as the alert's data
        del data["type"]
        try:
            await self.notify(user_id, kind, data)
        except Exception:  # the database is away: this alert is lost, the next ones are tried
            log.exception("alerts: %s event of user %d not handled", kind, user_id)

    async def notify(self, user_id: int, event: str, data: dict[str, Any]) -> int:
        """Queue an alert of ``event`` for each of the user's channels that takes it; how many."""
        wanted = [c for c in await self.channels_of(user_id) if c.takes(event)]
        if not wanted:
            return 0
        if event == "paused":
            data = {**data, **await self._assignment(user_id, data.get("assignment_id"))}
        alert = events.render(user_id, event, data, self.clock())
        for channel in wanted:
            self.dispatcher.submit(channel, alert)
        return len(wanted)

    async def channels_of(self, user_id: int) -> list[Channel]:
        hit = self._cache.get(user_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self.sf() as s:
            rows = (
                (
                    await s.execute(
                        select(AlertChannel).where(
                            AlertChannel.owner_id == user_id, AlertChannel.enabled.is_(True)
                        )
                    )
                )
                .scalars()
                .all()
            )
        channels = [Channel.of(r) for r in rows]
        if len(self._cache) >= CACHE_USERS:
            self._cache.clear()
        self._cache[user_id] = (time.monotonic() + CACHE_S, channels)
        return channels

    async def _assignment(self, user_id: int, assignment_id: Any) -> dict[str, Any]:
        """What names a paused assignment for a person: its strategy and market."""
        if not isinstance(assignment_id, int):
            return {}
        async with self.sf() as s:
            row = (
                await s.execute(
                    select(Strategy.name, Market.exchange, Market.symbol, Assignment.timeframe)
                    .join(Strategy, Strategy.id == Assignment.strategy_id)
                    .join(Market, Market.id == Assignment.market_id)
                    .where(Assignment.id == assignment_id, Assignment.owner_id == user_id)
                )
            ).first()
        if row is None:
            return {}
        return {"strategy": row[0], "exchange": row[1], "symbol": row[2], "timeframe": row[3]}

    async def _on_changed(self, msg: Msg) -> None:
        try:
            owner = m.decode(msg.data, m.AlertChannelsChanged).owner_id
        except msgspec.DecodeError:
            self._cache.clear()
            return
        self._cache.pop(owner, None)
        self._spawn(self._requeue(owner))

    async def _requeue(self, owner: int) -> None:
        """What is queued for the owner's channels goes as they are now: none to a deleted or disabled one."""
        try:
            current = {c.id: c for c in await self.channels_of(owner)}
        except Exception:
            log.exception("alerts: channels of user %d not read again", owner)
            return
        dropped = self.dispatcher.refresh(owner, current)
        if dropped:
            log.info(
                "alerts: %d queued alert(s) of user %d dropped: their channel was deleted or turned off",
                dropped,
                owner,
            )

    def _record(self, outcome: Outcome) -> None:
        self.outcomes.add(outcome)
        ch = outcome.channel
        if outcome.status == "failed" and ch.kind != "browser" and outcome.alert.event != events.TEST:
            failed = m.AlertFailedEvent(
                channel_id=ch.id,
                channel=ch.name,
                kind=ch.kind,
                event=outcome.alert.event,
                title=outcome.alert.title,
                error=outcome.error,
                attempts=outcome.attempts,
            )
            self._spawn(self.nc.publish(subjects.user_events(ch.owner_id), m.encode(failed)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    # -- test alerts --------------------------------------------------------------------------------------
    async def _on_test(self, msg: Msg) -> None:
        self._spawn(self._answer_test(msg))

    async def _answer_test(self, msg: Msg) -> None:
        try:
            req = m.decode(msg.data, m.SendTestAlert)
        except msgspec.DecodeError:
            await msg.respond(m.encode(m.DeliveryResult(status="failed", error="unreadable request")))
            return
        async with self.sf() as s:
            row = (
                await s.execute(
                    select(AlertChannel).where(
                        AlertChannel.id == req.channel_id, AlertChannel.owner_id == req.owner_id
                    )
                )
            ).scalar_one_or_none()
        if row is None:
            await msg.respond(m.encode(m.DeliveryResult(status="not_found")))
            return
        alert = events.render(req.owner_id, events.TEST, {"channel": row.name}, self.clock())
        outcome = await self.dispatcher.deliver(Channel.of(row), alert, attempts=1)
        await self.outcomes.flush()  # stored before the answer: the page that asked shows it on its next read
        await msg.respond(
            m.encode(m.DeliveryResult(status=outcome.status, attempts=outcome.attempts, error=outcome.error))
        )

    # -- exchanges and the clock --------------------------------------------------------------------------
    async def _on_candle(self, msg: Msg) -> None:
        parts = msg.subject.split(".")  # md.candle.<exchange>.<symbol>.<tf>
        if len(parts) < 3:
            return
        back = self.watch.seen(parts[2], self.clock().timestamp())
        if back is not None:
            self._spawn(
                self._exchange(parts[2], {"exchange": parts[2], "connected": True, "down_s": round(back)})
            )

    async def _exchange(self, exchange: str, data: dict[str, Any]) -> int:
        """An exchange went silent or came back: tell the users with an account or an assignment on it."""
        traders = select(Trader.owner_id).where(Trader.exchange == exchange)
        assigned = (
            select(Assignment.owner_id)
            .join(Market, Market.id == Assignment.market_id)
            .where(Market.exchange == exchange, Assignment.enabled.is_(True))
        )
        try:
            async with self.sf() as s:
                owners = set((await s.execute(union(traders, assigned))).scalars())
            count = 0
            for owner in sorted(owners):
                count += await self.notify(owner, "exchange", dict(data))
        except Exception:
            log.exception("alerts: exchange %s event not handled", exchange)
            return 0
        return count

    async def _clockwork(self) -> None:
        every = max(0.2, min(5.0, self.settings.alerts_exchange_silence_s / 4, self.summary_every_s))
        last_summary = 0.0
        while True:
            await asyncio.sleep(every)
            now = self.clock()
            for exchange, silent in self.watch.silent(now.timestamp()):
                log.warning("alerts: no market data from %s for %.0f s", exchange, silent)
                await self._exchange(
                    exchange, {"exchange": exchange, "connected": False, "silent_s": round(silent)}
                )
            if time.monotonic() - last_summary >= self.summary_every_s:
                last_summary = time.monotonic()
                try:
                    await self.summaries(now)
                except Exception:
                    log.exception("alerts: daily summaries failed; trying again shortly")

    async def summaries(self, now: dt.datetime) -> int:
        """Send the summary due at ``now`` to each channel that takes it and has not had it; how many."""
        key, start, end = summary.due(now, self.settings.alerts_summary_hour)
        c = AlertChannel
        not_yet = or_(c.summary_day.is_(None), c.summary_day != key)
        async with self.sf() as s:
            rows = (await s.execute(select(c).where(not_yet))).scalars().all()
        if not rows:
            return 0
        todo: dict[int, list[Channel]] = {}
        for row in rows:
            # a channel seen for the first time starts with the next summary, not a day it did not ask for
            if row.summary_day is not None and row.enabled and "summary" in (row.events or ()):
                todo.setdefault(row.owner_id, []).append(Channel.of(row))
        ids = [row.id for row in rows]
        for i in range(0, len(ids), 500):  # marked first: a crash now costs a summary, never a second one
            async with write_gate(self.sf), self.sf() as s:
                await s.execute(update(c).where(c.id.in_(ids[i : i + 500]), not_yet).values(summary_day=key))
                await s.commit()
        for owner, channels in todo.items():
            async with self.sf() as s:
                day = await summary.summarize(s, owner, start, end)
            alert = events.render(owner, "summary", day, now)
            for channel in channels:
                self.dispatcher.submit(channel, alert)
        return sum(len(v) for v in todo.values())
