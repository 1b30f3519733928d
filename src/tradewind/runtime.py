"""Composition roots: `tradewind up` (the whole platform: the web server in child processes, every other
component in this one) and `tradewind run <component>`.

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
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn
from nats.aio.client import Client

from tradewind.bus.connection import connect, ensure_md_stream
from tradewind.bus.embedded import EmbeddedNats
from tradewind.config import ConfigError, Settings
from tradewind.secrets import load_secret_box
from tradewind.storage.db import SessionFactory, checkpoint_forever, make_engine, make_session_factory
from tradewind.storage.migrate import upgrade_async

if TYPE_CHECKING:
    from tradewind.web.security import Throttle

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


async def open_database(
    settings: Settings, stack: Stack, migrate: bool, checkpoints: bool = True, **pool: Any
) -> SessionFactory:
    """``checkpoints=False``: another process on the same SQLite file (`up`'s) copies the WAL back for both.
    ``pool``: the connection pool's size (``pool_size``, ``max_overflow``) where the default does not fit."""
    if migrate:
        await upgrade_async(settings.db_url)
    engine = make_engine(settings.db_url, background_checkpoints=True, **pool)
    stack.stoppers.append(engine.dispose)
    if checkpoints:
        task = asyncio.create_task(checkpoint_forever(engine), name="wal-checkpoints")
        stack.stoppers.append(lambda: _cancel(task))
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
    more_metrics: Callable[[bytes], Awaitable[bytes]] | None = None,
    throttle: Any = None,
) -> uvicorn.Server:
    from tradewind.web.app import create_app

    nc = await _client(url, "web", stack) if url else None
    app = create_app(settings, sf, nc, load_secret_box(settings), more_metrics, throttle)
    return await _serve(app, host, port, stack, sock)


class ComponentFailed(RuntimeError):
    """A component of `tradewind up` stopped and cannot be brought back; the message says which and why."""


