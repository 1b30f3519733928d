"""Existing installations keep their data: a database filled under an older schema is upgraded to the
newest and nothing in it is lost or changed.

Every later migration keeps this test: add the rows its tables gain to ``SEED`` (or a seed of its own
revision) so that each upgrade path is tried with data in it, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy.engine import Connection

from tests.postgres import fresh_database
from tradewind.storage.db import make_engine
from tradewind.storage.migrate import alembic_config, upgrade, upgrade_async

T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)

# Rows in every table as revision 0001 had them; ids with gaps, as deletions leave them.
SEED: dict[str, list[dict[str, Any]]] = {
    "users": [
        {
            "id": 1,
            "email": "alice@example.com",
            "password_hash": "h1",
            "is_admin": False,
            "killed": False,
            "created_at": T0,
        },
        {
            "id": 3,
            "email": "bob@example.com",
            "password_hash": "h3",
            "is_admin": True,
            "killed": True,
            "created_at": T0,
        },
    ],
    "sessions": [
        {
            "id": 5,
            "user_id": 1,
            "token_hash": "a" * 64,
            "csrf_token": "c" * 64,
            "created_at": T0,
            "expires_at": T0 + dt.timedelta(days=14),
            "revoked": False,
        },
    ],
    "markets": [
        {"id": 1, "exchange": "sim", "symbol": "BTC/USD", "active": True, "last_price": 101.5},
        {"id": 2, "exchange": "sim", "symbol": "ETH/USD", "active": False, "last_price": None},
    ],
    "candles": [
        {
            "market_id": 1,
            "tf": "1m",
            "time": 60_000 * i,
            "open": 1.0 + i,
            "high": 2.0 + i,
            "low": 0.5,
            "close": 1.5,
            "volume": 10.0,
        }
        for i in range(5)
    ],
    "strategies": [
        {
            "id": 2,
            "owner_id": 1,
            "name": "cross",
            "description": "sma",
            "latest_version": 2,
            "created_at": T0,
            "updated_at": T0,
        },
    ],
    "strategy_versions": [
        {
            "id": 1,
            "strategy_id": 2,
            "version": 1,
            "code": 'function decide(c) return "long" end',
            "params_schema": {},
            "created_at": T0,
        },
        {
            "id": 2,
            "strategy_id": 2,
            "version": 2,
            "code": 'function decide(c) return "short" end',
            "params_schema": {"fast": 10},
            "created_at": T0,
        },
    ],
    "traders": [
        {
            "id": 4,
            "owner_id": 1,
            "name": "paper",
            "exchange": "sim",
            "paper": True,
            "sandbox": False,
            "api_key_enc": None,
            "api_secret_enc": None,
            "key_last4": None,
            "max_order_notional": "50.25",
            "max_position": None,
            "daily_loss_limit": "10",
            "created_at": T0,
        },
        {
            "id": 7,
            "owner_id": 3,
            "name": "live",
            "exchange": "bitfinex",
            "paper": False,
            "sandbox": True,
            "api_key_enc": "gAAAAkey",
            "api_secret_enc": "gAAAAsecret",
            "key_last4": "abcd",
            "max_order_notional": None,
            "max_position": "1000",
            "daily_loss_limit": None,
            "created_at": T0,
        },
    ],
    "paper_balances": [
        {"trader_id": 4, "asset": "USD", "amount": "9500.12345678"},
        {"trader_id": 4, "asset": "BTC", "amount": "0.00500000"},
    ],
    "assignments": [
        {
            "id": 9,
            "owner_id": 1,
            "strategy_id": 2,
            "market_id": 1,
            "timeframe": "1m",
            "trader_id": 4,
            "allocation": "500",
            "params": {"fast": 5},
            "lookback": 300,
            "enabled": True,
            "paused_reason": None,
            "consecutive_failures": 0,
            "position_qty": "0.005",
            "entry_cost": "499.5",
            "realized_pnl": "-1.25",
            "last_position": "long",
            "created_at": T0,
            "updated_at": T0,
        },
    ],
    "evaluations": [
        {
            "id": 11,
            "assignment_id": 9,
            "candle_time": 60_000,
            "status": "ok",
            "position": "long",
            "size": 1.0,
            "note": "n",
            "error": None,
            "logs": ["hello"],
            "duration_ms": 0.1,
            "latency_ms": 12.0,
            "created_at": T0,
        },
    ],
    "orders": [
        {
            "id": 13,
            "owner_id": 1,
            "assignment_id": 9,
            "trader_id": 4,
            "client_order_id": "tw-9-60000-long",
            "exchange": "sim",
            "symbol": "BTC/USD",
            "side": "buy",
            "amount": "0.005",
            "price": "99.9",
            "filled": "0.005",
            "fee": "0.4995",
            "status": "filled",
            "reason": None,
            "exchange_order_id": "p1",
            "candle_time": 60_000,
            "latency_ms": 20.0,
            "pnl": None,
            "created_at": T0,
            "updated_at": T0,
        },
    ],
    "backtests": [
        {
            "id": 6,
            "owner_id": 1,
            "strategy_id": 2,
            "version": 1,
            "market_id": 1,
            "timeframe": "1m",
            "params": {},
            "config": {"cash": 1000},
            "status": "done",
            "result": {"return": 0.1},
            "error": None,
            "created_at": T0,
            "finished_at": T0,
        },
    ],
    "audit_log": [
        {
            "id": 21,
            "user_id": 1,
            "action": "login",
            "detail": {"ok": True},
            "address": "127.0.0.1",
            "created_at": T0,
        },
    ],
    "paper_fills": [
        {
            "id": 8,
            "trader_id": 4,
            "client_order_id": "tw-9-60000-long",
            "symbol": "BTC/USD",
            "side": "buy",
            "amount": "0.005",
            "price": "99.9",
            "fee": "0.4995",
            "status": "filled",
            "reason": None,
            "time": 60_000,
        },
    ],
}
ORDER = list(SEED)  # parents before children


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    async with fresh_database("tw_migrate") as url:
        yield url


def _tables(conn: Connection) -> dict[str, Table]:
    meta = MetaData()
    with warnings.catch_warnings():  # 0011's expression indexes: SQLAlchemy does not reflect them on SQLite
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        meta.reflect(conn)
    return dict(meta.tables)


def _seed(conn: Connection) -> None:
    tables = _tables(conn)
    for name in ORDER:
        conn.execute(tables[name].insert(), SEED[name])
    if conn.dialect.name == "postgresql":  # rows came with their ids: move the sequences past them
        for name, rows in SEED.items():
            if "id" in rows[0]:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), {max(r['id'] for r in rows)})"
                    )
                )


def _dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = _tables(conn)
    out = {}
    for name in ORDER:
        t = tables[name]
        key = [t.c.id] if "id" in t.c else list(t.primary_key.columns)
        out[name] = [tuple(r) for r in conn.execute(select(t).order_by(*key)).all()]
    return out


async def test_upgrade_from_0001_keeps_every_row_and_ids_are_never_reused(db_url: str) -> None:
    await asyncio.to_thread(upgrade, db_url, "0001")
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_seed)
        async with engine.connect() as conn:
            before = await conn.run_sync(_dump)
        await engine.dispose()

        await upgrade_async(db_url)  # what `tradewind db upgrade` and `tradewind up` do

        async with engine.connect() as conn:
            after = await conn.run_sync(_dump)
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version != "0001"
        for name in ORDER:
            # later revisions add columns at the end: the columns the rows had keep their values
            kept = [r[: len(b)] for r, b in zip(after[name], before[name], strict=False)]
            assert len(after[name]) == len(before[name]) and kept == before[name], (
                f"{name} changed in the upgrade"
            )
        async with (
            engine.connect() as conn
        ):  # 0003: the orders there were are market orders, no exit reason yet
            types = (await conn.execute(text("SELECT DISTINCT type FROM orders"))).scalars().all()
        assert types == ["market"]
        # 0008: assignments follow the latest version; no declaration, size note or unsaved code yet;
        # 0010: no evaluation plotted anything
        async with engine.connect() as conn:
            added = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM assignments WHERE pinned_version IS NOT NULL)"
                        " + (SELECT count(*) FROM strategy_versions WHERE declared IS NOT NULL)"
                        " + (SELECT count(*) FROM orders WHERE size_note IS NOT NULL)"
                        " + (SELECT count(*) FROM backtests WHERE code IS NOT NULL)"
                        " + (SELECT count(*) FROM evaluations WHERE plot IS NOT NULL)"
                    )
                )
            ).scalar_one()
        assert added == 0

        async with engine.begin() as conn:
            # The newest account goes; the next one must not get its id (SQLite used to hand it out again).
            await conn.execute(text("DELETE FROM traders WHERE id = 7"))
            await conn.execute(
                text(
                    "INSERT INTO traders (owner_id, name, exchange, paper, sandbox, created_at) "
                    "VALUES (1, 'new', 'sim', :t, :f, :now)"
                ),
                {"t": True, "f": False, "now": T0},
            )
            new_id = (await conn.execute(text("SELECT max(id) FROM traders"))).scalar_one()
        assert new_id > 7
        # Foreign keys still hold after the rebuild: a user's rows go with them.
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE id = 1"))
            left = (await conn.execute(text("SELECT count(*) FROM orders"))).scalar_one()
            sessions = (await conn.execute(text("SELECT count(*) FROM sessions"))).scalar_one()
        assert (left, sessions) == (0, 0)
    finally:
        await engine.dispose()


async def test_0007_keeps_the_studies_and_walkforwards_go_with_their_owner(db_url: str) -> None:
    """0007: a study of before has no best run kept (``result`` null); walk-forward runs are kept per user."""
    await asyncio.to_thread(upgrade, db_url, "0006")
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            tables = await conn.run_sync(_tables)
            for name in ("users", "markets", "strategies"):
                await conn.execute(tables[name].insert(), SEED[name])
            await conn.execute(
                tables["studies"].insert(),
                [
                    {
                        "id": 3,
                        "owner_id": 1,
                        "strategy_id": 2,
                        "version": 2,
                        "market_id": 1,
                        "timeframe": "1m",
                        "config": {"from": None},
                        "trials": 10,
                        "status": "done",
                        "optuna_name": "web-x",
                        "summary": {"counts": {"complete": 10}},
                        "created_at": T0,
                    }
                ],
            )
        await engine.dispose()
        await asyncio.to_thread(upgrade, db_url, "0007")
        async with engine.begin() as conn:
            row = (await conn.execute(text("SELECT optuna_name, trials, result FROM studies"))).one()
            assert tuple(row) == ("web-x", 10, None)
            tables = await conn.run_sync(_tables)
            await conn.execute(
                tables["walkforwards"].insert(),
                [
                    {
                        "owner_id": 1,
                        "strategy_id": 2,
                        "version": 2,
                        "market_id": 1,
                        "timeframe": "1m",
                        "config": {"mode": "split", "split": 0.7},
                        "status": "done",
                        "result": {"wfe": 0.8},
                        "created_at": T0,
                    }
                ],
            )
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE id = 1"))
            left = (await conn.execute(text("SELECT count(*) FROM walkforwards"))).scalar_one()
        assert left == 0
    finally:
        await engine.dispose()


def _keys(conn: Connection) -> tuple[list[list[str]], list[str]]:
    """evaluations' unique keys (their columns, in order) and the names of the indexes of evaluations and
    orders (expression indexes too, which SQLAlchemy does not reflect on SQLite)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        uniques = [u["column_names"] for u in inspect(conn).get_unique_constraints("evaluations")]
    names = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('orders', 'evaluations')"
        if conn.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename IN ('orders', 'evaluations')"
    )
    return uniques, sorted(n for n in conn.execute(text(names)).scalars() if n.startswith("ix_"))


