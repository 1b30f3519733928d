"""storage.db.insert_rows: the driver-level batch insert stores what SQLAlchemy's own insert stores."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tradewind.storage.db import insert_rows
from tradewind.storage.models import Order, Trader, User


def intents(tag: str, trader_id: int, owner_id: int, n: int = 3) -> list[dict]:  # type: ignore[type-arg]
    now = dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=dt.UTC)
    shared_zero = Decimal(0)
    return [
        {
            "owner_id": owner_id,
            "assignment_id": None,
            "trader_id": trader_id,
            "client_order_id": f"{tag}-{i}",
            "exchange": "sim",
            "symbol": "BTC/USD",
            "side": "buy" if i % 2 else "sell",
            "amount": Decimal("0.00000001") * (10**i),
            "status": "pending",
            "reason": None if i else "why",
            "candle_time": 1_700_000_000_000 + i,
            "filled": shared_zero,
            "fee": shared_zero,
            "created_at": now,
            "updated_at": now + dt.timedelta(seconds=i),
        }
        for i in range(n)
    ]


async def test_rows_read_back_as_sqlalchemy_stored_them(sf) -> None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        user = User(email="rows@example.com", password_hash="!")
        s.add(user)
        await s.flush()
        trader = Trader(owner_id=user.id, name="paper", exchange="sim", paper=True)
        s.add(trader)
        await s.commit()
    async with sf() as s:
        await s.execute(Order.__table__.insert(), intents("orm", trader.id, user.id))
        await insert_rows(s, Order.__table__, intents("fast", trader.id, user.id))
        await s.commit()
    columns = [c for c in Order.__table__.c if c.name not in ("id", "client_order_id")]
    async with sf() as s:
        rows = {r.client_order_id: r for r in (await s.execute(select(Order))).scalars()}
    assert len(rows) == 6
    for i in range(3):
        orm, fast = rows[f"orm-{i}"], rows[f"fast-{i}"]
        assert [getattr(fast, c.key) for c in columns] == [getattr(orm, c.key) for c in columns]
    assert rows["fast-2"].amount == Decimal("0.000001") and rows["fast-0"].reason == "why"
    assert rows["fast-1"].updated_at == dt.datetime(2026, 11, 25, 10, 0, 1, 123456, tzinfo=dt.UTC)
    # ordering and range queries see the same text/timestamps on both databases
    async with sf() as s:
        later = select(Order.client_order_id).where(
            Order.updated_at > dt.datetime(2026, 11, 25, 10, 0, 0, 500000, tzinfo=dt.UTC)
        )
        assert sorted((await s.execute(later)).scalars()) == ["fast-1", "fast-2", "orm-1", "orm-2"]


async def test_a_duplicate_key_raises_integrity_error_and_stores_none_of_the_batch(sf) -> None:  # type: ignore[no-untyped-def]
    async with sf() as s:
        user = User(email="dup@example.com", password_hash="!")
        s.add(user)
        await s.flush()
        trader = Trader(owner_id=user.id, name="paper", exchange="sim", paper=True)
        s.add(trader)
        await s.commit()
    async with sf() as s:
        await insert_rows(s, Order.__table__, intents("a", trader.id, user.id, 1))
        await s.commit()
    async with sf() as s:
        with pytest.raises(IntegrityError):
            await insert_rows(s, Order.__table__, intents("a", trader.id, user.id, 3)[::-1])
        await s.rollback()
    async with sf() as s:
        assert list((await s.execute(select(Order.client_order_id))).scalars()) == ["a-0"]
