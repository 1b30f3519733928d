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
    """The idempotency key of an order: one per (candle, assignment, target).

    Led by the candle's time (epoch seconds, ten digits until 2286), so a candle's intents sort together
    after every earlier candle's: their unique index grows at one end instead of taking one new entry in
    each assignment's own leaf. Short enough (<= 36 chars, [A-Za-z0-9-]) for every exchange's client-id
    field. Intents stored before issue 17 carry ``legacy_client_order_id``'s form.
    """
    return f"tw-{candle_time // 1000}-{assignment_id}-{target[0]}"


def legacy_client_order_id(client_order_id: str, assignment_id: int, candle_time: int) -> str | None:
    """The id a core before issue 17 gave the same intent (led by the assignment: ``tw-<assignment>-<candle
    s>-<l|s>``), for an assignment's intent of a candle; None for an id of any other kind (a close, a
    protective order, a quote). An intent an older core stored under it is looked for, so that its candle,
    delivered again after an upgrade, places nothing twice."""
    head = f"tw-{candle_time // 1000}-{assignment_id}-"
    target = client_order_id.removeprefix(head)
    if target == client_order_id or target not in ("l", "s"):
        return None
    return f"tw-{assignment_id}-{candle_time // 1000}-{target}"


def legacy_candle_of(client_order_id: str, assignment_id: int | None) -> int | None:
    """The candle (epoch ms) of an assignment's intent stored in the form before issue 17, else None."""
    m = _LEGACY_ORDER_ID.fullmatch(client_order_id)
    if m is None or assignment_id is None or m[1] != str(assignment_id) or m[1] == m[2]:
        return None
    return int(m[2]) * 1000


_LEGACY_ORDER_ID = re.compile(r"tw-(\d+)-(\d+)-[ls]")  # the candle intents' form before issue 17


def quote_order_id(assignment_id: int, tick_time: int, side: str) -> str:
    """The client order id of a quote: one per (tick, assignment, side), so a quote is never sent twice;
    led by the tick's time (epoch ms) like ``client_order_id``, for the same reason."""
    return f"tw-{tick_time}-{assignment_id}-q{side[0]}"


def assignment_of(client_order_id: str) -> int | None:
    """The assignment a client order id of tradewind's names, in any of its forms: an intent, a quote, a
    protective order (its entry's id and a suffix), a close (``tw-<assignment>-c<entry>``), and intents and
    quotes as ids were before issue 17 (the assignment first, then the time); None for any other id."""
    if not client_order_id.startswith("tw-"):
        return None
    parts = client_order_id[3:].split("-")
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    if parts[1].startswith("c"):
        return int(parts[0])
    if not parts[1].isdigit():
        return None
    # the time (candle seconds: 10 digits, tick milliseconds: 13) leads now; it followed the assignment before
    return int(parts[1]) if len(parts[0]) >= len(parts[1]) else int(parts[0])


#: The letter of each protective order type in its client order id.
PROTECTIVE_KINDS: dict[str, str] = {"take_profit": "p", "stop": "s", "trailing_stop": "r"}


def protective_order_id(entry_client_order_id: str, order_type: str, rev: int) -> str:
    """The client order id of a position's protective order: its entry's id, the order type's letter and
    the protection's revision (a moved stop is a new order). Core and a venue that holds the exits of an
    entry itself (the paper engine) derive the same ids, so neither places one twice."""
    return f"{entry_client_order_id}-{PROTECTIVE_KINDS[order_type]}{rev}"
