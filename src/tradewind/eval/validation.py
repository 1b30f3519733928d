"""Validation of strategy code for the web app (compiling it and running its top level), in a small pool of
child processes, each killed when a validation runs past its wall-clock deadline and replaced: never in the
web process, where a runaway could only be waited for. The children speak the executor's pipe protocol
(``executor._receive``, ``executor._encode``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import weakref
from collections.abc import AsyncIterator, Hashable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import msgspec

from tradewind.eval.executor import _encode, _receive
from tradewind.sandbox.runtime import Diagnostic, inspect

log = logging.getLogger(__name__)

VALIDATION_DEADLINE_S = 1.0  # wall clock per validation, from the code's arrival in the child
VALIDATION_CHILDREN = 2
VALIDATIONS_PER_USER = 2  # running or waiting: a save right after a validation still goes through
READY_TIMEOUT_S = 60.0  # a new child's imports, on a busy machine
ACQUIRE_TIMEOUT_S = 30.0


class ValidationBusy(Exception):
    """The user already has as many validations running or waiting as allowed."""


class ValidationUnavailable(Exception):
    """No validation process is available (shutting down, or none could be started)."""


class Inspection(NamedTuple):
    """What a validation found: the code's errors, and (when it has none) the parameters it declares, as
    ``ParamSpec.as_dict()`` rows (``tradewind.sandbox.params``). The validation child sends it (msgpack)."""

    diagnostics: list[Diagnostic]
    declared: list[dict[str, Any]]


_code = msgspec.msgpack.Decoder(str)
_inspection = msgspec.msgpack.Decoder(Inspection)


def _validation_child(conn: Connection) -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it (see _child)
    with contextlib.suppress(OSError):
        os.nice(10)  # a runaway being checked yields the CPU to live evaluations (embedded mode)
    conn.send_bytes(b"")  # ready: the imports are done, so no job's deadline pays for them
    while (msg := _receive(conn)) is not None:
        try:
            diagnostics, specs = inspect(_code.decode(msg))
            found = Inspection(diagnostics, [spec.as_dict() for spec in specs.values()])
        except Exception as exc:  # a bug of ours must not look like the strategy's fault
            log.exception("validation child: internal error")
            found = Inspection(
                [Diagnostic(None, f"internal error while validating: {type(exc).__name__}")], []
            )
        conn.send_bytes(_encode(found))


class _Child:
    __slots__ = ("proc", "conn")

    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc, self.conn = proc, conn

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.proc.is_alive():
            self.proc.kill()


def _kill_all(children: set[_Child]) -> None:
    for child in list(children):
        child.kill()
    children.clear()


async def _readable(conn: Connection, timeout: float) -> bool:
    """Wait until the child has written something (or died); False when ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


