"""core.positions: a position's protection as core keeps it, and the protective orders that hold it.

Core owns positions. When an entry fills, the exits the strategy asked for become a guard (the trading
model's ``Guard``: stop price, take-profit price, trailing distance and high), stored with the assignment
(``assignments.protection``) and placed on the venue as protective orders whose client ids derive from
the entry's (``domain.protective_order_id``), so a venue that created them itself from the entry (the
paper engine) and core never make two. A strategy that moves its exits while the position is open makes
a new revision: new orders, the old ones cancelled first. A venue that cannot hold an order type refuses
it; core then watches that guard itself on every closed candle and exits at the market (``watched``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradewind.domain import protective_order_id
from tradewind.trading import model

PROTECTIVE = ("stop", "take_profit", "trailing_stop")
ORDER_FIELDS = ("type", "limit_price", "stop_price", "trail", "expires_at", "oco_group", "exit_reason")


def _d(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def _s(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


def exits_of(p: dict[str, Any] | None) -> model.Exits:
    return model.Exits.from_strings(p)


def guard_of(p: dict[str, Any] | None) -> model.Guard | None:
    if not p or p.get("entry") is None:
        return None
    return model.Guard(
        _d(p.get("stop")), _d(p.get("target")), _d(p.get("trail")), _d(p.get("high")) or model.ZERO
    )


def protection(
    exits: model.Exits,
    entry: Decimal | None,
    group: str,
    rev: int = 0,
    high: Decimal | None = None,
    watched: bool = False,
) -> dict[str, Any]:
    """The stored form: the exits (fractions), and once the entry filled its price and the guard."""
    p: dict[str, Any] = {
        **exits.as_strings(),
        "group": group,
        "rev": rev,
        "watched": watched,
        "entry": _s(entry),
    }
    if entry is not None and not exits and high is None:  # an entry without exits (most): no guard to price
        p.update(stop=None, target=None, trail=None, high=p["entry"])
    elif entry is not None:
        g = model.Guard.at_entry(entry, exits, high)
        p.update(stop=_s(g.stop), target=_s(g.target), trail=_s(g.trail), high=_s(g.high))
    return p


def with_guard(p: dict[str, Any], g: model.Guard) -> dict[str, Any]:
    return {**p, "stop": _s(g.stop), "target": _s(g.target), "trail": _s(g.trail), "high": _s(g.high)}


def keep_high(memory: dict[str, Any] | None, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored protection, with the higher trailing high core holds in memory for the same revision
    (a position without exits keeps its high in memory only: nothing on the venue depends on it)."""
    if (
        not memory
        or not stored
        or (memory.get("group"), memory.get("rev")) != (stored.get("group"), stored.get("rev"))
    ):
        return stored
    mem, db = _d(memory.get("high")), _d(stored.get("high"))
    return {**stored, "high": memory["high"]} if mem is not None and (db is None or mem > db) else stored


def moved(p: dict[str, Any], exits: model.Exits) -> dict[str, Any]:
    """The protection after the strategy set new exits on the open position: the next revision, the
    trailing high kept."""
    g = guard_of(p)
    return protection(
        exits,
        _d(p.get("entry")),
        p["group"],
        int(p.get("rev", 0)) + 1,
        g.high if g is not None else None,
        bool(p.get("watched")),
    )


def levels(p: dict[str, Any] | None) -> dict[str, str | None]:
    """What the web app draws: the stop (the higher of stop and trailing level), the target."""
    g = guard_of(p)
    if g is None:
        return {"stop": None, "target": None}
    lv = g.level()
    return {"stop": _s(lv[0]) if lv else None, "target": _s(g.target)}


def orders(p: dict[str, Any], amount: Decimal) -> list[dict[str, Any]]:
    """The protective orders of a stored protection (client id and the order columns)."""
    g = guard_of(p)
    if g is None or not g or amount <= 0:
        return []
    out = []
    for kind, price, stop_price, trail in model.protective_orders(g):
        out.append(
            {
                "client_order_id": protective_order_id(p["group"], kind, int(p.get("rev", 0))),
                "side": "sell",
                "amount": amount,
                "type": kind,
                "limit_price": price if kind == "take_profit" else None,
                "stop_price": stop_price,
                "trail": trail,
                "expires_at": None,
                "oco_group": p["group"],
                "exit_reason": None,
                "reference": price if kind == "trailing_stop" else None,
            }
        )
    return out


def exit_reason(
    order_type: str, reason: str | None, price: Decimal | None, limit_price: Decimal | None
) -> str:
    """Why a protective order's fill closed the position: the venue says which leg of a take-profit pair
    filled where it can (the paper engine does); otherwise its price tells."""
    if order_type == "stop":
        return "stop_loss"
    if order_type == "trailing_stop":
        return "trailing_stop"
    if reason in ("stop_loss", "take_profit"):
        return reason
    if price is not None and limit_price is not None and price < limit_price:
        return "stop_loss"
    return "take_profit"
