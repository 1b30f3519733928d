"""Owner-scoped access to user objects: the one place where tenancy is enforced.

Routes never query user-owned tables directly; they go through ``Owned(session, user_id)``, whose every
query carries ``owner_id = :user``. Another user's object is simply not found (a 404, never a 403).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tradewind.storage.models import (
    AlertChannel,
    AlertDelivery,
    Assignment,
    AuditEntry,
    Backtest,
    Evaluation,
    Order,
    PaperFill,
    Strategy,
    StrategyVersion,
    Study,
    Trader,
    WalkForwardRun,
)

T = TypeVar(
    "T", Strategy, Trader, Assignment, Order, Backtest, Study, WalkForwardRun, AlertChannel, AlertDelivery
)
OWNED = (Strategy, Trader, Assignment, Order, Backtest, Study, WalkForwardRun, AlertChannel, AlertDelivery)


class Owned:
    """One user's view of the database: every read and write here is limited to rows they own."""

    def __init__(self, session: AsyncSession, user_id: int) -> None:
        self.s = session
        self.user_id = user_id

    def select(self, model: type[T]) -> Select[T]:
        if model not in OWNED:
            raise TypeError(f"{model.__name__} is not an owned model")
        return select(model).where(model.owner_id == self.user_id)

    async def get(self, model: type[T], object_id: int) -> T | None:
        q = self.select(model).where(model.id == object_id)
        return (await self.s.execute(q)).scalar_one_or_none()

    async def page(
        self, model: type[T], limit: int, before_id: int | None = None, **filters: Any
    ) -> Sequence[T]:
        q = self.select(model)
        for column, value in filters.items():
            if value is not None:
                q = q.where(getattr(model, column) == value)
        if before_id is not None:
            q = q.where(model.id < before_id)
        q = q.order_by(model.id.desc()).limit(limit)
        return (await self.s.execute(q)).scalars().all()

    async def update_all(self, model: type[T], *conditions: Any, **values: Any) -> int:
        """``UPDATE model SET values WHERE owner = me AND conditions``; the number of rows changed."""
        if model not in OWNED:
            raise TypeError(f"{model.__name__} is not an owned model")
        q = update(model).where(model.owner_id == self.user_id, *conditions).values(**values)
        # An UPDATE executed through the session returns a CursorResult, which the overloads type as Result.
        result = cast(CursorResult[Any], await self.s.execute(q))
        return result.rowcount

    def add(self, obj: T) -> T:
        obj.owner_id = self.user_id
        self.s.add(obj)
        return obj

    async def delete(self, obj: T) -> None:
        if obj.owner_id != self.user_id:
            raise PermissionError("not the owner")
        await self.s.delete(obj)

    async def versions(self, strategy: Strategy) -> Sequence[StrategyVersion]:
        q = (
            select(StrategyVersion)
            .where(StrategyVersion.strategy_id == strategy.id)
            .order_by(StrategyVersion.version.desc())
        )
        return (await self.s.execute(q)).scalars().all()

    async def version(self, strategy: Strategy, version: int) -> StrategyVersion | None:
        q = select(StrategyVersion).where(
            StrategyVersion.strategy_id == strategy.id, StrategyVersion.version == version
        )
        return (await self.s.execute(q)).scalar_one_or_none()

    async def evaluations(
        self, limit: int, before_id: int | None = None, assignment_id: int | None = None
    ) -> Sequence[Evaluation]:
        q = (
            select(Evaluation)
            .join(Assignment, Assignment.id == Evaluation.assignment_id)
            .where(Assignment.owner_id == self.user_id)
        )
        if assignment_id is not None:
            q = q.where(Evaluation.assignment_id == assignment_id)
        if before_id is not None:
            q = q.where(Evaluation.id < before_id)
        return (await self.s.execute(q.order_by(Evaluation.id.desc()).limit(limit))).scalars().all()

    async def audit(self, limit: int, before_id: int | None = None) -> Sequence[AuditEntry]:
        q = select(AuditEntry).where(AuditEntry.user_id == self.user_id)
        if before_id is not None:
            q = q.where(AuditEntry.id < before_id)
        return (await self.s.execute(q.order_by(AuditEntry.id.desc()).limit(limit))).scalars().all()

    async def audit_of(self, action: str, limit: int = 100) -> Sequence[AuditEntry]:
        """The user's newest audit entries of one kind."""
        q = select(AuditEntry).where(AuditEntry.user_id == self.user_id, AuditEntry.action == action)
        return (await self.s.execute(q.order_by(AuditEntry.id.desc()).limit(limit))).scalars().all()

    async def paper_fills(self, trader_id: int, limit: int, since: int | None = None) -> Sequence[Any]:
        """The newest ``limit`` fills of one of the user's paper accounts as the simulated exchange recorded
        them (from ``since``, epoch ms, on), newest first: time, side, amount, price, fee, symbol, and from the
        order that made it (when core recorded one) its type, exit reason and assignment; id."""
        f = PaperFill
        q = (
            select(
                f.time,
                f.side,
                f.amount,
                f.price,
                f.fee,
                f.symbol,
                Order.type,
                Order.exit_reason,
                Order.assignment_id,
                f.id,
            )
            .join(Trader, Trader.id == f.trader_id)
            .outerjoin(Order, Order.client_order_id == f.client_order_id)
            .where(Trader.owner_id == self.user_id, f.trader_id == trader_id, f.status == "filled")
        )
        if since is not None:
            q = q.where(f.time >= since)
        return (await self.s.execute(q.order_by(f.time.desc(), f.id.desc()).limit(limit))).all()

    async def last_paper_fill(self, trader_id: int) -> int | None:
        """The id of the newest row the simulated exchange stored for one of the user's paper accounts."""
        q = (
            select(func.max(PaperFill.id))
            .join(Trader, Trader.id == PaperFill.trader_id)
            .where(Trader.owner_id == self.user_id, PaperFill.trader_id == trader_id)
        )
        return (await self.s.execute(q)).scalar_one_or_none()

    async def order_fills(
        self, limit: int, *, trader_id: int | None = None, assignment_id: int | None = None
    ) -> Sequence[Any]:
        """The newest ``limit`` of the user's orders that filled (some or all), of an account or an assignment,
        newest first: what core recorded (updated_at, side, filled, price, fee, symbol, type, exit reason,
        assignment), and the simulated exchange's own record of a paper fill (time, amount, price, fee; None
        for a real exchange's)."""
        f = PaperFill
        q = (
            select(
                Order.updated_at,
                Order.side,
                Order.filled,
                Order.price,
                Order.fee,
                Order.symbol,
                Order.type,
                Order.exit_reason,
                Order.assignment_id,
                f.time,
                f.amount,
                f.price,
                f.fee,
            )
            .outerjoin(f, and_(f.client_order_id == Order.client_order_id, f.status == "filled"))
            .where(Order.owner_id == self.user_id, or_(Order.filled > 0, f.id.is_not(None)))
        )
        if trader_id is not None:
            q = q.where(Order.trader_id == trader_id)
        if assignment_id is not None:
            q = q.where(Order.assignment_id == assignment_id)
        return (await self.s.execute(q.order_by(Order.id.desc()).limit(limit))).all()

    def audit_log(self, action: str, address: str | None = None, **detail: Any) -> None:
        self.s.add(AuditEntry(user_id=self.user_id, action=action, detail=detail, address=address))
