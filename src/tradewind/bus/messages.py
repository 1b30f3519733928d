"""Message types on the bus: frozen msgspec structs, encoded as msgpack. Nobody writes serialization by hand.

Commands are imperative (PlaceOrder), events past tense (OrderUpdated). Money travels as decimal strings;
candle prices as floats (they feed TA-Lib as float64).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

# the domain's words for orders and positions, for the users of these messages (m.Side, ...)
from tradewind.domain import OrderStatus as OrderStatus
from tradewind.domain import OrderType as OrderType
from tradewind.domain import Position as Position
from tradewind.domain import Side as Side
from tradewind.domain import VenueOrderType as VenueOrderType
from tradewind.domain import VenueStatus as VenueStatus

T = TypeVar("T")
AckStatus = Literal[VenueStatus, "not_found", "error"]  # "error": the outcome is unknown
CloseStatus = Literal["placed", "closing", "flat", "refused", "not_found"]


class Bar(msgspec.Struct, frozen=True, kw_only=True):
    """Open time (epoch ms, UTC), prices and volume: what every candle has, on the bus and in the browser."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Candle(Bar, frozen=True, kw_only=True):
    """One OHLCV candle of a market; ``time`` is the open time in epoch milliseconds (UTC)."""

    exchange: str
    symbol: str
    tf: str
    closed: bool = True
    trace_id: str = ""
    recv_ns: int = 0  # wall clock (time.time_ns) when the adapter received the update
    # How many order updates the exchange service that published this candle (``source``, one run of it)
    # had published before it: core books those before deciding on the candle (see core.orders.settle).
    source: str = ""
    updates_seq: int = 0


