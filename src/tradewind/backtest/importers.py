"""Reading candle files: CSV (ISO 8601 or epoch times), freqtrade JSON and feather, Gekko CSV.

Every reader returns column arrays sorted by time (epoch milliseconds, UTC), with the duplicates it
dropped (the first of equal times is kept) and the gaps it saw. The formats (see docs/backtesting.md):

- CSV: a header naming ``time`` (or ``date`` / ``timestamp``), ``open``, ``high``, ``low``, ``close``,
  ``volume`` in any order and case; times as ISO 8601 (``2024-01-01T00:00:00Z``; no zone means UTC)
  or epoch seconds or milliseconds (numbers below 10^11 are seconds).
- freqtrade JSON (``.json``): ``[[ms, open, high, low, close, volume], ...]``.
- freqtrade feather (``.feather``): columns ``date`` (a timestamp, or epoch ms), ``open``, ``high``,
  ``low``, ``close``, ``volume``.
- Parquet (``.parquet``): a column ``time`` (or ``date`` / ``timestamp``: a timestamp, or epoch seconds
  or milliseconds), ``open``, ``high``, ``low``, ``close``, ``volume``; the history store's files
  (``tradewind.marketdata.history``) and freqtrade's parquet files among them.
- Gekko CSV: a header starting ``start,`` or holding ``vwp``, e.g. Gekko's candle export
  ``start,open,high,low,close,vwp,volume,trades`` (``id`` may come first); ``start`` in epoch
  seconds; ``vwp`` and ``trades`` are read past.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tradewind.domain import tf_ms

Row = tuple[int, float, float, float, float, float]
PRICES = ("open", "high", "low", "close", "volume")


class ImportError_(ValueError):  # noqa: N801 - ImportError is a builtin
    """The file cannot be read as candles; the message says where and why."""


@dataclass
class Loaded:
    """Candles read from a file, sorted by time without duplicates, and what was found on the way."""

    time: np.ndarray  # int64 epoch ms
    values: dict[str, np.ndarray]  # open, high, low, close, volume: float64
    duplicates: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (time of the candle before, candles missing)
    format: str = ""

    def __len__(self) -> int:
        return len(self.time)

    def arrays(self) -> dict[str, np.ndarray]:
        """Column arrays as the engine and the sandbox take them."""
        return {"time": self.time, **self.values}

    @property
    def rows(self) -> list[Row]:
        """(time ms, open, high, low, close, volume) tuples, for the candle store."""
        cols = [self.time.tolist()] + [self.values[c].tolist() for c in PRICES]
        return list(zip(*cols, strict=True))


def parse_time(value: str) -> int:
    """Epoch milliseconds from ISO 8601 (no zone: UTC) or a number (seconds below 10^11, else ms)."""
    v = value.strip()
    try:
        num = float(v)
    except ValueError:
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ImportError_(f"not a time: {value!r} (use ISO 8601 or epoch milliseconds)") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return int(t.timestamp() * 1000)
    if num != num or abs(num) > 1e16:
        raise ImportError_(f"not a time: {value!r}")
    return int(num * 1000) if abs(num) < 1e11 else int(num)


def detect(path: Path) -> str:
    """The file's format: csv, gekko, freqtrade-json, feather or parquet (by extension, then header)."""
    suffix = path.suffix.lower()
    if suffix == ".feather":
        return "feather"
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".json":
        return "freqtrade-json"
    with path.open("rb") as fh:
        header = fh.readline().decode(errors="replace").strip().lower().replace(" ", "")
    cols = header.split(",")
    if "start" in cols[:2] or "vwp" in cols:
        return "gekko"
    return "csv"


def load(path: Path | str, timeframe: str | None = None) -> Loaded:
    """Read a candle file. ``timeframe`` sets the candle spacing that gaps are measured against (by
    default the most common spacing in the file)."""
    path = Path(path)
    if not path.is_file():
        raise ImportError_(f"{path}: no such file")
    kind = detect(path)
    readers = {
        "csv": _csv,
        "gekko": _gekko,
        "freqtrade-json": _json,
        "feather": _feather,
        "parquet": _parquet,
    }
    times, values = readers[kind](path)
    return _finish(times, values, kind, timeframe)


