"""Assignments: a strategy on a market and timeframe, optionally trading through an account."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.core import positions
from tradewind.storage.models import (
    Assignment,
    Evaluation,
    Market,
    Order,
    Strategy,
    StrategyVersion,
    Trader,
    User,
)
from tradewind.trading import model
from tradewind.web import allocation, declared
from tradewind.web.close import ask_core, audit_detail
from tradewind.web.declared import ValidatorDep
from tradewind.web.deps import (
    CurrentUser,
    Cursor,
    Limit,
    ObjectId,
    OwnedDep,
    StateDep,
    client_address,
    found,
    not_found,
    page,
)
from tradewind.web.errors import ApiError
from tradewind.web.events import assignments_changed, user_event
from tradewind.web.schemas import (
    AllocationCheckIn,
    AllocationOut,
    AssignmentIn,
    AssignmentOut,
    AssignmentPage,
    AssignmentPatch,
    CloseOut,
    LatencyOut,
    LatencySummary,
    ProtectionOut,
    QuoteOut,
    QuotesOut,
    WarningOut,
)

router = APIRouter(prefix="/api/assignments", tags=["assignments"])
KILL_SWITCH = "kill switch"


def out(a: Assignment, latest: int | None, warnings: Iterable[WarningOut] = ()) -> AssignmentOut:
    """The assignment as the API shows it; ``latest``: its strategy's latest version."""
    return AssignmentOut(
        id=a.id,
        strategy_id=a.strategy_id,
        market_id=a.market_id,
        timeframe=a.timeframe,
        trader_id=a.trader_id,
        allocation=format(a.allocation, "f"),
        params=a.params or {},
        lookback=a.lookback,
        enabled=a.enabled,
        paused_reason=a.paused_reason,
        position_qty=format(a.position_qty, "f"),
        entry_cost=format(a.entry_cost, "f"),
        realized_pnl=format(a.realized_pnl, "f"),
        last_position=a.last_position,
        created_at=a.created_at,
        protection=_protection(a),
        trigger=a.trigger,
        min_interval_ms=a.min_interval_ms,
        max_position=format(a.max_position, "f") if a.max_position is not None else None,
        pinned_version=a.pinned_version,
        version=a.pinned_version or latest,
        capital=format(model.capital(a.allocation, a.realized_pnl), "f"),
        capital_in_use=format(a.entry_cost if a.position_qty > 0 else Decimal(0), "f"),
        warnings=list(warnings),
    )


async def _out(repo: OwnedDep, a: Assignment, warnings: Iterable[WarningOut] = ()) -> AssignmentOut:
    latest = (
        await repo.s.execute(select(Strategy.latest_version).where(Strategy.id == a.strategy_id))
    ).scalar()
    return out(a, latest, warnings)


async def _version(repo: OwnedDep, strategy_id: int, pinned: int | None) -> StrategyVersion:
    """The strategy version an assignment with ``pinned`` runs: that one, or the latest."""
    s = await repo.get(Strategy, strategy_id)
    if s is None:
        raise ApiError(422, "no such strategy", field="strategy_id")
    v = await repo.version(s, pinned or s.latest_version)
    if v is None:
        raise ApiError(
            422,
            f"the strategy has no version {pinned}; its versions are 1 to {s.latest_version}",
            field="pinned_version",
        )
    return v


async def _allocation(repo: OwnedDep, st: StateDep, a: Assignment) -> list[WarningOut]:
    """Warnings about ``a``'s allocation among its account's other assignments (none without an account)."""
    if a.trader_id is None:
        return []
    trader, market = await repo.get(Trader, a.trader_id), await repo.s.get(Market, a.market_id)
    if trader is None or market is None:
        return []
    return (await allocation.check(repo, st, trader, market, a.allocation, a.id)).warnings


def _protection(a: Assignment) -> ProtectionOut | None:
    p = a.protection
    if not p or a.position_qty <= 0 or not positions.exits_of(p):
        return None
    lv = positions.levels(p)
    return ProtectionOut(
        stop_loss=p.get("stop_loss"),
        take_profit=p.get("take_profit"),
        trailing_stop=p.get("trailing_stop"),
        entry=p.get("entry"),
        stop=lv["stop"],
        target=lv["target"],
        watched=bool(p.get("watched")),
    )


def _not_killed(user: User) -> None:
    if user.killed:
        raise ApiError(
            409, "the kill switch is on; release it (DELETE /api/killswitch) before resuming", field="enabled"
        )


async def _check_refs(
    repo: OwnedDep, market_id: int | None, trader_id: int | None, strategy_id: int | None
) -> None:
    market = await repo.s.get(Market, market_id) if market_id is not None else None
    if market_id is not None and market is None:
        raise ApiError(422, "no such market", field="market_id")
    if strategy_id is not None and await repo.get(Strategy, strategy_id) is None:
        raise ApiError(422, "no such strategy", field="strategy_id")
    if trader_id is not None:
        trader = await repo.get(Trader, trader_id)
        if trader is None:
            raise ApiError(422, "no such trading account", field="trader_id")
        if market is not None and trader.exchange != market.exchange:
            raise ApiError(
                422,
                f"this account trades on {trader.exchange}, the market is on {market.exchange}",
                field="trader_id",
            )


