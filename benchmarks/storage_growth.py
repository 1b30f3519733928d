"""Where the tick→order latency drifts as the tables grow (issue 17): the hot path's three writes per
candle — 1,000 order intents, their answers (a status update each) and 1,000 evaluation rows — timed on
the platform's own SQLite schema (migrated to head) while the tables grow, candle after candle.

Each write is one transaction of ``--assignments`` rows, as core makes it (one account per 50
assignments, client order ids as ``domain.client_order_id`` makes them). ``--old`` runs the schema and the
client order ids from before issue 17 (migration 0010, ids led by the assignment) to compare with.
``--drop-index NAME`` repeats the run without one of the indexes, ``--add-index SQL`` with one more, to see
what each costs as the tables grow. Prints the median milliseconds of each write per window of
``--window`` candles; with ``--reads``, then what the web app's reads of one assignment take (its
evaluations, orders and fills, through ``storage.repositories``) on the tables grown.

    .venv/bin/python benchmarks/storage_growth.py [--candles 300] [--assignments 1000] [--old]
        [--drop-index ix_orders_assignment] [--add-index "CREATE INDEX ix ON evaluations (assignment_id)"]
        [--reads]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import subprocess
import tempfile
import time
import types
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from tradewind.domain import client_order_id
from tradewind.storage.db import make_engine, make_session_factory
from tradewind.storage.migrate import upgrade
from tradewind.storage.models import Order
from tradewind.storage.repositories import Owned

START = 1_700_000_000_000
OLD_REVISION = "0010"  # the schema before issue 17's keys (0011)
BEFORE = "76c93f1"  # the commit before issue 17: its repository code, for --old --reads


def old_client_order_id(assignment_id: int, candle_time: int, target: str) -> str:
    """The client order id before issue 17: led by the assignment."""
    return f"tw-{assignment_id}-{candle_time // 1000}-{target[0]}"


def run(
    path: Path,
    candles: int,
    assignments: int,
    window: int,
    drop: list[str],
    add: list[str],
    cid: Callable[[int, int, str], str],
    label: str,
) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0", "foreign_keys=OFF"):
        con.execute(f"PRAGMA {pragma}")  # the platform's settings (storage.db), checkpoints in the background
    for name in drop:
        con.execute(f"DROP INDEX {name}")
    for sql in add:
        con.execute(sql)
    now = dt.datetime.now(dt.UTC).isoformat(" ")
    cols = ("owner_id, assignment_id, trader_id, client_order_id, exchange, symbol, side, amount, filled, fee, "
            "status, candle_time, created_at, updated_at, type")  # fmt: skip
    intents = f"INSERT INTO orders ({cols}) VALUES ({', '.join('?' * 15)})"
    answers = "UPDATE orders SET status = 'filled', filled = amount WHERE client_order_id = ?"
    evals = ("INSERT INTO evaluations (assignment_id, candle_time, status, position, size, logs, duration_ms, "
             "created_at) VALUES (?, ?, 'ok', 'long', 1.0, '[]', 0.05, ?)")  # fmt: skip
    times: list[tuple[float, float, float]] = []
    for c in range(candles):
        candle = START + c * 60_000
        target = "long" if c % 2 else "short"
        rows = [(1, a, 1 + a // 50, cid(a, candle, target), "sim", "BTC/USD", "buy", "0.001", "0", "0",
                 "pending", candle, now, now, "market") for a in range(1, assignments + 1)]  # fmt: skip
        took = []
        for sql, params in ((intents, rows), (answers, [(r[3],) for r in rows]),
                            (evals, [(a, candle, now) for a in range(1, assignments + 1)])):  # fmt: skip
            t = time.perf_counter()
            con.execute("BEGIN")
            con.executemany(sql, params)
            con.execute("COMMIT")
            took.append((time.perf_counter() - t) * 1000)
        times.append((took[0], took[1], took[2]))
        if c % 2 == 1:
            con.execute("PRAGMA wal_checkpoint(PASSIVE)")  # what storage.db.checkpoint_forever does
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"{label}: median ms per candle of {assignments} rows (intents / answers / evaluations)")
    for i in range(0, candles, window):
        part = times[i : i + window]
        med = [statistics.median(t[k] for t in part) for k in range(3)]
        rows_then = (i + len(part)) * assignments
        print(f"  candles {i + 1:>4}-{i + len(part):<4} ({rows_then:>9,} orders): "
              f"{med[0]:6.1f} / {med[1]:5.1f} / {med[2]:5.1f}")  # fmt: skip


def parents(path: Path, assignments: int) -> None:
    """The user, market, strategy and assignments the rows belong to (the reads join them)."""
    con = sqlite3.connect(path, isolation_level=None)
    now = dt.datetime.now(dt.UTC).isoformat(" ")
    con.execute("INSERT INTO users (id, email, password_hash, is_admin, killed, created_at) VALUES (1, 'b', '!', 0, 0, ?)", (now,))  # fmt: skip
    con.execute("INSERT INTO markets (id, exchange, symbol, active) VALUES (1, 'sim', 'BTC/USD', 1)")
    con.execute("INSERT INTO strategies (id, owner_id, name, description, latest_version, created_at, updated_at) "
                "VALUES (1, 1, 's', '', 1, ?, ?)", (now, now))  # fmt: skip
    con.executemany(
        "INSERT INTO assignments (id, owner_id, strategy_id, market_id, timeframe, allocation, params, lookback, "
        "enabled, consecutive_failures, position_qty, entry_cost, realized_pnl, trigger, min_interval_ms, "
        "created_at, updated_at) VALUES (?, 1, 1, 1, '1m', 1000, '{}', 500, 1, 0, 0, 0, 0, 'candle', 1000, ?, ?)",
        [(a, now, now) for a in range(1, assignments + 1)],
    )  # fmt: skip
    con.close()


def old_owned() -> Any:
    """``storage.repositories.Owned`` as it was before issue 17 (commit ``BEFORE``), whose reads of an
    assignment 0010's indexes led by the assignment served."""
    code = subprocess.run(
        ["git", "show", f"{BEFORE}:src/tradewind/storage/repositories.py"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("repositories_before_issue_17")
    exec(compile(code, "repositories_before_issue_17.py", "exec"), module.__dict__)  # noqa: S102 (our own code)
    return module.Owned


async def reads(url: str, assignment: int, old: bool) -> None:
    """The web app's reads of one assignment through the platform's repository (``old``: its code before
    issue 17), median ms of 7."""
    engine = make_engine(url)
    sf = make_session_factory(engine)
    owned = old_owned() if old else Owned
    asks: dict[str, Callable[[Owned], Awaitable[Sequence[Any]]]] = {
        "its newest 500 evaluations": lambda r: r.evaluations(500, None, assignment),
        "its newest 200 orders": lambda r: r.page(Order, 200, None, assignment_id=assignment),
        "its newest 200 fills": lambda r: r.order_fills(200, assignment_id=assignment),
    }
    print(f"reads of assignment {assignment} (median ms of 7):")
    for what, ask in asks.items():
        took = []
        for _ in range(7):
            async with sf() as s:
                t = time.perf_counter()
                rows = await ask(owned(s, 1))
                took.append((time.perf_counter() - t) * 1000)
        print(f"  {what:<28} {statistics.median(took):7.1f} ({len(rows)} rows)")
    await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candles", type=int, default=300)
    ap.add_argument("--assignments", type=int, default=1000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--old", action="store_true", help="the schema and client order ids before issue 17")
    ap.add_argument("--drop-index", action="append", default=[], help="an index to drop first")
    ap.add_argument("--add-index", action="append", default=[], help="a CREATE INDEX statement to run first")
    ap.add_argument("--reads", action="store_true", help="then time the web app's reads of one assignment")
    args = ap.parse_args()
    label = "before issue 17 (0010, ids led by the assignment)" if args.old else "platform schema (head)"
    if args.drop_index:
        label += f", without {', '.join(args.drop_index)}"
    if args.add_index:
        label += f", with {'; '.join(args.add_index)}"
    with tempfile.TemporaryDirectory(prefix="tw-growth-") as tmp:
        path = Path(tmp) / "tw.db"
        url = f"sqlite+aiosqlite:///{path}"
        asyncio.run(asyncio.to_thread(upgrade, url, OLD_REVISION if args.old else "head"))
        cid = old_client_order_id if args.old else client_order_id
        if args.reads:
            parents(path, args.assignments)
        run(path, args.candles, args.assignments, args.window, args.drop_index, args.add_index, cid, label)
        if args.reads:
            asyncio.run(reads(url, args.assignments // 2, args.old))


if __name__ == "__main__":
    main()
