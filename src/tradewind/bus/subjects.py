"""Every NATS subject name is built here and nowhere else."""

from __future__ import annotations

from tradewind.domain import symbol_token

MD_STREAM = "MD"  # JetStream stream holding raw market data from the exchange adapters
MD_SUBJECTS = "md.candle.>"
CORE_CONSUMER = "core"
EVAL_QUEUE = "eval-workers"
EVAL_RUN = "eval.run"
BACKTEST_RUN = "backtest.run"
ASSIGNMENTS_CHANGED = "core.assignments.changed"
TRADERS_CHANGED = "core.traders.changed"  # a trading account changed or was deleted: core and exchanges
EVENTS_PREFIX = "events.user"


def md_candle(exchange: str, symbol: str, tf: str) -> str:
    """Raw candles published by an exchange adapter (JetStream)."""
    return f"md.candle.{exchange}.{symbol_token(symbol)}.{tf}"


def core_candle(exchange: str, symbol: str, tf: str) -> str:
    """Accepted and derived candles published by core for eval caches and browsers."""
    return f"core.candle.{exchange}.{symbol_token(symbol)}.{tf}"


CORE_CANDLES_ALL = "core.candle.>"


def md_tick(exchange: str, symbol: str) -> str:
    """Ticks (best bid and ask, last trade) published by an exchange adapter: plain NATS, not JetStream."""
    return f"md.tick.{exchange}.{symbol_token(symbol)}"


MD_TICKS_ALL = "md.tick.>"


def exchange_balance(exchange: str) -> str:
    return f"exchange.{exchange}.balance"


def exchange_balances(exchange: str) -> str:
    return f"exchange.{exchange}.balances"


def exchange_order(exchange: str) -> str:
    return f"exchange.{exchange}.order"


def exchange_orders(exchange: str) -> str:
    """A batch of orders (PlaceOrders -> OrderAcks): what core sends; ``.order`` takes one."""
    return f"exchange.{exchange}.orders"


def exchange_order_status(exchange: str) -> str:
    return f"exchange.{exchange}.order_status"


def exchange_cancel(exchange: str) -> str:
    return f"exchange.{exchange}.cancel"


def exchange_reset(exchange: str) -> str:
    """Put a paper account back to its starting cash (ResetPaper -> ResetReply); the sim exchange answers."""
    return f"exchange.{exchange}.reset"


def exchange_verify(exchange: str) -> str:
    """Check an API key against the exchange (a balances call); answered by the adapter."""
    return f"exchange.{exchange}.verify"


def order_updates(exchange: str) -> str:
    return f"orders.{exchange}.update"


ORDER_UPDATES_ALL = "orders.*.update"


def user_events(user_id: int) -> str:
    """One user's live events (messages.UserEvent: evaluations, orders, fills, pauses, ...), for the web
    app's live stream and the alerts component."""
    return f"{EVENTS_PREFIX}.{user_id}"


BACKTEST_QUEUE = "backtest-workers"
BACKTEST_START = (
    "backtest.start"  # StartBacktest -> BacktestAccepted; BACKTEST_RUN: RunBacktest -> BacktestResult
)
STUDY_START = "backtest.study"  # StartStudy -> StudyAccepted, in BACKTEST_QUEUE
WALKFORWARD_START = "backtest.walkforward"  # StartWalkForward -> WalkForwardAccepted, in BACKTEST_QUEUE
BACKTEST_CAPACITY = "backtest.capacity"  # every worker answers (no queue group) with WorkerCapacity
# ClosePositions -> PositionsClosed: a person closes positions at the market (web -> core; only the leading
# core answers, in one queue group)
CORE_CLOSE = "core.positions.close"
CORE_QUEUE = "core"
# Alerts (tradewind.alerts): every user's events, heard by the alerts component (which skips evaluations);
# SendTestAlert -> DeliveryResult (web asks the alerts component to send a test alert now, in a queue group);
# AlertChannelsChanged (web -> alerts: a user's channels changed, forget what was cached about them).
USER_EVENTS_ALL = f"{EVENTS_PREFIX}.*"
ALERTS_QUEUE = "alerts"
ALERTS_TEST = "alerts.test"
ALERTS_CHANGED = "alerts.channels.changed"
