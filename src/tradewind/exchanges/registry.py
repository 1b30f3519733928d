"""Exchange name -> adapter. One line per native adapter; any other name is tried as a ccxt exchange id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tradewind.config import Settings
from tradewind.exchanges.base import ExchangeAdapter, ExchangeError
from tradewind.storage.db import SessionFactory


def _sim(settings: Settings, sf: SessionFactory | None) -> ExchangeAdapter:
    from tradewind.exchanges.sim import SimAdapter

    if sf is None:
        raise ExchangeError("the sim exchange needs the database (its paper accounts live there)")
    return SimAdapter(settings, sf)


def _bitfinex(settings: Settings, sf: SessionFactory | None) -> ExchangeAdapter:
    from tradewind.exchanges.bitfinex import BitfinexAdapter

    return BitfinexAdapter(settings)


NATIVE: dict[str, Callable[[Settings, SessionFactory | None], Any]] = {
    "sim": _sim,
    "bitfinex": _bitfinex,
}


def make_adapter(name: str, settings: Settings, session_factory: SessionFactory | None = None) -> ExchangeAdapter:
    """The adapter for ``name``: a native one, else ccxt's exchange of that id."""
    factory = NATIVE.get(name)
    if factory is not None:
        return factory(settings, session_factory)
    import ccxt

    if name not in ccxt.exchanges:
        raise ExchangeError(f"unknown exchange {name!r}: not native and not a ccxt exchange id")
    from tradewind.exchanges.ccxt_adapter import CcxtAdapter

    return CcxtAdapter(name, settings)
