"""Bitfinex, natively: websocket v2 candles and ticks, REST v2 history, wallets and orders (quotes too)."""

from tradewind.exchanges.bitfinex.adapter import BitfinexAdapter, cid_of
from tradewind.exchanges.bitfinex.stream import StreamTiming

__all__ = ["BitfinexAdapter", "StreamTiming", "cid_of"]
