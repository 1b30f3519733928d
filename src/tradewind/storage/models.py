"""SQLAlchemy 2 models. Money is Decimal (``Money``); candle prices are float64; times of market data are
epoch milliseconds (``BigInteger``); record timestamps are UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradewind.domain import OrderStatus, OrderType, Position, Side
from tradewind.storage.types import Money, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Ids are never handed out twice. SQLite without AUTOINCREMENT gives a new row the highest id plus one, so
# the id of the newest row, once deleted, comes back: a cache (or an order in flight) still holding the old
# id would then act on someone else's object. PostgreSQL's identity sequences never go back.
NEVER_REUSED: dict[str, object] = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __table_args__ = NEVER_REUSED
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    killed: Mapped[bool] = mapped_column(Boolean, default=False)  # kill switch engaged
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Session(Base):
    """A login session; only the SHA-256 of the random token is stored."""

    __table_args__ = NEVER_REUSED
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Strategy(Base):
    __table_args__ = NEVER_REUSED
    __tablename__ = "strategies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StrategyVersion(Base):
    """Immutable code of one version of a strategy; eval workers cache compiled code by (strategy, version)."""

    __tablename__ = "strategy_versions"
    __table_args__ = (UniqueConstraint("strategy_id", "version"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(Text)
    params_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # default parameters
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The parameters its code declares (``params = {...}``, tradewind.sandbox.params), as ParamSpec.as_dict()
    # rows, read when it is saved; None: saved before they were kept (the web app reads them on first use).
    declared: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class Market(Base):
    __tablename__ = "markets"
    __table_args__ = (UniqueConstraint("exchange", "symbol"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(41))  # 'BTC/USD'
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_price: Mapped[float | None] = mapped_column(Float, nullable=True)


class CandleRow(Base):
    """Stored candles, keyed by (market, timeframe, open time in epoch ms)."""

    __tablename__ = "candles"
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id", ondelete="CASCADE"), primary_key=True)
    tf: Mapped[str] = mapped_column(String(4), primary_key=True)
    time: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)


class TickRow(Base):
    """Ticks, sampled: the last tick of each second of a market (``time``: that second, epoch ms), kept so
    that a quoting strategy can be backtested on the book it would have seen."""

    __tablename__ = "ticks"
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id", ondelete="CASCADE"), primary_key=True)
    time: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bid: Mapped[float] = mapped_column(Float)
    ask: Mapped[float] = mapped_column(Float)
    bid_size: Mapped[float] = mapped_column(Float, default=0.0)
    ask_size: Mapped[float] = mapped_column(Float, default=0.0)
    last: Mapped[float] = mapped_column(Float, default=0.0)


class Trader(Base):
    """A trading account: paper (simulated) or an exchange key. Secrets are stored encrypted."""

    __table_args__ = NEVER_REUSED
    __tablename__ = "traders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    exchange: Mapped[str] = mapped_column(String(32))
    paper: Mapped[bool] = mapped_column(Boolean, default=True)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)  # the exchange's testnet
    api_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    max_order_notional: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    max_position: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    daily_loss_limit: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaperBalance(Base):
    """Balances of a paper account, owned by the sim exchange's matching engine."""

    __tablename__ = "paper_balances"
    trader_id: Mapped[int] = mapped_column(ForeignKey("traders.id", ondelete="CASCADE"), primary_key=True)
    asset: Mapped[str] = mapped_column(String(20), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Money)


