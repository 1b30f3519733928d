"""One NATS server, one migrated template database with three logged-in users, and an event loop in a
thread of its own, shared by every example of the money state machine (each example gets a fresh copy
of the database and fresh components; see ``Platform`` in test_money_invariants.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.web.app import create_app

T = TypeVar("T")
KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="
PASSWORD = "correct horse battery staple"
USERS = ("alice", "bob", "mallory")


class LoopThread:
    """An event loop running in a thread: the state machine's steps are plain calls that run coroutines
    on it, so one NATS server (a child process of this loop) serves every example."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="money-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # not left running into the next step
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class MoneyEnv:
    loop: LoopThread
    root: Path
    nats_url: str
    template: Path  # a migrated SQLite database with the sim market and the USERS in it
    users: dict[str, tuple[int, str]]  # name -> (user id, bearer token of a live session)
    market_id: int


async def _template(path: Path) -> tuple[dict[str, tuple[int, str]], int]:
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    engine = make_engine(url)
    try:
        sf = make_session_factory(engine)
        async with sf() as s:
            market = await store.get_or_create_market(s, "sim", "BTC/USD")
            await s.commit()
            market_id = market.id
        # Registered and logged in once: argon2 costs ~0.1 s a hash, and the sessions live in the copies.
        app = create_app(Settings(data_dir=path.parent, database_url=url), sf, None, SecretBox([KEY]))
        users = {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            for name in USERS:
                email = f"{name}@example.com"
                r = await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
                assert r.status_code == 201, r.text
                r = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
                assert r.status_code == 200, r.text
                users[name] = (r.json()["user"]["id"], r.json()["token"])
                c.cookies.clear()
    finally:
        await engine.dispose()  # the last connection checkpoints the WAL: the file alone is the database
    return users, market_id


@pytest.fixture(scope="module")
def money_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoneyEnv]:
    root = tmp_path_factory.mktemp("money")
    loop = LoopThread()
    nats = EmbeddedNats(root / "nats")
    try:
        url = loop.run(nats.start())
        users, market_id = loop.run(_template(root / "template.db"))
        yield MoneyEnv(loop, root, url, root / "template.db", users, market_id)
    finally:
        loop.run(nats.stop())
        loop.close()
