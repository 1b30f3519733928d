"""What the alerts tell: the events a channel can take, and each one rendered as a title and a text.

Rendering reads the event's data and nothing else (never a channel, so never a secret), shortens every
text a user or a venue wrote (a pause reason, a strategy's error), and keeps titles on one line (they are
e-mail subjects).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

#: The events a channel can take, with what they mean for a person (the API and the app list them).
EVENTS: dict[str, str] = {
    "fill": "An order filled",
    "paused": "An assignment paused, and why",
    "kill_switch": "The kill switch engaged or released",
    "loss_limit": "An account reached its daily loss limit",
    "exchange": "An exchange disconnected, and when it is back",
    "summary": "The daily summary: P&L, fills, paused assignments",
}
TEST = "test"  # a test alert, sent on request to one channel whatever its events
MAX_TEXT = 500  # characters of any one text a user or a venue wrote
MAX_TITLE = 200


@dataclass(frozen=True)
class Alert:
    """One alert for one user, the same on every channel and every attempt (``id`` lets a receiver drop a
    repeat: a delivery retried after a timeout may have arrived the first time)."""

    user_id: int
    event: str
    title: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def as_json(self) -> dict[str, Any]:
        """The webhook's body and the browser's event."""
        return {
            "id": self.id,
            "event": self.event,
            "time": self.time.isoformat(timespec="seconds"),
            "title": self.title,
            "text": self.text,
            "data": self.data,
        }


def _short(value: Any, limit: int = MAX_TEXT) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _line(text: str) -> str:
    return _short(" ".join(text.split()), MAX_TITLE)


def _num(value: Any) -> str:
    """A decimal string as a person reads it: 0.010000 -> 0.01, 1E+2 -> 100; anything else as it is."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return _short(value, 40)
    if not d.is_finite():
        return _short(value, 40)
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _money(value: Any) -> str:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return _short(value, 40)
    return f"{d:+,.2f}" if d.is_finite() else _short(value, 40)


def _assignment(data: dict[str, Any]) -> str:
    what = f"assignment #{data.get('assignment_id')}"
    market = " ".join(str(data[k]) for k in ("exchange", "symbol", "timeframe") if data.get(k))
    if data.get("strategy"):
        what += f" ({_short(data['strategy'], 100)}{' on ' + market if market else ''})"
    elif market:
        what += f" ({market})"
    return what


EXIT_REASONS = {
    "stop_loss": "stop-loss",
    "take_profit": "take-profit",
    "trailing_stop": "trailing stop",
    "signal": "the strategy's signal",
}


def _fill(d: dict[str, Any]) -> tuple[str, str]:
    side, symbol = str(d.get("side", "")).lower(), _short(d.get("symbol", "?"), 41)
    amount = _num(d.get("filled") or d.get("amount") or "0")
    base, _, quote = symbol.partition("/")
    price = _num(d["price"]) if d.get("price") not in (None, "") else "?"
    title = f"Filled: {side} {amount} {base} at {price}{' ' + quote if quote else ''}"
    lines = [f"{_upper_first(side)} {amount} {symbol} at {price}, fee {_num(d.get('fee') or '0')}."]
    if d.get("assignment_id") is not None:
        lines.append(f"For {_assignment(d)}.")
    if d.get("exit_reason"):
        lines.append(f"Closed by {EXIT_REASONS.get(str(d['exit_reason']), _short(d['exit_reason'], 40))}.")
    if d.get("order_type") and d["order_type"] != "market":
        lines.append(f"Order type: {_short(d['order_type'], 20)}.")
    return title, "\n".join(lines)


def _paused(d: dict[str, Any]) -> tuple[str, str]:
    reason = _short(d.get("reason") or "no reason given")
    title = f"Paused: assignment #{d.get('assignment_id')}"
    if d.get("strategy"):
        title += f" ({d['strategy']})"
    return (
        title,
        f"{_upper_first(_assignment(d))} was paused: {reason}.\nResume it in the app when it is fixed.",
    )


def _kill_switch(d: dict[str, Any]) -> tuple[str, str]:
    if not d.get("engaged", True):
        return (
            "Kill switch released",
            "Trading is allowed again; your assignments stay paused until you resume each one.",
        )
    text = (
        f"Every assignment is paused ({int(d.get('paused_assignments') or 0)} were running) and "
        f"{int(d.get('cancel_requests') or 0)} open order(s) were asked to cancel."
    )
    if d.get("flatten"):
        text += " Open positions are being closed at the market."
    return "Kill switch engaged", text


def _loss_limit(d: dict[str, Any]) -> tuple[str, str]:
    account = _short(d.get("trader_name") or f"account #{d.get('trader_id')}", 100)
    title = f"Daily loss limit reached on {account}"
    text = (
        f"{account} lost {_num(d.get('loss', '?'))} today (limit {_num(d.get('limit', '?'))}): "
        f"{int(d.get('paused') or 0)} assignment(s) paused, and it buys nothing more until 00:00 UTC."
    )
    return title, text


def _exchange(d: dict[str, Any]) -> tuple[str, str]:
    name = _short(d.get("exchange", "?"), 32)
    if d.get("connected"):
        down = d.get("down_s")
        return f"Exchange {name} is back", (
            f"Market data from {name} flows again" + (f" after {_duration(down)}." if down else ".")
        )
    return f"Exchange {name} disconnected", (
        f"No market data from {name} for {_duration(d.get('silent_s'))}: its connection (or the exchange "
        "component) is down. Assignments on its markets get no new candles meanwhile."
    )


def _duration(seconds: Any) -> str:
    try:
        s = int(float(seconds))
    except (TypeError, ValueError):
        return "a while"
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h {s % 3600 // 60} min"


def _summary(d: dict[str, Any]) -> tuple[str, str]:
    day = _short(d.get("day", "?"), 40)
    pnl = d.get("pnl") or {}
    pnl_text = ", ".join(f"{_money(v)} {_short(k, 20)}" for k, v in sorted(pnl.items())) or "none"
    paused = d.get("paused") or []
    lines = [
        f"Realized P&L: {pnl_text}",
        f"Fills: {int(d.get('fills') or 0)}",
        f"Paused assignments: {int(d.get('paused_count') or len(paused))}",
    ]
    for p in paused[:10]:
        lines.append(f"  - {_assignment(p)}: {_short(p.get('reason'), 200)}")
    if len(paused) > 10:
        lines.append(f"  … and {len(paused) - 10} more")
    return f"Daily summary for {day}", "\n".join(lines)


def _test(d: dict[str, Any]) -> tuple[str, str]:
    return "Test alert from tradewind", (
        f'This is a test of your alert channel "{_short(d.get("channel", ""), 100)}": it works.'
    )


_RENDER = {
    "fill": _fill,
    "paused": _paused,
    "kill_switch": _kill_switch,
    "loss_limit": _loss_limit,
    "exchange": _exchange,
    "summary": _summary,
    TEST: _test,
}


def render(user_id: int, event: str, data: dict[str, Any], now: dt.datetime | None = None) -> Alert:
    """The alert for ``event`` with ``data`` (as published on the bus, plus what the service looked up)."""
    title, text = _RENDER[event](data)
    return Alert(
        user_id=user_id,
        event=event,
        title=_line(title),
        text=text,
        data=data,
        time=now or dt.datetime.now(dt.UTC),
    )
