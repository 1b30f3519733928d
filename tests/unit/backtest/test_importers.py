"""Candle files in every accepted format, with duplicates and gaps reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from tradewind.backtest.importers import ImportError_, load, parse_time

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000


def test_csv_with_iso_times_is_read_sorted_without_duplicates_and_with_gaps(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text(
        "time,open,high,low,close,volume\n"
        "2024-01-01T02:00:00Z,3,3.5,2.5,3.2,30\n"
        "2024-01-01T00:00:00Z,1,1.5,0.5,1.2,10\n"
        "2024-01-01T01:00:00Z,2,2.5,1.5,2.2,20\n"
        "2024-01-01T01:00:00Z,9,9,9,9,9\n"  # a duplicate: the first one stays
        "2024-01-01T05:00:00Z,6,6.5,5.5,6.2,60\n"
    )  # two hours missing before it
    got = load(f, "1h")
    assert got.format == "csv"
    assert got.time.tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 5 * HOUR]
    assert got.values["close"].tolist() == [1.2, 2.2, 3.2, 6.2]
    assert got.duplicates == 1
    assert got.gaps == [(T0 + 2 * HOUR, 2)]
    assert got.rows[0] == (T0, 1.0, 1.5, 0.5, 1.2, 10.0)


@pytest.mark.parametrize("scale", [1, 1000])
def test_csv_with_epoch_seconds_or_milliseconds(tmp_path: Path, scale: int) -> None:
    f = tmp_path / "c.csv"
    rows = "".join(f"{(T0 // 1000 + 60 * i) * scale},{i},{i},{i},{i},1\n" for i in range(5))
    f.write_text("Timestamp,Open,High,Low,Close,Volume\n" + rows)
    got = load(f)
    assert got.time.tolist() == [T0 + 60_000 * i for i in range(5)]
    assert got.gaps == [] and got.duplicates == 0


def test_csv_times_without_a_zone_are_utc_and_offsets_are_honoured(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text(
        "date,open,high,low,close,volume\n2024-01-01 00:00:00,1,1,1,1,1\n2024-01-01T02:00:00+01:00,1,1,1,1,1\n"
    )
    assert load(f).time.tolist() == [T0, T0 + HOUR]


def test_freqtrade_json(tmp_path: Path) -> None:
    f = tmp_path / "BTC_USDT-1h.json"
    f.write_text(json.dumps([[T0 + HOUR, 2, 2, 2, 2, 2], [T0, 1, 1.5, 0.5, 1.25, 10]]))
    got = load(f)
    assert got.format == "freqtrade-json"
    assert got.time.tolist() == [T0, T0 + HOUR]
    assert got.values["close"].tolist() == [1.25, 2.0]


def test_freqtrade_feather(tmp_path: Path) -> None:
    f = tmp_path / "BTC_USDT-1h.feather"
    dates = pa.array(
        np.array([T0, T0 + HOUR, T0 + 3 * HOUR], dtype="datetime64[ms]").astype("datetime64[ns]"),
        type=pa.timestamp("ns", tz="UTC"),
    )
    table = pa.table(
        {
            "date": dates,
            "open": [1.0, 2, 3],
            "high": [1.0, 2, 3],
            "low": [1.0, 2, 3],
            "close": [1.5, 2.5, 3.5],
            "volume": [1.0, 1, 1],
        }
    )
    feather.write_feather(table, f)
    got = load(f, "1h")
    assert got.format == "feather"
    assert got.time.tolist() == [T0, T0 + HOUR, T0 + 3 * HOUR]
    assert got.values["close"].tolist() == [1.5, 2.5, 3.5]
    assert got.gaps == [(T0 + HOUR, 1)]


def test_gekko_csv(tmp_path: Path) -> None:
    f = tmp_path / "gekko.csv"
    f.write_text(
        "id,start,open,high,low,close,vwp,volume,trades\n"
        f"1,{T0 // 1000},1,2,0.5,1.5,1.2,10,4\n2,{T0 // 1000 + 60},1.5,2,1,1.75,1.6,5,2\n"
    )
    got = load(f)
    assert got.format == "gekko"
    assert got.time.tolist() == [T0, T0 + 60_000]
    assert got.values["volume"].tolist() == [10.0, 5.0]


def test_a_bad_value_is_blamed_on_its_line(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text(
        "time,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,1,1,1,1\n2024-01-01T00:01:00Z,1,x,1,1,1\n"
    )
    with pytest.raises(ImportError_, match="line 3: high is not a number"):
        load(f)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text("time,open,high,low,close\n2024-01-01T00:00:00Z,1,1,1,1\n")
    with pytest.raises(ImportError_, match="missing volume"):
        load(f)


def test_an_empty_file_and_a_non_list_json_are_refused(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("time,open,high,low,close,volume\n")
    with pytest.raises(ImportError_):
        load(tmp_path / "e.csv")
    (tmp_path / "d.json").write_text('{"a": 1}')
    with pytest.raises(ImportError_, match="list of"):
        load(tmp_path / "d.json")


def test_parse_time_takes_iso_and_epoch() -> None:
    assert parse_time("2024-01-01") == T0
    assert parse_time("2024-01-01T00:00:00Z") == T0
    assert parse_time(str(T0)) == T0
    assert parse_time(str(T0 // 1000)) == T0
    with pytest.raises(ImportError_):
        parse_time("yesterday")
