"""Bitfinex names: 'tBTCUSD' <-> 'BTC/USD', timeframes, and the few currency codes Bitfinex spells its own way."""

from __future__ import annotations

from tradewind.exchanges.base import ExchangeError

# Bitfinex's own codes for some currencies (what ccxt calls "commonCurrencies" for this venue).
_TO_PLATFORM = {"UST": "USDT", "UDC": "USDC"}
_TO_BITFINEX = {v: k for k, v in _TO_PLATFORM.items()}

# Our timeframe -> Bitfinex's candle key part. Bitfinex has no 4h candles (core derives them from 1m).
TIMEFRAMES: dict[str, str] = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1h", "1d": "1D"}


def currency(code: str) -> str:
    """A Bitfinex currency code as the platform writes it ('UST' -> 'USDT')."""
    return _TO_PLATFORM.get(code, code)


def to_platform(bfx_symbol: str) -> str:
    """'tBTCUSD' -> 'BTC/USD'; 'tTESTBTC:TESTUSD' -> 'TESTBTC/TESTUSD'."""
    body = bfx_symbol[1:] if bfx_symbol.startswith("t") else bfx_symbol
    if ":" in body:
        base, quote = body.split(":", 1)
    elif len(body) == 6:
        base, quote = body[:3], body[3:]
    else:
        raise ExchangeError(f"cannot read Bitfinex symbol {bfx_symbol!r}: use 'tBASEQUOTE' or 'tBASE:QUOTE'")
    return f"{currency(base)}/{currency(quote)}"


def to_bitfinex(symbol: str) -> str:
    """'BTC/USD' -> 'tBTCUSD'; codes longer than three letters take Bitfinex's colon form."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise ExchangeError(f"not a market symbol: {symbol!r} (expected 'BASE/QUOTE')")
    base, quote = _TO_BITFINEX.get(base, base), _TO_BITFINEX.get(quote, quote)
    if len(base) == 3 and len(quote) == 3:
        return f"t{base}{quote}"
    return f"t{base}:{quote}"


def timeframe(tf: str) -> str:
    try:
        return TIMEFRAMES[tf]
    except KeyError:
        raise ExchangeError(f"Bitfinex has no {tf} candles; use one of {', '.join(TIMEFRAMES)}") from None
