"""The daily summary: once a day at ``alerts_summary_hour`` UTC, each channel that takes it gets the 24 hours
that just ended — realized P&L by quote currency, fills, and the assignments paused now.

The time comes from an injected clock (tests set it); each channel's row remembers the day it was handled
(``summary_day``), so a restart or a second look within the day sends nothing twice, and a platform that
was down at the hour sends that day's summary when it is back.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tradewind.storage.models import Assignment, Market, Order, Strategy

DAY = dt.timedelta(days=1)
MAX_PAUSED = 20


def due(now: dt.datetime, hour: int) -> tuple[str, dt.datetime, dt.datetime]:
    """The newest summary due at ``now``: its key (the date it is due, ISO) and the period it covers."""
    at = now.astimezone(dt.UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    if now < at:
        at -= DAY
    return at.date().isoformat(), at - DAY, at


def label(start: dt.datetime, end: dt.datetime) -> str:
    if start.hour == 0:
        return start.date().isoformat()
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


async def summarize(s: AsyncSession, owner_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """One user's day: what the alert's data carries (and events.render turns into its text)."""
    in_day = (Order.owner_id == owner_id, Order.updated_at >= start, Order.updated_at < end)
    fills = (
        await s.execute(select(func.count()).select_from(Order).where(*in_day, Order.status == "filled"))
    ).scalar_one()
    pnl: dict[str, Decimal] = {}
    for symbol, value in (
        await s.execute(select(Order.symbol, Order.pnl).where(*in_day, Order.pnl.is_not(None)))
    ).all():
        assert value is not None  # the query keeps only the orders with a P&L
        quote = symbol.rpartition("/")[2] or symbol
        pnl[quote] = pnl.get(quote, Decimal(0)) + Decimal(value)
    paused_q = (
        Assignment.owner_id == owner_id,
        Assignment.enabled.is_(False),
        Assignment.paused_reason.is_not(None),
    )
    count = (await s.execute(select(func.count()).select_from(Assignment).where(*paused_q))).scalar_one()
    rows = (
        await s.execute(
            select(
                Assignment.id,
                Assignment.paused_reason,
                Strategy.name,
                Market.exchange,
                Market.symbol,
                Assignment.timeframe,
            )
            .join(Strategy, Strategy.id == Assignment.strategy_id)
            .join(Market, Market.id == Assignment.market_id)
            .where(*paused_q)
            .order_by(Assignment.id)
            .limit(MAX_PAUSED)
        )
    ).all()
    return {
        "day": label(start, end),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "fills": fills,
        "pnl": {k: format(v, "f") for k, v in sorted(pnl.items())},
        "paused_count": count,
        "paused": [
            {
                "assignment_id": r[0],
                "reason": r[1],
                "strategy": r[2],
                "exchange": r[3],
                "symbol": r[4],
                "timeframe": r[5],
            }
            for r in rows
        ],
    }
