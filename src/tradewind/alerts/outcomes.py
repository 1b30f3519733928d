"""Delivery outcomes, written in small batches: the newest on the channel's row (last success, last error,
attempts, counts), each one in alert_deliveries (the newest ``KEEP`` per channel are kept).

Written together every ``every_s`` and behind the SQLite write gate, so that a burst of fills' alerts is a
few short transactions beside core's, not one each.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update

from tradewind.alerts.delivery import Outcome
from tradewind.storage.db import SessionFactory, write_gate
from tradewind.storage.models import AlertChannel, AlertDelivery
from tradewind.storage.types import table_of

log = logging.getLogger(__name__)
KEEP = 100
_CHANNELS = table_of(AlertChannel)
_DELIVERIES = table_of(AlertDelivery)


class OutcomeLog:
    def __init__(self, sf: SessionFactory, every_s: float = 0.5, keep: int = KEEP) -> None:
        self.sf = sf
        self.every_s = every_s
        self.keep = keep
        self._buffer: list[Outcome] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, outcome: Outcome) -> None:
        self._buffer.append(outcome)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon(), name="alerts-outcomes")

    async def _write_soon(self) -> None:
        while self._buffer:
            await asyncio.sleep(self.every_s)
            await self.flush()

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        for attempt in range(3):
            try:
                await self._write(batch)
                return
            except Exception as exc:  # the database is away: a few tries, then the outcomes go (logged)
                log.warning(
                    "alerts: storing %d delivery outcome(s) failed (%s)", len(batch), type(exc).__name__
                )
                await asyncio.sleep(0.5 * (attempt + 1))
        log.error("alerts: %d delivery outcome(s) not stored", len(batch))

    async def _write(self, batch: list[Outcome]) -> None:
        ids = {o.channel.id for o in batch}
        c = _CHANNELS.c
        async with write_gate(self.sf), self.sf() as s:
            existing = set((await s.execute(select(c.id).where(c.id.in_(ids)))).scalars())
            kept = [
                o for o in batch if o.channel.id in existing
            ]  # a channel deleted meanwhile: nothing to keep
            if kept:
                await s.execute(
                    _DELIVERIES.insert(),
                    [
                        {
                            "owner_id": o.channel.owner_id,
                            "channel_id": o.channel.id,
                            "event": o.alert.event,
                            "title": o.alert.title[:200],
                            "status": o.status,
                            "attempts": o.attempts,
                            "error": o.error,
                            "created_at": o.at,
                        }
                        for o in kept
                    ],
                )
                await self._count(s, kept)
                for channel_id in {o.channel.id for o in kept}:
                    newest = (
                        select(_DELIVERIES.c.id)
                        .where(_DELIVERIES.c.channel_id == channel_id)
                        .order_by(_DELIVERIES.c.id.desc())
                        .offset(self.keep)
                        .limit(1)
                        .scalar_subquery()
                    )
                    await s.execute(
                        delete(_DELIVERIES).where(
                            and_(_DELIVERIES.c.channel_id == channel_id, _DELIVERIES.c.id <= newest)
                        )
                    )
            await s.commit()

    async def _count(self, s: Any, kept: list[Outcome]) -> None:
        c = _CHANNELS.c
        sent = [{"cid": o.channel.id, "at": o.at, "n": o.attempts} for o in kept if o.status == "sent"]
        failed = [
            {"cid": o.channel.id, "at": o.at, "n": o.attempts, "err": o.error}
            for o in kept
            if o.status == "failed"
        ]
        dropped = [{"cid": o.channel.id} for o in kept if o.status == "dropped"]
        where = c.id == bindparam("cid")
        if sent:
            await s.execute(
                update(_CHANNELS)
                .where(where)
                .values(
                    delivered=c.delivered + 1, last_success_at=bindparam("at"), last_attempts=bindparam("n")
                ),
                sent,
            )
        if failed:
            await s.execute(
                update(_CHANNELS)
                .where(where)
                .values(
                    failed=c.failed + 1,
                    last_failure_at=bindparam("at"),
                    last_attempts=bindparam("n"),
                    last_error=bindparam("err"),
                ),
                failed,
            )
        if dropped:
            await s.execute(update(_CHANNELS).where(where).values(dropped=c.dropped + 1), dropped)
