"""Prometheus metrics shared by the components (the Measurement component of the design)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_MS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10000)

TICK_TO_DECISION = Histogram(
    "tradewind_tick_to_decision_ms", "Exchange update received -> evaluation result in core", buckets=_MS
)
TICK_TO_ORDER = Histogram(
    "tradewind_tick_to_order_call_ms", "Exchange update received -> order call starts", buckets=_MS
)
EVAL_DURATION = Histogram(
    "tradewind_eval_duration_ms",
    "Time one strategy evaluation took in the sandbox",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 50, 100, 1000),
)
EVAL_QUEUE_WAIT = Histogram(
    "tradewind_eval_queue_wait_ms", "Eval request sent -> picked up by a worker", buckets=_MS
)
NATS_ROUND_TRIP = Histogram(
    "tradewind_eval_request_ms", "Eval batch request -> reply (NATS round trip)", buckets=_MS
)
CANDLES = Counter("tradewind_core_candles_total", "Candles seen by core.ingest", ["outcome"])
EVALUATIONS = Counter("tradewind_core_evaluations_total", "Evaluations recorded", ["status"])
ORDERS = Counter("tradewind_core_orders_total", "Orders by outcome", ["status"])
EVAL_RETRIES = Counter("tradewind_core_eval_retries_total", "Eval batch requests retried after a timeout")
EVAL_BATCHES = Counter("tradewind_core_eval_batches_total", "Eval batches answered, by worker", ["worker"])
