"""storage.db.insert_rows: the driver-level batch insert stores what SQLAlchemy's own insert stores."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tradewind.storage.db import insert_rows
from tradewind.storage.models import Assignment, Evaluation, Market, Order, Strategy, Trader, User


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


async def paper_account(sf, email: str) -> tuple[User, Trader]:  # type: ignore[no-untyped-def]
    """A user with a paper account, stored."""
    async with sf() as s:
        user = User(email=email, password_hash="!")
        s.add(user)
        await s.flush()
        trader = Trader(owner_id=user.id, name="paper", exchange="sim", paper=True)
        s.add(trader)
        await s.commit()
    return user, trader


async def test_rows_read_back_as_sqlalchemy_stored_them(sf) -> None:  # type: ignore[no-untyped-def]
    user, trader = await paper_account(sf, "rows@example.com")
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
    user, trader = await paper_account(sf, "dup@example.com")
    async with sf() as s:
        await insert_rows(s, Order.__table__, intents("a", trader.id, user.id, 1))
        await s.commit()
    async with sf() as s:
        with pytest.raises(IntegrityError):
            await insert_rows(s, Order.__table__, intents("a", trader.id, user.id, 3)[::-1])
        await s.rollback()
    async with sf() as s:
        assert list((await s.execute(select(Order.client_order_id))).scalars()) == ["a-0"]


async def test_a_batch_wider_than_one_statement_is_stored_whole_or_not_at_all(sf, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # SQLite takes the rows as multi-row statements of at most SQLITE_ROWS_VARS parameters: made small
    # here, 7 intents need four statements; a duplicate in the last one stores none of the batch.
    import tradewind.storage.db as db

    monkeypatch.setattr(db, "SQLITE_ROWS_VARS", 2 * len(intents("x", 1, 1, 1)[0]) + 5)
    user, trader = await paper_account(sf, "wide@example.com")
    async with sf() as s:
        await insert_rows(s, Order.__table__, intents("w", trader.id, user.id, 7))
        await s.commit()
    async with sf() as s:
        rows = {r.client_order_id: r for r in (await s.execute(select(Order))).scalars()}
    assert sorted(rows) == [f"w-{i}" for i in range(7)]
    assert [rows[f"w-{i}"].amount for i in range(7)] == [Decimal("0.00000001") * (10**i) for i in range(7)]
    assert rows["w-6"].updated_at == dt.datetime(2026, 11, 25, 10, 0, 6, 123456, tzinfo=dt.UTC)
    async with sf() as s:
        again = [*intents("v", trader.id, user.id, 6), intents("w", trader.id, user.id, 1)[0]]
        with pytest.raises(IntegrityError):
            await insert_rows(s, Order.__table__, again)
        await s.rollback()
    async with sf() as s:
        assert len((await s.execute(select(Order.id))).all()) == 7


async def test_on_conflict_do_nothing_skips_the_rows_stored_before_and_stores_the_rest(
    sf, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import tradewind.storage.db as db

    async with sf() as s:
        user = User(email="evals@example.com", password_hash="!")
        s.add(user)
        await s.flush()
        strategy = Strategy(owner_id=user.id, name="s", latest_version=1)
        market = Market(exchange="sim", symbol="BTC/USD")
        s.add_all([strategy, market])
        await s.flush()
        a = Assignment(
            owner_id=user.id,
            strategy_id=strategy.id,
            market_id=market.id,
            timeframe="1m",
            allocation=Decimal("100"),
            params={},
        )
        s.add(a)
        await s.commit()
    now = dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC)

    def rows(times: range, note: str) -> list[dict]:  # type: ignore[type-arg]
        return [
            {
                "assignment_id": a.id,
                "candle_time": t,
                "status": "ok",
                "position": "long",
                "size": 1.0,
                "note": note,
                "error": None,
                "logs": [f"log {t}"],
                "duration_ms": 0.5,
                "latency_ms": None,
                "created_at": now,
                "plot": {"x": 1.5} if t % 2 else None,
            }
            for t in times
        ]

    monkeypatch.setattr(db, "SQLITE_ROWS_VARS", 3 * len(rows(range(1), "")[0]))  # 3 rows a statement
    key = ("candle_time", "assignment_id")
    async with sf() as s:
        await insert_rows(s, Evaluation.__table__, rows(range(0, 4), "first"), on_conflict_do_nothing=key)
        await s.commit()
    async with sf() as s:
        await insert_rows(s, Evaluation.__table__, rows(range(2, 9), "second"), on_conflict_do_nothing=key)
        await s.commit()
    async with sf() as s:
        got = {e.candle_time: e for e in (await s.execute(select(Evaluation))).scalars()}
    assert sorted(got) == list(range(9))
    assert [got[t].note for t in range(9)] == ["first"] * 4 + ["second"] * 5
    assert got[5].logs == ["log 5"] and got[5].plot == {"x": 1.5} and got[4].plot is None


async def test_execute_rows_stores_what_sqlalchemys_executemany_stores(sf) -> None:  # type: ignore[no-untyped-def]
    """storage.db.execute_rows (the order answers' and the positions' updates in core) against
    ``session.execute(stmt, rows)``: the same columns after the same update of twin rows, the statement's own
    constants (``status == "pending"``) kept, a row it does not match left alone."""
    from sqlalchemy import bindparam, func, or_, update

    from tradewind.storage.db import execute_rows

    user, trader = await paper_account(sf, "update@example.com")
    async with sf() as s:
        await insert_rows(
            s, Order.__table__, intents("orm", trader.id, user.id) + intents("fast", trader.id, user.id)
        )
        await s.commit()
    o = Order.__table__.c
    stmt = (
        update(Order.__table__)
        .where(o.client_order_id == bindparam("cid"), or_(o.status == "pending", o.status == "open"))
        .values(
            status=bindparam("new_status"),
            filled=bindparam("filled"),
            price=bindparam("price"),
            reason=func.coalesce(bindparam("reason"), o.reason),
            updated_at=bindparam("at"),
        )
    )
    at = dt.datetime(2026, 11, 25, 11, 0, 0, 654321, tzinfo=dt.UTC)

    def changes(tag: str) -> list[dict]:  # type: ignore[type-arg]
        return [
            {"cid": f"{tag}-{i}", "new_status": "filled", "filled": Decimal("0.12345678") * (i + 1),
             "price": None if i == 1 else Decimal("65000.5"), "reason": None if i else "kept?", "at": at}
            for i in range(3)
        ]  # fmt: skip

    async with sf() as s:
        await s.execute(stmt, changes("orm"))
        await execute_rows(s, stmt, changes("fast"))
        await s.commit()
    async with sf() as s:
        # a second pass finds nothing pending or open: the statement's constants were bound
        await execute_rows(s, stmt, [{**c, "new_status": "canceled"} for c in changes("fast")])
        await s.commit()
    columns = [c for c in Order.__table__.c if c.name not in ("id", "client_order_id")]
    async with sf() as s:
        rows = {r.client_order_id: r for r in (await s.execute(select(Order))).scalars()}
    for i in range(3):
        orm, fast = rows[f"orm-{i}"], rows[f"fast-{i}"]
        assert [getattr(fast, c.key) for c in columns] == [getattr(orm, c.key) for c in columns]
        assert fast.status == "filled" and fast.updated_at == at
    assert rows["fast-0"].reason == "kept?" and rows["fast-1"].reason is None and rows["fast-1"].price is None
