"""The fill model shared by backtests and the paper engine.

A decision taken on candle i's close fills at candle i+1's open. ``long`` from flat buys with all the
cash: ``qty = cash / (price × (1 + fee))``; ``short`` sells the whole position; ``neutral`` does
nothing (nor does ``long`` while holding, or ``short`` while flat). The fee is charged on the traded
value; slippage moves the price against the trade.

The functions are pure and generic: give them all floats (backtests: research figures, float64 like
the candles) or all ``Decimal`` (the paper engine, which books money in Decimal); they return the
same type.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

N = TypeVar("N", float, Decimal)


def action(position: str, holding: bool) -> str | None:
    """What a decision does at the next open: ``"buy"``, ``"sell"`` or None."""
    if position == "long" and not holding:
        return "buy"
    if position == "short" and holding:
        return "sell"
    return None


def buy_all(cash: N, open_price: N, fee: N, slippage: N | int = 0) -> tuple[N, N, N]:
    """(qty, price, fee paid) of buying with all the cash at the next open."""
    price = open_price * (1 + slippage)
    qty = cash / (price * (1 + fee))
    return qty, price, qty * price * fee


def sell_all(qty: N, open_price: N, fee: N, slippage: N | int = 0) -> tuple[N, N, N]:
    """(cash received, price, fee paid) of selling the whole position at the next open."""
    price = open_price * (1 - slippage)
    value = qty * price
    paid = value * fee
    return value - paid, price, paid
