"""Exchange name -> adapter. One line per adapter; shared code never asks which exchange it talks to."""

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


ADAPTERS: dict[str, Callable[[Settings, SessionFactory | None], Any]] = {
    "sim": _sim,
}


def make_adapter(name: str, settings: Settings, session_factory: SessionFactory | None = None) -> ExchangeAdapter:
    """The adapter for ``name``; a clear error for an exchange tradewind cannot reach yet."""
    factory = ADAPTERS.get(name)
    if factory is None:
        known = ", ".join(sorted(ADAPTERS))
        raise ExchangeError(f"no adapter for exchange {name!r}; available: {known} (Bitfinex and ccxt are not built yet)")
    return factory(settings, session_factory)
