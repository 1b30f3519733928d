"""A SQLite database at the newest schema with one user and their paper account (id 1), for the paper
engine and the sim adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.storage.models import Trader, User


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    await upgrade_async(url)
    return url


@pytest.fixture
async def sf(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    async with factory() as s:
        s.add(User(id=1, email="u@example.com", password_hash="x"))
        await s.flush()
        s.add(Trader(id=1, owner_id=1, name="p", exchange="sim", paper=True))
        await s.commit()
    yield factory
    await engine.dispose()
