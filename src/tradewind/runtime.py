"""Composition roots: `tradewind up` (every component in one process) and `tradewind run <component>`.

Everything is built here, by constructor injection; nothing connects at import time. Components meet
only on the bus and in storage, so the embedded and the distributed platform are the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from nats.aio.client import Client

from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import ConfigError, Settings
from tradewind.secrets import load_secret_box
from tradewind.storage.db import SessionFactory, checkpoint_forever, make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async

log = logging.getLogger("tradewind")

COMPONENTS = ("web", "core", "eval", "exchange", "alerts")


@dataclass
class Stack:
    """What is running, in start order, so it can be stopped in reverse."""

    stoppers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    ready: bool = False

    async def close(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                await asyncio.wait_for(stop(), 15)
            except Exception:
                log.exception("error while stopping")
        self.stoppers.clear()


def settle_heap() -> None:
    """Once everything is started: move what exists now (modules, ORM mappings, caches) out of the
    garbage collector's sight. A full collection over it took 100-120 ms in the middle of a candle at
    1,000 assignments (a pause on the tick-to-order path); what is allocated later is collected as usual."""
    gc.collect()
    gc.freeze()


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("nats", "uvicorn.access", "aiosqlite", "sqlalchemy", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def open_nats(settings: Settings, stack: Stack) -> str:
    if settings.nats_url:
        return settings.nats_url
    server = EmbeddedNats(settings.data_dir / "nats")
    url = await server.start()
    stack.stoppers.append(server.stop)
    log.info("embedded NATS on %s", url)
    return url


async def open_database(settings: Settings, stack: Stack, migrate: bool) -> SessionFactory:
    if migrate:
        await upgrade_async(settings.db_url)
    engine = make_engine(settings.db_url, background_checkpoints=True)
    stack.stoppers.append(engine.dispose)
    checkpoints = asyncio.create_task(checkpoint_forever(engine), name="wal-checkpoints")
    stack.stoppers.append(lambda: _cancel(checkpoints))
    return make_session_factory(engine)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _client(url: str, name: str, stack: Stack) -> Client:
    nc = await connect(url, name)
    stack.stoppers.append(nc.drain)
    return nc


async def start_exchange(settings: Settings, name: str, url: str, sf: SessionFactory, stack: Stack) -> Any:
    from tradewind.exchanges.registry import make_adapter
    from tradewind.exchanges.service import ExchangeService

    nc = await _client(url, f"exchange-{name}", stack)
    js = nc.jetstream()
    await ensure_md_stream(js)
    service = ExchangeService(
        settings, make_adapter(name, settings, sf), nc, js, sf, load_secret_box(settings)
    )
    await service.start()
    stack.stoppers.append(service.stop)
    log.info("exchange %s started", name)
    return service


async def start_core(settings: Settings, url: str, sf: SessionFactory, stack: Stack) -> Any:
    """Core behind leader election: it only consumes the stream while it holds the lease."""
    from tradewind.core.leader import LeaderElection
    from tradewind.core.service import CoreService

    nc = await _client(url, "core", stack)
    election = LeaderElection(nc.jetstream())
    current: list[CoreService] = []

    async def elected() -> None:
        core = CoreService(settings, nc, nc.jetstream(), sf)
        await core.start()
        current.append(core)
        log.info("core started")

    async def deposed() -> None:
        while current:
            await current.pop().stop()

    campaign = asyncio.create_task(election.run(elected, deposed), name="core-election")

    async def stop() -> None:
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)
        await deposed()
        await election.resign()

    stack.stoppers.append(stop)
    for _ in range(100):  # the first campaign round decides at once unless another core holds the lease
        if current or campaign.done():
            break
        await asyncio.sleep(0.02)
    return current


async def _take_quotes_down(cores: list[Any]) -> None:
    for core in cores:
        await core.quotes.stop()


async def start_eval(
    settings: Settings, url: str, sf: SessionFactory, stack: Stack, index: int = 0
) -> list[Any]:
    from tradewind.eval.worker import EvalWorker

    name = f"eval-{socket.gethostname()}-{os.getpid()}-{index}"
    nc = await _client(url, name, stack)
    worker = EvalWorker(settings, nc, sf, name=name)
    await worker.start()
    stack.stoppers.append(worker.stop)
    from tradewind.backtest.worker import BacktestWorker

    backtests = BacktestWorker(settings, nc, sf)  # backtests and sweeps scale out with the eval workers
    await backtests.start()
    stack.stoppers.append(backtests.stop)
    log.info("eval worker %s started", name)
    return [worker, backtests]


async def start_alerts(settings: Settings, url: str, sf: SessionFactory, stack: Stack) -> Any:
    """The alerts component: hears users' events and the market data, delivers on their channels."""
    from tradewind.alerts.service import AlertService

    nc = await _client(url, "alerts", stack)
    service = AlertService(settings, nc, sf, load_secret_box(settings))
    await service.start()
    stack.stoppers.append(service.stop)
    log.info("alerts started")
    return service


