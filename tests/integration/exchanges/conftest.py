"""Shared helpers of the exchange adapter tests: real market candles from the shared data folder."""

from __future__ import annotations

import csv
from datetime import datetime

from tests.shared_data import SHARED_DATA as DATA

Row = tuple[int, float, float, float, float, float]


def load_rows(name: str) -> list[Row]:
    rows: list[Row] = []
    with open(DATA / name) as f:
        for r in csv.DictReader(f):
            t = int(datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() * 1000)
            rows.append(
                (
                    t,
                    float(r["open"]),
                    float(r["high"]),
                    float(r["low"]),
                    float(r["close"]),
                    float(r["volume"]),
                )
            )
    return rows


def consecutive(rows: list[Row], n: int, step: int = 60_000) -> list[Row]:
    """The first ``n`` rows with no gap between them (the shared files have real gaps)."""
    start = 0
    for i in range(1, len(rows)):
        if rows[i][0] - rows[i - 1][0] != step:
            start = i
        elif i - start + 1 == n:
            return rows[start : i + 1]
    raise AssertionError(f"no run of {n} consecutive candles")
