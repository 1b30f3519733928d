"""Request and response bodies. Requests refuse unknown fields and carry their limits."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
)

from tradewind.bus.messages import CloseStatus
from tradewind.domain import TIMEFRAMES, OrderStatus, OrderType, Position, Side, valid_exchange

MAX_CODE = 64 * 1024
MAX_ID = (
    2**31 - 1
)  # ids are 32-bit INTEGER columns; a larger one is no object of ours (and a 500 on PostgreSQL)
Name = Annotated[str, Field(min_length=1, max_length=100)]
MAX_AMOUNT = 10**12
AMOUNT_PLACES = 12
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # ASCII only: [0-9], unlike \d, is not Unicode-aware
MAX_PARAM = 2**53  # the largest magnitude up to which a double (and so a Lua number) holds every integer


def _exact_amount(value: Any) -> Any:
    """An amount exactly as the client wrote it: a string of ASCII digits with an optional fraction, or a
    JSON integer. ``Decimal()`` alone would also read "1_000", other scripts' digits and exponents, and a
    JSON number with a fraction has already been rounded to a binary float by the JSON parser, so it is
    refused rather than stored as a value the client did not send."""
    if isinstance(value, Decimal):  # from Python code, not from a request
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float):
        raise ValueError(
            'send an amount with a fraction as a string, e.g. "0.25" (a JSON number loses digits)'
        )
    if not isinstance(value, str) or not PLAIN_DECIMAL.fullmatch(value):
        raise ValueError(
            'must be a decimal number written with the digits 0-9 and an optional point, e.g. "1000.5"'
        )
    if value.startswith("-"):
        raise ValueError("Input should be greater than 0")
    if len(value.partition(".")[2]) > AMOUNT_PLACES:
        raise ValueError(f"at most {AMOUNT_PLACES} decimal places")
    return Decimal(value)


Amount = Annotated[
    Decimal,
    BeforeValidator(_exact_amount),
    Field(gt=0, le=MAX_AMOUNT, max_digits=30, decimal_places=AMOUNT_PLACES),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_AMOUNT},
                {"type": "string", "pattern": rf"^[0-9]+(\.[0-9]{{1,{AMOUNT_PLACES}}})?$"},
            ]
        }
    ),
]


def _param_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if not (math.isfinite(value) and -MAX_PARAM <= value <= MAX_PARAM):
        raise ValueError("must be a finite number with |n| ≤ 2^53")
    return value


ParamValue = Annotated[
    bool | int | float | Annotated[str, Field(max_length=200)],
    AfterValidator(_param_number),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"type": "integer", "minimum": -MAX_PARAM, "maximum": MAX_PARAM},
                {"type": "number", "minimum": -MAX_PARAM, "maximum": MAX_PARAM},
                {"type": "string", "maxLength": 200},
            ]
        }
    ),
]


class Request(BaseModel):
    """A request body: unknown fields refused, strings stripped, no NUL characters anywhere.

    PostgreSQL cannot store NUL in text, and no name, key or Lua source needs one: refusing it here
    keeps such input a 422 on every database instead of a 500 on one of them.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        texts = (
            [value]
            if isinstance(value, str)
            else [*value, *value.values()]
            if isinstance(value, dict)
            else []
        )
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValueError("must not contain NUL characters")
        return value


