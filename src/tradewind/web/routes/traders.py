"""Trading accounts: paper accounts on the sim exchange, or an exchange key (write-only, encrypted)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import Assignment, Order, Trader
from tradewind.web.deps import Cursor, Limit, ObjectId, OwnedDep, StateDep, client_address, found, page
from tradewind.web.errors import ApiError
from tradewind.web.events import assignments_changed, trader_changed
from tradewind.web.schemas import TraderIn, TraderOut, TraderPage, TraderPatch

router = APIRouter(prefix="/api/traders", tags=["traders"])
PAPER_EXCHANGE = "sim"
log = logging.getLogger(__name__)
OPEN = ("pending", "open")  # orders the exchange may still fill
RISK_LIMITS = ("max_order_notional", "max_position", "daily_loss_limit")
DETACHED = "its trading account was deleted; choose another account and resume"
R = TypeVar("R", bound=msgspec.Struct)


def out(t: Trader) -> TraderOut:
    def dec(v: object) -> str | None:
        return None if v is None else format(v, "f")

    return TraderOut(
        id=t.id,
        name=t.name,
        exchange=t.exchange,
        paper=t.paper,
        sandbox=t.sandbox,
        api_key_masked=f"****{t.key_last4}" if t.key_last4 else None,
        max_order_notional=dec(t.max_order_notional),
        max_position=dec(t.max_position),
        daily_loss_limit=dec(t.daily_loss_limit),
        created_at=t.created_at,
    )


async def _ask(
    st: StateDep,
    t: Trader,
    subject: Callable[[str], str],
    msg: msgspec.Struct,
    reply_type: type[R],
    unreachable: int = 503,
) -> R:
    """Ask the adapter of ``t``'s exchange over the bus, on its ``subject`` of that exchange. ``unreachable``:
    the status when nobody answers (a 422 naming the field when the user is choosing the exchange, a 503 when
    an existing account's is down)."""
    exchange, to = t.exchange, subject(t.exchange)
    field = "exchange" if unreachable < 500 else None
    if st.nc is None:
        raise ApiError(unreachable, f"exchange {exchange} is not reachable (no message bus)", field=field)
    try:
        raw = await st.nc.request(to, m.encode(msg), timeout=15)
    except Exception:  # no responders, a timeout, a lost connection
        raise ApiError(
            unreachable,
            f"exchange {exchange} is not reachable: no adapter answered; is it configured?",
            field=field,
        ) from None
    try:
        return m.decode(raw.data, reply_type)
    except Exception:
        log.warning("unreadable %s reply on %s", reply_type.__name__, to)
        raise ApiError(502, f"exchange {exchange} gave an answer that cannot be read") from None


async def _verify(st: StateDep, t: Trader) -> None:
    verify = m.VerifyTrader(trader_id=t.id)
    reply = await _ask(st, t, subjects.exchange_verify, verify, m.VerifyReply, unreachable=422)
    if not reply.ok:
        raise ApiError(422, reply.error or "the exchange refused the key", field="api_key")


@router.get("", response_model=TraderPage)
async def list_traders(repo: OwnedDep, limit: Limit = 100, before_id: Cursor = None) -> dict[str, Any]:
    return page([out(t).model_dump(mode="json") for t in await repo.page(Trader, limit, before_id)], limit)


@router.post("", status_code=201, response_model=TraderOut)
async def create(body: TraderIn, repo: OwnedDep, st: StateDep, request: Request) -> TraderOut:
    if body.paper:
        if body.exchange != PAPER_EXCHANGE:
            raise ApiError(
                422,
                f'paper accounts trade on the simulated exchange; use exchange "{PAPER_EXCHANGE}"',
                field="exchange",
            )
        if body.api_key or body.api_secret:
            raise ApiError(422, "a paper account takes no API key", field="api_key")
    else:
        if body.exchange == PAPER_EXCHANGE:
            raise ApiError(
                422, "the simulated exchange has paper accounts only; set paper to true", field="paper"
            )
        if not (body.api_key and body.api_secret):
            raise ApiError(422, "an exchange account needs api_key and api_secret", field="api_key")
    t = repo.add(
        Trader(
            name=body.name,
            exchange=body.exchange,
            paper=body.paper,
            sandbox=body.sandbox,
            max_order_notional=body.max_order_notional,
            max_position=body.max_position,
            daily_loss_limit=body.daily_loss_limit,
        )
    )
    if body.api_key and body.api_secret:
        t.api_key_enc, t.api_secret_enc = st.box.encrypt(body.api_key), st.box.encrypt(body.api_secret)
        t.key_last4 = body.api_key[-4:]
    # Stored first: the adapter loads the account by id to check its key.
    await repo.s.commit()
    if not t.paper:
        try:
            await _verify(st, t)
        except ApiError as exc:
            await repo.s.delete(t)
            repo.audit_log(
                "trader.key_refused",
                client_address(request),
                exchange=t.exchange,
                reason=str(exc.detail)[:200],
            )
            await repo.s.commit()
            raise
    repo.audit_log(
        "trader.created", client_address(request), trader_id=t.id, exchange=t.exchange, paper=t.paper
    )
    await repo.s.commit()
    return out(t)


async def _get(repo: OwnedDep, trader_id: int) -> Trader:
    return found(await repo.get(Trader, trader_id), "trading account")


@router.get("/{trader_id}", response_model=TraderOut)
async def get(trader_id: ObjectId, repo: OwnedDep) -> TraderOut:
    return out(await _get(repo, trader_id))


async def _replace_key(t: Trader, body: TraderPatch, repo: OwnedDep, st: StateDep, request: Request) -> None:
    """Store the new key only if the exchange accepts it, as on creation; a refused one leaves the old key."""
    if t.paper:
        raise ApiError(422, "a paper account takes no API key", field="api_key")
    if not (body.api_key and body.api_secret):
        raise ApiError(422, "send api_key and api_secret together", field="api_key")
    old = (t.api_key_enc, t.api_secret_enc, t.key_last4)
    t.api_key_enc, t.api_secret_enc, t.key_last4 = (
        st.box.encrypt(body.api_key),
        st.box.encrypt(body.api_secret),
        body.api_key[-4:],
    )
    await repo.s.commit()  # the adapter loads the account by id to check its key
    try:
        await _verify(st, t)
    except ApiError as exc:
        t.api_key_enc, t.api_secret_enc, t.key_last4 = old
        repo.audit_log(
            "trader.key_refused",
            client_address(request),
            trader_id=t.id,
            exchange=t.exchange,
            reason=str(exc.detail)[:200],
        )
        await repo.s.commit()
        raise
    repo.audit_log("trader.key_changed", client_address(request), trader_id=t.id)


@router.patch("/{trader_id}", response_model=TraderOut)
async def update(
    trader_id: ObjectId, body: TraderPatch, repo: OwnedDep, st: StateDep, request: Request
) -> TraderOut:
    t = await _get(repo, trader_id)
    fields = body.model_dump(exclude_unset=True)
    # The key first: when the exchange refuses it, the name and limits sent with it stay as they were too.
    if "api_key" in fields or "api_secret" in fields:
        await _replace_key(t, body, repo, st, request)
    for name in ("name", "max_order_notional", "max_position", "daily_loss_limit"):
        if name in fields:
            setattr(t, name, fields[name])
    limits = {k: None if fields[k] is None else format(fields[k], "f") for k in RISK_LIMITS if k in fields}
    if limits:
        repo.audit_log("trader.limits_changed", client_address(request), trader_id=t.id, **limits)
    await repo.s.commit()
    # Core and the exchange service keep what they need of an account in memory: told at once, they
    # never size an order with a limit that no longer holds (core also reads the limits afresh per order).
    await trader_changed(st, t.id)
    return out(t)


@router.delete("/{trader_id}", status_code=204)
async def delete(trader_id: ObjectId, repo: OwnedDep, st: StateDep, request: Request) -> Response:
    t = await _get(repo, trader_id)
    # The checks below and the delete are one transaction that no new order intent can slip into: an
    # intent committed between them would be deleted with the account (its foreign key cascades) while
    # its order is being placed. PostgreSQL: the row lock conflicts with the key-share lock an intent's
    # insert takes on its account. SQLite: the no-op update takes the database's one write lock first, so
    # the checks see every intent committed before it; a later intent fails its foreign key, and core
    # drops that order when it retries the candle (the account is gone by then).
    await repo.s.execute(select(Trader.id).where(Trader.id == t.id).with_for_update())
    await repo.update_all(Trader, Trader.id == t.id, name=Trader.name)
    # Deleting the account would orphan what it holds on the exchange: orders nobody tracks, positions
    # no assignment can close.
    open_orders = (
        await repo.s.execute(
            repo.select(Order).where(Order.trader_id == t.id, Order.status.in_(OPEN)).limit(1)
        )
    ).first()
    if open_orders is not None:
        await repo.s.rollback()
        raise ApiError(409, "this account has open orders; cancel them (or use the kill switch) first")
    holding = (
        await repo.s.execute(
            repo.select(Assignment).where(Assignment.trader_id == t.id, Assignment.position_qty > 0).limit(1)
        )
    ).first()
    if holding is not None:
        await repo.s.rollback()
        raise ApiError(
            409, "an assignment holds a position through this account; close it first (Close position)"
        )
    # The assignments that traded through it are paused and detached in the same transaction, so none of
    # them can order on it (or, were an id ever handed out again, on anyone else's account).
    detached = await repo.update_all(
        Assignment, Assignment.trader_id == t.id, trader_id=None, enabled=False, paused_reason=DETACHED
    )
    repo.audit_log("trader.deleted", client_address(request), trader_id=t.id, paused_assignments=detached)
    await repo.delete(t)
    await repo.s.commit()
    await trader_changed(st, trader_id, deleted=True)
    if detached:
        await assignments_changed(st)
    return Response(status_code=204)


class ResetOut(BaseModel):
    trader_id: int
    balances: dict[str, str] = Field(description="asset -> amount after the reset, decimal string")
    time: int = Field(
        description="when, on the exchange's clock (epoch ms): the account's equity curve starts here"
    )


@router.post("/{trader_id}/reset", response_model=ResetOut)
async def reset(trader_id: ObjectId, repo: OwnedDep, st: StateDep, request: Request) -> ResetOut:
    """Put a paper account back to its starting cash (every other asset gone). Refused (409) while an
    assignment holds a position through it or it has orders open: pause or close them first. Each
    assignment keeps its own record of its trades and P&L; the account's equity curve starts again."""
    t = await _get(repo, trader_id)
    if not t.paper:
        raise ApiError(422, "only a paper account can be reset: a real account's balance is the exchange's")
    # The newest fill first, then the orders and positions: a fill after this read makes the exchange refuse
    # (it compares), and one before it is either still an open order or a position by the time they are read.
    last_fill = await repo.last_paper_fill(t.id)
    if (
        await repo.s.execute(
            repo.select(Order).where(Order.trader_id == t.id, Order.status.in_(OPEN)).limit(1)
        )
    ).first() is not None:
        raise ApiError(409, "this account has open orders; cancel them (or pause the assignments) first")
    if (
        await repo.s.execute(
            repo.select(Assignment).where(Assignment.trader_id == t.id, Assignment.position_qty > 0).limit(1)
        )
    ).first() is not None:
        raise ApiError(
            409, "an assignment holds a position through this account; close it first (Close position)"
        )
    msg = m.ResetPaper(trader_id=t.id, owner_id=repo.user_id, last_fill_id=last_fill)
    reply = await _ask(st, t, subjects.exchange_reset, msg, m.ResetReply)
    if not reply.ok:
        raise ApiError(409, reply.error or "the exchange refused the reset")
    repo.audit_log(
        "trader.reset", client_address(request), trader_id=t.id, balances=reply.balances, at=reply.time
    )
    await repo.s.commit()
    return ResetOut(trader_id=t.id, balances=reply.balances, time=reply.time)


@router.get("/{trader_id}/balances")
async def balances(trader_id: ObjectId, repo: OwnedDep, st: StateDep) -> dict[str, Any]:
    t = await _get(repo, trader_id)
    reply = await _ask(st, t, subjects.exchange_balance, m.BalanceRequest(trader_id=t.id), m.BalanceReply)
    if reply.error:
        raise ApiError(502, f"{t.exchange}: {reply.error}")
    return {"trader_id": t.id, "balances": reply.balances}
