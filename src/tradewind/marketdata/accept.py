"""The one door into the candle store: every path that stores candles (core's live ingest, the exchange
service's backfill, ``data download``, ``data import``) goes through here.

The rules, written once:

- **Check**: each row must have finite positive prices, a high and low that bound open and close, a
  finite non-negative volume and an open time that is a positive multiple of its timeframe's length
  (``candles.row_problem``). A bad row is not stored; it is counted under its reason.
- **Stale / open**: given ``after``, rows at or before it are dropped as stale; given ``now``, rows whose
  period has not ended by then are dropped as not closed (the live stream brings them when they close).
- **Duplicates**: a row whose (market, timeframe, time) is already stored is not stored again, and the
  stored candle wins even if the new one differs (those are counted in ``conflicts``); within one batch
  the first row of a time wins. This is the store's insert-ignore, kept for every timeframe.
- **Derived timeframes**: new 1m rows also build ``DERIVED_TIMEFRAMES`` from the stored 1m candles of
  the buckets they touch (as ``resample_rows`` does). A bucket made only of new minutes and complete
  (the 1m data reaches its last minute) is inserted; one that also holds minutes stored before, or whose
  last minute is not there yet (the partial bucket at the end), is upserted, so it is rebuilt whole.
  Rows of another timeframe are stored as they are and derive nothing.

- **History**: given ``history`` (``data import`` and ``data download``), the checked rows are also
  added to the market's Parquet files (``history.HistoryStore``), with the same rule for a time stored
  already; derived timeframes are made from its minutes when read.

Core keeps its incremental in-memory ``Resampler`` (the hot path reads nothing back): it checks a live
candle with ``candle_problem`` and stores it and the candles it closed with ``store_live``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from tradewind.domain import BASE_TIMEFRAME, DERIVED_TIMEFRAMES, tf_ms
from tradewind.marketdata.candles import OPEN, STALE, Row, bucket_start, resample_rows, row_problem
from tradewind.storage import candles as store

if TYPE_CHECKING:
    from tradewind.marketdata.history import MarketHistory

log = logging.getLogger(__name__)


@dataclass
class Accepted:
    """What the door did with a batch."""

    stored: int = 0  # new rows of the batch's timeframe written
    duplicates: int = 0  # rows already stored (or repeated in the batch): not written
    conflicts: int = 0  # of the duplicates, those that differ from the stored candle (the stored one wins)
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> rows dropped
    derived: Counter[str] = field(default_factory=Counter)  # derived timeframe -> candles written
    newest: Row | None = None  # the newest valid row of the batch (stored now or before)
    history: int = 0  # rows added to the history store (Parquet), when it was given

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def add(self, other: Accepted) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.rejected.update(other.rejected)
        self.derived.update(other.derived)
        self.history += other.history
        if other.newest is not None and (self.newest is None or other.newest[0] >= self.newest[0]):
            self.newest = other.newest

    def rejections(self) -> str:
        """``3 rejected (2 high/low do not bound open/close, 1 volume must be ...)``, or ``""``."""
        if not self.rejected:
            return ""
        why = ", ".join(f"{n:,} {reason}" for reason, n in self.rejected.most_common())
        return f"{self.rejected_total:,} rejected ({why})"


def check(
    rows: Iterable[Row], tf: str = BASE_TIMEFRAME, *, after: int | None = None, now: int | None = None
) -> tuple[list[Row], Accepted]:
    """The valid rows, sorted by time with the first of equal times kept, and the counts of what was not."""
    size = tf_ms(tf)
    report = Accepted()
    good: dict[int, Row] = {}
    for row in rows:
        problem = row_problem(row, tf)
        if problem is None and after is not None and row[0] <= after:
            problem = STALE
        if problem is None and now is not None and row[0] + size > now:
            problem = OPEN
        if problem is not None:
            report.rejected[problem] += 1
        elif row[0] in good:
            report.duplicates += 1
            report.conflicts += tuple(row) != tuple(good[row[0]])
        else:
            good[row[0]] = tuple(row)  # type: ignore[assignment]
    ordered = [good[t] for t in sorted(good)]
    report.newest = ordered[-1] if ordered else None
    return ordered, report


async def accept_rows(
    session: AsyncSession,
    market_id: int,
    tf: str,
    rows: Iterable[Row],
    *,
    after: int | None = None,
    now: int | None = None,
    history: MarketHistory | None = None,
) -> Accepted:
    """Check, de-duplicate and store ``tf`` rows of a market (and, for 1m rows, the derived timeframes);
    with ``history``, add them to the market's history store too. The caller commits."""
    good, report = check(rows, tf, after=after, now=now)
    if not good:
        return report
    if (
        history is not None
    ):  # first: should the commit fail, the next run finds these stored and adds the rest
        report.history = (await asyncio.to_thread(history.write, tf, good)).stored
    size = tf_ms(tf)
    first, last = good[0][0], good[-1][0]
    if tf == BASE_TIMEFRAME:  # the whole buckets of the widest derived timeframe: all the derivation needs
        widest = max(DERIVED_TIMEFRAMES, key=tf_ms)
        lo, hi = bucket_start(first, widest), bucket_start(last, widest) + tf_ms(widest)
    else:
        lo, hi = first, last + size
    stored = {r[0]: r for r in await store.candle_range(session, market_id, tf, lo, hi)}
    new: list[Row] = []
    for row in good:
        old = stored.get(row[0])
        if old is None:
            new.append(row)
        else:
            report.duplicates += 1
            report.conflicts += tuple(old) != row
    await store.insert_candles(session, market_id, tf, new)
    report.stored = len(new)
    if tf == BASE_TIMEFRAME and new:
        await _derive(session, market_id, new, stored, report)
    return report


async def _derive(
    session: AsyncSession, market_id: int, new: Sequence[Row], stored: dict[int, Row], report: Accepted
) -> None:
    merged = dict(stored)
    merged.update((r[0], r) for r in new)
    minutes = [merged[t] for t in sorted(merged)]
    newest = minutes[-1][0]
    fresh = {r[0] for r in new}
    for tf in DERIVED_TIMEFRAMES:
        size = tf_ms(tf)
        touched = {bucket_start(t, tf) for t in fresh}
        inside = [r for r in minutes if bucket_start(r[0], tf) in touched]
        insert: list[Row] = []
        upsert: list[Row] = []
        for candle in resample_rows(inside, tf):
            start = candle[0]
            complete = newest + 60_000 >= start + size
            only_new = all(t in fresh for t in range(start, start + size, 60_000) if t in merged)
            (insert if complete and only_new else upsert).append(candle)
        await store.insert_candles(session, market_id, tf, insert)
        await store.upsert_candles(session, market_id, tf, upsert)
        report.derived[tf] += len(insert) + len(upsert)


async def store_live(
    session: AsyncSession, market_id: int, row: Row, closed: Sequence[tuple[str, Row]]
) -> None:
    """Core's hot path: one live 1m row, already checked (``candle_problem``) and found newer than the last
    one accepted, and the derived candles core's ``Resampler`` closed with it (upserted: a late minute
    re-closes its bucket whole). The 1m row is inserted, so a redelivered candle is not stored twice."""
    await store.insert_candles(session, market_id, BASE_TIMEFRAME, [row])
    for tf, drow in closed:
        await store.upsert_candles(session, market_id, tf, [drow])
