"""Retention: what the platform deletes so that running for months does not mean growing without bound.

1,000 assignments on one-minute candles write 1.44 million evaluations a day. An evaluation that led to
an order explains that order and is kept with it; one that led to none (most of them: "stay long") is
kept in full for ``keep_evaluations_days`` and then deleted. Sampled ticks are kept
``keep_ticks_days``. Orders, fills, positions and candles are never deleted here.

The pruner runs in the leading core, in the background, in small batches: each batch is one short write
transaction (behind the same write gate as the hot path on SQLite, so a tick's order intents wait for at
most one batch), and it pauses between batches. It finds old rows through the primary key only (ids
grow with time: the newest id older than the cutoff is found by bisecting on ids), so it needs no index
that the hot path would have to maintain; a batch's rows (consecutive ids, so consecutive candles) sit
together in the evaluations' indexes too, which lead with the candle (migration 0011), so deleting them
rewrites a few leaves, not one per assignment. Orders need no pruning to keep the hot path's cost flat:
their indexes all grow at one end. On PostgreSQL the big tables are partitioned by month
(``storage.partitions``): each prune first creates the months ahead and drops months of ticks that lie
wholly past retention.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select

from tradewind.storage import partitions
from tradewind.storage.db import SessionFactory, write_gate
from tradewind.storage.models import Evaluation, Market, Order, TickRow
from tradewind.storage.types import utcnow

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
ORDER_MARGIN = dt.timedelta(minutes=10)  # an evaluation's orders are written within this of it (before it)


@dataclass(frozen=True)
class Policy:
    evaluations_days: float  # 0: keep every evaluation
    ticks_days: float  # 0: keep every sampled tick
    batch: int = 2000  # rows read (evaluations) or deleted (ticks) per transaction
    pause_s: float = 0.05  # between two batches


@dataclass
class Pruned:
    evaluations: int = 0
    ticks: int = 0  # rows deleted (not counting whole partitions dropped)
    dropped: list[str] = field(default_factory=list)  # partitions dropped whole (PostgreSQL)


async def prune(sf: SessionFactory, policy: Policy, now: dt.datetime | None = None) -> Pruned:
    """Delete what ``policy`` no longer keeps, batch by batch; returns how many rows went."""
    now = now or utcnow()
    out = Pruned()
    async with sf() as s:  # PostgreSQL: the months ahead get their partitions; past months of ticks go whole
        conn = await s.connection()
        await partitions.ensure(conn, now)
        if policy.ticks_days > 0:
            cutoff_ms = int(now.timestamp() * 1000 - policy.ticks_days * DAY_MS)
            out.dropped = await partitions.drop_expired(conn, "ticks", cutoff_ms)
        await s.commit()
    if policy.evaluations_days > 0:
        out.evaluations = await _evaluations(sf, policy, now - dt.timedelta(days=policy.evaluations_days))
    if policy.ticks_days > 0:
        cutoff_ms = int(now.timestamp() * 1000 - policy.ticks_days * DAY_MS)
        out.ticks = await _ticks(sf, policy, cutoff_ms)
    return out


async def prune_forever(sf: SessionFactory, policy: Policy, every_s: float) -> None:
    """``prune`` every ``every_s`` seconds until cancelled (a failure is logged and tried again later); the
    first time a minute after the start at most, once the start-up's own work is done."""
    await asyncio.sleep(min(every_s, 60.0))
    while True:
        try:
            started = time.monotonic()
            done = await prune(sf, policy)
            if done.evaluations or done.ticks or done.dropped:
                log.info(
                    "retention: deleted %d evaluations and %d ticks (partitions dropped: %s) in %.1f s",
                    done.evaluations,
                    done.ticks,
                    ", ".join(done.dropped) or "none",
                    time.monotonic() - started,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention: pruning failed; trying again in %.0f s", every_s)
        await asyncio.sleep(every_s)


async def _newest_before(s: Any, id_col: Any, time_col: Any, cutoff: dt.datetime) -> int | None:
    """The largest id whose row was created before ``cutoff`` (ids grow with time), by bisection over the
    primary key: a few dozen index lookups, whatever the table's size. None: no such row."""
    lo: int | None
    lo, hi = (await s.execute(select(func.min(id_col), func.max(id_col)))).one()
    if lo is None:
        return None
    first = (await s.execute(select(time_col).where(id_col == lo))).scalar_one()
    if first >= cutoff:
        return None
    while lo < hi:  # invariant: the row at lo (or the next one after it) is older than the cutoff
        mid = (lo + hi + 1) // 2
        at = (await s.execute(select(time_col).where(id_col >= mid).order_by(id_col).limit(1))).scalar_one()
        if at < cutoff:
            lo = mid
        else:
            hi = mid - 1
    return lo


async def _evaluations(sf: SessionFactory, policy: Policy, cutoff: dt.datetime) -> int:
    e, o = Evaluation.__table__.c, Order.__table__.c
    async with sf() as s:
        last = await _newest_before(s, e.id, e.created_at, cutoff)
    deleted, after = 0, 0
    while last is not None and after < last:
        async with sf() as s:
            rows = (
                await s.execute(
                    select(e.id, e.assignment_id, e.candle_time, e.created_at)
                    .where(e.id > after, e.id <= last)
                    .order_by(e.id)
                    .limit(policy.batch)
                )
            ).all()
            if not rows:
                break
            after = rows[-1].id
            # the orders written around these evaluations (an order is written before its evaluation)
            lo = await _newest_before(s, o.id, o.created_at, min(r.created_at for r in rows) - ORDER_MARGIN)
            hi = await _newest_before(s, o.id, o.created_at, max(r.created_at for r in rows) + ORDER_MARGIN)
            led: set[tuple[int, int]] = set()
            if hi is not None:
                led = set(
                    (
                        await s.execute(
                            select(o.assignment_id, o.candle_time).where(o.id > (lo or 0), o.id <= hi)
                        )
                    ).tuples()
                )
        gone = [r.id for r in rows if r.created_at < cutoff and (r.assignment_id, r.candle_time) not in led]
        if gone:
            async with write_gate(sf), sf() as s:
                for i in range(0, len(gone), 500):
                    await s.execute(delete(Evaluation).where(Evaluation.id.in_(gone[i : i + 500])))
                await s.commit()
            deleted += len(gone)
        await asyncio.sleep(policy.pause_s)
    return deleted


async def _ticks(sf: SessionFactory, policy: Policy, cutoff_ms: int) -> int:
    t = TickRow.__table__.c
    async with sf() as s:
        markets = list((await s.execute(select(Market.id))).scalars())
    deleted = 0
    for market_id in markets:
        while True:
            async with (
                sf() as s
            ):  # the oldest batch of this market's ticks before the cutoff (primary key order)
                times = list(
                    (
                        await s.execute(
                            select(t.time)
                            .where(t.market_id == market_id, t.time < cutoff_ms)
                            .order_by(t.time)
                            .limit(policy.batch)
                        )
                    ).scalars()
                )
            if not times:
                break
            async with write_gate(sf), sf() as s:
                await s.execute(
                    delete(TickRow).where(TickRow.market_id == market_id, TickRow.time <= times[-1])
                )
                await s.commit()
            deleted += len(times)
            await asyncio.sleep(policy.pause_s)
    return deleted
