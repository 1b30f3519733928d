"""The history store: candles for research in Parquet files, so a year of minutes loads in milliseconds.

``tradewind data import`` and ``tradewind data download`` write it through the market-data door
(``accept.accept_rows(..., history=...)``): the rows it gets are the ones the door checked (valid,
de-duplicated within the batch), and the database keeps receiving them as before (live trading, the web
app's charts and ``data list`` read it there). Backtests read the history store first: ``tradewind
backtest --market``, and the backtest workers (``worker.candles``) for the range it covers.

The layout, under ``{data_dir}/history``::

    {exchange}/{BASE}-{QUOTE}/{tf}/{YYYY-MM}.parquet     e.g. binance/BTC-USDT/1m/2024-03.parquet

- **One file per market, timeframe and month (UTC)**: at most 44,640 one-minute rows (about 1.5 MB), so
  adding a page of a download rewrites one small file, and a year is twelve files read in ~40 ms.
- **Columns** ``time`` (int64, epoch ms, the candle's open time), ``open``, ``high``, ``low``, ``close``,
  ``volume`` (float64), sorted by time, one row per time. Written with zstd, without dictionaries, the
  times delta-encoded and the prices byte-stream-split (the smallest and fastest to read of the
  encodings tried: 33 MB and ~40 ms for a year of generated minutes).
- **Appends** merge a month's new rows into its file: a time already stored keeps the stored candle (as
  the database does; a different new one is counted as a conflict), and the file is rewritten whole to a
  temporary name and renamed over the old one, so a reader never sees half a file. Writers of one market
  take a lock file (``.lock`` in its folder) for the read-merge-write.
- **Derived timeframes** (5m ... 1d) are not stored: they are made from the minutes when read, as the
  database's are made (``candles.resample_rows``): buckets aligned to the epoch, the open of the first
  minute, the highest high, the lowest low, the close of the last minute, the summed volume, the partial
  last bucket included. Rows imported at a timeframe of their own (``data import --timeframe 5m``) are
  stored under it as they are; where minutes of the same bucket are stored too, the bucket made from the
  minutes wins (as the database's upsert of derived candles).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tradewind.domain import BASE_TIMEFRAME, DERIVED_TIMEFRAMES, TIMEFRAMES, tf_ms

COLUMNS = ("time", "open", "high", "low", "close", "volume")
PRICES = COLUMNS[1:]
_MONTH_FILE = re.compile(r"^(\d{4})-(\d{2})\.parquet$")
_ENCODING = {"time": "DELTA_BINARY_PACKED", **{c: "BYTE_STREAM_SPLIT" for c in PRICES}}
_SCHEMA = pa.schema([("time", pa.int64()), *((c, pa.float64()) for c in PRICES)])
Arrays = dict[str, np.ndarray]


class HistoryError(ValueError):
    """The history store cannot be read or written; the message names the file and what to do."""


class NotStored(LookupError):
    """Neither store holds what was asked for; the message says what."""


@dataclass
class Written:
    """What a write did: new rows stored, rows whose time was stored already (``conflicts`` of them
    different from the stored candle, which stays)."""

    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0


def empty() -> Arrays:
    return {c: np.empty(0, dtype=np.int64 if c == "time" else np.float64) for c in COLUMNS}


def resample(a: Arrays, tf: str) -> Arrays:
    """One-minute arrays (sorted by time) as ``tf`` candles, as ``candles.resample_rows`` makes them."""
    times = a["time"]
    if not len(times):
        return empty()
    size = tf_ms(tf)
    bucket = times - times % size
    starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
    ends = np.concatenate((starts[1:], [len(times)]))
    return {
        "time": bucket[starts],
        "open": a["open"][starts],
        "high": np.maximum.reduceat(a["high"], starts),
        "low": np.minimum.reduceat(a["low"], starts),
        "close": a["close"][ends - 1],
        "volume": np.add.reduceat(a["volume"], starts),
    }


class HistoryStore:
    """The Parquet files of every market under ``root`` (``{data_dir}/history``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, settings: Any) -> HistoryStore:
        return cls(Path(settings.data_dir) / "history")

    def folder(self, exchange: str, symbol: str, tf: str) -> Path:
        return self.root / exchange / symbol.replace("/", "-") / tf

    def market(self, exchange: str, symbol: str) -> MarketHistory:
        return MarketHistory(self, exchange, symbol)

    # -- reading --------------------------------------------------------------------------------------------
    def _files(self, exchange: str, symbol: str, tf: str) -> list[tuple[int, int, Path]]:
        """(month start, next month's start, in epoch ms, path) of a timeframe's files, oldest first."""
        folder = self.folder(exchange, symbol, tf)
        if not folder.is_dir():
            return []
        out = []
        for p in folder.iterdir():
            m = _MONTH_FILE.match(p.name)
            if m:
                month = np.datetime64(f"{m.group(1)}-{m.group(2)}", "M")
                start, stop = (month + np.arange(2)).astype("datetime64[ms]").astype(np.int64).tolist()
                out.append((start, stop, p))
        return sorted(out)

    def has(self, exchange: str, symbol: str, tf: str) -> bool:
        """Whether ``tf`` candles of the market can be read: stored as they are, or made from minutes."""
        if self._files(exchange, symbol, tf):
            return True
        return tf in DERIVED_TIMEFRAMES and bool(self._files(exchange, symbol, BASE_TIMEFRAME))

    def _read_stored(self, exchange: str, symbol: str, tf: str, start: int | None, end: int | None) -> Arrays:
        parts = [
            _read_file(path)
            for month, next_month, path in self._files(exchange, symbol, tf)
            if (end is None or month < end) and (start is None or next_month > start)
        ]
        if not parts:
            return empty()
        a = {c: np.concatenate([p[c] for p in parts]) if len(parts) > 1 else parts[0][c] for c in COLUMNS}
        lo = 0 if start is None else int(np.searchsorted(a["time"], start))
        hi = len(a["time"]) if end is None else int(np.searchsorted(a["time"], end))
        if lo == 0 and hi == len(a["time"]):
            return a
        return {c: v[lo:hi] for c, v in a.items()}

    def read(
        self,
        exchange: str,
        symbol: str,
        tf: str = BASE_TIMEFRAME,
        start: int | None = None,
        end: int | None = None,
    ) -> Arrays | None:
        """The market's ``tf`` candles with open time in [start, end) as column arrays (time int64 ms,
        prices float64), oldest first; None when the store holds nothing to make them from. Raises
        HistoryError for a file it cannot read."""
        tf_ms(tf)
        if not self.has(exchange, symbol, tf):
            return None
        stored = self._read_stored(exchange, symbol, tf, start, end)
        if tf not in DERIVED_TIMEFRAMES or not self._files(exchange, symbol, BASE_TIMEFRAME):
            return stored
        size = tf_ms(tf)
        # the minutes of every bucket that opens in [start, end)
        lo = None if start is None else -(-start // size) * size
        hi = None if end is None else -(-end // size) * size
        made = resample(self._read_stored(exchange, symbol, BASE_TIMEFRAME, lo, hi), tf)
        if not len(stored["time"]):
            return made
        if not len(made["time"]):
            return stored
        both = {c: np.concatenate((made[c], stored[c])) for c in COLUMNS}
        _, first = np.unique(both["time"], return_index=True)  # sorted times; the made bucket comes first
        return {c: v[first] for c, v in both.items()}

    def span(self, exchange: str, symbol: str, tf: str, *, derived: bool = True) -> tuple[int, int] | None:
        """The open times of the first and last ``tf`` candle that ``read`` can give (with ``derived``
        false: of those stored under ``tf`` itself), from the files' statistics (no data is read); None
        when there is none."""
        spans = [s for s in (self._span(exchange, symbol, tf),) if s is not None]
        if derived and tf in DERIVED_TIMEFRAMES:
            minutes = self._span(exchange, symbol, BASE_TIMEFRAME)
            if minutes is not None:
                size = tf_ms(tf)
                spans.append((minutes[0] - minutes[0] % size, minutes[1] - minutes[1] % size))
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def whole(self, exchange: str, symbol: str, tf: str) -> tuple[int, int] | None:
        """[lo, hi): the open times in which ``read`` gives exactly the ``tf`` candles the database holds
        for what was written to both: every candle of the stored files, and of the candles made from
        minutes only the whole ones (a bucket the first or last minutes only begin may have more minutes
        in the database, stored live since). None when there is none."""
        size = tf_ms(tf)
        spans = []
        stored = self._span(exchange, symbol, tf)
        if stored is not None:
            spans.append((stored[0], stored[1] + size))
        if tf in DERIVED_TIMEFRAMES:
            minutes = self._span(exchange, symbol, BASE_TIMEFRAME)
            if minutes is not None:
                lo = -(-minutes[0] // size) * size
                hi = (minutes[1] + tf_ms(BASE_TIMEFRAME)) // size * size
                if lo < hi:
                    spans.append((lo, hi))
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def _span(self, exchange: str, symbol: str, tf: str) -> tuple[int, int] | None:
        files = self._files(exchange, symbol, tf)
        if not files:
            return None
        first, _ = _stats(files[0][2])
        _, last = _stats(files[-1][2])
        return first, last

    def summary(self) -> list[tuple[str, str, str, int, int, int]]:
        """(exchange, symbol, tf, candles, first, last) of every series stored, from the files' metadata."""
        out: list[tuple[str, str, str, int, int, int]] = []
        if not self.root.is_dir():
            return out
        for ex_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for sym_dir in sorted(p for p in ex_dir.iterdir() if p.is_dir()):
                symbol = sym_dir.name.replace("-", "/", 1)
                for tf in TIMEFRAMES:
                    files = self._files(ex_dir.name, symbol, tf)
                    if files:
                        count = sum(_open(p).metadata.num_rows for _, _, p in files)
                        first, _ = _stats(files[0][2])
                        _, last = _stats(files[-1][2])
                        out.append((ex_dir.name, symbol, tf, count, first, last))
        return out

    # -- writing --------------------------------------------------------------------------------------------
    def write(self, exchange: str, symbol: str, tf: str, rows: Sequence[Sequence[Any]] | Arrays) -> Written:
        """Add candles (rows of time, open, high, low, close, volume, or column arrays) that the door has
        checked: merged into their months' files, a stored time keeping its stored candle."""
        tf_ms(tf)
        new = _as_arrays(rows)
        report = Written()
        if not len(new["time"]):
            return report
        order = np.argsort(new["time"], kind="stable")
        new = {c: v[order] for c, v in new.items()}
        keep = np.concatenate(([True], np.diff(new["time"]) != 0))  # the first of equal times
        report.duplicates += int((~keep).sum())
        new = {c: v[keep] for c, v in new.items()}
        folder = self.folder(exchange, symbol, tf)
        folder.mkdir(parents=True, exist_ok=True)
        months = new["time"].astype("datetime64[ms]").astype("datetime64[M]")
        cuts = np.concatenate(([0], np.flatnonzero(months[1:] != months[:-1]) + 1, [len(months)]))
        with _locked(folder.parent / ".lock"):
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                part = {c: v[a:b] for c, v in new.items()}
                self._merge(folder / f"{months[a]}.parquet", part, report)
        return report

    def _merge(self, path: Path, new: Arrays, report: Written) -> None:
        if path.exists():
            old = _read_file(path)
            at = np.searchsorted(old["time"], new["time"])
            inside = at < len(old["time"])
            seen = np.zeros(len(new["time"]), dtype=bool)
            seen[inside] = old["time"][at[inside]] == new["time"][inside]
            if seen.any():
                j = at[seen]
                differ = np.zeros(int(seen.sum()), dtype=bool)
                for c in PRICES:
                    differ |= old[c][j] != new[c][seen]
                report.duplicates += int(seen.sum())
                report.conflicts += int(differ.sum())
                new = {c: v[~seen] for c, v in new.items()}
            if not len(new["time"]):
                return
            both = {c: np.concatenate((old[c], new[c])) for c in COLUMNS}
            order = np.argsort(both["time"], kind="stable")
            new_count = len(new["time"])
            new = {c: v[order] for c, v in both.items()}
        else:
            new_count = len(new["time"])
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        write_file(tmp, new)
        os.replace(tmp, path)
        report.stored += new_count


@dataclass(frozen=True)
class MarketHistory:
    """One market's part of a HistoryStore: what ``accept_rows`` writes through."""

    store: HistoryStore
    exchange: str
    symbol: str

    def write(self, tf: str, rows: Sequence[Sequence[Any]] | Arrays) -> Written:
        return self.store.write(self.exchange, self.symbol, tf, rows)

    def read(
        self, tf: str = BASE_TIMEFRAME, start: int | None = None, end: int | None = None
    ) -> Arrays | None:
        return self.store.read(self.exchange, self.symbol, tf, start, end)


def _as_arrays(rows: Sequence[Sequence[Any]] | Arrays) -> Arrays:
    if isinstance(rows, dict):
        return {c: np.asarray(rows[c], dtype=np.int64 if c == "time" else np.float64) for c in COLUMNS}
    if not len(rows):
        return empty()
    a = np.asarray(rows, dtype=np.float64)  # epoch ms are exact in a float64 (below 2**53)
    return {
        "time": a[:, 0].astype(np.int64),
        **{c: np.ascontiguousarray(a[:, i + 1]) for i, c in enumerate(PRICES)},
    }


def history_candles(
    history: HistoryStore, exchange: str, symbol: str, tf: str, start: int | None, end: int | None
) -> Arrays | None:
    """The market's ``tf`` candles in [start, end) from the history store; None when it holds none of the
    market, NotStored when it holds the market but no candle in the range. Raises HistoryError for a file
    it cannot read. (Here, not with the database's reads in ``stored``: a backtest of a market the history
    store holds imports no database library.)"""
    found = history.read(exchange, symbol, tf, start, end)
    if found is not None and not len(found["time"]):
        raise NotStored(f"the history store holds no {tf} candles of {exchange}:{symbol} in that range")
    return found


def write_file(path: Path | str, a: Arrays) -> None:
    """Candle arrays (sorted by time) as one Parquet file in the store's columns and encodings: what
    ``tradewind backtest --data FILE.parquet`` reads fastest."""
    table = pa.table(
        [np.asarray(a[c], dtype=np.int64 if c == "time" else np.float64) for c in COLUMNS], schema=_SCHEMA
    )
    pq.write_table(table, path, compression="zstd", use_dictionary=False, column_encoding=_ENCODING)


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: BaseException) -> HistoryError:
    return HistoryError(
        f"{path}: not a readable candle file of the history store ({exc}); delete it and write the month "
        "again with `tradewind data download` or `tradewind data import`"
    )


def _read_file(path: Path) -> Arrays:
    try:
        # (ParquetFile, not read_table: that one imports pyarrow.dataset, a tenth of a second of start-up)
        table = pq.ParquetFile(path).read(columns=list(COLUMNS)).select(list(COLUMNS)).cast(_SCHEMA)
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    return {c: table.column(c).to_numpy() for c in COLUMNS}


def _stats(path: Path) -> tuple[int, int]:
    """The first and last time of a file: its time column's statistics (read from the data when a writer
    left none)."""
    meta = _open(path).metadata
    lo = hi = None
    try:
        col = meta.schema.names.index("time")
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(col).statistics
            if st is None or not st.has_min_max:
                lo = hi = None
                break
            lo = st.min if lo is None else min(lo, st.min)
            hi = st.max if hi is None else max(hi, st.max)
    except ValueError:
        raise _unreadable(path, ValueError("no time column")) from None
    if lo is None or hi is None:
        times = _read_file(path)["time"]
        if not len(times):
            raise _unreadable(path, ValueError("no candles"))
        return int(times[0]), int(times[-1])
    return int(lo), int(hi)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
