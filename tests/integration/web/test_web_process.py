"""`tradewind up`'s web server in processes of its own (runtime.WebProcess, WebProcesses): served on the
parent's socket, each started again when it dies while the others serve, and /metrics answering for all."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
from prometheus_client import generate_latest

from tradewind.config import Settings
from tradewind.metrics import CANDLES
from tradewind.runtime import WebProcess, WebProcesses, listen
from tradewind.storage.migrate import upgrade_async

from .conftest import KEY, PASSWORD


async def wait_for(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_the_web_server_runs_apart_and_is_started_again_when_it_dies(
    tmp_path: Path, nats_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=KEY, log_level="WARNING")
    await upgrade_async(settings.db_url)
    sock = listen("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    web = WebProcess(settings, nats_url, sock, "127.0.0.1", sock.getsockname()[1])
    web.MAX_RESTARTS = 1
    try:
        await web.start()
        first = web.pid
        assert first is not None and first != os.getpid()
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            email = {"email": "ann@example.com", "password": PASSWORD}
            assert (await c.post("/api/auth/register", json=email)).status_code == 201
            assert (await c.get("/api/health")).json()["nats"] == "ok"

            os.kill(first, signal.SIGKILL)  # a crash: it comes back on the same port, with the same data

            async def back() -> bool:
                if web.pid == first:
                    return False
                try:
                    return (await c.post("/api/auth/login", json=email)).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(back)

            assert web.pid is not None
            os.kill(web.pid, signal.SIGKILL)  # a second crash within the minute: more than MAX_RESTARTS
            await asyncio.wait_for(web.failed.wait(), 30)
            assert "giving up" in web.failure and "-9" in web.failure
    finally:
        await web.stop()
        sock.close()


async def test_its_metrics_hold_the_other_components_once_each(tmp_path: Path, nats_url: str) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=KEY, log_level="WARNING")
    await upgrade_async(settings.db_url)
    CANDLES.labels("accepted").inc(0)  # a metric of this process (core's, in `up`)
    sock = listen("127.0.0.1", 0)
    web = WebProcess(settings, nats_url, sock, "127.0.0.1", sock.getsockname()[1])
    try:
        await web.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as c:
            await c.get("/api/health")
            text = (await c.get("/metrics")).text
        families = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
        assert len(families) == len(set(families))
        assert "tradewind_core_candles_total" in families  # this process's
        assert (
            'tradewind_http_requests_total{method="GET",route="/api/health",status="200"}' in text
        )  # its own
    finally:
        await web.stop()
        sock.close()
    assert web.failed.is_set() is False


def login_answers(text: str) -> float:
    """POST /api/auth/login answered (any status), in a process's Prometheus text."""
    line = 'tradewind_http_requests_total{method="POST",route="/api/auth/login",'
    return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(line))


def health_requests(text: str) -> float:
    """GET /api/health answered 200, in a process's Prometheus text."""
    line = 'tradewind_http_requests_total{method="GET",route="/api/health",status="200"} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


async def each_on_a_new_connection(base: str, n: int) -> None:
    """``n`` requests, 10 at a time, each on a connection of its own (a browser's, a load balancer's): each
    is accepted by whichever process takes it first. All must succeed."""

    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as c:

        async def one() -> None:
            r = await c.get("/api/health")
            assert r.status_code == 200, r.text

        for _ in range(n // 10):
            await asyncio.gather(*(one() for _ in range(10)))


async def test_two_web_processes_share_the_port_and_one_killed_comes_back_while_the_other_serves(
    tmp_path: Path, nats_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=KEY, log_level="WARNING", web_processes=2)
    await upgrade_async(settings.db_url)
    sock = listen("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    web = WebProcesses(settings, nats_url, sock, "127.0.0.1", sock.getsockname()[1], settings.web_processes)
    first, second = web.children
    try:
        await web.start()
        assert len(set(web.pids)) == 2 and os.getpid() not in web.pids

        # Both accept on the one socket: each answered some of 200 requests, and /metrics counts them all.
        await each_on_a_new_connection(base, 200)
        counts = [health_requests((await child.own_metrics()).decode()) for child in web.children]
        assert all(c > 0 for c in counts) and sum(counts) == 200, counts
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            whole = (await c.get("/metrics")).text
        # The whole holds this (parent) process's own counters too: in a full run, earlier tests' in-process
        # apps counted health requests here.
        own = health_requests(generate_latest().decode())
        assert health_requests(whole) == 200 + own
        families = [line.split()[2] for line in whole.splitlines() if line.startswith("# HELP ")]
        assert len(families) == len(set(families))

        # One is killed: the other answers every request meanwhile, and the killed one is started again alone.
        killed, survivor = first.pid, second.pid
        assert killed is not None and survivor is not None
        os.kill(killed, signal.SIGKILL)
        await wait_for(lambda: _gone(killed), timeout=10)
        await each_on_a_new_connection(base, 50)  # before it is back (a start takes seconds)
        assert not first.serving, "back before the requests: they showed nothing"

        async def back() -> bool:
            return first.pid != killed and first.serving

        await wait_for(back)
        assert second.pid == survivor and second.serving, "the other web process was touched"
        await each_on_a_new_connection(base, 200)
        assert health_requests((await first.own_metrics()).decode()) > 0  # the new one serves
        assert not web.failed.is_set()
    finally:
        await web.stop()
        sock.close()
    for pid in (killed, survivor, first.pid):
        assert pid is not None and await _gone(pid), f"web process {pid} outlived stop()"


async def test_the_login_throttle_is_one_for_every_web_process_and_outlives_each(
    tmp_path: Path, nats_url: str
) -> None:
    """Wrong passwords spread over two web processes (each on a new connection) lock the account for both, and
    a web process killed and started again does not start counting over."""
    settings = Settings(data_dir=tmp_path, secret_key=KEY, log_level="WARNING", web_processes=2)
    await upgrade_async(settings.db_url)
    sock = listen("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    web = WebProcesses(settings, nats_url, sock, "127.0.0.1", sock.getsockname()[1], settings.web_processes)
    fresh = httpx.Limits(max_keepalive_connections=0)  # each request accepted by whichever process takes it
    try:
        await web.start()
        async with httpx.AsyncClient(base_url=base, timeout=10, limits=fresh) as c:
            ann = {"email": "ann@example.com", "password": PASSWORD}
            assert (await c.post("/api/auth/register", json=ann)).status_code == 201
            wrong = {"email": "ann@example.com", "password": "not-" + PASSWORD}
            codes = [(await c.post("/api/auth/login", json=wrong)).status_code for _ in range(5)]
            assert (
                codes == [401] * 5
            )  # (the kernel gave them to one process or both: it does not matter below)

            first, second = web.children
            killed = first.pid
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
            await wait_for(lambda: _gone(killed), timeout=10)
            for _ in range(3):  # the other one answers (or already the new one): locked, whoever counted
                r = await c.post("/api/auth/login", json=ann)
                assert r.status_code == 429 and int(r.headers["retry-after"]) > 0, r.text

            async def back() -> bool:
                return first.pid != killed and first.serving

            await wait_for(back)
            # ...and in the new process, which counted nothing itself: tried until it has answered some
            for _ in range(100):
                r = await c.post("/api/auth/login", json=ann)
                assert r.status_code == 429, r.text
                if login_answers((await first.own_metrics()).decode()):
                    break
            else:
                raise AssertionError("the restarted web process answered none of 100 logins")
    finally:
        await web.stop()
        sock.close()


async def _gone(pid: int) -> bool:
    return _stopped(pid)


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has stopped (not reaped yet)
    except FileNotFoundError:
        return True
