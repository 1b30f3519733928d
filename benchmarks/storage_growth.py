"""Where the tick→order latency drifts as the tables grow (issue 17): the hot path's three writes per
candle — 1,000 order intents, their answers (a status update each) and 1,000 evaluation rows — timed on
the platform's own SQLite schema (migrated to head) while the tables grow, candle after candle.

Each write is one transaction of ``--assignments`` rows, as core makes it (one account per 50
assignments, client order ids as ``domain.client_order_id`` makes them). ``--drop-index NAME`` repeats
the run without one of the orders table's indexes, to see what each costs as the table grows. Prints the
median milliseconds of each write per window of ``--window`` candles.

    .venv/bin/python benchmarks/storage_growth.py [--candles 300] [--assignments 1000] [--drop-index ix_orders_assignment]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from tradewind.domain import client_order_id
from tradewind.storage.migrate import upgrade_async

START = 1_700_000_000_000


def run(path: Path, candles: int, assignments: int, window: int, drop: list[str]) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0", "foreign_keys=OFF"):
        con.execute(f"PRAGMA {pragma}")  # the platform's settings (storage.db), checkpoints in the background
    for name in drop:
        con.execute(f"DROP INDEX {name}")
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
        rows = [(1, a, 1 + a // 50, client_order_id(a, candle, target), "sim", "BTC/USD", "buy", "0.001", "0", "0",
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
    label = f"without {', '.join(drop)}" if drop else "platform schema"
    print(f"{label}: median ms per candle of {assignments} rows (intents / answers / evaluations)")
    for i in range(0, candles, window):
        part = times[i : i + window]
        med = [statistics.median(t[k] for t in part) for k in range(3)]
        rows_then = (i + len(part)) * assignments
        print(f"  candles {i + 1:>4}-{i + len(part):<4} ({rows_then:>9,} orders): "
              f"{med[0]:6.1f} / {med[1]:5.1f} / {med[2]:5.1f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candles", type=int, default=300)
    ap.add_argument("--assignments", type=int, default=1000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--drop-index", action="append", default=[], help="an index of orders to drop first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-growth-") as tmp:
        path = Path(tmp) / "tw.db"
        asyncio.run(upgrade_async(f"sqlite+aiosqlite:///{path}"))
        run(path, args.candles, args.assignments, args.window, args.drop_index)


if __name__ == "__main__":
    main()
