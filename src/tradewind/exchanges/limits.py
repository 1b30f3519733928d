"""What each venue allows an API key, as data, for the parts of tradewind that run without its adapter.

Core paces each account's quotes (``core.quotes.Budget``) at ``quote_rate_per_s`` or at the venue's own
rate below, whichever is lower, so that a market maker's placements and cancels never wait without bound
in the exchange service's rate limiter: a change that finds the budget empty waits in core and is
replaced by the strategy's next one. ccxt's venues are paced by ccxt itself (``enableRateLimit``), at
rates from several calls a second up; the setting applies to them alone.
"""

from __future__ import annotations

# Bitfinex: each authenticated REST endpoint 90 requests a minute per IP (bitfinex/rest.py). Placements
# (auth/w/order/submit) and cancels (auth/w/order/cancel) are two endpoints; a replacement spends one
# call of each, and a cancel by cid reads what the order became from a third (auth/r/orders/hist). Core
# counts a placement and a cancel alike, so 1.5 calls a second keeps every one of them under 45 a minute,
# leaving the rest of each endpoint's budget to the watch of resting orders and to core's reconciler.
BITFINEX_AUTH_PER_MIN = 90
QUOTE_CALLS_PER_S: dict[str, float] = {"bitfinex": BITFINEX_AUTH_PER_MIN / 60}
QUOTE_BURST: dict[str, int] = {"bitfinex": 10}


def quote_budget(exchange: str, rate_per_s: float, burst: int) -> tuple[float, int]:
    """The quote calls a second and the burst an account on ``exchange`` may spend: the settings, lowered
    to what the venue allows."""
    return (
        min(rate_per_s, QUOTE_CALLS_PER_S.get(exchange, rate_per_s)),
        min(burst, QUOTE_BURST.get(exchange, burst)),
    )
