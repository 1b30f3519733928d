"""Each component in its own process on one NATS server and one database (PostgreSQL when reachable),
with components killed by SIGKILL under load: no evaluation, candle or order is lost or doubled."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.postgres import postgres_up
from tradewind.bus.embedded import EmbeddedNats

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
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT") \
        if _has("psycopg") else None
    if admin is None:
        admin_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        asyncio.run(_pg_exec(admin_url, f'CREATE DATABASE "{name}"'))
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", ""
        asyncio.run(_pg_exec(admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'))
        return
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
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


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[str]:
    server = EmbeddedNats(tmp_path / "nats")
    url = asyncio.run(server.start())
    yield url
    if server.pid:
        import os

        os.kill(server.pid, signal.SIGTERM)


def test_components_in_separate_processes_survive_sigkill(tmp_path: Path, nats_server: str, database: tuple[str, str]) -> None:
    db_url, _ = database
    web_port = free_port()
    common = dict(mode="distributed", nats_url=nats_server, database_url=db_url, secret_key=SECRET, sim_speed=240,
                  history_days=0, sim_symbols="BTC/USD,ETH/USD", core_ack_wait_s=4, eval_timeout_s=3,
                  data_dir=tmp_path / "data")  # fmt: skip

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
        wait_until(lambda: httpx.get(f"{base}/api/health", timeout=2).status_code == 200, timeout=60,
                   what="web", proc=procs["web"])  # fmt: skip
        user = User(base, "dist@example.com")
        wait_until(lambda: len(user.items("/api/markets")) >= 2, timeout=60, what="markets", proc=procs["exchange"])
        assignments = [user.trade_setup(GOOD, symbol=s, name=f"flip-{i}") for i, s in
                       enumerate(["BTC/USD", "ETH/USD"] * 5)]  # fmt: skip
        first = {a["id"]: None for a in assignments}

        def evaluated() -> bool:
            return all(user.items("/api/evaluations", assignment_id=a["id"], limit=1) for a in assignments)

        wait_until(evaluated, timeout=60, what="first evaluations", proc=procs["core"])
        for a in assignments:
            first[a["id"]] = min(e["candle_time"] for e in user.items("/api/evaluations", assignment_id=a["id"], limit=500))

        rng = random.Random(7)
        # Under load: kill an eval worker, then core, then the other worker, at random moments; restart each.
        for victim in ("eval1", "core", "eval2", "core"):
            time.sleep(rng.uniform(0.5, 2.5))
            procs[victim].kill()
            time.sleep(rng.uniform(0.2, 1.0))
            procs[victim] = proc(victim + "-again", *procs[victim].args).start()
        # After the last restart, every assignment must go on to be evaluated on ten newer candles.
        newest = query(db_url, "SELECT max(time) FROM candles WHERE tf='1m'")[0][0] + 10 * 60_000

        def caught_up() -> bool:
            rows = query(db_url, "SELECT assignment_id, max(candle_time) FROM evaluations GROUP BY assignment_id")
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
            assert sorted(t for t in seen[aid] if t <= last) == expected, f"assignment {aid}: evaluations missing or doubled"
        cids = [r[0] for r in query(db_url, "SELECT client_order_id FROM orders")]
        assert cids and len(cids) == len(set(cids))
        # Both workers answered batches: core counts them by worker name in its metrics.
        metrics = wait_until(lambda: httpx.get(f"http://127.0.0.1:{core_metrics}/metrics", timeout=5).text,
                             timeout=30, what="core metrics", proc=procs["core"])  # fmt: skip
        answered = [line for line in metrics.splitlines()
                    if line.startswith("tradewind_core_eval_batches_total{") and not line.endswith(" 0.0")]  # fmt: skip
        assert len(answered) >= 2, answered
    finally:
        for p in procs.values():
            p.stop(15)