# -- CSV -----------------------------------------------------------------------------------------------
def _read_table(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Columns by lower-cased name (pyarrow's CSV reader: parsed in C, ~10x the csv module)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        table = pcsv.read_csv(path)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _blame(path) from exc
    names = [n.strip().lower() for n in table.column_names]
    return {n: table.column(i) for i, n in enumerate(names)}, names


def _blame(path: Path) -> ImportError_:
    """Find the line that cannot be read (row by row, only once the fast reader has failed)."""
    if path.suffix.lower() in (".parquet", ".feather"):  # columns, not lines
        return ImportError_(f"{path.name}: a time or a price is not a number")
    with path.open(newline="", errors="replace") as fh:
        reader = csv.reader(fh)
        header = [c.strip().lower() for c in next(reader, [])]
        cols = {c: i for i, c in enumerate(header)}
        tcol = next((cols[c] for c in ("time", "date", "timestamp", "start") if c in cols), 0)
        for n, r in enumerate(reader, start=2):
            where = f"{path.name} line {n}"
            if len(r) != len(header):
                return ImportError_(f"{where}: {len(r)} columns, the header has {len(header)}")
            try:
                parse_time(r[tcol])
            except ImportError_ as exc:
                return ImportError_(f"{where}: {exc}")
            for c in PRICES:
                if c in cols:
                    try:
                        float(r[cols[c]])
                    except ValueError:
                        return ImportError_(f"{where}: {c} is not a number: {r[cols[c]]!r}")
    return ImportError_(f"{path.name}: not a readable CSV file")


def _columns(
    path: Path, cols: dict[str, Any], tnames: tuple[str, ...], what: str
) -> tuple[Any, dict[str, np.ndarray]]:
    tname = next((c for c in tnames if c in cols), None)
    missing = [c for c in PRICES if c not in cols]
    if tname is None or missing:
        need = "/".join(tnames[:1]) + "," + ",".join(PRICES)
        raise ImportError_(
            f"{path.name}: {what} needs the columns {need} (missing {', '.join(missing or [tnames[0]])})"
        )
    values = {}
    for c in PRICES:
        col = cols[c]
        try:
            values[c] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        except (TypeError, ValueError):
            raise _blame(path) from None
    return cols[tname], values


def _csv(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    cols, _ = _read_table(path)
    tcol, values = _columns(path, cols, ("time", "date", "timestamp"), "a CSV")
    return _times(path, tcol), values


def _gekko(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    cols, _ = _read_table(path)
    tcol, values = _columns(path, cols, ("start",), "a Gekko CSV")
    import pyarrow as pa

    if not pa.types.is_integer(tcol.type) and not pa.types.is_floating(tcol.type):
        raise ImportError_(f"{path.name}: Gekko's start column holds epoch seconds")
    secs = np.asarray(tcol.to_numpy(zero_copy_only=False), dtype=np.float64)
    return (secs * 1000).astype(np.int64), values


def _times(path: Path, col: Any) -> np.ndarray:
    """Epoch ms from a pyarrow column of timestamps, ISO 8601 texts or numbers (seconds or ms)."""
    import pyarrow as pa

    t = col.type
    if pa.types.is_timestamp(t):
        import pyarrow.compute as pc  # (here: it takes a few hundredths of a second to import)

        return np.asarray(
            pc.cast(col, pa.timestamp("ms", tz=t.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
        )
    if pa.types.is_integer(t):
        ints = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
        if len(ints) and ints.min() >= 1e11:  # epoch milliseconds (a Parquet or feather file's usual form)
            return ints
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        nums = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        if not np.isfinite(nums).all():
            raise _blame(path)
        return np.where(np.abs(nums) < 1e11, nums * 1000, nums).astype(np.int64)
    # Texts pyarrow did not take as timestamps (offsets, mixed forms): one by one.
    try:
        return np.array([parse_time(s) for s in col.to_pylist()], dtype=np.int64)
    except (ImportError_, AttributeError):
        raise _blame(path) from None


# -- freqtrade -----------------------------------------------------------------------------------------
def _json(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportError_(f"{path.name}: not JSON ({exc})") from None
    shape = f"{path.name}: freqtrade JSON is a list of [ms, open, high, low, close, volume]"
    if not isinstance(data, list):
        raise ImportError_(shape)
    try:
        a = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        for n, r in enumerate(data):
            if (
                not isinstance(r, list)
                or len(r) != 6
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r)
            ):
                raise ImportError_(f"{shape}; entry {n} is {json.dumps(r)[:80]}") from None
        raise ImportError_(shape) from None
    if a.ndim != 2 or a.shape[1] != 6:
        raise ImportError_(shape)
    if not np.isfinite(a[:, 0]).all():
        raise ImportError_(f"{path.name}: a time is not a number")
    return a[:, 0].astype(np.int64), {c: np.ascontiguousarray(a[:, i + 1]) for i, c in enumerate(PRICES)}


def _feather(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.feather as feather

    try:
        table = feather.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ImportError_(f"{path.name}: not a feather file ({exc})") from None
    cols = {n.lower(): table.column(n) for n in table.column_names}
    tcol, values = _columns(path, cols, ("date",), "a freqtrade feather file")
    return _times(path, tcol), values


def _parquet(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # (ParquetFile, not read_table: that one imports pyarrow.dataset, a tenth of a second of start-up)
        table = pq.ParquetFile(path).read()
    except (pa.ArrowException, OSError) as exc:
        raise ImportError_(f"{path.name}: not a Parquet file ({exc})") from None
    cols = {n.lower(): table.column(n) for n in table.column_names}
    tcol, values = _columns(path, cols, ("time", "date", "timestamp"), "a Parquet file")
    if tcol.null_count or any(cols[c].null_count for c in PRICES):
        raise ImportError_(f"{path.name}: a time or a price is missing (null)")
    return _times(path, tcol), values


# -- checks ----------------------------------------------------------------------------------------------
def _finish(times: np.ndarray, values: dict[str, np.ndarray], kind: str, timeframe: str | None) -> Loaded:
    if len(times) == 0:
        raise ImportError_("the file holds no candles")
    for c, v in values.items():
        if not np.isfinite(v).all():
            i = int(np.argmax(~np.isfinite(v)))
            raise ImportError_(f"candle {i + 1} (at {_iso(int(times[i]))}): {c} is not a finite number")
    diffs = np.diff(times)
    dups = 0
    if not (diffs > 0).all():  # (files are usually sorted without duplicates: then no copy is made)
        order = np.argsort(times, kind="stable")
        times = times[order]
        keep = np.ones(len(times), dtype=bool)
        keep[1:] = np.diff(times) != 0  # equal times: the first in the file stays
        dups = int(len(times) - keep.sum())
        times = times[keep]
        values = {c: v[order][keep] for c, v in values.items()}
        diffs = np.diff(times)
    gaps: list[tuple[int, int]] = []
    if len(times) > 1:
        step = tf_ms(timeframe) if timeframe else int(np.median(diffs[:1000]))
        if step > 0:
            at = np.flatnonzero(diffs > step)
            gaps = [(int(times[i]), max(1, int(diffs[i] // step) - 1)) for i in at]
    return Loaded(times, values, dups, gaps, kind)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