class WebProcess:
    """One web server process of `tradewind up` (``WebProcesses`` runs ``web_processes`` of them).

    In one process with core, 200 browsing users took core's event loop and trading fell 20 s behind (see
    benchmarks/RESULTS.md, issue 17). The web server meets core only on the bus and in the database anyway, as
    in distributed mode; here it runs in a child (spawned, not forked: the parent has threads and a running
    loop) serving the socket `listen` bound in the parent, so a port in use is still an error before anything
    starts, and the port stays bound while a child is replaced. Several children accept on the same socket:
    each connection goes to one of them (the kernel wakes them; one that is busy accepts later).

    A child that dies is started again, logged: trading goes on without the web app (and the other web
    processes go on serving), and a crash of the web server (a bug, the OOM killer) should not take the
    platform down with it. More than ``MAX_RESTARTS`` within ``RESTART_WINDOW_S`` (a child that cannot start)
    is a ``ComponentFailed``: `up` stops and says why.

    Three pipes per child. On the first the child says "ready" (or why it failed to start) and asks for the
    other processes' metrics when it is scraped (Prometheus sees the whole platform at one address); on the
    second this process asks the child for its own metrics, for its siblings' scrapes; on the third the child
    asks the login throttle, kept here (``throttle``, shared by all the web processes and outliving each:
    ``security.SharedThrottle``), answered by a thread of this process."""

    MAX_RESTARTS = 5
    RESTART_WINDOW_S = 60.0
    START_TIMEOUT_S = 120.0
    METRICS_TIMEOUT_S = 5.0

    def __init__(
        self,
        settings: Settings,
        url: str,
        sock: socket.socket,
        host: str,
        port: int,
        index: int = 0,
        siblings: Callable[[], list[WebProcess]] | None = None,
        on_failed: Callable[[WebProcess], None] | None = None,
        throttle: tuple[Throttle, threading.Lock] | None = None,
    ) -> None:
        import multiprocessing as mp

        from tradewind.web.security import Throttle

        self.settings, self.url, self.sock, self.host, self.port = settings, url, sock, host, port
        self.index = index
        self._siblings = siblings or (lambda: [self])
        self._on_failed = on_failed
        self.throttle = throttle or (Throttle(), threading.Lock())
        self._guard: Any = None  # this process's end of the pipe the child asks the throttle on
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self._ctl: Any = None  # this process's end of the pipe it asks the child's metrics on
        self._ctl_lock = threading.Lock()  # one question at a time on it
        self._ctl_seq = 0
        self._hello: asyncio.Future[tuple[str, str]] | None = None
        self._gone = asyncio.Event()
        self._stopping = False
        self._restarts: list[float] = []
        self._watcher: asyncio.Task[None] | None = None
        self._answers: set[asyncio.Task[None]] = set()
        self.failed = asyncio.Event()  # set with ``failure`` when it gives up
        self.failure = ""

    @property
    def name(self) -> str:
        return f"the web server (process {self._proc.pid if self._proc is not None else '-'})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def serving(self) -> bool:
        """Started, said it serves, and not gone since."""
        return (
            self._hello is not None
            and self._hello.done()
            and self._hello.result()[0] == "ready"
            and not self._gone.is_set()
            and self._proc.exitcode is None
        )

    async def start(self) -> None:
        """Start the child and wait until it serves; raises ``ComponentFailed`` with its reason if it cannot."""
        self.launch()
        await self.ready()

    def launch(self) -> None:
        """Start the child (it takes seconds to import and start: `up` starts the other components meanwhile)."""
        self._launch()

    async def ready(self) -> None:
        """Wait until the child launched serves, then watch it; ``ComponentFailed`` if it cannot start."""
        await self._wait_ready()
        self._watcher = asyncio.create_task(self._watch(), name=f"web-process-{self.index}")

    async def _spawn(self) -> None:
        self._launch()
        await self._wait_ready()

    def _launch(self) -> None:
        from tradewind.web.security import serve_throttle

        loop = asyncio.get_running_loop()
        ours, theirs = self._ctx.Pipe()
        ctl_ours, ctl_theirs = self._ctx.Pipe()
        guard_ours, guard_theirs = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_web_process,
            args=(self.settings, self.url, self.sock, self.host, self.port, theirs, ctl_theirs, guard_theirs),
            name=f"tradewind-web-{self.index}",
        )
        self._hello = loop.create_future()
        self._gone = asyncio.Event()
        self._conn, self._ctl, self._guard = ours, ctl_ours, guard_ours
        self._proc.start()  # (pickles the socket: its descriptor is passed to the child as it is spawned)
        theirs.close()
        ctl_theirs.close()
        guard_theirs.close()
        loop.add_reader(ours.fileno(), self._readable, ours)
        # ends when the child's end closes (it exits): a new child gets a new pipe and thread, the same throttle
        threading.Thread(
            target=serve_throttle, args=(*self.throttle, guard_ours), name="login-throttle", daemon=True
        ).start()

    async def _wait_ready(self) -> None:
        assert self._hello is not None
        try:
            kind, detail = await asyncio.wait_for(asyncio.shield(self._hello), self.START_TIMEOUT_S)
        except TimeoutError:
            kind, detail = "failed", f"not serving after {self.START_TIMEOUT_S:.0f} s"
        if kind != "ready":
            await self._end(self._proc, self._conn, self._ctl, self._guard)
            if kind == "gone":
                detail = f"its process exited with code {self._proc.exitcode} (its log above says why)"
            raise ComponentFailed(f"the web server did not start: {detail}")
        log.info("web server started (process %d)", self._proc.pid)

    def _readable(self, conn: Any) -> None:
        try:
            kind, detail = conn.recv()
        except (EOFError, OSError):  # the child is gone (its end of the pipe closed with it)
            asyncio.get_running_loop().remove_reader(conn.fileno())
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(("gone", ""))
            self._gone.set()
            return
        if kind == "metrics":
            task = asyncio.create_task(self._answer_metrics(conn))
            self._answers.add(task)
            task.add_done_callback(self._answers.discard)
        elif self._hello is not None and not self._hello.done():
            self._hello.set_result((kind, detail))

    async def _answer_metrics(self, conn: Any) -> None:
        """A child is scraped: this process's metrics, and each other web process's (those that answer)."""
        from prometheus_client import generate_latest

        others = [w for w in self._siblings() if w is not self and w.serving]
        texts = await asyncio.gather(*(w.own_metrics() for w in others), return_exceptions=True)
        for w, text in zip(others, texts, strict=True):
            if isinstance(text, BaseException):
                log.warning("%s did not give its metrics: %s", w.name, text or type(text).__name__)
        answer = (generate_latest(), [t for t in texts if isinstance(t, bytes)])
        with contextlib.suppress(OSError, ValueError):  # the child is gone meanwhile
            await asyncio.to_thread(conn.send, answer)  # (off the loop: it may be larger than the pipe holds)

    async def own_metrics(self) -> bytes:
        """The child's own metrics (Prometheus text), asked on its control pipe."""
        ctl = self._ctl
        if ctl is None or not self.serving:
            raise ConnectionError("not serving")
        return await asyncio.to_thread(self._ask, ctl, self.METRICS_TIMEOUT_S)

    def _ask(self, ctl: Any, timeout: float) -> bytes:
        import time

        with self._ctl_lock:
            self._ctl_seq += 1
            n = self._ctl_seq
            ctl.send(n)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0 and ctl.poll(left):
                seq, text = ctl.recv()
                if seq == n:  # (an answer to an earlier question that timed out is dropped)
                    return bytes(text)
        raise TimeoutError(f"no answer in {timeout:.0f} s")

    async def _watch(self) -> None:
        while True:
            await self._gone.wait()
            if self._stopping:
                return
            proc = self._proc
            await self._end(proc, self._conn, self._ctl, self._guard)
            now = asyncio.get_running_loop().time()
            self._restarts = [t for t in self._restarts if now - t < self.RESTART_WINDOW_S] + [now]
            if len(self._restarts) > self.MAX_RESTARTS:
                self.failure = (
                    f"the web server (process {proc.pid}) exited with code {proc.exitcode}, the "
                    f"{len(self._restarts)}th time in {self.RESTART_WINDOW_S:.0f} s; giving up (see its log above)"
                )
                log.error("%s", self.failure)
                self.failed.set()
                if self._on_failed is not None:
                    self._on_failed(self)
                return
            log.error(
                "the web server (process %d) exited with code %s; starting it again", proc.pid, proc.exitcode
            )
            try:
                await self._spawn()
            except ComponentFailed as exc:
                log.error("%s", exc)
                self._gone.set()  # counted as another exit

    async def stop(self) -> None:
        self._stopping = True
        if self._watcher is not None:
            await _cancel(self._watcher)
        if self._proc is not None:
            await self._end(self._proc, self._conn, self._ctl, self._guard)

    async def _end(self, proc: Any, conn: Any, ctl: Any, guard: Any, grace_s: float = 10.0) -> None:
        """SIGTERM (the child stops serving, lets open requests finish and closes), SIGKILL after ``grace_s``."""
        if proc.exitcode is None:
            proc.terminate()
            deadline = asyncio.get_running_loop().time() + grace_s
            while proc.exitcode is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            if proc.exitcode is None:
                log.warning(
                    "the web server (process %d) did not stop in %.0f s; killing it", proc.pid, grace_s
                )
                proc.kill()
        await asyncio.to_thread(proc.join)
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
        conn.close()
        ctl.close()
        guard.close()  # (its thread saw the child's end close and has returned)