@router.get("", response_model=AssignmentPage)
async def list_assignments(repo: OwnedDep, limit: Limit = 100, before_id: Cursor = None) -> dict[str, Any]:
    latest = dict(
        (
            await repo.s.execute(
                select(Strategy.id, Strategy.latest_version).where(Strategy.owner_id == repo.user_id)
            )
        ).all()
    )
    return page(
        [
            out(a, latest.get(a.strategy_id)).model_dump(mode="json")
            for a in await repo.page(Assignment, limit, before_id)
        ],
        limit,
    )


@router.post("", status_code=201, response_model=AssignmentOut)
async def create(
    body: AssignmentIn, repo: OwnedDep, st: StateDep, user: CurrentUser, pool: ValidatorDep
) -> AssignmentOut:
    """Assign a strategy; its parameters are checked against what the version it runs declares. An
    allocation that takes the account's assignments past its value is saved, with a warning."""
    await _check_refs(repo, body.market_id, body.trader_id, body.strategy_id)
    v = await _version(repo, body.strategy_id, body.pinned_version)
    params = declared.check(await declared.of_version(pool, v, repo.user_id), body.params)
    a = repo.add(Assignment(**{**body.model_dump(), "params": params}))
    if user.killed and a.enabled:  # the kill switch holds everything, new assignments included
        a.enabled, a.paused_reason = False, KILL_SWITCH
    await repo.s.commit()
    await assignments_changed(st, a.id)
    return await _out(repo, a, await _allocation(repo, st, a))


@router.post("/allocation", response_model=AllocationOut)
async def check_allocation(body: AllocationCheckIn, repo: OwnedDep, st: StateDep) -> AllocationOut:
    """Whether an allocation, with those of the account's other assignments, is more than the account is worth
    (a form asks before it saves; creating and changing an assignment answer the same warnings)."""
    trader = await repo.get(Trader, body.trader_id)
    if trader is None:
        raise ApiError(422, "no such trading account", field="trader_id")
    market = await repo.s.get(Market, body.market_id)
    if market is None:
        raise ApiError(422, "no such market", field="market_id")
    if body.assignment_id is not None and await repo.get(Assignment, body.assignment_id) is None:
        raise ApiError(422, "no such assignment", field="assignment_id")
    return await allocation.check(repo, st, trader, market, body.allocation, body.assignment_id)


async def _get(repo: OwnedDep, assignment_id: int) -> Assignment:
    return found(await repo.get(Assignment, assignment_id), "assignment")


@router.get("/{assignment_id}", response_model=AssignmentOut)
async def get(assignment_id: ObjectId, repo: OwnedDep) -> AssignmentOut:
    return await _out(repo, await _get(repo, assignment_id))


@router.patch("/{assignment_id}", response_model=AssignmentOut)
async def update(
    assignment_id: ObjectId,
    body: AssignmentPatch,
    repo: OwnedDep,
    st: StateDep,
    user: CurrentUser,
    pool: ValidatorDep,
) -> AssignmentOut:
    a = await _get(repo, assignment_id)
    fields = body.model_dump(exclude_unset=True)
    if "params" in fields or "pinned_version" in fields:  # checked against the version it will run
        v = await _version(repo, a.strategy_id, fields.get("pinned_version", a.pinned_version))
        decl = await declared.of_version(pool, v, repo.user_id)
        fields["params"] = declared.check(decl, fields.get("params", a.params or {}))
    if fields.get("enabled"):
        _not_killed(user)
    if "trader_id" in fields:
        await _check_refs(repo, a.market_id, fields["trader_id"], None)
        if a.position_qty > 0 and fields["trader_id"] != a.trader_id:
            raise ApiError(
                409,
                'close the position (Close position, or a "short" decision) before changing the account',
                field="trader_id",
            )
    for name, value in fields.items():
        setattr(a, name, value)
    if fields.get("enabled"):
        a.paused_reason = None
        a.consecutive_failures = 0
    await repo.s.commit()
    await assignments_changed(st, a.id)
    warnings = await _allocation(repo, st, a) if {"allocation", "trader_id"} & fields.keys() else []
    return await _out(repo, a, warnings)


@router.post("/{assignment_id}/pause", response_model=AssignmentOut)
async def pause(assignment_id: ObjectId, repo: OwnedDep, st: StateDep) -> AssignmentOut:
    a = await _get(repo, assignment_id)
    running = a.enabled
    a.enabled, a.paused_reason = False, "paused by you"
    await repo.s.commit()
    await assignments_changed(st, a.id)
    if running:  # the live stream and the alerts hear of it
        await user_event(st, a.owner_id, m.PausedEvent(assignment_id=a.id, reason=a.paused_reason, by="you"))
    return await _out(repo, a)


