"""What the web component says on the bus."""

from __future__ import annotations

from typing import Any

from tradewind.bus import messages as m
from tradewind.bus import subjects


async def assignments_changed(st: Any, assignment_id: int | None = None) -> None:
    """Tell core to reload its assignment index."""
    if st.nc is not None:
        await st.nc.publish(
            subjects.ASSIGNMENTS_CHANGED, m.encode(m.AssignmentsChanged(assignment_id=assignment_id))
        )


async def trader_changed(st: Any, trader_id: int, *, deleted: bool = False) -> None:
    """Tell core and the exchange service that an account's limits, key or existence changed."""
    if st.nc is not None:
        await st.nc.publish(
            subjects.TRADERS_CHANGED, m.encode(m.TraderChanged(trader_id=trader_id, deleted=deleted))
        )


async def user_event(st: Any, user_id: int, event: m.UserEvent) -> None:
    """Tell the user's live stream (and the alerts component) what they did: a pause, the kill switch."""
    if st.nc is not None:
        await st.nc.publish(subjects.user_events(user_id), m.encode(event))


async def alert_channels_changed(st: Any, owner_id: int) -> None:
    """Tell the alerts component to read this user's alert channels again."""
    if st.nc is not None:
        await st.nc.publish(subjects.ALERTS_CHANGED, m.encode(m.AlertChannelsChanged(owner_id=owner_id)))
