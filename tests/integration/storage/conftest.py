"""Fixtures of the storage tests: a migrated database, SQLite and (where it runs) PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.postgres import fresh_database
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async


@pytest.fixture(params=["sqlite", "postgresql"])
async def sf(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator:  # type: ignore[type-arg]
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
        await upgrade_async(url)
        engine = make_engine(url)
        yield make_session_factory(engine)
        await engine.dispose()
        return
    async with fresh_database("tw_storage") as url:
        await upgrade_async(url)
        engine = make_engine(url)
        yield make_session_factory(engine)
        await engine.dispose()
