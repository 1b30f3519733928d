"""The quote rules of the trading model: post-only, fills when the market trades through, the inventory
limit and the cash. The paper engine, core and the backtest call these; here they are held to the rules
docs/backtesting.md gives users."""

from __future__ import annotations

from decimal import Decimal

from tradewind.trading import model

D = Decimal
Q = model.Quote


def test_post_only_refuses_a_quote_that_would_take() -> None:
    bid, ask = D("99.9"), D("100.1")
    assert model.quote_takes("buy", D("100.1"), bid, ask)  # at the ask: takes
    assert model.quote_takes("buy", D("101"), bid, ask)
    assert not model.quote_takes("buy", D("100.0"), bid, ask)  # inside the spread: rests
    assert model.quote_takes("sell", D("99.9"), bid, ask)
    assert not model.quote_takes("sell", D("100.0"), bid, ask)


def test_a_quote_fills_only_when_the_market_trades_through_it() -> None:
    assert model.quote_crossed("buy", D(100), D("99.99"), D(101))
    assert not model.quote_crossed("buy", D(100), D(100), D(101))  # a trade at its price: not counted
    assert model.quote_crossed("sell", D(100), D(99), D("100.01"))
    assert not model.quote_crossed("sell", D(100), D(99), D(100))
    one_trade = D("99.5")
    assert model.quote_crossed("buy", D(100), one_trade, one_trade)
    assert not model.quote_crossed("sell", D(100), one_trade, one_trade)


def test_a_quote_fills_whole_at_its_price_with_the_maker_fee() -> None:
    costs = model.Costs(taker_fee=D("0.002"), maker_fee=D("0.001"), slippage_bps=D(50))
    f = model.quote_fill(Q("buy", D(100), D(2)), costs, time=5)
    assert (f.price, f.amount, f.fee, f.time) == (D(100), D(2), D("0.200"), 5)  # no slippage, maker fee
    assert f.cash == D("-200.200")
    s = model.quote_fill(Q("sell", D(101), D(2)), costs)
    assert s.cash == D(202) - D("0.202")


def test_the_inventory_limit_and_the_cash_cut_quotes() -> None:
    costs = model.Costs(maker_fee=D("0.001"))
    quotes = [Q("buy", D(100), D(1)), Q("sell", D(102), D(1))]
    # flat, plenty of cash, limit 0.5: the buy is cut to 0.5, nothing to sell
    assert model.clip_quotes(quotes, D(0), D(10_000), costs, D("0.5")) == [Q("buy", D(100), D("0.5"))]
    # holding 0.5 at the limit: no buy; the sell is cut to what is held
    assert model.clip_quotes(quotes, D("0.5"), D(10_000), costs, D("0.5")) == [Q("sell", D(102), D("0.5"))]
    # cash for 0.4995... of a buy with its fee, floored to 1e-8
    (buy,) = model.clip_quotes(quotes[:1], D(0), D(50), costs)
    assert buy.amount == (D(50) / (D(100) * D("1.001"))).quantize(model.QTY, rounding="ROUND_DOWN")
    assert buy.amount * buy.price * D("1.001") <= 50
    # no limit and no position: the buy as asked
    assert model.clip_quotes(quotes, D(0), D(10_000), costs) == [quotes[0]]
    assert model.clip_quotes(quotes, D(0), D(0), costs) == []


def test_quote_cash_is_the_capital_less_what_the_inventory_cost() -> None:
    assert model.quote_cash(D(1000), D(400)) == D(600)
    assert model.quote_cash(D(1000), D(1200)) == 0
