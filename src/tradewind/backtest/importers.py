"""Reading candle files: CSV (ISO 8601 or epoch ms), freqtrade JSON and feather, Gekko CSV.

Every reader returns rows (time ms, open, high, low, close, volume) sorted by time, with a report of
the duplicates it dropped and the gaps it saw.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tradewind.domain import tf_ms

Row = tuple[int, float, float, float, float, float]


class ImportError_(ValueError):
    """The file cannot be read as candles; the message says where and why."""


@dataclass
class Loaded:
    rows: list[Row]
    duplicates: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (after time, missing candles)
    format: str = ""

    def arrays(self) -> dict[str, np.ndarray]:
        a = np.asarray(self.rows, dtype=np.float64).reshape(-1, 6)
        return {"time": a[:, 0].astype(np.int64), "open": a[:, 1].copy(), "high": a[:, 2].copy(), "low": a[:, 3].copy(),
                "close": a[:, 4].copy(), "volume": a[:, 5].copy()}  # fmt: skip


def parse_time(value: str) -> int:
    """Epoch milliseconds from ISO 8601 or a number (seconds or milliseconds, told apart by size)."""
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
    return int(num * 1000) if num < 1e11 else int(num)


def detect(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".feather":
        return "feather"
    if suffix == ".json":
        return "freqtrade-json"
    with path.open(newline="") as fh:
        header = fh.readline().strip().lower()
    if header.startswith("start,") or ",vwp," in header:
        return "gekko"
    return "csv"


def load(path: Path, timeframe: str | None = None) -> Loaded:
    path = Path(path)
    if not path.exists():
        raise ImportError_(f"{path}: no such file")
    kind = detect(path)
    readers = {"csv": _csv, "gekko": _gekko, "freqtrade-json": _json, "feather": _feather}
    rows = readers[kind](path)
    return _finish(rows, kind, timeframe)


def _num(v: str, where: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ImportError_(f"{where}: not a number: {v!r}") from None
    if not np.isfinite(x):
        raise ImportError_(f"{where}: not a finite number: {v!r}")
    return x


def _csv(path: Path) -> list[Row]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [c.strip().lower() for c in next(reader, [])]
        body = list(reader)
    cols = {c: i for i, c in enumerate(header)}
    tcol = next((cols[c] for c in ("time", "date", "timestamp") if c in cols), None)
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in cols]
    if tcol is None or missing:
        raise ImportError_(f"{path}: a CSV needs the columns time,open,high,low,close,volume (missing {', '.join(missing or ['time'])})")
    if not body:
        return []
    try:
        times = _times([r[tcol] for r in body])
        values = np.column_stack([np.array([r[cols[c]] for r in body], dtype=np.float64)
                                  for c in ("open", "high", "low", "close", "volume")])  # fmt: skip
    except (ValueError, IndexError):
        # Vectorised parsing failed: find the line to blame, row by row.
        for n, r in enumerate(body, start=2):
            where = f"{path.name} line {n}"
            if len(r) < len(header):
                raise ImportError_(f"{where}: {len(r)} columns, the header has {len(header)}") from None
            parse_time(r[tcol])
            for c in ("open", "high", "low", "close", "volume"):
                _num(r[cols[c]], where)
        raise
    if not np.isfinite(values).all():
        bad = int(np.argwhere(~np.isfinite(values))[0][0]) + 2
        raise ImportError_(f"{path.name} line {bad}: not a finite number")
    return [(int(t), *v) for t, v in zip(times.tolist(), values.tolist(), strict=True)]  # type: ignore[misc]


def _times(texts: list[str]) -> np.ndarray:
    """Epoch ms from ISO 8601 texts (vectorised by numpy) or numbers (seconds or milliseconds)."""
    first = texts[0].strip()
    try:
        float(first)
    except ValueError:
        cleaned = [t.strip().removesuffix("Z").removesuffix("+00:00") for t in texts]
        return np.array(cleaned, dtype="datetime64[ms]").astype(np.int64)
    nums = np.array(texts, dtype=np.float64)
    return np.where(nums < 1e11, nums * 1000, nums).astype(np.int64)


def _gekko(path: Path) -> list[Row]:
    rows: list[Row] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        for n, r in enumerate(reader, start=2):
            where = f"{path.name} line {n}"
            rows.append((int(_num(r["start"], where)) * 1000, *(_num(r[c], where) for c in ("open", "high", "low", "close", "volume"))))  # type: ignore[arg-type]
    return rows


def _json(path: Path) -> list[Row]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ImportError_(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise ImportError_(f"{path}: freqtrade JSON is a list of [ms, open, high, low, close, volume]")
    rows = []
    for n, r in enumerate(data):
        if not isinstance(r, list) or len(r) < 6:
            raise ImportError_(f"{path}: entry {n} is not [ms, open, high, low, close, volume]")
        rows.append((int(r[0]), *(_num(r[i], f"{path.name} entry {n}") for i in range(1, 6))))
    return rows  # type: ignore[return-value]


def _feather(path: Path) -> list[Row]:
    import pyarrow.feather as feather

    table = feather.read_table(path)
    cols = set(table.column_names)
    if not {"date", "open", "high", "low", "close", "volume"} <= cols:
        raise ImportError_(f"{path}: a freqtrade feather file has date,open,high,low,close,volume columns")
    dates = table.column("date").cast("int64").to_numpy()
    unit = str(table.schema.field("date").type)
    div = {"timestamp[ns, tz=UTC]": 1_000_000, "timestamp[ns]": 1_000_000, "timestamp[us, tz=UTC]": 1000,
           "timestamp[us]": 1000, "timestamp[s, tz=UTC]": 0.001}.get(unit, 1)  # fmt: skip
    times = (dates / div).astype(np.int64) if div != 1 else dates
    values = [table.column(c).to_numpy().astype(np.float64) for c in ("open", "high", "low", "close", "volume")]
    return [(int(t), *(float(v[i]) for v in values)) for i, t in enumerate(times)]  # type: ignore[misc]


def _finish(rows: list[Row], kind: str, timeframe: str | None) -> Loaded:
    if not rows:
        raise ImportError_("the file holds no candles")
    rows.sort(key=lambda r: r[0])
    out: list[Row] = []
    dups = 0
    for r in rows:
        if out and out[-1][0] == r[0]:
            dups += 1
            continue
        out.append(r)
    step = tf_ms(timeframe) if timeframe else (int(np.median(np.diff([r[0] for r in out[:1000]]))) if len(out) > 1 else 60_000)
    gaps = [(a[0], (b[0] - a[0]) // step - 1) for a, b in zip(out, out[1:], strict=False) if b[0] - a[0] > step]
    return Loaded(out, dups, gaps, kind)