class ValidationPool:
    """Validates strategy code (``sandbox.validate``) in a few child processes, each killed when a
    validation runs past ``deadline_s`` of wall clock and replaced. A user has at most ``per_user``
    validations running or waiting (one at a time runs): more is ``ValidationBusy``, so one user's
    runaways cannot queue ahead of everybody else's. Started lazily on first use, or by ``lifespan``."""

    def __init__(
        self,
        size: int = VALIDATION_CHILDREN,
        deadline_s: float = VALIDATION_DEADLINE_S,
        per_user: int = VALIDATIONS_PER_USER,
    ) -> None:
        self.size, self.deadline_s, self.per_user = size, deadline_s, per_user
        self._ctx = mp.get_context("spawn")
        self._idle: asyncio.Queue[_Child | None] | None = None  # None: a child could not be started
        self._children: set[_Child] = set()
        self._guard = threading.Lock()  # _children and _closed, shared with the threads that spawn
        self._spawning: set[asyncio.Task[None]] = set()
        self._users: dict[Hashable, int] = {}
        self._turns: dict[Hashable, asyncio.Lock] = {}
        self._closed = False
        self.kills = 0  # validations stopped on their deadline, for tests and logs
        # a pool nobody closed (an app run without its lifespan) takes its children with it
        weakref.finalize(self, _kill_all, self._children)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Starts the children with the web app and stops them with it (FastAPI's ``lifespan``)."""
        await self.start()
        try:
            yield
        finally:
            await self.close()

    async def start(self) -> None:
        if self._idle is not None:
            return
        self._idle = asyncio.Queue()
        for _ in range(self.size):
            self._replace()

    async def close(self) -> None:
        with self._guard:
            self._closed = True
            children = set(self._children)
        for task in list(self._spawning):
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        for child in children:
            child.kill()
        await asyncio.gather(*(asyncio.to_thread(c.proc.join, 5) for c in children))
        with self._guard:
            self._children.clear()

    async def validate(self, code: str, user: Hashable) -> list[Diagnostic]:
        """Diagnostics as ``sandbox.validate``'s, or one saying the deadline passed; raises
        ValidationBusy or ValidationUnavailable."""
        return (await self.inspect(code, user)).diagnostics

    async def inspect(self, code: str, user: Hashable) -> Inspection:
        """``validate``'s diagnostics and the parameters the code declares (``sandbox.inspect``)."""
        if self._closed:
            raise ValidationUnavailable("validation is shutting down")
        waiting = self._users.get(user, 0)
        if waiting >= self.per_user:
            raise ValidationBusy(f"at most {self.per_user} validations of one user at a time")
        self._users[user] = waiting + 1
        try:
            async with self._turns.setdefault(user, asyncio.Lock()):
                await self.start()
                return await self._run(await self._acquire(), code)
        finally:
            self._users[user] -= 1
            if not self._users[user]:
                del self._users[user]
                self._turns.pop(user, None)

    async def _acquire(self) -> _Child:
        assert self._idle is not None
        while True:
            try:
                child = await asyncio.wait_for(self._idle.get(), ACQUIRE_TIMEOUT_S)
            except TimeoutError:
                raise ValidationUnavailable("no validation process is available") from None
            if child is None:  # its spawn failed: say so now, and try again for the next validation
                self._replace()
                raise ValidationUnavailable("no validation process could be started")
            if child.proc.is_alive():
                return child
            self._discard(child)  # died while idle (killed from outside): take the next one
            self._replace()

    async def _run(self, child: _Child, code: str) -> Inspection:
        healthy = False
        try:
            try:
                child.conn.send_bytes(_encode(code))
                answered = await _readable(child.conn, self.deadline_s)
                if answered:
                    found = _inspection.decode(child.conn.recv_bytes())
                    healthy = True
                    return found
            except (EOFError, OSError):
                log.warning("validation child died; replacing it")
                return Inspection(
                    [Diagnostic(None, "the validation process died running this code (out of memory?)")], []
                )
            self.kills += 1
            log.info("validation ran past its deadline; killing its child")
            said = (
                f"validation ran past its {self.deadline_s:g} s limit and was stopped; the top level of the "
                "code (outside functions) runs when it is checked: keep it short"
            )
            return Inspection([Diagnostic(None, said)], [])
        finally:
            if healthy and not self._closed:
                assert self._idle is not None
                self._idle.put_nowait(child)
            else:  # overran, died, or the request was cancelled mid-way: a fresh child replaces it
                self._discard(child)
                self._replace()

    def _discard(self, child: _Child) -> None:
        child.kill()
        with self._guard:
            self._children.discard(child)
        asyncio.get_running_loop().run_in_executor(None, child.proc.join, 5)  # reap it, off the loop

    def _replace(self) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._spawn(), name="validation-child")
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _spawn(self) -> None:
        for _ in range(3):
            try:
                child = await asyncio.to_thread(self._start_child)
            except Exception:
                log.exception("could not start a strategy validation process")
                continue
            if child is None:
                return
            try:
                if await _readable(child.conn, READY_TIMEOUT_S) and child.conn.recv_bytes() == b"":
                    if self._closed:
                        self._discard(child)
                        return
                    assert self._idle is not None
                    self._idle.put_nowait(child)
                    return
            except (EOFError, OSError):
                pass
            except asyncio.CancelledError:
                self._discard(child)
                raise
            self._discard(child)
        log.error("could not start a strategy validation process; validations answer 503 until one starts")
        if self._idle is not None and not self._closed:
            self._idle.put_nowait(None)

    def _start_child(self) -> _Child | None:
        parent, there = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_validation_child, args=(there,), daemon=True, name="tradewind-validation"
        )
        proc.start()
        there.close()
        child = _Child(proc, parent)
        with self._guard:
            if not self._closed:
                self._children.add(child)
                return child
        child.kill()  # closed while it started
        proc.join(5)
        return None