class Assignment(Base):
    """A strategy assigned to a market and timeframe, optionally trading through an account."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_market_tf", "market_id", "timeframe"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id"))
    timeframe: Mapped[str] = mapped_column(String(4))
    trader_id: Mapped[int | None] = mapped_column(
        ForeignKey("traders.id", ondelete="SET NULL"), nullable=True
    )
    allocation: Mapped[Decimal] = mapped_column(Money, default=Decimal("1000"))  # quote currency
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lookback: Mapped[int] = mapped_column(Integer, default=500)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    paused_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    position_qty: Mapped[Decimal] = mapped_column(
        Money, default=Decimal("0")
    )  # base held for this assignment
    entry_cost: Mapped[Decimal] = mapped_column(
        Money, default=Decimal("0")
    )  # quote paid for it, fees included
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))  # closed trades, fees included
    last_position: Mapped[Position | None] = mapped_column(String(8), nullable=True)
    # The protection of the position held (core.positions): the strategy's exits as fractions, the entry
    # fill price, the guard's prices and trailing high, its revision, and whether core watches it itself
    # (a venue that cannot hold the order types). None: flat, or no exits set.
    protection: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # What runs the strategy: "candle" (decide on each closed candle) or "tick" (on_tick on the market's
    # ticks, at most once per ``min_interval_ms``, keeping quotes); ``max_position`` caps a quoting
    # strategy's inventory (base), None: its cash is the only limit.
    trigger: Mapped[str] = mapped_column(String(8), default="candle", server_default="candle")
    min_interval_ms: Mapped[int] = mapped_column(Integer, default=1000, server_default="1000")
    max_position: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The strategy version it runs; None: the latest (saving the strategy switches it to the new version).
    pinned_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Evaluation(Base):
    """One evaluation of an assignment on one closed candle; unique, so a retry cannot record it twice.

    The unique key leads with the candle (issue 17): a candle's 1,000 rows land together at the end of its
    index, where a key led by the assignment put each in a leaf of its own and rewrote 1,000 leaves per
    commit once the table was large. No index leads with the assignment for the same reason: an
    assignment's rows are found hour by hour through ``ix_evaluations_hour`` (``(candle_time / HOUR_MS,
    assignment_id)``, see ``repositories.Owned.evaluations``), whose newest entries all lie in the current
    hour's few hundred leaves."""

    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("candle_time", "assignment_id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    candle_time: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))  # ok | error
    position: Mapped[Position | None] = mapped_column(String(8), nullable=True)
    size: Mapped[float] = mapped_column(Float, default=1.0)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    logs: Mapped[list[str]] = mapped_column(JSON, default=list)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)  # tick -> decision
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The strategy's own series at this candle (``plot = {name = value, ...}``), drawn on its chart; None:
    # it plotted nothing (or the evaluation predates plots).
    plot: Mapped[dict[str, float] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


#: The bucket of ``ix_evaluations_hour``: an hour of candle time (epoch ms). Queries name it literally (an
#: expression index serves only the very same expression).
HOUR_MS = 3_600_000
EVALUATION_HOUR = Evaluation.candle_time.op("/")(literal_column(str(HOUR_MS)))
Index("ix_evaluations_hour", EVALUATION_HOUR, Evaluation.assignment_id)


class Order(Base):
    """An order intent (written before the exchange is called) and its state on the exchange.

    Every index grows at one end as a candle's intents come in (issue 17): the client order id leads with
    the candle (``domain.client_order_id``), the others with the time-ordered id after an owner, an account
    or a status. None leads with the assignment: an assignment's orders are found block of ids by block
    through ``ix_orders_block`` (``(id / ORDER_BLOCK_IDS, assignment_id)``, whose newest entries all lie in
    the current block's few hundred leaves; ``repositories.Owned.page``), its open ones through
    ``ix_orders_status``."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_trader", "trader_id", "id"),
        Index("ix_orders_owner", "owner_id", "id"),
        Index("ix_orders_status", "status"),
        NEVER_REUSED,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL"), nullable=True
    )
    trader_id: Mapped[int] = mapped_column(ForeignKey("traders.id", ondelete="CASCADE"))
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(41))
    side: Mapped[Side] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)  # average fill price
    filled: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    # pending (intent stored, call not confirmed) | open | filled | canceled | rejected | not_placed
    status: Mapped[OrderStatus] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    exchange_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    candle_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)  # tick -> order call
    pnl: Mapped[Decimal | None] = mapped_column(Money, nullable=True)  # realized by a filled sell
    # market | limit | stop | take_profit (with stop_price: a pair, one cancels the other) | trailing_stop
    type: Mapped[OrderType] = mapped_column(String(16), server_default="market")
    limit_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)  # limit, take_profit
    stop_price: Mapped[Decimal | None] = mapped_column(
        Money, nullable=True
    )  # stop, the pair's stop leg, trailing
    trail: Mapped[Decimal | None] = mapped_column(Money, nullable=True)  # trailing distance, a fraction
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # a limit entry's end, epoch ms
    oco_group: Mapped[str | None] = mapped_column(String(64), nullable=True)  # a position's protective orders
    # Why a sell closed the position: signal | stop_loss | take_profit | trailing_stop
    exit_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Why a buy is smaller than its decision asked: what capped it (the account's free balance, a risk limit)
    size_note: Mapped[str | None] = mapped_column(Text, nullable=True)


#: The block of ``ix_orders_block``: this many consecutive order ids (ids grow with time). Queries name the
#: expression to the letter, as for ``EVALUATION_HOUR``.
ORDER_BLOCK_IDS = 65_536
ORDER_BLOCK = Order.id.op("/")(literal_column(str(ORDER_BLOCK_IDS)))
Index("ix_orders_block", ORDER_BLOCK, Order.assignment_id)


class _StrategyRun:
    """The columns of every stored run of a user's strategy version on a market (a backtest, a study, a
    walk-forward analysis): whose it is, what it runs, and when and how it ended."""

    __table_args__ = NEVER_REUSED
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id"))
    timeframe: Mapped[str] = mapped_column(String(4))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Backtest(_StrategyRun, Base):
    __tablename__ = "backtests"
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # cash, fee, from, to
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued | running | done | error
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Code that was not saved as a version (the editor's "Backtest this code"); None: ``version``'s code
    code: Mapped[str | None] = mapped_column(Text, nullable=True)


class Study(_StrategyRun, Base):
    """An optimisation study of a user's strategy (its trials live in Optuna's storage, named ``optuna_name``:
    see ``tradewind.backtest.optimize``). ``heartbeat_at``: the last sign of life of the worker driving it."""

    __tablename__ = "studies"
    # the StudyConfig (objectives, sampler, prune, seed, fixed params, cash, fees, lookback), from and to
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trials: Mapped[int] = mapped_column(Integer)  # the trials it should have in all
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued | running | done | error
    optuna_name: Mapped[str] = mapped_column(String(100), unique=True)
    space: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the declared parameters
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # counts and the best so far
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the best trial run again in full once the study ends: trial, params, metrics, trades, equity, range
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class WalkForwardRun(_StrategyRun, Base):
    """A walk-forward analysis of a user's strategy (``tradewind.backtest.walkforward``), run by a backtest
    worker (``tradewind.backtest.walkforwards``); ``result``: its windows, stitched curves, efficiency, the
    out-of-sample trades and headline metrics. ``heartbeat_at``: the last sign of life of that worker."""

    __tablename__ = "walkforwards"
    # from, to, mode, train, test (ms), split, trials per window, and the StudyConfig ("study")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued | running | done | error
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(Base):
    """Append-only log of security-relevant actions."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_user", "user_id", "id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaperOrder(Base):
    """An order resting on the sim exchange (limit entries, protective exits) and how it ended: the paper
    engine's truth for them across restarts. Fills also go to paper_fills."""

    __table_args__ = (Index("ix_paper_orders_open", "status", "symbol"), NEVER_REUSED)
    __tablename__ = "paper_orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trader_id: Mapped[int] = mapped_column(ForeignKey("traders.id", ondelete="CASCADE"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    symbol: Mapped[str] = mapped_column(String(41))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    trail: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    high: Mapped[Decimal | None] = mapped_column(Money, nullable=True)  # a trailing stop's highest high
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    oco_group: Mapped[str | None] = mapped_column(String(64), nullable=True)
    protect: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # exits for its fill
    locked: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))  # quote set aside for a limit buy
    status: Mapped[str] = mapped_column(String(12))  # open | filled | canceled
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    time: Mapped[int] = mapped_column(BigInteger)  # epoch ms of the last change


