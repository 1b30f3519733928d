"""What core tells a user on their event subject besides evaluations and orders: that an assignment was
paused and why, that an account reached its daily loss limit. The web app's live stream shows them, the
alerts component sends them on; publishing is all core does (it never waits for either)."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client

from tradewind.bus import messages as m
from tradewind.bus import subjects


async def tell(nc: Client, owner_id: int, kind: str, data: dict[str, Any]) -> None:
    await nc.publish(subjects.user_events(owner_id), m.encode(m.UserEvent(kind=kind, data=data)))


async def paused(nc: Client, st: Any, reason: str) -> None:
    """``st`` (an AssignmentState) was paused by core: failing evaluations."""
    await tell(
        nc,
        st.owner_id,
        "paused",
        {
            "assignment_id": st.id,
            "reason": reason,
            "exchange": st.exchange,
            "symbol": st.symbol,
            "timeframe": st.timeframe,
            "by": "core",
        },
    )
