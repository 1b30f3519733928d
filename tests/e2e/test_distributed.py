"""Each component in its own process on one NATS server and one database (PostgreSQL when reachable),
with components killed by SIGKILL under load: no evaluation, candle or order is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.postgres import postgres_up
from tradewind.bus.embedded import nats_server_binary

from .platform_helpers import GOOD, Proc, User, env_for, free_port, wait_until

pytestmark = pytest.mark.e2e
SECRET = "yQ0c1c8b1nJmQ1W3Yw3q0m9XK2b6b4Q7b2b2Zm4z3xY="


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(async URL for tradewind, sync URL for the test's own checks)."""
    if not postgres_up():
        path = tmp_path / "tw.db"
        yield f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}"
        return
    name = f"tw_e2e_{uuid.uuid4().hex[:8]}"
    admin = (
        create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
        if _has("psycopg")
        else None
    )
    if admin is None:
        admin_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        asyncio.run(_pg_exec(admin_url, f'CREATE DATABASE "{name}"'))
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", ""
        asyncio.run(_pg_exec(admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'))
        return
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield (
        f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
    )
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


async def _pg_exec(url: str, sql: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as c:
        await c.execute(text(sql))
    await engine.dispose()


async def _query(url: str, sql: str) -> list[tuple]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.connect() as c:
        rows = (await c.execute(text(sql))).all()
    await engine.dispose()
    return [tuple(r) for r in rows]


def query(url: str, sql: str) -> list[tuple]:
    return asyncio.run(_query(url, sql))


class NatsProc:
    """The NATS server as a process of its own on a fixed port, so that it can be killed and come back
    where the components look for it, with its JetStream store on disk."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> NatsProc:
        self.root.mkdir(parents=True, exist_ok=True)
        self.p = subprocess.Popen(
            [
                nats_server_binary(),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.root / "js"),
                "-l",
                str(self.root / "nats-server.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._listening, timeout=20, what="nats-server to listen")
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)

    def stop(self, timeout: float = 10) -> None:
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsProc]:
    server = NatsProc(tmp_path / "nats").start()
    yield server
    server.stop()


def test_components_in_separate_processes_survive_sigkill(
    tmp_path: Path, nats_server: NatsProc, database: tuple[str, str]
) -> None:
    db_url, _ = database
    web_port = free_port()
    common = dict(
        mode="distributed",
        nats_url=nats_server.url,
        database_url=db_url,
        secret_key=SECRET,
        sim_speed=240,
        history_days=0,
        sim_symbols="BTC/USD,ETH/USD",
        core_ack_wait_s=4,
        eval_timeout_s=3,
        data_dir=tmp_path / "data",
    )

    core_metrics = free_port()

    def proc(name: str, *args: str, **extra: object) -> Proc:
        port = core_metrics if name.startswith("core") else free_port()
        return Proc(list(args), env_for(**common, metrics_port=port, **extra), tmp_path / f"{name}.log")

    migrate = Proc(["db", "upgrade"], env_for(**common), tmp_path / "db.log").start()
    assert migrate.p is not None and migrate.p.wait(90) == 0, migrate.tail()
    procs = {
        "eval1": proc("eval1", "run", "eval").start(),
        "eval2": proc("eval2", "run", "eval").start(),
        "core": proc("core", "run", "core").start(),
        "exchange": proc("exchange", "run", "exchange", "--exchange", "sim").start(),
        "web": proc("web", "run", "web", port=web_port).start(),
    }
    try:
        base = f"http://127.0.0.1:{web_port}"
        wait_until(
            lambda: httpx.get(f"{base}/api/health", timeout=2).status_code == 200,
            timeout=60,
            what="web",
            proc=procs["web"],
        )
        user = User(base, "dist@example.com")
        wait_until(
            lambda: len(user.items("/api/markets")) >= 2, timeout=60, what="markets", proc=procs["exchange"]
        )
        assignments = [
            user.trade_setup(GOOD, symbol=s, name=f"flip-{i}")
            for i, s in enumerate(["BTC/USD", "ETH/USD"] * 5)
        ]
        first = {a["id"]: None for a in assignments}

        def evaluated() -> bool:
            return all(user.items("/api/evaluations", assignment_id=a["id"], limit=1) for a in assignments)

        wait_until(evaluated, timeout=60, what="first evaluations", proc=procs["core"])
        for a in assignments:
            first[a["id"]] = min(
                e["candle_time"] for e in user.items("/api/evaluations", assignment_id=a["id"], limit=500)
            )

        rng = random.Random(
            int(os.environ.get("TRADEWIND_TEST_KILL_SEED", "7"))
        )  # other seeds, other moments
        # Under load, at random moments, SIGKILL each component in turn (the NATS server itself among them)
        # and start it again; the order puts a worker's and core's deaths on both sides of the others'.
        for n, victim in enumerate(("eval1", "core", "exchange", "nats", "eval2", "web", "core")):
            time.sleep(rng.uniform(0.5, 2.5))
            if victim == "nats":
                nats_server.kill()
                time.sleep(rng.uniform(0.2, 1.0))
                nats_server.start()
                continue
            procs[victim].kill()
            time.sleep(rng.uniform(0.2, 1.0))
            dead = procs[victim]  # back on the same settings and ports, as its Deployment would bring it back
            procs[victim] = Proc(dead.args, dead.env, tmp_path / f"{victim}-again{n}.log").start()
        # After the last restart, every assignment must go on to be evaluated on ten newer candles.
        newest = query(db_url, "SELECT max(time) FROM candles WHERE tf='1m'")[0][0] + 10 * 60_000

        def caught_up() -> bool:
            rows = query(
                db_url, "SELECT assignment_id, max(candle_time) FROM evaluations GROUP BY assignment_id"
            )
            return len(rows) == len(first) and all(t >= newest for _, t in rows)

        wait_until(caught_up, timeout=120, what="core to catch up after the kills", proc=procs["core"])

        candles = query(db_url, "SELECT market_id, time FROM candles WHERE tf='1m' ORDER BY market_id, time")
        by_market: dict[int, list[int]] = {}
        for mid, t in candles:
            by_market.setdefault(mid, []).append(t)
        for times in by_market.values():
            gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b - a != 60_000]
            assert not gaps, f"missing candles: {gaps[:5]}"
        market_of = dict(query(db_url, "SELECT id, market_id FROM assignments"))
        evals = query(db_url, "SELECT assignment_id, candle_time, status FROM evaluations")
        seen: dict[int, list[int]] = {}
        for aid, t, status in evals:
            seen.setdefault(aid, []).append(t)
            assert status == "ok"
        for aid, start in first.items():
            times = by_market[market_of[aid]]
            last = min(max(seen[aid]), times[-1])  # candles stored after the snapshot above are not checked
            expected = [t for t in times if start <= t <= last]
            assert sorted(t for t in seen[aid] if t <= last) == expected, (
                f"assignment {aid}: evaluations missing or doubled"
            )

        # Orders: one per decision at most, each settled once the reconciler has asked about those whose
        # call a kill cut off, and the exchange's own record agrees with ours client id by client id.
        def settled() -> bool:
            return not query(
                db_url,
                f"SELECT id FROM orders WHERE status IN ('pending', 'open') AND candle_time < {newest}",
            )

        wait_until(
            settled, timeout=90, what="the reconciler to settle the cut-off orders", proc=procs["core"]
        )
        orders = query(
            db_url,
            "SELECT client_order_id, assignment_id, candle_time, status FROM orders "
            f"WHERE candle_time < {newest}",
        )
        cids = [o[0] for o in orders]
        assert len(cids) > 5 * len(first) and len(cids) == len(set(cids)), "an order placed twice"
        decisions = [(o[1], o[2]) for o in orders]
        assert len(decisions) == len(set(decisions)), "a decision made two orders"
        assert all(status in ("filled", "rejected", "not_placed") for *_, status in orders), orders
        on_exchange = dict(query(db_url, "SELECT client_order_id, status FROM paper_fills"))
        ours = {cid: status for cid, _, _, status in orders}
        filled_there = {cid for cid, status in on_exchange.items() if status == "filled"}
        assert {cid for cid, status in ours.items() if status == "filled"} <= filled_there
        every_intent = {cid for (cid,) in query(db_url, "SELECT client_order_id FROM orders")}
        assert set(on_exchange) <= every_intent, "an order on the exchange that core has no intent for"
        for cid, status in on_exchange.items():
            if cid in ours:
                assert ours[cid] == status, f"{cid}: {ours[cid]} here, {status} on the exchange"
        # The web app, killed and started again, serves the user what happened.
        assert user.items("/api/orders", limit=5)
        # Both workers answered batches: core counts them by worker name in its metrics.
        metrics = wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{core_metrics}/metrics", timeout=5).text,
            timeout=30,
            what="core metrics",
            proc=procs["core"],
        )
        answered = [
            line
            for line in metrics.splitlines()
            if line.startswith("tradewind_core_eval_batches_total{") and not line.endswith(" 0.0")
        ]
        assert len(answered) >= 2, answered
    finally:
        for p in procs.values():
            p.stop(15)