class Tick(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The top of one market's book and its last trade, as the venue reported it. Ephemeral: published on
    plain NATS (``subjects.md_tick``), never stored in the stream nor redelivered; the latest one matters.
    ``time`` is the venue's time (epoch ms), ``recv_ns`` our wall clock when the adapter received it."""

    exchange: str
    symbol: str
    bid: float
    ask: float
    bid_size: float = 0.0
    ask_size: float = 0.0
    last: float = 0.0
    time: int = 0
    recv_ns: int = 0
    trace_id: str = ""


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a quoting strategy's book: a post-only limit order it wants resting."""

    side: Side
    price: float
    amount: float  # base quantity


class TickState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a tick-driven strategy sees of its own assignment (``t.position``, ``t.cash``, ``t.quotes``)."""

    position: float = 0.0  # base held
    cash: float = 0.0  # quote currency it may still spend: capital - cost of the position
    quotes: list[Quote] = []  # its quotes resting now


class EvalJob(msgspec.Struct, frozen=True, kw_only=True):
    """Evaluate one assignment's strategy on the candle named by the enclosing request (``decide``), or on
    its tick (``on_tick``, with ``state``)."""

    assignment_id: int
    strategy_id: int
    version: int
    params: dict[str, Any] = {}
    lookback: int = 500
    # The assignment's owner: a worker runs the strategy only if it is theirs (an error outcome otherwise).
    owner_id: int | None = None
    state: TickState | None = None  # a tick evaluation: the assignment's position, cash and quotes


class EvalRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A batch of evaluations for one market, timeframe and closed candle (answered by one eval worker)."""

    exchange: str
    symbol: str
    tf: str
    candle_time: int
    jobs: list[EvalJob]
    trace_id: str = ""
    recv_ns: int = 0
    sent_ns: int = 0  # when core sent the request: the worker measures queue wait from it
    # A tick evaluation: the jobs call ``on_tick(t, c, params)`` with this tick; ``candle_time`` 0 means
    # the window ends at the newest closed candle the worker has.
    tick: Tick | None = None


# omit_defaults on the hot messages: a field left at its default is not sent (a decision without exits, a
# market order) and the decoder fills it in; a thousand of them a candle travel in a few kilobytes less.
class EvalOutcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    assignment_id: int
    status: str  # "ok" | "error"
    position: Position | None = None
    size: float = 1.0
    note: str | None = None
    error: str | None = None
    duration_us: int = 0
    logs: list[str] = []
    # What a table decide returned besides position, size and note (sandbox.Decision): exits as
    # fractions of the entry's fill price (stop_loss, take_profit) or of the highest high since the entry
    # (trailing_stop); an entry at ``limit`` or better instead of at the market, open for ``expire``
    # candles (None: 1).
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    limit: float | None = None
    expire: int | None = None
    # What on_tick returned as ``{quotes = {...}}`` (an empty list: cancel them all); None: not quotes (a
    # position as from decide, or nothing at all: keep the quotes as they are).
    quotes: list[Quote] | None = None
    # The strategy's own series at this candle (``plot = {name = value}`` in decide's table), for its chart.
    plot: dict[str, float] | None = None


class EvalReply(msgspec.Struct, frozen=True, kw_only=True):
    outcomes: list[EvalOutcome]
    worker: str = ""
    queue_wait_us: int = 0


class Protect(msgspec.Struct, frozen=True, kw_only=True):
    """Exits attached to an entry, as fractions of its fill price (decimal strings)."""

    stop_loss: str | None = None
    take_profit: str | None = None
    trailing_stop: str | None = None
    rev: int = 0


class PlaceOrder(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Place an order. Credentials never travel: the adapter loads the trader's keys itself."""

    trader_id: int
    # The user the order is for. The exchange service places it only if the account is this user's: an
    # order without an owner, or for someone else's account, is refused before any money moves.
    owner_id: int | None = None
    client_order_id: str
    symbol: str
    side: Side
    amount: str  # base-asset quantity, decimal string
    type: VenueOrderType = "market"  # a quote is a limit order with post_only
    price: str | None = None  # limit price (limit, take_profit); the reference high of a trailing stop
    stop_price: str | None = None  # trigger (stop; the stop leg of a take_profit pair; a trailing level)
    trail: str | None = None  # trailing distance, a fraction of the highest price
    expires_at: int | None = None  # epoch ms: a limit order good till then
    group: str | None = None  # the protective orders of one position (one fills, the others are canceled)
    cancels: list[str] = []  # client ids to cancel before this order is placed
    protect: Protect | None = None  # exits attached to an entry (fractions of its fill price)
    post_only: bool = False  # a quote: a limit order the venue must refuse rather than fill as a taker
    trace_id: str = ""


class OrderAck(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The exchange's answer about one order (to PlaceOrder, OrderStatusRequest or CancelOrder)."""

    client_order_id: str
    status: AckStatus
    exchange_order_id: str | None = None
    filled: str = "0"
    price: str | None = None
    fee: str = "0"
    reason: str | None = None
    retryable: bool = False  # for "error": the call may not have reached the exchange
    time: int = 0  # epoch ms of the fill, when the venue says (a resting order's: its candle on the sim)


class PlaceOrders(msgspec.Struct, frozen=True, kw_only=True):
    """Several orders for one exchange in one request (core sends a chunk's orders together; the
    exchange service places them concurrently and answers once with every ack)."""

    orders: list[PlaceOrder]


class OrderAcks(msgspec.Struct, frozen=True, kw_only=True):
    acks: list[OrderAck]


class OrderStatusRequest(msgspec.Struct, frozen=True, kw_only=True):
    trader_id: int
    client_order_id: str
    symbol: str


class CancelOrder(msgspec.Struct, frozen=True, kw_only=True):
    trader_id: int
    owner_id: int | None = None  # the user it is for: the exchange service cancels only that user's orders
    client_order_id: str
    symbol: str


class BalanceRequest(msgspec.Struct, frozen=True, kw_only=True):
    trader_id: int


class BalanceReply(msgspec.Struct, frozen=True, kw_only=True):
    balances: dict[str, str] = {}  # asset -> free amount, decimal string
    error: str | None = None


class BalancesRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Several accounts' balances in one request (core's check before a candle's buys)."""

    trader_ids: list[int]


class BalancesReply(msgspec.Struct, frozen=True, kw_only=True):
    balances: dict[int, dict[str, str]] = {}  # trader -> asset -> free amount, decimal string
    errors: dict[int, str] = {}  # trader -> why its balance is unknown


class ResetPaper(msgspec.Struct, frozen=True, kw_only=True):
    """Put a paper account back to its starting cash (web -> the sim exchange). Refused while it has orders
    resting, or when it has a fill newer than ``last_fill_id`` (the newest the web saw when it checked that
    no assignment holds a position through it; None: it saw none)."""

    trader_id: int
    owner_id: int
    last_fill_id: int | None = None


class ResetReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    error: str | None = None  # why not, fit to show the user
    balances: dict[str, str] = {}  # asset -> amount after the reset, decimal string
    # the exchange's clock at the reset (epoch ms; the simulator's runs ahead of the wall clock)
    time: int = 0


class VerifyTrader(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the adapter to check a stored trading account's key with a balances call."""

    trader_id: int


class VerifyReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    error: str | None = None  # a message fit to show the user


class OrderUpdated(msgspec.Struct, frozen=True, kw_only=True):
    """An order changed state on the exchange (filled, canceled, ...)."""

    exchange: str
    trader_id: int
    client_order_id: str
    status: VenueStatus
    filled: str = "0"
    price: str | None = None
    fee: str = "0"
    fee_asset: str | None = None
    time: int = 0  # epoch ms of the fill
    reason: str | None = None
    source: str = ""  # the exchange service run that published it, and its number in that run
    seq: int = 0


class AssignmentsChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Published by web when assignments change so core.decide reloads its index."""

    assignment_id: int | None = None


class TraderChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Published by web when a trading account's limits or key change, or it is deleted: core reloads
    what it keeps about accounts, the exchange service forgets what it cached about this one."""

    trader_id: int
    deleted: bool = False


# -- one user's live events (``subjects.user_events``) ------------------------------------------------------
# The web app's live stream sends them to the browser as JSON, as they are (``type`` says which); the alerts
# component hears them too. A field that only some of one kind's events carry is UNSET in the others and
# left out of the message. web.openapi puts them in the OpenAPI document, the frontend's types come from it.


class LiveEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """What every live event is: a struct tagged by ``type``."""


class EvaluationEvent(LiveEvent, frozen=True, kw_only=True, tag="evaluation"):
    """A strategy decided on a closed candle, or on a tick (``trigger``, with its ``logs``)."""

    assignment_id: int
    exchange: str
    symbol: str
    tf: str
    candle_time: int
    status: str  # ok | error
    position: Position | None
    note: str | None
    error: str | None
    duration_ms: float
    trigger: Literal["tick"] | UnsetType = UNSET
    logs: list[str] | UnsetType = UNSET


class OrderEvent(LiveEvent, frozen=True, kw_only=True, tag="order"):
    """An order's state changed: placed, resting, canceled, refused (a fill is a FillEvent)."""

    id: int
    assignment_id: int | None
    client_order_id: str
    symbol: str
    side: Side
    amount: str  # decimal strings, as stored
    status: OrderStatus
    order_type: OrderType  # (``type`` is the event's)
    filled: str
    price: str | None
    fee: str
    reason: str | None
    exit_reason: str | None  # a filled sell: signal | stop_loss | take_profit | trailing_stop | manual


class FillEvent(OrderEvent, frozen=True, kw_only=True, tag="fill"):
    """An order filled (``status`` filled)."""


class PausedEvent(LiveEvent, frozen=True, kw_only=True, tag="paused"):
    """An assignment was paused: by core (failing evaluations, with its market) or by its owner."""

    assignment_id: int
    reason: str
    by: Literal["core", "you"]
    exchange: str | UnsetType = UNSET
    symbol: str | UnsetType = UNSET
    timeframe: str | UnsetType = UNSET


class KillSwitchEvent(LiveEvent, frozen=True, kw_only=True, tag="kill_switch"):
    """The kill switch engaged (with what it did) or was released."""

    engaged: bool
    paused_assignments: int | UnsetType = UNSET
    cancel_requests: int | UnsetType = UNSET
    flatten: bool | UnsetType = UNSET


class LossLimitEvent(LiveEvent, frozen=True, kw_only=True, tag="loss_limit"):
    """An account reached its daily loss limit: its running assignments (``paused`` of them) are paused."""

    trader_id: int
    trader_name: str
    loss: str  # decimal strings
    limit: str
    paused: int


class AlertEvent(LiveEvent, frozen=True, kw_only=True, tag="alert"):
    """An alert of the in-browser channel (the webhook's body, and the channel)."""

    id: str
    event: str
    time: str  # ISO 8601
    title: str
    text: str
    data: dict[str, Any]
    channel_id: int


class AlertFailedEvent(LiveEvent, frozen=True, kw_only=True, tag="alert_failed"):
    """An alert that could not be delivered on one of the user's channels after its attempts."""

    channel_id: int
    channel: str
    kind: str  # the channel's: webhook | telegram | email
    event: str
    title: str
    error: str | None
    attempts: int


UserEvent = (
    EvaluationEvent
    | OrderEvent
    | FillEvent
    | PausedEvent
    | KillSwitchEvent
    | LossLimitEvent
    | AlertEvent
    | AlertFailedEvent
)


class BacktestData(msgspec.Struct, frozen=True, kw_only=True):
    """Where a backtest's candles come from: a stored market and timeframe (optionally [start, end) in
    epoch ms), a candle file the worker can read (local workers of a sweep), or the candles themselves
    (``inline``: time as int64, then open, high, low, close, volume as float64, native-endian bytes;
    ``key`` names them for the worker's cache)."""

    market_id: int | None = None
    tf: str = "1m"
    start: int | None = None
    end: int | None = None
    path: str | None = None
    inline: list[bytes] | None = None
    key: str = ""


class RunBacktest(msgspec.Struct, frozen=True, kw_only=True):
    """Run one backtest and reply with its BacktestResult (a sweep point; request/reply, queue group)."""

    job_id: str
    code: str
    data: BacktestData
    name: str = "strategy"
    params: dict[str, Any] = {}
    cash: float = 10_000.0
    fee: float = 0.001  # the taker fee
    maker_fee: float | None = None  # None: the taker fee
    slippage: float = 0.0
    lookback: int = 500
    trades: bool = False  # include the trade list in the reply (sweeps rank on the metrics alone)
    upto: int | None = None  # run the first ``upto`` candles only
    # An optimisation trial: the runs of these growing prefixes (candle counts), in one pass of the strategy
    # (engine.run_staged), each stage's summary in BacktestResult.stages. After a stage the worker stops when
    # the best of the objective ``key`` so far is worse than that stage's floor (``floors``, the median
    # pruner's cut as the driver last saw it; None or absent: go on) — the driver, which tells Optuna, has
    # the last word, and asks for the stages left when the cut moved.
    stages: list[int] = []
    key: str = ""
    maximize: bool = True
    floors: list[float | None] = []
    # > 0: the worker publishes BacktestResult(running=True) to the reply subject every heartbeat_s seconds
    # from taking the job until its result, so the sender tells a dead worker from a long job
    heartbeat_s: float = 0.0


class BacktestResult(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    worker: str
    summary: dict[str, Any] = {}  # the `tradewind backtest --json` document (trades only if asked)
    error: str | None = None  # the strategy's error (also in summary) or why the job could not run
    # the worker failed, not the strategy (its process died, a limit of ours): run it again
    retry: bool = False
    running: bool = False  # a heartbeat (RunBacktest.heartbeat_s), not the result
    stages: list[dict[str, Any]] = []  # RunBacktest.stages: the summary of each stage run (the last: summary)


class StartBacktest(msgspec.Struct, frozen=True, kw_only=True):
    """Run the stored backtest row ``backtest_id`` and store its result (the worker replies at once
    with BacktestAccepted, then works)."""

    backtest_id: int


class BacktestAccepted(msgspec.Struct, frozen=True, kw_only=True):
    backtest_id: int
    worker: str


class StartStudy(msgspec.Struct, frozen=True, kw_only=True):
    """Drive the stored optimisation study ``study_id`` (ask Optuna, run its trials on the backtest workers,
    tell the results) until it has its trials; the worker replies at once with StudyAccepted."""

    study_id: int


class StudyAccepted(msgspec.Struct, frozen=True, kw_only=True):
    study_id: int
    worker: str


class StartWalkForward(msgspec.Struct, frozen=True, kw_only=True):
    """Run the stored walk-forward analysis ``walkforward_id`` and store its result (the worker replies at
    once with WalkForwardAccepted, then works)."""

    walkforward_id: int


class WalkForwardAccepted(msgspec.Struct, frozen=True, kw_only=True):
    walkforward_id: int
    worker: str


class WorkerCapacity(msgspec.Struct, frozen=True, kw_only=True):
    """A backtest worker's answer on ``backtest.capacity``: how many jobs it runs at once."""

    worker: str
    processes: int


class ClosePositions(msgspec.Struct, frozen=True, kw_only=True):
    """Close positions now with a sell at the market, as a strategy's exit would (web -> core, request/reply).

    Core closes only assignments of ``owner_id`` that trade through an account of ``owner_id``; it checks
    both itself. ``assignment_ids`` None: every open position of the owner (flatten all)."""

    owner_id: int
    assignment_ids: list[int] | None = None
    why: str = "close"  # close | flatten | kill switch: for the log


class PositionClose(msgspec.Struct, frozen=True, kw_only=True):
    """What core did about one assignment's position.

    ``status``: placed (the sell's intent is stored and its call started), closing (a close of this position
    is already on its way: the same order, not a second one), flat (nothing held), not_found (no such
    assignment of this owner), refused (``reason`` says why)."""

    assignment_id: int
    status: CloseStatus
    client_order_id: str | None = None
    amount: str | None = None  # base sold, decimal string
    reason: str | None = None


class PositionsClosed(msgspec.Struct, frozen=True, kw_only=True):
    results: list[PositionClose] = []
    error: str | None = None  # the request could not be read or handled at all


class SendTestAlert(msgspec.Struct, frozen=True, kw_only=True):
    """Send a test alert to one of ``owner_id``'s alert channels now (web -> alerts, request/reply)."""

    owner_id: int
    channel_id: int


class DeliveryResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a delivery ended: ``status`` sent | failed | not_found; ``error`` says why, fit to show the user."""

    status: str
    attempts: int = 0
    error: str | None = None


class AlertChannelsChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A user's alert channels changed (web -> alerts): what the alerts component cached about them goes."""

    owner_id: int


_encoder = msgspec.msgpack.Encoder()


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


_decoders: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}


def decode(data: bytes, type_: type[T]) -> T:
    dec: msgspec.msgpack.Decoder[T] | None = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.msgpack.Decoder(type_)
    return dec.decode(data)


_user_events = msgspec.msgpack.Decoder(UserEvent)


def decode_user_event(data: bytes) -> UserEvent:
    """One live event of a user, whichever kind (``type``) it is."""
    return _user_events.decode(data)
