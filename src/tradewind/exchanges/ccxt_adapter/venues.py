"""What differs between ccxt exchanges, as data: how to pass and look up a client order id, which ccxt
options keep the adapter to spot markets and public calls, how often to poll, how big a history page is,
whether post-only orders go through and how the venue says it refused one.

An exchange not listed here gets ``Venue()``: ccxt's unified ``clientOrderId`` parameter, which ccxt
translates for most exchanges (okx clOrdId, bybit orderLinkId, kraken cl_ord_id, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ccxt


@dataclass(frozen=True)
class Venue:
    client_id_param: str = "clientOrderId"  # the create_order param carrying our client order id
    lookup_param: str = "clientOrderId"  # the fetch_order / cancel_order param finding an order by it
    client_id_max_len: int = 36
    options: dict[str, Any] = field(default_factory=dict)  # ccxt options for this exchange
    poll_s: float = 10.0  # REST candle polling interval where there is no websocket
    history_limit: int = 500  # candles per fetch_ohlcv call
    duplicate_errors: tuple[type[Exception], ...] = (ccxt.DuplicateOrderId,)
    tick_poll_s: float = 1.0  # REST ticker polling: at most this often per market (and never over rateLimit)
    # Whether ccxt sends ``postOnly`` to this venue; None: ccxt's ``has['createPostOnlyOrder']`` says.
    post_only: bool | None = None
    # The venue's words for refusing a post-only order that would take (ccxt raises only InvalidOrder).
    post_only_refusals: tuple[str, ...] = ()


VENUES: dict[str, Venue] = {
    # Binance spot: ccxt sends clientOrderId as newClientOrderId; lookups take origClientOrderId.
    # fetchCurrencies needs a wallet (sapi) permission and margin pairs are not ours: keep to spot.
    "binance": Venue(
        lookup_param="origClientOrderId",
        options={
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "defaultType": "spot",
        },
        history_limit=1000,
        poll_s=5.0,
        # spot LIMIT_MAKER, refused with -2010 (NEW_ORDER_REJECTED, which ccxt maps to InvalidOrder)
        post_only_refusals=("Order would immediately match and take.",),
    ),
    # ccxt's kraken sends postOnly as oflags=post though its ``has`` does not declare createPostOnlyOrder
    "kraken": Venue(history_limit=720, post_only=True),
    "okx": Venue(client_id_max_len=32, history_limit=300),
    "bybit": Venue(history_limit=1000),
    "coinbase": Venue(history_limit=300),
}


def venue(exchange_id: str) -> Venue:
    return VENUES.get(exchange_id, Venue())