async def start_web(
    settings: Settings,
    url: str | None,
    sf: SessionFactory,
    stack: Stack,
    host: str,
    port: int,
    sock: socket.socket | None = None,
) -> uvicorn.Server:
    from tradewind.web.app import create_app

    nc = await _client(url, "web", stack) if url else None
    app = create_app(settings, sf, nc, load_secret_box(settings))
    return await _serve(app, host, port, stack, sock)


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything else starts: a port in use (another tradewind running)
    is a one-line configuration error at once, not uvicorn exiting the process after every component
    has started."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc} (is tradewind running already? "
            "choose another with --port or TRADEWIND_PORT)"
        ) from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the process's signals are ours."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(
    app: Any, host: str, port: int, stack: Stack, sock: socket.socket | None = None
) -> uvicorn.Server:
    sock = sock or listen(host, port)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http-{port}")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"could not serve on {host}:{port}")
        await asyncio.sleep(0.02)

    async def stop() -> None:
        server.should_exit = True
        await task

    stack.stoppers.append(stop)
    return server


def health_app(stack: Stack) -> Any:
    """/healthz, /readyz and /metrics for the components that have no web server of their own."""
    from fastapi import FastAPI, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(
            '{"status":"ready"}' if stack.ready else '{"status":"starting"}',
            status_code=200 if stack.ready else 503,
            media_type="application/json",
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


@contextlib.asynccontextmanager
async def _stop_on_signals() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    yield stop


async def up(settings: Settings, host: str, port: int, stop: asyncio.Event | None = None) -> None:
    """Every component in this process: NATS (embedded unless configured), storage, exchanges, core,
    eval workers and the web server. Returns when ``stop`` is set or on SIGINT/SIGTERM."""
    settings.make_data_dir()
    sock = listen(host, port)  # first: a port in use stops here, before anything has started
    stack = Stack()
    async with _stop_on_signals() as signalled:
        try:
            url = await open_nats(settings, stack)
            sf = await open_database(settings, stack, migrate=True)
            for i in range(max(1, settings.eval_workers)):
                await start_eval(settings, url, sf, stack, i)
            cores = await start_core(settings, url, sf, stack)
            for name in settings.exchanges:
                await start_exchange(settings, name, url, sf, stack)
            # Stopped in reverse: the quotes come down while the exchanges are still there to cancel them.
            stack.stoppers.append(lambda: _take_quotes_down(cores))
            await start_alerts(settings, url, sf, stack)
            await start_web(settings, url, sf, stack, host, port, sock)
            settle_heap()
            stack.ready = True
            log.info("tradewind is up: http://%s:%d/", host, port)
            waiters = [asyncio.create_task(signalled.wait())]
            if stop is not None:
                waiters.append(asyncio.create_task(stop.wait()))
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            log.info("stopping")
        finally:
            await stack.close()
            sock.close()  # if the web server never started with it


async def run_component(settings: Settings, component: str, exchange: str | None = None) -> None:
    """One component in this process, against the configured NATS and database."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; use one of {', '.join(COMPONENTS)}")
    stack = Stack()
    async with _stop_on_signals() as signalled:
        try:
            if not settings.nats_url and component != "web":
                raise ConfigError("nats_url (TRADEWIND_NATS_URL) is required to run a component on its own")
            url = settings.nats_url
            sf = await open_database(settings, stack, migrate=False)
            if component == "web":
                await start_web(settings, url, sf, stack, settings.host, settings.port)
            else:
                if settings.metrics_port:
                    await _serve(health_app(stack), settings.host, settings.metrics_port, stack)
                if component == "core":
                    await start_core(settings, url, sf, stack)  # type: ignore[arg-type]
                elif component == "eval":
                    await start_eval(settings, url, sf, stack)  # type: ignore[arg-type]
                elif component == "alerts":
                    await start_alerts(settings, url, sf, stack)  # type: ignore[arg-type]
                else:
                    if not exchange:
                        raise ValueError("`run exchange` needs --exchange NAME")
                    await start_exchange(settings, exchange, url, sf, stack)  # type: ignore[arg-type]
            settle_heap()
            stack.ready = True
            log.info("%s is running", component if component != "exchange" else f"exchange {exchange}")
            await signalled.wait()
        finally:
            await stack.close()
