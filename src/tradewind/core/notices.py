"""What core tells a user on their event subject (typed live events, bus.messages.UserEvent): evaluations,
orders and fills, that an assignment was paused and why, that an account reached its daily loss limit.
The web app's live stream shows them, the alerts component sends them on; publishing is all core does (it
never waits for either)."""

from __future__ import annotations

from msgspec import UNSET
from nats.aio.client import Client

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.core.decide import AssignmentState


async def tell(nc: Client, owner_id: int, event: m.UserEvent) -> None:
    await nc.publish(subjects.user_events(owner_id), m.encode(event))


async def evaluated(
    nc: Client,
    st: AssignmentState,
    out: m.EvalOutcome,
    candle_time: int,
    note: str | None,
    *,
    tick: bool = False,
) -> None:
    """How ``st``'s strategy decided on the candle at ``candle_time`` (``tick``: on a tick, with its logs)."""
    await tell(
        nc,
        st.owner_id,
        m.EvaluationEvent(
            assignment_id=st.id,
            exchange=st.exchange,
            symbol=st.symbol,
            tf=st.timeframe,
            candle_time=candle_time,
            status=out.status,
            position=out.position,
            note=note,
            error=out.error,
            duration_ms=out.duration_us / 1000,
            trigger="tick" if tick else UNSET,
            logs=list(out.logs) if tick else UNSET,
        ),
    )


async def paused(nc: Client, st: AssignmentState, reason: str) -> None:
    """``st`` was paused by core: failing evaluations."""
    await tell(
        nc,
        st.owner_id,
        m.PausedEvent(
            assignment_id=st.id,
            reason=reason,
            by="core",
            exchange=st.exchange,
            symbol=st.symbol,
            timeframe=st.timeframe,
        ),
    )
