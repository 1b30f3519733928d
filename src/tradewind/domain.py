"""Plain domain types shared by every component: timeframes, market keys, positions."""

from __future__ import annotations

import re
from typing import Literal

Position = Literal["long", "short", "neutral"]
POSITIONS: tuple[str, ...] = ("long", "short", "neutral")
Side = Literal["buy", "sell"]
# What a venue is asked to place (exchanges.base.OrderSpec); tradewind's own orders also know the quote, a
# post-only limit order on the venue.
VenueOrderType = Literal["market", "limit", "stop", "take_profit", "trailing_stop"]
OrderType = Literal[VenueOrderType, "quote"]
VenueStatus = Literal["open", "filled", "canceled", "rejected"]  # an order as the venue reports it
# An order as tradewind stores it: pending until the venue answers, not_placed when it never got it.
OrderStatus = Literal["pending", VenueStatus, "not_placed"]

#: Timeframes the platform knows, in milliseconds. 1m is ingested; the rest are derived by core.resample.
TIMEFRAMES: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
BASE_TIMEFRAME = "1m"
DERIVED_TIMEFRAMES: tuple[str, ...] = ("5m", "15m", "1h", "4h", "1d")

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
_EXCHANGE_RE = re.compile(r"^[a-z0-9_]{1,32}$")


def tf_ms(tf: str) -> int:
    """Length of a timeframe in milliseconds; ValueError names the timeframe when it is unknown."""
    try:
        return TIMEFRAMES[tf]
    except KeyError:
        raise ValueError(f"unknown timeframe {tf!r}; use one of {', '.join(TIMEFRAMES)}") from None


def valid_symbol(symbol: str) -> bool:
    return bool(_SYMBOL_RE.match(symbol))


def valid_exchange(name: str) -> bool:
    return bool(_EXCHANGE_RE.match(name))


def symbol_token(symbol: str) -> str:
    """A symbol as one NATS subject token: 'BTC/USD' -> 'BTC-USD'."""
    return symbol.replace("/", "-")


def market_key(exchange: str, symbol: str) -> str:
    """Stable text key of a market, e.g. 'sim:BTC/USD'."""
    return f"{exchange}:{symbol}"


def split_symbol(symbol: str) -> tuple[str, str]:
    """('BTC', 'USD') from 'BTC/USD'."""
    base, _, quote = symbol.partition("/")
    return base, quote


def client_order_id(assignment_id: int, candle_time: int, target: str) -> str:
    """The idempotency key of an order: one per (assignment, candle, target).

    Short enough (<= 36 chars, [A-Za-z0-9-]) for every exchange's client-id field.
    """
    return f"tw-{assignment_id}-{candle_time // 1000}-{target[0]}"


def quote_order_id(assignment_id: int, tick_time: int, side: str) -> str:
    """The client order id of a quote: one per (assignment, tick, side), so a quote is never sent twice."""
    return f"tw-{assignment_id}-{tick_time}-q{side[0]}"


#: The letter of each protective order type in its client order id.
PROTECTIVE_KINDS: dict[str, str] = {"take_profit": "p", "stop": "s", "trailing_stop": "r"}


def protective_order_id(entry_client_order_id: str, order_type: str, rev: int) -> str:
    """The client order id of a position's protective order: its entry's id, the order type's letter and
    the protection's revision (a moved stop is a new order). Core and a venue that holds the exits of an
    entry itself (the paper engine) derive the same ids, so neither places one twice."""
    return f"{entry_client_order_id}-{PROTECTIVE_KINDS[order_type]}{rev}"