def _check_params(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return value
    if len(value) > 50:
        raise ValueError("at most 50 parameters")
    for k in value:
        if not (1 <= len(k) <= 50) or not k.replace("_", "").isalnum() or k[0].isdigit():
            raise ValueError(f"parameter name {k[:50]!r} must be a Lua identifier (letters, digits, _)")
    return value  # each value's own limits are checked by ParamValue, naming it (params.<name>)


def _check_tf(value: str | None) -> str | None:
    if value is not None and value not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe; use one of {', '.join(TIMEFRAMES)}")
    return value


class Credentials(Request):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    token: str
    csrf_token: str
    user: UserOut


class UserOut(BaseModel):
    id: int
    email: str
    is_admin: bool
    killed: bool
    created_at: dt.datetime


def _code_size(code: str) -> str:
    if len(code) > MAX_CODE:
        raise ValueError(
            f"the code is {len(code):,} characters long; the limit is {MAX_CODE:,} ({MAX_CODE // 1024} KiB)"
        )
    return code


# Its own message rather than pydantic's "String should have at most 65536 characters": the editor shows it.
_CODE_SCHEMA = Field(json_schema_extra={"maxLength": MAX_CODE})
Code = Annotated[str, AfterValidator(_code_size), _CODE_SCHEMA]
SomeCode = Annotated[str, Field(min_length=1), AfterValidator(_code_size), _CODE_SCHEMA]


class StrategyIn(Request):
    name: Name
    code: SomeCode
    description: str = Field(default="", max_length=2000)
    params: dict[str, ParamValue] = Field(default_factory=dict)

    _params = field_validator("params")(_check_params)


class StrategyPatch(Request):
    name: Name | None = None
    code: SomeCode | None = None
    description: str | None = Field(default=None, max_length=2000)
    params: dict[str, ParamValue] | None = None

    _params = field_validator("params")(_check_params)


class CodeIn(Request):
    code: Code


class Diagnostic(BaseModel):
    line: int | None
    message: str


class ValidationOut(BaseModel):
    ok: bool
    errors: list[Diagnostic]


class ParamDeclOut(BaseModel):
    """A parameter the strategy's code declares (``params = {fast = {type = "int", min = 5, ...}}``): what the
    forms are made of, and what a parameter sent for it is checked against."""

    name: str
    type: Literal["int", "float", "bool", "choice"]
    min: int | float | None = Field(default=None, description="the range, inclusive (int, float)")
    max: int | float | None = None
    step: int | float | None = Field(
        default=None, description="the grid an optimiser searches within the range"
    )
    log: bool = False
    choices: list[bool | int | float | str] | None = None
    default: bool | int | float | str | None = None
    description: str | None = None


Declared = Annotated[
    list[ParamDeclOut] | None,
    Field(
        description="the parameters the code declares, by name; [] none (any name=value is taken); null: "
        "not known (the code could not be read just now)"
    ),
]


class StrategyOut(BaseModel):
    id: int
    name: str
    description: str
    code: str
    version: int
    params: dict[str, Any]
    declared: Declared = None
    created_at: dt.datetime
    updated_at: dt.datetime


class SwitchOut(BaseModel):
    """An assignment of a strategy that was just saved, and what the save does to it."""

    id: int
    market_id: int
    timeframe: str
    enabled: bool
    version: int = Field(description="the version it runs from now on")
    warning: str | None = Field(
        default=None, description="its parameters do not fit the version it runs (the declaration changed)"
    )


class StrategySaved(StrategyOut):
    switched: list[SwitchOut] = Field(
        default_factory=list,
        description="the assignments that follow the latest version: a new version reaches them at their next "
        "evaluation ([] when the save made no new version)",
    )
    pinned: list[SwitchOut] = Field(
        default_factory=list, description="the assignments pinned to a version: they stay on it"
    )


class VersionOut(BaseModel):
    version: int
    code: str
    params: dict[str, Any]
    declared: Declared = None
    created_at: dt.datetime


class TraderIn(Request):
    name: Name
    exchange: str = Field(default="sim", min_length=1, max_length=32)
    paper: StrictBool = True
    sandbox: StrictBool = False
    api_key: str | None = Field(default=None, min_length=1, max_length=512)
    api_secret: str | None = Field(default=None, min_length=1, max_length=1024)
    max_order_notional: Amount | None = None
    max_position: Amount | None = None
    daily_loss_limit: Amount | None = None

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, v: str) -> str:
        if not valid_exchange(v):
            raise ValueError("exchange ids are lower-case letters, digits and _")
        return v


# In the PATCH bodies, a field left out keeps its value; null is accepted only where it means
# "none" (no limit, no account). The None defaults are never validated, so the schema says "not null".
class TraderPatch(Request):
    name: Name = None  # type: ignore[assignment]
    api_key: str | None = Field(default=None, min_length=1, max_length=512)
    api_secret: str | None = Field(default=None, min_length=1, max_length=1024)
    max_order_notional: Amount | None = None
    max_position: Amount | None = None
    daily_loss_limit: Amount | None = None


class TraderOut(BaseModel):
    id: int
    name: str
    exchange: str
    paper: bool
    sandbox: bool
    api_key_masked: str | None
    max_order_notional: str | None
    max_position: str | None
    daily_loss_limit: str | None
    created_at: dt.datetime


Trigger = Annotated[
    Literal["candle", "tick"],
    Field(
        description="candle: decide() on each closed candle; tick: on_tick() on the market's ticks, keeping quotes"
    ),
]
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 3_600_000
PINNED = "run this version of the strategy; null: follow the latest (saving the strategy switches it)"


