from tradewind.core.resample import Resampler
from tradewind.marketdata import resample_rows

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000  # a UTC midnight


def row(i: int, close: float) -> tuple[int, float, float, float, float, float]:
    return (T0 + i * 60_000, close - 1, close + 2, close - 2, close, 1.0)


def test_five_minute_candle_closes_with_its_last_minute() -> None:
    r = Resampler(("5m",))
    out = [r.add(1, row(i, 100 + i)) for i in range(5)]
    assert out[:4] == [[], [], [], []]
    ((tf, candle),) = out[4]
    assert tf == "5m"
    assert candle == (T0, 99.0, 106.0, 98.0, 104.0, 5.0)


def test_a_gap_closes_the_bucket_early_with_what_it_has() -> None:
    r = Resampler(("5m",))
    r.add(1, row(0, 100))
    r.add(1, row(1, 101))
    closed = r.add(1, row(7, 107))  # minutes 2..6 never came
    assert closed == [("5m", (T0, 99.0, 103.0, 98.0, 101.0, 2.0))]


def test_the_same_minute_twice_does_not_double_the_volume() -> None:
    r = Resampler(("5m",))
    for i in (0, 1, 1, 2, 3):
        r.add(1, row(i, 100))
    ((_, candle),) = r.add(1, row(4, 100))
    assert candle[5] == 5.0


def test_markets_are_independent_and_agree_with_batch_resampling() -> None:
    r = Resampler(("5m", "15m"))
    rows = [row(i, 100 + (i % 7)) for i in range(30)]
    live = [c for x in rows for tf, c in r.add(1, x) if tf == "15m"]
    assert live == resample_rows(rows, "15m")
    assert r.add(2, row(0, 5)) == []


def test_a_late_minute_closes_its_bucket_again_with_every_minute() -> None:
    """Minute 3 comes back after 4 closed the bucket (redelivered after a failover): the 5m candle is
    emitted again, now whole, and a later minute of the next bucket is not disturbed."""
    r = Resampler(("5m",))
    for i in (0, 1, 2):
        r.add(1, row(i, 100 + i))
    ((_, without),) = r.add(1, row(4, 104))
    assert without[5] == 4.0
    r.add(1, row(5, 105))
    assert r.add(1, row(3, 110)) == [("5m", (T0, 99.0, 112.0, 98.0, 104.0, 5.0))]
    assert r.add(1, row(3, 110)) == []  # and only once
    assert r.add(1, row(1, 101)) == []  # a minute it already has
    closes = [r.add(1, row(i, 100 + i)) for i in (6, 7, 8, 9)]
    assert closes[-1] == [("5m", (T0 + 300_000, 104.0, 111.0, 103.0, 109.0, 5.0))]
