"""Alembic environment: runs migrations through the async engine on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from tradewind.storage.db import make_engine
from tradewind.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # tradewind.storage.migrate sets it
        raise RuntimeError("alembic: no sqlalchemy.url; run the migrations through tradewind.storage.migrate")
    engine = make_engine(url)
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A migration that rebuilds a table (SQLite's only way to change most of a table) drops the old
            # one: with foreign keys on, that would delete every row referring to it. Off while migrating
            # (the pragma only takes effect outside a transaction, hence the commit), checked after.
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()
        await conn.run_sync(_run)
        await conn.commit()
        if sqlite:
            broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            await conn.commit()
            if broken:
                raise RuntimeError(f"the migration left rows whose references are broken: {broken[:5]}")
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