class AssignmentIn(Request):
    strategy_id: int = Field(ge=1, le=MAX_ID, strict=True)
    market_id: int = Field(ge=1, le=MAX_ID, strict=True)
    timeframe: str = Field(default="1m", max_length=4)
    trader_id: int | None = Field(default=None, ge=1, le=MAX_ID, strict=True)
    allocation: Amount = Decimal("1000")
    params: dict[str, ParamValue] = Field(default_factory=dict)
    lookback: int = Field(default=500, ge=10, le=5000)
    enabled: StrictBool = True
    trigger: Trigger = "candle"
    min_interval_ms: int = Field(default=1000, ge=MIN_INTERVAL_MS, le=MAX_INTERVAL_MS, strict=True)
    max_position: Amount | None = None
    pinned_version: int | None = Field(default=None, ge=1, le=MAX_ID, strict=True, description=PINNED)

    _params = field_validator("params")(_check_params)
    _tf = field_validator("timeframe")(_check_tf)


class AssignmentPatch(Request):
    timeframe: str = Field(default=None, max_length=4)  # type: ignore[assignment]
    trader_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, strict=True
    )  # null: no account (signals only)
    allocation: Amount = None  # type: ignore[assignment]
    params: dict[str, ParamValue] = None  # type: ignore[assignment]
    lookback: int = Field(default=None, ge=10, le=5000)  # type: ignore[assignment]
    enabled: StrictBool = None  # type: ignore[assignment]
    trigger: Trigger = None  # type: ignore[assignment]
    min_interval_ms: int = Field(default=None, ge=MIN_INTERVAL_MS, le=MAX_INTERVAL_MS, strict=True)  # type: ignore[assignment]
    max_position: Amount | None = None  # null: no inventory limit but the cash
    pinned_version: int | None = Field(default=None, ge=1, le=MAX_ID, strict=True, description=PINNED)

    _params = field_validator("params")(_check_params)
    _tf = field_validator("timeframe")(_check_tf)


class ProtectionOut(BaseModel):
    """The open position's protection: the strategy's exits (fractions), the entry fill price, and the
    prices they hold it at (``stop``: the higher of the stop-loss and the trailing level)."""

    stop_loss: str | None
    take_profit: str | None
    trailing_stop: str | None
    entry: str | None
    stop: str | None
    target: str | None
    watched: bool = Field(
        description="core watches these exits itself: the venue cannot hold the order types"
    )


class AssignmentOut(BaseModel):
    id: int
    strategy_id: int
    market_id: int
    timeframe: str
    trader_id: int | None
    allocation: str
    params: dict[str, Any]
    lookback: int
    enabled: bool
    paused_reason: str | None
    position_qty: str
    entry_cost: str
    realized_pnl: str
    last_position: Position | None
    protection: ProtectionOut | None = None
    trigger: str = "candle"
    min_interval_ms: int = 1000
    max_position: str | None = None
    pinned_version: int | None = Field(default=None, description=PINNED)
    version: int | None = Field(default=None, description="the strategy version it runs")
    capital: str = Field(default="0", description="what it trades with: its allocation plus its realized P&L")
    capital_in_use: str = Field(
        default="0", description="what its open position cost (fees included); 0 while it is flat"
    )
    warnings: list[WarningOut] = Field(
        default_factory=list,
        description="on creation and change: what will not work as set (it is saved all the same)",
    )
    created_at: dt.datetime


class WarningOut(BaseModel):
    field: str
    message: str


class AllocationCheckIn(Request):
    """An assignment's allocation as a form has it, to be checked before it is saved."""

    trader_id: int = Field(ge=1, le=MAX_ID, strict=True)
    market_id: int = Field(ge=1, le=MAX_ID, strict=True)
    allocation: Amount
    assignment_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        strict=True,
        description="the assignment being changed (its saved allocation is replaced)",
    )


class AllocationOut(BaseModel):
    """The allocations of the account's assignments (that run or hold a position) in one quote currency, and
    the account's value in it; ``warnings`` when they add up to more than that value."""

    currency: str
    allocated: str = Field(description="their allocations, with the one asked about")
    value: str | None = Field(description="free balances valued at the markets' last prices; null: unknown")
    warnings: list[WarningOut]


