"""The web app served by a real uvicorn on a free port, in a thread with its own event loop.

For clients that are synchronous (Schemathesis drives the API with `requests`) or that need real sockets.
Everything the app uses (engine, NATS connection) is created inside the server's own loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import Settings
from tradewind.secrets import SecretBox
from tradewind.storage import candles as store
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async
from tradewind.web.app import create_app
from tradewind.web.security import RateLimiter, Throttle

KEY = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="


class ServerThread:
    """``with ServerThread(tmp) as srv: srv.url`` — SQLite in ``tmp``, migrated and holding one market."""

    def __init__(
        self,
        folder: Path,
        nats_url: str | None = None,
        fake_exchanges: bool = False,
        database_url: str | None = None,
    ) -> None:
        """``fake_exchanges``: start a NATS server of its own with a responder that answers every
        exchange's balance requests and refuses every key (the sim exchange's part in these tests)."""
        self.folder = folder
        self.nats_url = nats_url
        self.fake_exchanges = fake_exchanges
        self.database_url = database_url
        self.app: Any = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.db_path = folder / "web.db"
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="web-test-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to the test in __enter__
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        url = self.database_url or f"sqlite+aiosqlite:///{self.db_path}"
        await upgrade_async(url)
        engine = make_engine(url)
        sf = make_session_factory(engine)
        async with sf() as s:
            m = await store.get_or_create_market(s, "sim", "BTC/USD")
            await store.insert_candles(
                s, m.id, "1m", [(60_000 * i, 1.0, 2.0, 0.5, 1.5, 10.0) for i in range(1, 30)]
            )
            await s.commit()
        bus = None
        if self.fake_exchanges:
            bus = EmbeddedNats(self.folder / "nats")
            self.nats_url = await bus.start()
        nc = await connect(self.nats_url, "web-test-server") if self.nats_url else None
        if nc is not None and self.fake_exchanges:
            await _answer_as_exchanges(nc)
        app = self.app = create_app(
            Settings(data_dir=self.folder, database_url=url), sf, nc, SecretBox([KEY])
        )
        # The fuzzer sends thousands of requests a minute on one account: lift the per-user limit.
        app.state.tw.limiter = RateLimiter(rate=1e6, burst=1e6)
        # ...and it tries hundreds of wrong logins from one address: answered slowly, but within its timeout.
        app.state.tw.throttle = Throttle(slow_max_s=0.05)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        serving = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        while not self._server.started:
            if serving.done():
                await serving
            await asyncio.sleep(0.01)
        self._ready.set()
        await serving
        if nc is not None:
            await nc.close()
        if bus is not None:
            await bus.stop()
        await engine.dispose()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(15)
        self.sock.close()


async def _answer_as_exchanges(nc: Any) -> None:
    async def verify(msg: Any) -> None:
        await msg.respond(m.encode(m.VerifyReply(ok=False, error="invalid API key (test exchange)")))

    async def balance(msg: Any) -> None:
        await msg.respond(m.encode(m.BalanceReply(balances={"USD": "10000"})))

    async def cancel(msg: Any) -> None:
        await msg.respond(b"")

    await nc.subscribe(subjects.exchange_verify("*"), cb=verify)
    await nc.subscribe(subjects.exchange_balance("*"), cb=balance)
    await nc.subscribe(subjects.exchange_cancel("*"), cb=cancel)
