"""The trading model's rules (``tradewind.trading.model``), each on hand-made candles, through the model's
own functions (``intents``, ``Guard``, ``on_bar``) and through the backtest's fill pass (``engine.fill``);
then ``engine.fill`` against a plain candle-by-candle loop over ``model.on_bar`` on random candles and
decisions (its numpy pre-filter must never skip an event)."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewind.backtest import engine
from tradewind.trading import model
from tradewind.trading.model import Decision, Exits, Guard, Intent, Resting, Slot

D = Decimal
TF = 60_000
FREE = model.Costs(D(0), D(0))  # no fees, no slippage


def bar(t: int, o: float, h: float, lo: float, c: float) -> model.Bar:
    return model.Bar.of(t * TF, o, h, lo, c)


def x(
    size: float | None = None,
    sl: float | None = None,
    tp: float | None = None,
    ts: float | None = None,
    limit: float | None = None,
    expire: int | None = None,
) -> tuple[Any, ...]:
    """The extras of a decision, as ``decide_series`` gives them."""
    return (size, sl, tp, ts, limit, expire)


def run(
    rows: list[tuple[float, float, float, float]],
    codes: str,
    extras: dict[int, tuple[Any, ...]] | None = None,
    *,
    cash: float = 1000.0,
    fee: float = 0.0,
    maker_fee: float | None = None,
    slippage: float = 0.0,
) -> tuple[list[engine.Trade], np.ndarray]:
    """engine.fill over candles (open, high, low, close) one TF apart; ``codes`` padded with neutral."""
    a = np.array(rows, dtype=float)
    letters = np.frombuffer(codes.ljust(len(rows), "n").encode(), dtype=np.uint8)
    return engine.fill(
        letters,
        a[:, 0],
        a[:, 3],
        np.arange(len(rows), dtype=np.int64) * TF,
        cash,
        fee,
        slippage,
        extras=extras,
        highs=a[:, 1],
        lows=a[:, 2],
        maker_fee=maker_fee,
        tf_ms=TF,
    )


def floor8(x: Decimal) -> Decimal:
    return x.quantize(D("0.00000001"), rounding=ROUND_DOWN)


def size_of(capital: Decimal, reference: Decimal, size: Decimal = D(1)) -> Decimal:
    """The sizing rule, written out: floor_1e-8(capital × size / (reference × 1.0025))."""
    return floor8(capital * size / (reference * D("1.0025")))


FLAT = (100.0, 100.0, 100.0, 100.0)
QUIET = (100.0, 101.0, 99.0, 100.0)


# -- a decision acts at the next candle ------------------------------------------------------------------
def test_rule_a_decision_acts_at_the_next_candle_and_a_market_entry_fills_at_its_open() -> None:
    assert model.intents(Slot(), Decision("long")) == [Intent("enter", 1.0, None, 1, model.NO_EXITS)]
    assert model.intents(Slot(), Decision("short")) == [] and model.intents(Slot(), Decision("neutral")) == []
    assert model.intents(Slot(qty=D(1)), Decision("long")) == []  # long while long does nothing
    assert model.intents(Slot(qty=D(1)), Decision("short")) == [Intent("exit")]

    trades, equity = run([FLAT, (100, 102, 100, 102), (102.2, 104, 102, 103), (105, 106, 104, 105)], "nls")
    (t,) = trades
    assert (t.entry_time, t.entry_price, t.entry_type) == (2 * TF, 102.2, "market")
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3 * TF, 105.0, "signal")
    assert t.qty == float(size_of(D(1000), D(102)))  # sized at the decision candle's close
    assert equity[1] == 1000.0  # the decision at candle 1's close did nothing in candle 1


def test_a_market_buy_the_cash_cannot_pay_at_the_open_is_not_made() -> None:
    # not one of the rules, the model's: sized at the close with 0.25 % headroom, a gap up of
    # more than that (fee included) leaves the buy unaffordable, and a venue would refuse it
    amount = size_of(D(1000), D(100))
    assert not model.affordable(D(1000), model.fill("buy", amount, D("100.3"), "market", FREE))
    assert run([FLAT, (100.3, 101, 100, 100)], "l")[0] == []
    assert len(run([FLAT, (100.2, 101, 100, 100)], "l")[0]) == 1


def test_rule_a_decision_on_the_last_candle_does_nothing() -> None:
    trades, equity = run([FLAT, FLAT], "nl")
    assert trades == [] and equity.tolist() == [1000.0, 1000.0]


# -- the stop ---------------------------------------------------------------------------------------------
def test_rule_the_stop_triggers_when_the_low_reaches_it_and_a_gap_through_it_fills_at_the_open() -> None:
    g = Guard.at_entry(D(100), Exits(stop_loss=D("0.05")))
    assert g.stop == D(95) and g.target is None
    assert g.check(bar(0, 98, 99, 94, 96)) == (D(95), "stop_loss")  # inside the candle: at the stop
    assert g.check(bar(0, 98, 99, 95, 96)) == (D(95), "stop_loss")  # the low at the stop reaches it
    assert g.check(bar(0, 98, 99, 95.01, 96)) is None
    assert g.check(bar(0, 90, 92, 88, 91)) == (D(90), "stop_loss")  # a gap through it: at the open

    rows = [FLAT, QUIET, (90, 92, 88, 91), FLAT]
    (t,) = run(rows, "l", {0: x(sl=0.05)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (2 * TF, 90.0, "stop_loss")
    (t,) = run([FLAT, QUIET, (98, 99, 94, 96), FLAT], "l", {0: x(sl=0.05)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (2 * TF, 95.0, "stop_loss")


def test_rule_take_profit_triggers_when_the_high_reaches_it_and_fills_at_max_open_target() -> None:
    g = Guard.at_entry(D(100), Exits(take_profit=D("0.05")))
    assert g.check(bar(0, 100, 105, 99, 104)) == (D(105), "take_profit")
    assert g.check(bar(0, 100, 104.99, 99, 104)) is None
    assert g.check(bar(0, 108, 110, 107, 109)) == (D(108), "take_profit")  # a gap over it: at the open

    (t,) = run([FLAT, QUIET, (108, 110, 107, 109), FLAT], "l", {0: x(tp=0.05)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (2 * TF, 108.0, "take_profit")
    (t,) = run([FLAT, QUIET, (101, 106, 100, 103), FLAT], "l", {0: x(tp=0.05)})[0]
    assert (t.exit_price, t.exit_reason) == (105.0, "take_profit")


def test_rule_stop_and_target_inside_one_candle_take_the_stop() -> None:
    g = Guard.at_entry(D(100), Exits(stop_loss=D("0.05"), take_profit=D("0.05")))
    wide = bar(0, 100, 106, 94, 100)
    assert g.check(wide) == (D(95), "stop_loss")
    assert model.exit_fill(g, wide, D(2), FREE) == model.Fill(
        "sell", D(2), D(95), D(0), "stop", "stop_loss", 0
    )

    (t,) = run([FLAT, QUIET, (100, 106, 94, 100), FLAT], "l", {0: x(sl=0.05, tp=0.05)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (2 * TF, 95.0, "stop_loss")


# -- limit entries ----------------------------------------------------------------------------------------
def test_rule_a_limit_buy_fills_at_min_open_limit_on_the_first_candle_whose_low_reaches_it() -> None:
    limit = D(95)
    assert model.limit_buy_price(limit, bar(1, 100, 101, 94, 97)) == D(95)
    assert model.limit_buy_price(limit, bar(1, 100, 101, 95, 97)) == D(95)  # the low at the limit
    assert model.limit_buy_price(limit, bar(1, 100, 101, 95.01, 97)) is None
    assert model.limit_buy_price(limit, bar(1, 93, 94, 92, 93)) == D(93)  # a gap below it: at the open
    r = model.on_bar(
        bar(1, 93, 94, 92, 93), D(0), None, Resting(D(2), limit, model.expiry(0, TF, 1)), FREE, TF
    )
    assert [(f.side, f.price, f.order_type) for f in r.fills] == [
        ("buy", D(93), "limit")
    ] and r.resting is None

    (t,) = run([FLAT, (100, 101, 94, 97), FLAT], "l", {0: x(limit=95)})[0]
    assert (t.entry_time, t.entry_price, t.entry_type) == (TF, 95.0, "limit")
    assert t.qty == float(size_of(D(1000), D(95)))  # sized at the limit price
    (t,) = run([FLAT, (93, 94, 92, 93), FLAT], "l", {0: x(limit=95)})[0]
    assert (t.entry_price, t.qty) == (93.0, float(size_of(D(1000), D(95))))


@pytest.mark.parametrize("expire", [1, 3])
def test_rule_an_unfilled_limit_entry_is_cancelled_after_exactly_expire_candles(expire: int) -> None:
    resting = Resting(D(1), D(95), model.expiry(0, TF, expire))  # decided at candle 0's close
    above = (100.0, 101.0, 96.0, 100.0)
    r: model.Resting | None = resting
    for t in range(1, expire + 1):
        out = model.on_bar(bar(t, *above), D(0), None, r, FREE, TF)
        assert out.fills == ()
        assert (out.resting is None, out.expired) == ((True, True) if t == expire else (False, False))
        r = out.resting
    # the expire-th candle still fills; the next one cannot
    touch = (100.0, 101.0, 94.0, 100.0)
    assert model.on_bar(bar(expire, *touch), D(0), None, resting, FREE, TF).fills[0].price == D(95)
    late = model.on_bar(bar(expire + 1, *touch), D(0), None, resting, FREE, TF)
    assert late.fills == () and late.resting is None and late.expired

    rows = [FLAT] + [above] * (expire - 1)
    assert run([*rows, above, touch, FLAT], "l", {0: x(limit=95, expire=expire)})[0] == []
    (t,) = run([*rows, touch, FLAT], "l", {0: x(limit=95, expire=expire)})[0]
    assert (t.entry_time, t.entry_price) == (expire * TF, 95.0)


def test_rule_the_default_expiry_is_one_candle() -> None:
    assert model.intents(Slot(), Decision("long", limit=D(95))) == [Intent("enter", 1.0, D(95), 1)]
    assert run([FLAT, QUIET, (96, 97, 90, 92), FLAT], "l", {0: x(limit=95)})[0] == []
    assert len(run([FLAT, (96, 97, 90, 92), FLAT], "l", {0: x(limit=95)})[0]) == 1


def test_rule_short_takes_a_resting_entry_down() -> None:
    assert model.intents(Slot(entry_open=True), Decision("short")) == [Intent("cancel_entry")]
    assert model.intents(Slot(entry_open=True), Decision("long", limit=D(90))) == []  # one entry at a time
    rows = [FLAT, QUIET, (96, 97, 90, 92), FLAT]
    assert len(run(rows, "l", {0: x(limit=95, expire=3)})[0]) == 1  # it would fill at candle 2
    assert run(rows, "ls", {0: x(limit=95, expire=3)})[0] == []  # the short at candle 1's close took it down


# -- the trailing stop ------------------------------------------------------------------------------------
def test_rule_the_trailing_level_ratchets_up_and_never_down() -> None:
    g = Guard.at_entry(D(100), Exits(trailing_stop=D("0.1")))
    assert g.trail_price == D(90)  # from the entry fill price
    g = g.closed(bar(1, 100, 110, 100, 108))
    assert g.high == D(110) and g.trail_price == D(99)
    g = g.closed(bar(2, 104, 105, 100, 103))  # a lower high
    assert g.high == D(110) and g.trail_price == D(99)

    rows = [FLAT, (100, 110, 100, 108), (104, 105, 100, 103), (101, 102, 98.5, 100), FLAT]
    (t,) = run(rows, "l", {0: x(ts=0.1)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3 * TF, 99.0, "trailing_stop")  # not 105 × 0.9


def test_rule_the_trailing_level_applies_from_the_next_candle() -> None:
    g = Guard.at_entry(D(100), Exits(trailing_stop=D("0.1")))
    up = bar(2, 100, 120, 100, 115)  # its own high would put the level at 108, above its low
    assert g.check(up) is None
    g = g.closed(up)
    assert g.check(bar(3, 115, 116, 107, 110)) == (D(108), "trailing_stop")

    rows = [FLAT, QUIET, (100, 120, 100, 115), (115, 116, 107, 110), FLAT]
    (t,) = run(rows, "l", {0: x(ts=0.1)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3 * TF, 108.0, "trailing_stop")


def test_rule_the_stop_wins_a_tie_with_the_trailing_level_and_the_higher_one_counts() -> None:
    g = Guard.at_entry(D(100), Exits(stop_loss=D("0.1"), trailing_stop=D("0.1")))
    assert g.level() == (D(90), "stop_loss")
    assert g.closed(bar(1, 100, 110, 100, 108)).level() == (D(99), "trailing_stop")


# -- protection from the entry fill on --------------------------------------------------------------------
def test_rule_protection_is_active_in_a_market_entrys_own_candle() -> None:
    exits = Exits(stop_loss=D("0.05"))
    r = model.on_bar(bar(1, 100, 101, 94, 99), D(1), Guard.at_entry(D(100), exits), None, FREE, TF)
    assert [(f.side, f.price, f.reason) for f in r.fills] == [
        ("sell", D(95), "stop_loss")
    ] and r.guard is None

    (t,) = run([FLAT, (100, 101, 94, 99), FLAT], "l", {0: x(sl=0.05)})[0]
    assert (t.entry_time, t.exit_time, t.exit_price, t.exit_reason) == (TF, TF, 95.0, "stop_loss")
    (t,) = run([FLAT, (100, 106, 99, 104), FLAT], "l", {0: x(tp=0.05)})[0]
    assert (t.entry_time, t.exit_time, t.exit_price, t.exit_reason) == (TF, TF, 105.0, "take_profit")


def test_rule_protection_is_active_in_a_limit_entrys_own_candle_from_its_fill_on() -> None:
    resting = Resting(D(1), D(96), model.expiry(0, TF, 1), Exits(stop_loss=D("0.02")))
    r = model.on_bar(bar(1, 100, 101, 93, 97), D(0), None, resting, FREE, TF)
    assert [(f.side, f.price, f.order_type) for f in r.fills] == [
        ("buy", D(96), "limit"),
        ("sell", D("94.08"), "stop"),
    ]
    # the open (102) came before the fill: the take-profit fills at its level, not at the open
    resting = Resting(D(1), D(100), model.expiry(0, TF, 1), Exits(take_profit=D("0.01")))
    r = model.on_bar(bar(1, 102, 102, 99, 100), D(0), None, resting, FREE, TF)
    assert [(f.price, f.reason) for f in r.fills] == [(D(100), None), (D(101), "take_profit")]

    (t,) = run([FLAT, (100, 101, 93, 97), FLAT], "l", {0: x(limit=96, sl=0.02)})[0]
    assert (t.entry_time, t.entry_price, t.exit_time, t.exit_price) == (TF, 96.0, TF, 94.08)
    (t,) = run([FLAT, (102, 102, 99, 100), FLAT], "l", {0: x(limit=100, tp=0.01)})[0]
    assert (t.entry_price, t.exit_time, t.exit_price, t.exit_reason) == (100.0, TF, 101.0, "take_profit")


# -- moving the exits -------------------------------------------------------------------------------------
def test_rule_a_later_decision_moves_the_stop_from_the_next_candle() -> None:
    held = Slot(qty=D(1), exits=Exits(stop_loss=D("0.1"), take_profit=D("0.2")))
    assert model.intents(held, Decision("long", exits=Exits(stop_loss=D("0.02")))) == [
        Intent("protect", exits=Exits(D("0.02"), D("0.2")))  # the take-profit stays
    ]
    assert model.intents(held, Decision("neutral", exits=Exits(stop_loss=D("0.1")))) == []  # no change
    assert model.intents(Slot(), Decision("neutral", exits=Exits(stop_loss=D("0.1")))) == []  # nothing held

    # entered at 100 with its stop at 90; candle 2's close moves it to 98: candle 2's low of 97 does not
    # count, candle 3's 97.5 does
    rows = [FLAT, QUIET, (100, 101, 97, 99), (99, 100, 97.5, 99), FLAT]
    (t,) = run(rows, "lnl", {0: x(sl=0.1), 2: x(sl=0.02)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3 * TF, 98.0, "stop_loss")
    assert run(rows, "l", {0: x(sl=0.1)})[0][0].exit_reason == "end"


def test_rule_a_trailing_stop_added_later_trails_from_the_highest_high_since_entry() -> None:
    # no protection at entry (nothing kept a guard); the trail added at candle 2's close starts at 120
    rows = [FLAT, (100, 110, 100, 108), (108, 120, 107, 115), (112, 113, 107, 110), FLAT]
    (t,) = run(rows, "lnn", {2: x(ts=0.1)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3 * TF, 108.0, "trailing_stop")
    # the same with a stop (so a guard) from the entry on
    (t,) = run(rows, "lnn", {0: x(sl=0.5), 2: x(ts=0.1)})[0]
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3 * TF, 108.0, "trailing_stop")


def test_rule_a_resting_limit_entry_keeps_the_exits_it_was_placed_with() -> None:
    # the venue holds them with the order: exits decided while it rests change nothing
    resting = Slot(entry_open=True, exits=Exits(D("0.05"), D("0.1")))
    assert model.intents(resting, Decision("neutral", exits=Exits(trailing_stop=D("0.01")))) == []
    # limit 95 with stop and target, a tight trail asked for while it rests; it fills at candle 2 and the
    # target (104.5) is reached at candle 3
    rows = [FLAT, (100, 101, 96, 100), (96, 97, 94, 95), (100, 105, 99, 104), FLAT]
    (t,) = run(rows, "ln", {0: x(limit=95, expire=3, sl=0.05, tp=0.1), 1: x(ts=0.01)})[0]
    assert (t.entry_time, t.entry_price) == (2 * TF, 95.0)
    assert (t.exit_time, t.exit_price, t.exit_reason) == (3 * TF, 104.5, "take_profit")


# -- costs ------------------------------------------------------------------------------------------------
def test_rule_taker_fee_and_slippage_on_market_and_stop_fills_maker_fee_on_limit_and_take_profit() -> None:
    c = model.Costs(D("0.002"), D("0.0005"), D(10))
    assert [c.fee_rate(k) for k in model.ORDER_TYPES] == [
        D("0.002"),
        D("0.0005"),
        D("0.002"),
        D("0.0005"),
        D("0.002"),
    ]
    assert c.price("market", "buy", D(100)) == D("100.1") and c.price("market", "sell", D(100)) == D("99.9")
    assert c.price("stop", "sell", D(100)) == D("99.9") and c.price("trailing_stop", "sell", D(100)) == D(
        "99.9"
    )
    assert c.price("limit", "buy", D(100)) == D(100) and c.price("take_profit", "sell", D(100)) == D(100)
    f = model.fill("sell", D(2), D(100), "stop", c, reason="stop_loss")
    assert (f.price, f.fee, f.cash) == (D("99.9"), D("0.3996"), D("199.4004"))

    kw: dict[str, Any] = {"fee": 0.0015, "maker_fee": 0.0005, "slippage": 0.0005}
    # market entry (taker, +5 bps), stop exit (taker, -5 bps): stop = 100.05 × 0.95
    (t,) = run([FLAT, QUIET, (96, 97, 94, 95), FLAT], "l", {0: x(sl=0.05)}, **kw)[0]
    qty, entry, stop = size_of(D(1000), D(100)), D("100.05"), D("100.05") * D("0.95")
    out = stop * D("0.9995")
    assert (t.qty, t.entry_price, t.exit_price) == (float(qty), float(entry), float(out))
    assert t.pnl == pytest.approx(float(qty * out * D("0.9985") - qty * entry * D("1.0015")), abs=1e-9)
    # limit entry (maker, at its price), take-profit (maker, at its price)
    (t,) = run([FLAT, (100, 101, 94, 97), (98, 106, 97, 104), FLAT], "l", {0: x(limit=95, tp=0.1)}, **kw)[0]
    qty = size_of(D(1000), D(95))
    assert (t.entry_price, t.exit_price, t.exit_reason) == (95.0, 104.5, "take_profit")
    assert t.pnl == pytest.approx(float(qty * D("104.5") * D("0.9995") - qty * 95 * D("1.0005")), abs=1e-9)
    # signal exit and trailing stop: taker with slippage
    (t,) = run([FLAT, QUIET, (102, 103, 101, 102), FLAT], "ls", **kw)[0]
    assert (t.exit_price, t.exit_reason) == (float(D(102) * D("0.9995")), "signal")
    (t,) = run([FLAT, QUIET, (95, 96, 94, 95), FLAT], "l", {0: x(ts=0.04)}, **kw)[0]
    assert (t.exit_price, t.exit_reason) == (
        float(D(95) * D("0.9995")),
        "trailing_stop",
    )  # a gap under the level


# -- sizing, compounding, the end -------------------------------------------------------------------------
def test_rule_buys_are_sized_on_the_capital_at_the_reference_price_and_capital_compounds() -> None:
    assert model.entry_quantity(D(1000), 0.5, D(100)) == D("4.98753117") == size_of(D(1000), D(100), D("0.5"))
    assert model.entry_quantity(D(1000), 1.5, D(100)) == size_of(D(1000), D(100))  # a size above 1 is 1
    assert model.entry_quantity(D(0), 1.0, D(100)) == 0 and model.capital(D(100), D(-150)) == 0

    fee = D("0.001")
    rows = [FLAT, (100, 101, 99, 110), (120, 121, 119, 120), (120, 121, 119, 130), (140, 141, 139, 150), FLAT]
    trades, equity = run(rows, "lslsn", {2: x(size=0.5)}, fee=0.001)
    a, b = trades
    qa = size_of(D(1000), D(100))
    cash = D(1000) - qa * 100 * (1 + fee) + qa * 120 * (1 - fee)
    qb = size_of(cash, D(120), D("0.5"))  # the second buy: half the capital, at candle 2's close
    assert (a.qty, b.qty) == (float(qa), float(qb))
    final = cash - qb * 120 * (1 + fee) + qb * 140 * (1 - fee)
    assert equity[-1] == pytest.approx(float(final), abs=0.005)


def test_rule_a_position_open_at_the_end_is_valued_at_the_last_close_without_a_fee() -> None:
    trades, equity = run([FLAT, QUIET, (101, 103, 100, 102)], "l", fee=0.001)
    (t,) = trades
    assert (t.exit_time, t.exit_price, t.exit_reason) == (2 * TF, 102.0, "end")
    qty = size_of(D(1000), D(100))
    assert t.pnl == pytest.approx(float(qty * 102 - qty * 100 * D("1.001")), abs=1e-9)
    assert equity[-1] == pytest.approx(float(D(1000) - qty * 100 * D("1.001") + qty * 102), abs=1e-9)
    assert t.as_dict()["exit_reason"] == "end" and t.as_dict()["entry_type"] == "market"


# -- engine.fill against a plain candle-by-candle loop ---------------------------------------------------
def reference(
    rows: list[tuple[float, float, float, float]],
    codes: str,
    extras: dict[int, tuple[Any, ...]],
    cash: float,
    fee: float,
    maker_fee: float,
    bps: int,
) -> tuple[list[tuple[Any, ...]], list[float]]:
    """Every candle, in order: the decision of the previous close acts (market fills at the open), then
    ``model.on_bar``. The highest high since entry is kept here on its own."""
    costs = model.Costs(model.dec(fee), model.dec(maker_fee), D(bps))
    bars = [bar(t, *r) for t, r in enumerate(rows)]
    free, qty, entry_price, high = model.dec(cash), D(0), D(0), D(0)
    guard: Guard | None = None
    resting: Resting | None = None
    exits = model.NO_EXITS
    trades: list[list[Any]] = []
    equity: list[float] = []

    def book(f: model.Fill) -> None:
        nonlocal free, qty, entry_price, high
        free += f.cash
        if f.side == "buy":
            qty, entry_price, high = qty + f.amount, f.price, f.price
            trades.append([f.time, float(f.price), float(f.amount), f.order_type, float(f.value + f.fee)])
        else:
            qty -= f.amount
            cost = trades[-1].pop()
            trades[-1] += [f.time, float(f.price), f.reason, float(f.value - f.fee) - cost]

    for t, b in enumerate(bars):
        if t > 0:
            d = engine.decisions(ord(codes[t - 1]), extras.get(t - 1))
            for it in model.intents(Slot(qty, resting is not None, exits), d):
                if it.kind == "cancel_entry":
                    resting = None
                elif it.kind == "exit":
                    book(model.fill("sell", qty, b.open, "market", costs, reason="signal", time=b.time))
                    guard, exits = None, model.NO_EXITS
                elif it.kind == "protect":
                    exits = it.exits
                    if resting is not None:
                        resting = Resting(resting.amount, resting.limit, resting.expires, exits)
                    else:
                        guard = Guard.at_entry(entry_price, exits, high)
                elif it.limit is not None:
                    amount = model.entry_quantity(free, it.size, it.limit)
                    if amount > 0 and free >= amount * it.limit * (1 + costs.maker_fee):
                        resting = Resting(
                            amount, it.limit, model.expiry(bars[t - 1].time, TF, it.expire), it.exits
                        )
                else:
                    amount = model.entry_quantity(free, it.size, bars[t - 1].close)
                    f = model.fill("buy", amount, b.open, "market", costs, time=b.time)
                    if amount > 0 and model.affordable(free, f):
                        book(f)
                        exits = it.exits
                        guard = Guard.at_entry(f.price, exits) if exits else None
        if guard is not None or resting is not None:
            was = resting
            r = model.on_bar(b, qty, guard, resting, costs, TF)
            for f in r.fills:
                book(f)
            if was is not None and r.resting is None and r.fills:
                exits = was.exits
            guard, resting = r.guard, r.resting
            if qty <= 0:
                guard, exits = None, model.NO_EXITS
        if qty > 0:
            high = max(high, b.high)
        equity.append(float(free) + float(qty) * rows[t][3])
    if trades and len(trades[-1]) == 5:
        cost = trades[-1].pop()
        trades[-1] += [bars[-1].time, rows[-1][3], "end", float(qty) * rows[-1][3] - cost]
    return [tuple(t) for t in trades], equity


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Any, ...]:
    n = draw(st.integers(2, 60))
    fine = draw(st.booleans())  # integer prices (exact ties with stops and limits) or any prices
    price = st.floats(90, 110).map(lambda p: round(p, 3)) if fine else st.integers(90, 110).map(float)
    rows = []
    for _ in range(n):
        o, c, h, lo = draw(price), draw(price), draw(price), draw(price)
        rows.append((o, max(o, c, h), min(o, c, lo), c))
    codes = "".join(draw(st.lists(st.sampled_from("llnnnss"), min_size=n, max_size=n)))
    maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
    extra = st.tuples(
        maybe(st.sampled_from([0.25, 0.5, 1.0])),
        maybe(st.sampled_from([0.01, 0.02, 0.05, 0.1])),
        maybe(st.sampled_from([0.01, 0.03, 0.05, 0.1])),
        maybe(st.sampled_from([0.02, 0.05, 0.1])),
        maybe(price),
        maybe(st.sampled_from([1, 2, 3, 5])),
    )
    extras = draw(st.dictionaries(st.integers(0, n - 1), extra, max_size=n))
    fees = draw(st.sampled_from([(0.0, 0.0), (0.001, 0.001), (0.001, 0.0002), (0.002, 0.0)]))
    bps = draw(st.sampled_from([0, 5, 10]))
    return rows, codes, extras, fees, bps


@settings(max_examples=400, derandomize=True, deadline=None)
@given(scenarios())
def test_engine_fill_matches_a_candle_by_candle_loop_over_the_model(case: tuple[Any, ...]) -> None:
    rows, codes, extras, (fee, maker), bps = case
    want_trades, want_equity = reference(rows, codes, extras, 1000.0, fee, maker, bps)
    trades, equity = run(rows, codes, extras, fee=fee, maker_fee=maker, slippage=bps / 10_000)
    got = [
        (t.entry_time, t.entry_price, t.qty, t.entry_type, t.exit_time, t.exit_price, t.exit_reason, t.pnl)
        for t in trades
    ]
    assert [g[:-1] for g in got] == [w[:-1] for w in want_trades]
    assert [g[-1] for g in got] == pytest.approx([w[-1] for w in want_trades], abs=0.005)
    assert equity.tolist() == pytest.approx(want_equity, abs=0.005)
    assert equity[-1] == pytest.approx(want_equity[-1], abs=0.005)


# -- orders that cancel others first ------------------------------------------------------------------------
def test_an_order_whose_cancelled_order_filled_is_refused_and_one_cancelled_unfilled_goes() -> None:
    refused = model.refused_after_cancels
    assert refused([]) is None
    assert refused([("tw-1-q1", "canceled", D(0)), ("tw-1-s0", "rejected", D(0))]) is None
    assert refused([("tw-1-q1", "open", D(0))]) is None  # its cancel is still on its way: not a fill
    assert (
        refused([("tw-1-p0", "canceled", D(0)), ("tw-1-s0", "filled", D("0.5"))])
        == "not placed: the order it replaces (tw-1-s0) was filled meanwhile"
    )
    # a partial fill before the cancel counts: the position is not what the order was decided for
    assert (
        refused([("tw-1-q1", "canceled", D("0.001"))])
        == "not placed: the order it replaces (tw-1-q1) was partly filled (0.001) meanwhile"
    )
    assert refused([("tw-1-q1", "filled", D(0))]) is not None  # filled, its amount not known here
