"""The fill model shared by backtests and the paper engine.

A decision taken on candle i's close fills at candle i+1's open. ``long`` from flat buys with all the
cash: ``qty = cash / (price × (1 + fee))``; ``short`` sells the whole position; ``neutral`` does
nothing. The fee is charged on the traded value; slippage moves the price against the trade.
Floats here: backtests are research figures (the paper engine books money in Decimal).
"""

from __future__ import annotations


def buy_all(cash: float, open_price: float, fee: float, slippage: float = 0.0) -> tuple[float, float, float]:
    """(qty, price, fee paid) of buying with all the cash at the next open."""
    price = open_price * (1 + slippage)
    qty = cash / (price * (1 + fee))
    return qty, price, qty * price * fee


def sell_all(qty: float, open_price: float, fee: float, slippage: float = 0.0) -> tuple[float, float, float]:
    """(cash received, price, fee paid) of selling the whole position at the next open."""
    price = open_price * (1 - slippage)
    value = qty * price
    paid = value * fee
    return value - paid, price, paid