class WebProcesses:
    """`tradewind up`'s web server: ``n`` processes (``WebProcess``) serving the one socket.

    One web process's event loop was the limit with 200 browsing users and 500 live sockets (0.8 of a core,
    API p99 1.6 s: benchmarks/RESULTS.md, issue 17); several use the cores core and the eval workers leave.
    Each is started again on its own when it dies, while the others go on serving. Each has its own live
    feed (one subscription to the candles and ticks for its sockets), connection pool and rate limits (as
    replicas behind a load balancer would); the login throttle is one, in this process, for all of them.
    ``failed`` is set, with ``failure``, when one of them cannot be kept up."""

    def __init__(
        self, settings: Settings, url: str, sock: socket.socket, host: str, port: int, n: int
    ) -> None:
        from tradewind.web.security import Throttle

        throttle = (Throttle(), threading.Lock())
        self.children = [
            WebProcess(settings, url, sock, host, port, i, self._all, self._child_failed, throttle)
            for i in range(n)
        ]
        self.failed = asyncio.Event()
        self.failure = ""

    def _all(self) -> list[WebProcess]:
        return self.children

    def _child_failed(self, child: WebProcess) -> None:
        if not self.failed.is_set():
            self.failure = child.failure
            self.failed.set()

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children if c.pid is not None]

    def launch(self) -> None:
        for child in self.children:
            child.launch()

    async def ready(self) -> None:
        """Wait until every one serves; ``ComponentFailed`` (the first reason) if one cannot start."""
        results = await asyncio.gather(*(c.ready() for c in self.children), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def start(self) -> None:
        self.launch()
        await self.ready()

    async def stop(self) -> None:
        """All together: each stops serving and lets its open requests finish."""
        await asyncio.gather(*(c.stop() for c in self.children))


def launch_web_process(
    settings: Settings, url: str, stack: Stack, host: str, port: int, sock: socket.socket
) -> WebProcesses:
    """The web server's processes (``settings.web_processes``), started; ``await web.ready()`` once the rest
    is up."""
    web = WebProcesses(settings, url, sock, host, port, settings.web_processes)
    # If what starts next fails, this stops the children. Once all is up `up` adds ``web.stop`` again, last,
    # so that the web server stops first; stopping twice is a no-op.
    stack.stoppers.append(web.stop)
    web.launch()
    return web


def _web_process(
    settings: Settings, url: str, sock: socket.socket, host: str, port: int, conn: Any, ctl: Any, guard: Any
) -> None:
    """A web child's composition root (the target of ``WebProcess``)."""
    # Ctrl-C reaches every process of the terminal's group: the parent stops this one (SIGTERM), in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(settings.log_level)
    try:
        with asyncio.Runner(loop_factory=_fast_loop()) as runner:
            runner.run(_web_process_main(settings, url, sock, host, port, conn, ctl, guard))
    except Exception:
        log.exception("the web server stopped on an error")
        raise SystemExit(1) from None


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (uvicorn[standard] brings it): the web process spends most of
    its time in socket reads and writes and in callbacks (500 live sockets, 2,000 frames a second), which it
    runs in C; None (asyncio's own loop) elsewhere."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _answer_metrics_forever(ctl: Any) -> None:
    """The web child's thread that gives the parent this process's metrics (for another web process's
    scrape): a thread, so that a busy event loop still answers."""
    from prometheus_client import generate_latest

    while True:
        try:
            n = ctl.recv()
            ctl.send((n, generate_latest()))
        except (EOFError, OSError):  # the parent is gone, or stopping us
            return


async def _web_process_main(
    settings: Settings, url: str, sock: socket.socket, host: str, port: int, conn: Any, ctl: Any, guard: Any
) -> None:
    import multiprocessing as mp
    import threading

    from tradewind.web.routes.system import combine_metrics
    from tradewind.web.security import SharedThrottle

    # Every database statement is a hop to the connection's thread and back (aiosqlite), and a thread waits
    # for the GIL up to the switch interval (5 ms) while this busy event loop holds it: three hops of a write
    # transaction (a sign-up, a log-in) then held SQLite's write lock for tens of ms, while core's writes
    # waited for it (they poll for it every 100 ms, and missed it). 1 ms gives the GIL up sooner.
    sys.setswitchinterval(0.001)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    parent = mp.parent_process()
    if parent is not None:  # the parent died without stopping us (SIGKILL): nothing to serve for

        def orphaned() -> None:
            loop.remove_reader(parent.sentinel)
            log.warning("tradewind up is gone; the web server stops")
            stop.set()

        loop.add_reader(parent.sentinel, orphaned)
    asking = threading.Lock()  # one question on the pipe at a time

    def ask_parent() -> tuple[bytes, list[bytes]]:
        with asking:
            conn.send(("metrics", ""))
            parent_text, others = conn.recv()
            return parent_text, others

    async def whole_metrics(own: bytes) -> bytes:
        """This process's metrics, the other web processes' and the parent's (core's, the workers', the
        exchanges'), as one exposition."""
        parent_text, others = await asyncio.wait_for(asyncio.to_thread(ask_parent), 10)
        return combine_metrics([own, *others, parent_text])

    threading.Thread(target=_answer_metrics_forever, args=(ctl,), name="metrics", daemon=True).start()
    stack = Stack()
    try:
        try:
            # 200 users keep 20-30 requests in flight: with SQLAlchemy's default pool (5, and 10 more made and
            # closed again as needed) the web server opened a connection (a thread, its pragmas, a cold page
            # cache) several times a second.
            sf = await open_database(
                settings, stack, migrate=False, checkpoints=False, pool_size=20, max_overflow=30
            )
            throttle = SharedThrottle(guard)

            async def close_throttle() -> None:
                throttle.close()

            stack.stoppers.append(close_throttle)
            await start_web(
                settings, url, sf, stack, host, port, sock, more_metrics=whole_metrics, throttle=throttle
            )
        except Exception as exc:
            with contextlib.suppress(OSError):
                conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            raise
        settle_heap()
        with asking:
            conn.send(("ready", ""))
        await stop.wait()
    finally:
        await stack.close()


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
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        # The stream's frames are single small JSON events (a tick, a candle): compressing each one cost more
        # CPU than any other part of sending it to 500 sockets, for a few dozen bytes saved.
        ws_per_message_deflate=False,
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
    """The whole platform: NATS (embedded unless configured), storage, exchanges, core, eval workers and
    alerts in this process, the web server in ``settings.web_processes`` child processes of its own
    (``WebProcesses``). Returns when ``stop`` is set or on SIGINT/SIGTERM; raises ``ComponentFailed`` if the
    web server cannot be kept up."""
    settings.make_data_dir()
    sock = listen(host, port)  # first: a port in use stops here, before anything has started
    stack = Stack()
    async with _stop_on_signals() as signalled:
        try:
            url = await open_nats(settings, stack)
            sf = await open_database(settings, stack, migrate=True)
            load_secret_box(settings)  # made here first if new: the web server's process reads the same key
            # Their imports and start take seconds: the web server's processes start while the rest does here.
            web = launch_web_process(settings, url, stack, host, port, sock)
            for i in range(max(1, settings.eval_workers)):
                await start_eval(settings, url, sf, stack, i)
            cores = await start_core(settings, url, sf, stack)
            for name in settings.exchanges:
                await start_exchange(settings, name, url, sf, stack)
            # Stopped in reverse: the quotes come down while the exchanges are still there to cancel them.
            stack.stoppers.append(lambda: _take_quotes_down(cores))
            await start_alerts(settings, url, sf, stack)
            await web.ready()
            stack.stoppers.append(web.stop)  # stopped first: no request reaches a platform shutting down
            settle_heap()
            stack.ready = True
            log.info("tradewind is up: http://%s:%d/", host, port)
            waiters = [asyncio.create_task(signalled.wait()), asyncio.create_task(web.failed.wait())]
            if stop is not None:
                waiters.append(asyncio.create_task(stop.wait()))
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            log.info("stopping")
            if web.failed.is_set():
                raise ComponentFailed(web.failure)
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
