"""PostgreSQL for the tests that run on it where it is up (CI has it on 127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


@contextlib.asynccontextmanager
async def fresh_database(prefix: str) -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped afterwards; the test is skipped where none runs."""
    if not postgres_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG}/{name}"
    finally:
        async with admin.connect() as c:
            await c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()
