"""What the user's assignments did: evaluations, orders, positions; and the user's audit log."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter

from tradewind.storage.models import Assignment, Evaluation, Market, Order
from tradewind.web.deps import Cursor, Limit, OwnedDep, QueryId, page
from tradewind.web.schemas import (
    AuditOut,
    AuditPage,
    EvaluationOut,
    EvaluationPage,
    OrderOut,
    OrderPage,
    PositionOut,
)

router = APIRouter(prefix="/api", tags=["activity"])


def eval_out(e: Evaluation) -> EvaluationOut:
    return EvaluationOut(
        id=e.id,
        assignment_id=e.assignment_id,
        candle_time=e.candle_time,
        status=e.status,
        position=e.position,
        size=e.size,
        note=e.note,
        error=e.error,
        logs=e.logs or [],
        duration_ms=e.duration_ms,
        latency_ms=e.latency_ms,
        created_at=e.created_at,
        plot=e.plot,
    )


def order_out(o: Order) -> OrderOut:
    def dec(v: Decimal | None) -> str | None:
        return None if v is None else format(v, "f")

    return OrderOut(
        id=o.id,
        assignment_id=o.assignment_id,
        trader_id=o.trader_id,
        client_order_id=o.client_order_id,
        exchange=o.exchange,
        symbol=o.symbol,
        side=o.side,
        amount=format(o.amount, "f"),
        price=dec(o.price),
        filled=format(o.filled, "f"),
        fee=format(o.fee, "f"),
        pnl=dec(o.pnl),
        status=o.status,
        reason=o.reason,
        candle_time=o.candle_time,
        latency_ms=o.latency_ms,
        created_at=o.created_at,
        type=o.type or "market",
        limit_price=dec(o.limit_price),
        stop_price=dec(o.stop_price),
        exit_reason=o.exit_reason,
        size_note=o.size_note,
    )


@router.get("/evaluations", response_model=EvaluationPage)
async def evaluations(
    repo: OwnedDep, assignment_id: QueryId = None, limit: Limit = 100, before_id: Cursor = None
) -> dict[str, Any]:
    rows = await repo.evaluations(limit, before_id, assignment_id)
    return page([eval_out(e).model_dump(mode="json") for e in rows], limit)


OrderStatus = Literal["pending", "open", "filled", "canceled", "rejected", "not_placed"]


@router.get("/orders", response_model=OrderPage)
async def orders(
    repo: OwnedDep,
    assignment_id: QueryId = None,
    trader_id: QueryId = None,
    limit: Limit = 100,
    before_id: Cursor = None,
    status: OrderStatus | None = None,
) -> dict[str, Any]:
    """The user's orders, newest first; ``status=open`` lists what rests on the exchange (limit entries,
    protective exits)."""
    rows = await repo.page(
        Order, limit, before_id, assignment_id=assignment_id, trader_id=trader_id, status=status
    )
    return page([order_out(o).model_dump(mode="json") for o in rows], limit)


@router.get("/positions", response_model=list[PositionOut])
async def positions(repo: OwnedDep) -> list[PositionOut]:
    """Every assignment's open position valued at the market's last price, with realized P&L."""
    q = (
        repo.select(Assignment)
        .add_columns(Market.symbol, Market.last_price)
        .join(Market, Market.id == Assignment.market_id)
    )
    out = []
    for a, symbol, last in (await repo.s.execute(q.order_by(Assignment.id))).all():
        if a.position_qty == 0 and a.realized_pnl == 0:
            continue
        value = a.position_qty * Decimal(repr(last)) if last is not None else Decimal(0)
        out.append(
            PositionOut(
                assignment_id=a.id,
                trader_id=a.trader_id,
                market_id=a.market_id,
                symbol=symbol,
                qty=format(a.position_qty, "f"),
                entry_cost=format(a.entry_cost, "f"),
                last_price=last,
                value=format(value.quantize(Decimal("0.01")), "f"),
                unrealized_pnl=format(
                    (value - a.entry_cost).quantize(Decimal("0.01")) if a.position_qty else Decimal("0.00"),
                    "f",
                ),
                realized_pnl=format(a.realized_pnl.quantize(Decimal("0.01")), "f"),
            )
        )
    return out


@router.get("/audit", response_model=AuditPage)
async def audit(repo: OwnedDep, limit: Limit = 100, before_id: Cursor = None) -> dict[str, Any]:
    rows = await repo.audit(limit, before_id)
    return page(
        [
            AuditOut(
                id=r.id, action=r.action, detail=r.detail or {}, address=r.address, created_at=r.created_at
            ).model_dump(mode="json")
            for r in rows
        ],
        limit,
    )