class QuoteOut(BaseModel):
    client_order_id: str
    side: Side
    price: str
    amount: str
    status: OrderStatus = Field(description="pending (on its way) | open (resting on the venue)")


class QuotesOut(BaseModel):
    """A quoting assignment's book and how it has done: its resting quotes, its inventory, and its quotes'
    fills (``fill_rate``: filled ÷ quotes that ended, filled or cancelled)."""

    assignment_id: int
    trigger: str
    inventory: str = Field(description="base held")
    max_position: str | None
    quotes: list[QuoteOut]
    realized_pnl: str = Field(description="realized P&L of the quotes' round trips, fees included")
    placed: int
    filled: int
    buys_filled: int
    sells_filled: int
    fill_rate: float | None


class MarketOut(BaseModel):
    id: int
    exchange: str
    symbol: str
    timeframes: list[str]
    last_price: float | None


class CandleOut(BaseModel):
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class EvaluationOut(BaseModel):
    id: int
    assignment_id: int
    candle_time: int
    status: str
    position: Position | None
    size: float
    note: str | None
    error: str | None
    logs: list[str]
    duration_ms: float
    latency_ms: float | None
    created_at: dt.datetime
    plot: dict[str, float] | None = Field(
        default=None, description="the strategy's own series at this candle (plot = {...}); null: none"
    )


class OrderOut(BaseModel):
    id: int
    assignment_id: int | None
    trader_id: int
    client_order_id: str
    exchange: str
    symbol: str
    side: Side
    amount: str
    price: str | None
    filled: str
    fee: str
    pnl: str | None
    status: OrderStatus = Field(
        description="pending (the venue has not answered yet) | open | filled | canceled | rejected | "
        "not_placed (the venue never received it)"
    )
    reason: str | None
    type: OrderType = Field(description="quote: a post-only limit order")
    limit_price: str | None = Field(None, description="a limit order's or take-profit's price")
    stop_price: str | None = Field(
        None, description="a stop's trigger; a take-profit's stop leg; a trailing level"
    )
    exit_reason: str | None = Field(
        None, description="a filled sell: signal | stop_loss | take_profit | trailing_stop"
    )
    size_note: str | None = Field(
        None, description="why a buy is smaller than its decision asked (the account's balance, a risk limit)"
    )
    candle_time: int | None
    latency_ms: float | None
    created_at: dt.datetime


class LatencySummary(BaseModel):
    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class LatencyOut(BaseModel):
    """Milliseconds from the exchange's candle reaching tradewind to the decision and to the order call."""

    assignment_id: int
    tick_to_decision: LatencySummary
    tick_to_order_call: LatencySummary


class PositionOut(BaseModel):
    assignment_id: int
    trader_id: int | None
    market_id: int
    symbol: str
    qty: str
    entry_cost: str
    last_price: float | None
    value: str
    unrealized_pnl: str
    realized_pnl: str


class CloseOut(BaseModel):
    """What core did about one assignment's position when asked to close it."""

    assignment_id: int
    status: CloseStatus = Field(
        description="placed: the sell at the market is on its way; closing: a close of this position was already "
        "on its way (the same order, not a second one); flat: it held nothing; refused: see reason"
    )
    client_order_id: str | None = None
    amount: str | None = Field(default=None, description="base sold, a decimal string")
    reason: str | None = None


class FlattenOut(BaseModel):
    closed: list[CloseOut]


class KillOut(BaseModel):
    killed: bool
    paused_assignments: int
    cancel_requests: int
    closed: list[CloseOut] | None = Field(
        default=None, description="with flatten=true: what core did about each open position"
    )
    flatten_error: str | None = Field(
        default=None,
        description="with flatten=true: why the positions could not be closed (core not reachable)",
    )


class AuditOut(BaseModel):
    id: int
    action: str
    detail: dict[str, Any]
    address: str | None
    created_at: dt.datetime


class Page(BaseModel):
    items: list[Any]
    next_before_id: int | None


class StrategyPage(Page):
    items: list[StrategyOut]


class TraderPage(Page):
    items: list[TraderOut]


class AssignmentPage(Page):
    items: list[AssignmentOut]


class MarketPage(Page):
    items: list[MarketOut]


class EvaluationPage(Page):
    items: list[EvaluationOut]


class OrderPage(Page):
    items: list[OrderOut]


class AuditPage(Page):
    items: list[AuditOut]


TokenOut.model_rebuild()
AssignmentOut.model_rebuild()