@router.post("/{assignment_id}/resume", response_model=AssignmentOut)
async def resume(assignment_id: ObjectId, repo: OwnedDep, st: StateDep, user: CurrentUser) -> AssignmentOut:
    a = await _get(repo, assignment_id)
    _not_killed(user)
    a.enabled, a.paused_reason, a.consecutive_failures = True, None, 0
    await repo.s.commit()
    await assignments_changed(st, a.id)
    return await _out(repo, a)


@router.post("/{assignment_id}/close", response_model=CloseOut)
async def close(
    assignment_id: ObjectId, repo: OwnedDep, st: StateDep, user: CurrentUser, request: Request
) -> CloseOut:
    """Close the position now: core sells what the assignment holds at the market (running or paused), and
    cancels its resting orders. Asking again while the sell is on its way answers with the same order."""
    a = await _get(repo, assignment_id)
    if a.trader_id is None:
        raise ApiError(409, "this assignment has no trading account: it holds nothing to close")
    if a.position_qty <= 0:
        raise ApiError(409, "nothing to close: this assignment holds nothing")
    results = await ask_core(st, user.id, [a.id], "close")
    result = next((r for r in results if r.assignment_id == a.id), None)
    if result is None or result.status == "not_found":
        raise not_found("assignment")
    repo.audit_log("position.close", client_address(request), **audit_detail([result]))
    await repo.s.commit()
    if result.status == "flat":
        raise ApiError(409, "nothing to close: this assignment holds nothing")
    if result.status == "refused":
        raise ApiError(409, f"not closed: {result.reason}")
    return result


@router.delete("/{assignment_id}", status_code=204)
async def delete(assignment_id: ObjectId, repo: OwnedDep, st: StateDep) -> Response:
    a = await _get(repo, assignment_id)
    await repo.delete(a)
    await repo.s.commit()
    await assignments_changed(st, assignment_id)
    return Response(status_code=204)


@router.get("/{assignment_id}/quotes", response_model=QuotesOut)
async def quotes(assignment_id: ObjectId, repo: OwnedDep) -> QuotesOut:
    """A quoting assignment's resting quotes, inventory and fills."""
    a = await _get(repo, assignment_id)
    resting = (
        (
            await repo.s.execute(
                select(Order)
                .where(
                    Order.assignment_id == a.id, Order.type == "quote", Order.status.in_(("pending", "open"))
                )
                .order_by(Order.id)
            )
        )
        .scalars()
        .all()
    )
    counts = await repo.order_counts(a.id, Order.type == "quote")  # one walk of the order blocks for both
    placed = sum(counts.values())
    buys, sells = counts.get(("filled", "buy"), 0), counts.get(("filled", "sell"), 0)
    filled = buys + sells
    ended = filled + counts.get(("canceled", "buy"), 0) + counts.get(("canceled", "sell"), 0)
    return QuotesOut(
        assignment_id=a.id,
        trigger=a.trigger,
        inventory=format(a.position_qty, "f"),
        max_position=format(a.max_position, "f") if a.max_position is not None else None,
        quotes=[
            QuoteOut(
                client_order_id=o.client_order_id,
                side=o.side,
                price=format(o.limit_price or 0, "f"),
                amount=format(o.amount, "f"),
                status=o.status,
            )
            for o in resting
        ],
        realized_pnl=format(a.realized_pnl, "f"),
        placed=placed,
        filled=filled,
        buys_filled=buys,
        sells_filled=sells,
        fill_rate=round(filled / ended, 4) if ended else None,
    )


@router.get("/{assignment_id}/latency", response_model=LatencyOut)
async def latency(assignment_id: ObjectId, repo: OwnedDep) -> LatencyOut:
    """Tick -> decision and tick -> order call (ms) over this assignment's last 500 evaluations and orders."""
    a = await _get(repo, assignment_id)
    evals, orders = await _latencies(repo, Evaluation, a.id), await _latencies(repo, Order, a.id)
    return LatencyOut(
        assignment_id=a.id, tick_to_decision=_summary(evals), tick_to_order_call=_summary(orders)
    )


async def _latencies(
    repo: OwnedDep, model: type[Evaluation] | type[Order], assignment_id: int
) -> list[float]:
    """The latencies (ms) of the assignment's last 500 evaluations or orders, those that have one."""
    q = (
        select(model.latency_ms)
        .where(model.assignment_id == assignment_id)
        .order_by(model.id.desc())
        .limit(500)
    )
    return [x for x in (await repo.s.execute(q)).scalars() if x is not None]


def _summary(xs: list[float]) -> LatencySummary:
    if not xs:
        return LatencySummary(count=0, p50_ms=None, p99_ms=None, max_ms=None)
    s = sorted(xs)
    return LatencySummary(
        count=len(s),
        p50_ms=round(statistics.median(s), 2),
        p99_ms=round(s[min(len(s) - 1, int(0.99 * len(s)))], 2),
        max_ms=round(s[-1], 2),
    )
