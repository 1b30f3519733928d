"""storage.partitions on PostgreSQL: the months ahead are created as time passes, rows land in their
month (or the default partition), months of ticks past retention are dropped whole; on SQLite nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from tests.postgres import fresh_database
from tradewind.storage import partitions
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import Market, TickRow
from tradewind.storage.retention import Policy, prune


@pytest.fixture
async def sf() -> AsyncIterator:  # type: ignore[type-arg]
    async with fresh_database("tw_parts") as url:
        await upgrade_async(url)
        engine = make_engine(url)
        yield make_session_factory(engine)
        await engine.dispose()


def at(year: int, month: int, day: int = 1) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


async def test_months_ahead_are_created_and_rows_land_in_their_month(sf) -> None:  # type: ignore[no-untyped-def]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=200)
    async with sf() as s:
        conn = await s.connection()
        made = await partitions.ensure(conn, later)
        assert partitions.name_of("evaluations", partitions.month_start(later)) in made
        assert partitions.name_of("ticks", partitions.month_start(later)) in made
        assert await partitions.ensure(conn, later) == []  # once
        market = Market(exchange="sim", symbol="BTC/USD")
        s.add(market)
        await s.flush()
        s.add(TickRow(market_id=market.id, time=partitions.ms(later), bid=1.0, ask=1.1))
        s.add(TickRow(market_id=market.id, time=partitions.ms(at(2001, 1, 5)), bid=1.0, ask=1.1))  # no month
        await s.commit()
        where = dict(
            (await s.execute(text("SELECT time, tableoid::regclass::text FROM ticks"))).tuples().all()
        )
    assert where[partitions.ms(later)] == partitions.name_of("ticks", partitions.month_start(later))
    assert where[partitions.ms(at(2001, 1, 5))] == "ticks_default"


async def test_a_month_of_ticks_past_retention_is_dropped_whole(sf) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    async with sf() as s:
        market = Market(exchange="sim", symbol="BTC/USD")
        s.add(market)
        await s.flush()
        s.add_all(
            TickRow(market_id=market.id, time=partitions.ms(now) - i * 3_600_000, bid=1.0, ask=1.1)
            for i in range(3)
        )
        await s.commit()
    months_on = partitions.next_month(partitions.next_month(now)) + dt.timedelta(days=1)
    done = await prune(sf, Policy(evaluations_days=0, ticks_days=30), now=months_on)
    assert partitions.name_of("ticks", partitions.month_start(now)) in done.dropped
    async with sf() as s:
        conn = await s.connection()
        left = await partitions.partitions(conn, "ticks")
        count = (await s.execute(text("SELECT count(*) FROM ticks"))).scalar_one()
    assert partitions.name_of("ticks", partitions.month_start(now)) not in left
    assert partitions.name_of("ticks", partitions.month_start(months_on)) in left  # made ahead meanwhile
    assert count == 0


async def test_a_month_whose_rows_went_to_the_default_partition_is_logged_not_raised(sf, caplog) -> None:  # type: ignore[no-untyped-def]
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    async with sf() as s:
        market = Market(exchange="sim", symbol="BTC/USD")
        s.add(market)
        await s.flush()
        s.add(TickRow(market_id=market.id, time=partitions.ms(far), bid=1.0, ask=1.1))  # into the default one
        await s.commit()
    async with sf() as s:
        made = await partitions.ensure(await s.connection(), far)
        await s.commit()
    assert partitions.name_of("ticks", partitions.month_start(far)) not in made
    assert partitions.name_of("evaluations", partitions.month_start(far)) in made  # the others are made
    assert "not created" in caplog.text
