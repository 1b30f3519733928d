"""Queues and retries: each channel has a bounded queue and one worker, so alerts to a channel arrive in
order and a channel that fails or hangs holds up nobody else's. A full queue drops its oldest alert (and
says so); a failed attempt that may succeed later is tried again after an exponential back-off.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from tradewind.alerts.channels import Channel, redact, unseal
from tradewind.alerts.events import Alert
from tradewind.alerts.senders import DeliveryError, Sender
from tradewind.config import ConfigError
from tradewind.secrets import SecretBox

log = logging.getLogger(__name__)
ALERTS = Counter("tradewind_alerts_total", "Alert deliveries by channel kind and outcome", ["kind", "status"])
ATTEMPTS = Counter(
    "tradewind_alert_attempts_total",
    "Alert delivery attempts by channel kind and outcome",
    ["kind", "outcome"],
)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all; before attempt n+1 wait ``base_s * 2**(n-1)`` (at least what the receiver
    asked for), never more than ``max_s``, stretched by up to ``jitter`` so that channels failing together
    do not all come back at the same instant."""

    attempts: int = 5
    base_s: float = 2.0
    max_s: float = 300.0
    jitter: float = 0.1

    def delay(self, attempt: int, asked: float | None = None, rand: float = 0.0) -> float:
        wait: float = self.base_s * 2 ** (attempt - 1)  # (typeshed types int ** int as Any)
        if asked is not None:
            wait = max(wait, asked)
        return min(self.max_s, wait * (1 + self.jitter * rand))


@dataclass(frozen=True)
class Outcome:
    """How one alert's delivery to one channel ended: sent, failed (after ``attempts``), or dropped."""

    channel: Channel
    alert: Alert
    status: str
    attempts: int
    error: str | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class _Lane:
    owner_id: int
    queue: collections.deque[tuple[Channel, Alert]] = field(default_factory=collections.deque)
    task: asyncio.Task[None] | None = None


class Dispatcher:
    """Delivers alerts through ``senders`` (one per channel kind) and reports every ``Outcome`` to
    ``record``. ``submit`` never waits: trading code paths never wait for an alert."""

    def __init__(
        self,
        senders: dict[str, Sender],
        box: SecretBox,
        record: Callable[[Outcome], None],
        policy: RetryPolicy,
        queue_size: int = 100,
        concurrency: int = 32,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.senders = senders
        self.box = box
        self.record = record
        self.policy = policy
        self.queue_size = queue_size
        self._slots = asyncio.Semaphore(concurrency)  # deliveries in flight at once, every channel together
        self._sleep = sleep
        self._rand = rand
        self._lanes: dict[int, _Lane] = {}

    def submit(self, channel: Channel, alert: Alert) -> None:
        lane = self._lanes.get(channel.id)
        if lane is None:
            lane = self._lanes[channel.id] = _Lane(channel.owner_id)
        if len(lane.queue) >= self.queue_size:
            old_channel, old = lane.queue.popleft()
            log.warning("alerts: channel %d is behind; dropped a %s alert", channel.id, old.event)
            ALERTS.labels(channel.kind, "dropped").inc()
            self.record(
                Outcome(
                    old_channel,
                    old,
                    "dropped",
                    0,
                    f"dropped: {self.queue_size} newer alerts were waiting for this channel",
                )
            )
        lane.queue.append((channel, alert))
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._run(channel.id, lane), name=f"alerts-channel-{channel.id}")

    def refresh(self, owner_id: int, current: dict[int, Channel]) -> int:
        """``owner_id``'s channels changed (``current``: those enabled now): the alerts queued for a channel
        deleted or turned off go (the one being sent finishes), the others go out as the channel is now
        (a new URL, a new token). How many alerts were dropped."""
        gone = 0
        for cid, lane in list(self._lanes.items()):
            if lane.owner_id != owner_id:
                continue
            fresh = current.get(cid)
            if fresh is None:
                gone += len(lane.queue)
                lane.queue.clear()
            else:
                lane.queue = collections.deque((fresh, a) for _, a in lane.queue)
        return gone

    def waiting(self) -> int:
        """Alerts queued or being delivered (tests, and the stop log)."""
        return sum(
            len(lane.queue) + (lane.task is not None and not lane.task.done())
            for lane in self._lanes.values()
        )

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued alert has been delivered or has failed (tests)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.waiting() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        left = sum(len(lane.queue) for lane in self._lanes.values())
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        self._lanes.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if left:
            log.warning("alerts: %d queued alert(s) not delivered at shutdown", left)

    async def _run(self, channel_id: int, lane: _Lane) -> None:
        while lane.queue:
            channel, alert = lane.queue.popleft()
            await self.deliver(channel, alert)
        if self._lanes.get(channel_id) is lane and not lane.queue:
            del self._lanes[channel_id]  # an idle channel keeps no task

    async def deliver(self, channel: Channel, alert: Alert, attempts: int | None = None) -> Outcome:
        """Deliver now, retrying as the policy says (``attempts``: at most this many, e.g. 1 for a test)."""
        sender = self.senders.get(channel.kind)
        limit = attempts or self.policy.attempts
        try:
            secrets = unseal(self.box, channel.secret_enc)
        except (ConfigError, ValueError):
            return self._done(
                Outcome(
                    channel,
                    alert,
                    "failed",
                    0,
                    "its secrets cannot be read with this platform's key: save the channel again",
                )
            )
        error = f"no sender for {channel.kind} channels"
        attempt = 0
        while sender is not None and attempt < limit:
            attempt += 1
            try:
                async with self._slots:
                    await sender.send(channel, secrets, alert)
                ATTEMPTS.labels(channel.kind, "ok").inc()
                return self._done(Outcome(channel, alert, "sent", attempt))
            except DeliveryError as exc:
                error, retry, asked = redact(str(exc), secrets), exc.retry, exc.after
                ATTEMPTS.labels(channel.kind, "retryable" if retry else "refused").inc()
            except Exception:  # a bug in a sender: said in the log, counted, and the alert tried again
                log.exception("alerts: sending to %s channel %d failed", channel.kind, channel.id)
                error, retry, asked = "internal error while sending; it has been logged", True, None
                ATTEMPTS.labels(channel.kind, "error").inc()
            if not retry or attempt >= limit:
                break
            wait = self.policy.delay(attempt, asked, self._rand())
            log.info(
                "alerts: %s channel %d, attempt %d failed (%s); again in %.1f s",
                channel.kind,
                channel.id,
                attempt,
                error,
                wait,
            )
            await self._sleep(wait)
        return self._done(Outcome(channel, alert, "failed", attempt, error))

    def _done(self, outcome: Outcome) -> Outcome:
        ALERTS.labels(outcome.channel.kind, outcome.status).inc()
        if outcome.status == "failed":
            log.warning(
                "alerts: %s alert to %s channel %d failed after %d attempt(s): %s",
                outcome.alert.event,
                outcome.channel.kind,
                outcome.channel.id,
                outcome.attempts,
                outcome.error,
            )
        self.record(outcome)
        return outcome
