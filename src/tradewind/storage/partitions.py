"""Time partitions of the big tables on PostgreSQL (native declarative partitioning).

``evaluations`` (by ``candle_time``) and ``ticks`` (by ``time``), both epoch ms, are partitioned by
calendar month (UTC): inserts touch only the current month's indexes however long the platform has run,
the retention pruner works on small partitions, and a month of ticks past retention is dropped whole.
``orders`` is not partitioned: its client order id must stay unique across all time, and a unique index
on a partitioned table has to include the partition key. It needs no partitions to keep its inserts cheap:
every one of its indexes grows at one end (issue 17, migration 0011: the client order id leads with the
candle, an assignment's orders are found by blocks of ids).

Migration 0006 turns the tables into partitioned ones; the leading core creates the months ahead
(``ensure``, with every prune). Rows of a month with no partition of its own land in the table's
``_default`` partition rather than being refused. SQLite has no partitions: everything here is a no-op
there.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import text

log = logging.getLogger(__name__)
TABLES = {"evaluations": "candle_time", "ticks": "time"}  # table -> its partition key (epoch ms)
AHEAD_MONTHS = 3


def month_start(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, 1, tzinfo=dt.UTC)


def next_month(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=dt.UTC)


def name_of(table: str, month: dt.datetime) -> str:
    return f"{table}_y{month.year}m{month.month:02d}"


def ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def create_sql(table: str, month: dt.datetime) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {name_of(table, month)} PARTITION OF {table} "
        f"FOR VALUES FROM ({ms(month)}) TO ({ms(next_month(month))})"
    )


def months(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """Every month from the one holding ``first`` to the one holding ``last``."""
    out, m = [], month_start(first)
    while m <= last:
        out.append(m)
        m = next_month(m)
    return out


async def partitions(conn: Any, table: str) -> dict[str, tuple[int, int] | None]:
    """The table's partitions: name -> (from, to) in epoch ms, None for the default one."""
    rows = (
        await conn.execute(
            text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"
            ),
            {"t": table},
        )
    ).all()
    out: dict[str, tuple[int, int] | None] = {}
    for name, bound in rows:
        if bound == "DEFAULT":
            out[name] = None
            continue
        # FOR VALUES FROM ('1764547200000') TO ('1767225600000')
        lo, hi = (int(x.strip(" ()'")) for x in bound.split("FROM", 1)[1].split("TO"))
        out[name] = (lo, hi)
    return out


async def ensure(conn: Any, now: dt.datetime | None = None) -> list[str]:
    """Create the partitions of this month and the next ``AHEAD_MONTHS`` where missing; returns the new
    ones. A month whose rows already went to the default partition (the pruner did not run for months)
    keeps them there: PostgreSQL refuses the new partition, and that is logged, not raised."""
    if conn.dialect.name != "postgresql":
        return []
    now = now or dt.datetime.now(dt.UTC)
    made = []
    for table in TABLES:
        have = await partitions(conn, table)
        if not have:  # not partitioned (a database before migration 0006)
            continue
        for month in months(now, next_month(now) + dt.timedelta(days=31 * (AHEAD_MONTHS - 1))):
            name = name_of(table, month)
            if name in have:
                continue
            try:
                async with conn.begin_nested():
                    await conn.execute(text(create_sql(table, month)))
                made.append(name)
            except Exception as exc:
                log.warning("partitions: %s not created: %s", name, exc)
    return made


async def drop_expired(conn: Any, table: str, cutoff_ms: int) -> list[str]:
    """Drop the partitions of ``table`` that hold nothing at or after ``cutoff_ms`` (ticks past retention:
    a whole month at once instead of millions of deletes). Returns the dropped ones."""
    if conn.dialect.name != "postgresql":
        return []
    dropped = []
    for name, bound in (await partitions(conn, table)).items():
        if bound is not None and bound[1] <= cutoff_ms:
            await conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped
