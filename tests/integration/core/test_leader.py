"""Leader election between cores on a real NATS server: one acts at a time, whatever happens to the other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
from nats.aio.client import Client

from tests.proxy import CuttableProxy
from tradewind.bus.connection import connect
from tradewind.core.leader import LeaderElection

TTL = 3.0


class Cores:
    """Elections of named cores, with who acts when: ``acting`` never holds two at once."""

    def __init__(self) -> None:
        self.acting: list[str] = []
        self.log: list[tuple[float, str, str]] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.elections: dict[str, LeaderElection] = {}

    def start(self, name: str, nc: Client, start_s: float = 0.0) -> LeaderElection:
        election = LeaderElection(nc.jetstream(), ttl_s=TTL)

        async def elected() -> None:
            self.log.append((time.monotonic(), name, "elected"))
            assert not self.acting, f"{name} elected while {self.acting} acts"
            self.acting.append(name)
            await asyncio.sleep(start_s)  # a core's start-up: assignments and windows from the database

        async def deposed() -> None:
            self.log.append((time.monotonic(), name, "deposed"))
            self.acting.remove(name)

        self.elections[name] = election
        self.tasks[name] = asyncio.create_task(election.run(elected, deposed))
        return election

    async def die(self, name: str) -> None:
        """As SIGKILL: no resignation, the lease is left to lapse."""
        self.tasks[name].cancel()
        await asyncio.gather(self.tasks[name], return_exceptions=True)
        if name in self.acting:
            self.acting.remove(name)

    async def leader(self, expected: str | None = None, timeout: float = 3 * TTL) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.acting) == 1 and expected in (None, self.acting[0]):
                return self.acting[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no leader {expected or ''} within {timeout} s: {self.log}")

    async def stop(self) -> None:
        for name in list(self.tasks):
            await self.die(name)


@pytest.fixture
async def cores() -> AsyncIterator[Cores]:
    c = Cores()
    yield c
    await c.stop()


@pytest.fixture
async def pair(nats_url: str) -> AsyncIterator[tuple[Client, Client]]:
    """Two cores' NATS connections."""
    a, b = await connect(nats_url, "core-a"), await connect(nats_url, "core-b")
    yield a, b
    await a.close()
    await b.close()


async def test_one_core_leads_and_a_standby_takes_over_when_it_dies(
    pair: tuple[Client, Client], cores: Cores
) -> None:
    a, b = pair
    cores.start("a", a)
    assert await cores.leader() == "a"
    cores.start("b", b)
    await asyncio.sleep(2 * TTL)  # a renews its lease: b waits
    assert cores.acting == ["a"]
    died = time.monotonic()
    await cores.die("a")
    assert await cores.leader("b") == "b"
    took = cores.log[-1][0] - died
    assert TTL * 0.5 < took < TTL * 2, f"the standby took over after {took:.1f} s"


async def test_a_leader_that_resigns_hands_over_at_once(pair: tuple[Client, Client], cores: Cores) -> None:
    a, b = pair
    cores.start("a", a)
    await cores.leader()
    cores.start("b", b)
    await asyncio.sleep(0.2)
    cores.tasks["a"].cancel()  # the way `tradewind run core` stops on SIGTERM: deposed, then resign
    await asyncio.gather(cores.tasks["a"], return_exceptions=True)
    cores.acting.remove("a")
    resigned = time.monotonic()
    await cores.elections["a"].resign()
    assert await cores.leader("b") == "b"
    assert cores.log[-1][0] - resigned < TTL / 2


async def test_a_slow_start_as_leader_keeps_the_lease(pair: tuple[Client, Client], cores: Cores) -> None:
    a, b = pair
    cores.start("a", a, start_s=2.5 * TTL)  # longer than the lease: renewal must not wait for it
    await cores.leader()
    cores.start("b", b)
    await asyncio.sleep(3 * TTL)
    assert cores.acting == ["a"], cores.log


async def test_a_leader_cut_off_from_nats_stops_before_a_standby_starts(nats_url: str, cores: Cores) -> None:
    """A partition: the leader's connection stays open but carries nothing, so its renewal hangs; it must
    step down on its own clock before its lease lapses and the standby is elected."""
    target = urlparse(nats_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 4222)
    port = await proxy.start()
    a = await connect(f"nats://127.0.0.1:{port}", "core-a")
    b = await connect(nats_url, "core-b")
    try:
        cores.start("a", a)
        assert await cores.leader() == "a"
        cores.start("b", b)
        await asyncio.sleep(TTL)
        proxy.freeze()
        assert await cores.leader("b", timeout=4 * TTL) == "b"  # Cores asserts a had stopped acting by then
        events = [(who, what) for _, who, what in cores.log]
        assert events == [("a", "elected"), ("a", "deposed"), ("b", "elected")], cores.log
    finally:
        await proxy.close()
        await a.close()
        await b.close()


async def test_a_core_that_fails_to_start_gives_the_lease_back_and_tries_again(
    pair: tuple[Client, Client],
) -> None:
    a, _ = pair
    election = LeaderElection(a.jetstream(), ttl_s=TTL)
    calls: list[str] = []

    async def elected() -> None:
        calls.append("elected")
        if calls.count("elected") == 1:
            raise RuntimeError("the database is not ready")

    async def deposed() -> None:
        calls.append("deposed")

    task = asyncio.create_task(election.run(elected, deposed))
    try:
        for _ in range(int(4 * TTL / 0.05)):
            if calls.count("elected") == 2:
                break
            await asyncio.sleep(0.05)
        assert calls == ["elected", "deposed", "elected"] and election.is_leader
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
