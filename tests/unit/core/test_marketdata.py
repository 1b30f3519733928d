from tradewind.bus.messages import Candle
from tradewind.marketdata import bucket_start, candle_problem


def c(**kw: float) -> Candle:
    base = dict(
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        time=1_700_000_040_000,
        open=10,
        high=11,
        low=9,
        close=10.5,
        volume=3,
    )
    base.update(kw)
    return Candle(**base)  # type: ignore[arg-type]


def test_valid_candle_has_no_problem() -> None:
    assert candle_problem(c()) is None


def test_inconsistent_or_non_finite_candles_are_rejected() -> None:
    assert "high/low" in candle_problem(c(high=9.5))
    assert "finite" in candle_problem(c(close=float("nan")))
    assert "volume" in candle_problem(c(volume=-1))
    assert "minute" in candle_problem(c(time=1_700_000_040_001))


def test_buckets_align_to_utc() -> None:
    assert bucket_start(1_700_000_040_000, "1h") % 3_600_000 == 0
    assert bucket_start(1_700_000_040_000, "1d") % 86_400_000 == 0