class PaperFill(Base):
    """The sim exchange's own record of a paper order it filled: its truth for lookups by client id."""

    __table_args__ = NEVER_REUSED
    __tablename__ = "paper_fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trader_id: Mapped[int] = mapped_column(ForeignKey("traders.id", ondelete="CASCADE"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    symbol: Mapped[str] = mapped_column(String(41))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(12))  # filled | rejected
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    time: Mapped[int] = mapped_column(BigInteger)  # epoch ms of the fill


class AlertChannel(Base):
    """Where a user's alerts go (tradewind.alerts): a webhook, a Telegram chat, an e-mail address or the open
    web app, and which events it takes. Its secrets (a webhook's URL and signing key, a bot token, an SMTP
    password) are in ``secret_enc``, encrypted like exchange keys and never shown again; ``config`` holds the
    rest. The newest delivery outcome is kept here, the recent ones in alert_deliveries."""

    __table_args__ = NEVER_REUSED
    __tablename__ = "alert_channels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # webhook | telegram | email | browser
    name: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)  # fill, paused, kill_switch, ...
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted JSON of the secrets
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_failure_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_attempts: Mapped[int] = mapped_column(Integer, default=0)  # the newest delivery's
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)  # alerts dropped from a full queue
    # The day (ISO date, UTC) of the last daily summary handled for this channel: sent once a day at most.
    summary_day: Mapped[str | None] = mapped_column(String(10), nullable=True)


class AlertDelivery(Base):
    """One alert's delivery to one channel, as it ended (sent, failed after its attempts, or dropped)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_channel", "channel_id", "id"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("alert_channels.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(8))  # sent | failed | dropped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