async def test_0011_keys_lead_with_the_candle_and_downgrade_restores_them(db_url: str) -> None:
    """0011 (issue 17): evaluations are unique on (candle_time, assignment_id), orders lose their index led
    by the assignment; every row stays, uniqueness still holds; and 0010's keys come back on downgrade."""
    await asyncio.to_thread(upgrade, db_url, "0010")
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_seed)
        async with engine.connect() as conn:
            before = await conn.run_sync(_dump)
            old_keys = await conn.run_sync(_keys)
        await engine.dispose()
        assert old_keys[0] == [["assignment_id", "candle_time"]]
        assert "ix_orders_assignment" in old_keys[1] and "ix_orders_block" not in old_keys[1]

        await asyncio.to_thread(upgrade, db_url, "0011")
        async with engine.connect() as conn:
            assert await conn.run_sync(_dump) == before
            uniques, indexes = await conn.run_sync(_keys)
        await engine.dispose()
        assert uniques == [["candle_time", "assignment_id"]]
        assert set(indexes) - set(old_keys[1]) == {"ix_orders_block", "ix_evaluations_hour"}
        assert set(old_keys[1]) - set(indexes) == {"ix_orders_assignment"}
        row = {**SEED["evaluations"][0], "logs": "[]"}
        row.pop("id")
        cols = ", ".join(row)
        insert = text(f"INSERT INTO evaluations ({cols}) VALUES ({', '.join(':' + c for c in row)})")
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            async with engine.begin() as conn:  # the same assignment and candle again
                await conn.execute(insert, row)
        async with engine.begin() as conn:  # the next candle: a new id, past every id there was
            await conn.execute(insert, {**row, "candle_time": 120_000})
            ids = (await conn.execute(text("SELECT id FROM evaluations ORDER BY id"))).scalars().all()
        assert ids[0] == 11 and ids[1] > 11
        await engine.dispose()

        await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0010")
        async with engine.connect() as conn:
            assert await conn.run_sync(_keys) == old_keys
            count = (await conn.execute(text("SELECT count(*) FROM evaluations"))).scalar_one()
        assert count == 2
    finally:
        await engine.dispose()
