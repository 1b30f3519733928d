"""The exchange adapter protocol: a handful of methods, with each venue's quirks declared as data.

Shared code never asks which exchange it talks to; it reads ``Capabilities``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from tradewind.bus.messages import Candle
from tradewind.trading import model


class ExchangeError(Exception):
    """A failure talking to an exchange. ``retryable`` says whether the same call may be repeated."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class AuthError(ExchangeError):
    """The key is wrong, expired, or lacks a permission. The message says which, for the user."""


class OrderRejected(ExchangeError):
    """The exchange refused the order (insufficient funds, bad size, ...): never retry it blindly."""


class ExchangeUnavailable(ExchangeError):
    """The exchange could not be reached or timed out: the outcome of the call is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True)
class Capabilities:
    """What a venue can do and how, read by shared code instead of `if exchange == ...`."""

    name: str
    timeframes: tuple[str, ...] = ("1m",)
    streams_candles: bool = True  # websocket candles; otherwise the adapter polls REST
    history_page_limit: int = 1000  # candles per history call
    client_id_max_len: int = 36
    client_id_numeric: bool = False  # the venue wants an integer client id (Bitfinex's cid)
    pushes_fills: bool = False  # fills arrive by callback; otherwise the service polls fetch_order
    has_sandbox: bool = False
    paper: bool = False  # a simulated venue with paper accounts
    batch_orders: bool = (
        False  # the adapter has place_orders(): a batch in one call (the sim's matching engine)
    )
    min_poll_interval_s: float = 1.0
    symbols: tuple[str, ...] = field(default_factory=tuple)
    # The order types besides "market" the venue holds itself, so that they work while tradewind is down:
    # "limit", "stop", "take_profit", "trailing_stop", and "oco" (a take-profit and a stop that cancel each
    # other). Core watches a protective exit the venue cannot hold and sends a market order instead.
    order_types: frozenset[str] = frozenset({"limit"})
    # Ticks (best bid and ask, last trade): the adapter has ``stream_ticks``; ``post_only``: it can place a
    # limit order the venue refuses rather than fill as a taker (a quote).
    streams_ticks: bool = False
    post_only: bool = False


@dataclass(frozen=True)
class Credentials:
    """Decrypted keys of a trading account; exists only inside the exchange service for one call."""

    trader_id: int
    api_key: str = ""
    api_secret: str = field(default="", repr=False)
    sandbox: bool = False
    paper: bool = False


@dataclass(frozen=True)
class Protect:
    """Exits attached to an entry order (fractions of its fill price), for a venue that holds them itself
    from the entry fill on (the paper engine): the same ones core places as protective orders."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_stop: Decimal | None = None
    rev: int = 0  # the protection's revision: part of its orders' client ids


@dataclass(frozen=True)
class OrderSpec:
    """An order. ``type``: market | limit | stop | take_profit | trailing_stop.

    - limit: ``price`` is the limit; ``expires_at`` (epoch ms) makes it good till then.
    - stop: a stop-market order triggered at ``stop_price``.
    - take_profit: a limit sell at ``price``; with ``stop_price`` as well it is a one-cancels-the-other
      pair (Bitfinex: an EXCHANGE LIMIT with the OCO flag and ``price_oco_stop``).
    - trailing_stop: ``trail`` is the distance as a fraction of the highest price since it was placed
      (``price``, the reference it starts from, if given); ``stop_price`` its current level.

    ``post_only``: a quote; the venue refuses a limit order that would take liquidity when placed.

    ``group`` names the protective orders of one position: when one fills, the venue (or core) cancels
    the others. ``cancels``: client ids of orders to cancel before this one is placed (a signal exit
    takes the position's protective orders down first). ``protect``: exits attached to an entry.
    """

    client_order_id: str
    symbol: str  # platform symbol, 'BTC/USD'
    side: str  # buy | sell
    amount: Decimal  # base quantity
    type: str = "market"
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
    expires_at: int | None = None
    group: str | None = None
    cancels: tuple[str, ...] = ()
    protect: Protect | None = None
    post_only: bool = False


@dataclass(frozen=True)
class OrderResult:
    client_order_id: str
    status: str  # open | filled | canceled | rejected
    exchange_order_id: str | None = None
    filled: Decimal = Decimal("0")
    price: Decimal | None = None
    fee: Decimal = Decimal("0")
    fee_asset: str | None = None
    reason: str | None = None
    time: int = 0


def refused_after(cancelled: Iterable[OrderResult]) -> str | None:
    """``model.refused_after_cancels`` over the results of the orders an order cancelled first: why it must
    not be placed, or None (the exchange service's and the paper engine's one reading of them)."""
    return model.refused_after_cancels((r.client_order_id, r.status, r.filled) for r in cancelled)


FillCallback = Callable[[Credentials | int, OrderResult], None]


@runtime_checkable
class ExchangeAdapter(Protocol):
    capabilities: Capabilities

    async def start(self) -> None:
        """Open connections; called once by the hosting service."""

    async def close(self) -> None: ...

    def stream_candles(self, symbols: list[str], tf: str) -> AsyncIterator[Candle]:
        """Closed candles of these markets as they happen, gaps backfilled, each minute exactly once."""
        ...

    # Optional, with ``capabilities.streams_ticks``:
    # def stream_ticks(self, symbols: list[str]) -> AsyncIterator[Tick]:
    #     """The markets' ticks as they happen (best bid and ask, their sizes, the last trade price, the
    #     venue's time, ``recv_ns``); reconnects by itself. A tick missed is not sent later."""

    async def fetch_history(self, symbol: str, tf: str, since: int, until: int | None = None) -> list[Candle]:
        """Closed candles with open time in [since, until), oldest first, at most one page."""
        ...

    async def fetch_balances(self, creds: Credentials) -> dict[str, Decimal]:
        """Free balance per asset. Raises AuthError for a bad key."""
        ...

    async def place_order(self, creds: Credentials, order: OrderSpec) -> OrderResult: ...

    async def fetch_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult | None:
        """The order with this client id, or None if the exchange never saw it."""
        ...

    async def cancel_order(self, creds: Credentials, client_order_id: str, symbol: str) -> OrderResult: ...
