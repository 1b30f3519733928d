"""Closing positions: the web process asks core (``ClosePositions``) and never places an order itself."""

from __future__ import annotations

import logging
from typing import Any

from nats.errors import Error as NatsError

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.web.errors import ApiError
from tradewind.web.schemas import CloseOut

log = logging.getLogger(__name__)
CORE_TIMEOUT_S = 10.0
NO_CORE = "core is not reachable, so nothing was sold; try again in a moment"


async def ask_core(st: Any, owner_id: int, assignment_ids: list[int] | None, why: str) -> list[CloseOut]:
    """Ask core to close positions of ``owner_id`` (None: all of them); a 503 when no core answers."""
    if st.nc is None:
        raise ApiError(503, NO_CORE)
    req = m.ClosePositions(owner_id=owner_id, assignment_ids=assignment_ids, why=why)
    try:
        msg = await st.nc.request(subjects.CORE_CLOSE, m.encode(req), timeout=CORE_TIMEOUT_S)
        reply = m.decode(msg.data, m.PositionsClosed)
    except (NatsError, TimeoutError) as exc:  # no responders, no answer in time, the bus is down
        log.warning("close positions of user %s: %s", owner_id, type(exc).__name__)
        raise ApiError(503, NO_CORE) from None
    if reply.error:
        raise ApiError(503, f"core could not close the positions: {reply.error}")
    return [
        CloseOut(
            assignment_id=r.assignment_id,
            status=r.status,
            client_order_id=r.client_order_id,
            amount=r.amount,
            reason=r.reason,
        )
        for r in reply.results
    ]


def audit_detail(results: list[CloseOut]) -> dict[str, Any]:
    return {"positions": [r.model_dump(exclude_none=True) for r in results]}
