"""The daily summary, on a clock the test sets: the day's P&L, fills and paused assignments, once a day."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from tradewind.alerts.service import AlertService
from tradewind.bus.connection import connect
from tradewind.storage.models import AlertChannel, Order

from .conftest import assignment
from .receivers import eventually

DAY = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(DAY.replace(hour=10))


@pytest.fixture
async def clocked(settings, sf, nats_url, box, clock) -> AsyncIterator[AlertService]:  # type: ignore[no-untyped-def]
    conn = await connect(nats_url, "alerts")
    service = AlertService(settings, conn, sf, box, clock=clock, summary_every_s=0.1)
    await service.start()
    yield service
    await service.stop()
    await conn.drain()


async def order(sf, a: dict, at: dt.datetime, side: str, pnl: str | None) -> None:  # type: ignore[no-untyped-def,type-arg]
    async with sf() as s:
        s.add(
            Order(
                owner_id=a["owner_id"],
                assignment_id=a["id"],
                trader_id=a["trader"]["id"],
                client_order_id=f"{a['id']}-{at.timestamp()}-{side}",
                exchange="sim",
                symbol="BTC/USD",
                side=side,
                amount=Decimal("0.01"),
                filled=Decimal("0.01"),
                price=Decimal("50000"),
                status="filled",
                pnl=Decimal(pnl) if pnl else None,
                created_at=at,
                updated_at=at,
            )
        )
        await s.commit()


async def test_the_daily_summary_goes_once_at_the_hour_with_the_days_pnl_fills_and_pauses(  # type: ignore[no-untyped-def]
    api, clocked, webhook, sf, clock
) -> None:
    c = await api.user("sue@example.com")
    ch = (
        await c.post(
            "/api/alerts/channels", json={"kind": "webhook", "url": webhook.url(), "events": ["summary"]}
        )
    ).json()
    a = await assignment(c, name="Breakout")
    a["owner_id"] = (await c.get("/api/auth/me")).json()["id"]

    async def handled(day: str) -> bool:
        async with sf() as s:
            return (
                await s.execute(select(AlertChannel.summary_day).where(AlertChannel.id == ch["id"]))
            ).scalar_one() == day

    # Added in the middle of the 4th: its first summary is the one due at the next 00:00, not today's.
    await eventually(lambda: handled("2026-12-04"), what="the channel seen")
    await order(sf, a, DAY.replace(hour=9), "buy", None)
    await order(sf, a, DAY.replace(hour=15), "sell", "-5.25")
    await order(sf, a, DAY.replace(hour=23, minute=59), "sell", "2.5")
    await order(sf, a, DAY - dt.timedelta(minutes=1), "sell", "100")  # the 3rd: another day
    await c.post(f"/api/assignments/{a['id']}/pause")
    clock.now = DAY.replace(hour=23, minute=59, second=59)
    await asyncio.sleep(0.5)
    assert webhook.events("summary") == []

    clock.now = DAY + dt.timedelta(days=1, seconds=5)
    await eventually(lambda: webhook.events("summary"), what="the summary")
    (got,) = webhook.events("summary")
    assert got["title"] == "Daily summary for 2026-12-04"
    assert (
        got["data"]["fills"] == 3
        and got["data"]["pnl"] == {"USD": "-2.75"}
        and got["data"]["paused_count"] == 1
    )
    assert "Realized P&L: -2.75 USD" in got["text"] and "Fills: 3" in got["text"]
    assert f"assignment #{a['id']} (Breakout on sim BTC/USD 1m): paused by you" in got["text"]

    clock.now += dt.timedelta(hours=5)  # later the same day, and after a restart: not again
    await asyncio.sleep(0.5)
    assert len(webhook.events("summary")) == 1
    clock.now = DAY + dt.timedelta(days=2, minutes=1)
    await eventually(lambda: len(webhook.events("summary")) == 2, what="the next day's summary")
    assert webhook.events("summary")[1]["data"]["fills"] == 0
