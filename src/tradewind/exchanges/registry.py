"""Exchange name -> adapter. One line per adapter; shared code never asks which exchange it talks to."""

from __future__ import annotations

from collections.abc import Callable

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


def _ccxt(name: str, settings: Settings) -> ExchangeAdapter | None:
    """Any other exchange id ccxt knows, or None."""
    import ccxt

    if name not in ccxt.exchanges:
        return None
    from tradewind.exchanges.ccxt_adapter import CcxtAdapter

    return CcxtAdapter(name, settings)


ADAPTERS: dict[str, Callable[[Settings, SessionFactory | None], ExchangeAdapter]] = {
    "sim": _sim,
    "bitfinex": _bitfinex,
}


def make_adapter(
    name: str, settings: Settings, session_factory: SessionFactory | None = None
) -> ExchangeAdapter:
    """The adapter for ``name``: a native one from ADAPTERS, else ccxt's; a clear error for neither."""
    factory = ADAPTERS.get(name)
    if factory is not None:
        return factory(settings, session_factory)
    adapter = _ccxt(name, settings)
    if adapter is None:
        known = ", ".join(sorted(ADAPTERS))
        raise ExchangeError(
            f"no adapter for exchange {name!r}; available: {known}, or any exchange id ccxt supports"
        )
    return adapter
