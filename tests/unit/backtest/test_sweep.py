"""Sweep specifications expand to the grid that was asked for, and points rank as asked."""

from __future__ import annotations

import pytest

from tradewind.backtest.sweep import Point, SweepError, grid, parse_sweep, rank


def test_ranges_steps_floats_and_lists() -> None:
    assert parse_sweep("fast=5..8") == ("fast", [5, 6, 7, 8])
    assert parse_sweep("slow=20..60:10") == ("slow", [20, 30, 40, 50, 60])
    assert parse_sweep("k=0.5..1.5:0.5") == ("k", [0.5, 1.0, 1.5])
    assert parse_sweep("mode=1,3,7") == ("mode", [1, 3, 7])


@pytest.mark.parametrize(
    "bad", ["fast", "=1..2", "fast=9..2", "fast=1..5:0", "fast=a..b", "fast=", "1x=1..2"]
)
def test_bad_specifications_are_refused(bad: str) -> None:
    with pytest.raises(SweepError):
        parse_sweep(bad)


def test_the_grid_is_every_combination_over_the_fixed_parameters() -> None:
    points = grid({"rsi": 14, "fast": 1}, [parse_sweep("fast=5..20"), parse_sweep("slow=20..60:5")])
    assert len(points) == 16 * 9
    assert points[0] == {"rsi": 14, "fast": 5, "slow": 20} and points[-1] == {
        "rsi": 14,
        "fast": 20,
        "slow": 60,
    }
    with pytest.raises(SweepError):
        grid({}, [parse_sweep("a=1..2"), parse_sweep("a=3..4")])


def test_rank_puts_the_best_first_and_failures_last() -> None:
    pts = [
        Point({"a": 1}, summary={"final_equity": 5.0, "max_drawdown_pct": 9.0}),
        Point({"a": 2}, summary={"final_equity": 7.0, "max_drawdown_pct": 3.0}),
        Point({"a": 3}, error="boom"),
    ]
    assert [p.params["a"] for p in rank(pts)] == [2, 1, 3]
    assert [p.params["a"] for p in rank(pts, "max_drawdown_pct")] == [2, 1, 3]
    with pytest.raises(SweepError):
        rank(pts, "luck")
