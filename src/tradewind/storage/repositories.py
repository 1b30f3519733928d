"""Owner-scoped access to user objects: the one place where tenancy is enforced.

Routes never query user-owned tables directly; they go through ``Owned(session, user_id)``, whose every
query carries ``owner_id = :user``. Another user's object is simply not found (a 404, never a 403).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tradewind.storage.models import (
    EVALUATION_HOUR,
    HOUR_MS,
    ORDER_BLOCK,
    ORDER_BLOCK_IDS,
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
# Buckets (hours of evaluations, blocks of order ids) looked up per query by ``Owned._walk``.
FIRST_BUCKETS, MAX_BUCKETS = 24, 500
OWNED = (Strategy, Trader, Assignment, Order, Backtest, Study, WalkForwardRun, AlertChannel, AlertDelivery)


async def order_blocks(s: AsyncSession, per_query: int = MAX_BUCKETS) -> list[list[int]]:
    """Every block of order ids there is (``models.ORDER_BLOCK``), newest first, ``per_query`` to a list:
    what a query of one assignment's orders names (``ORDER_BLOCK.in_(part)`` beside ``assignment_id``) so
    that ``ix_orders_block`` serves it, no index leading with the assignment (issue 17)."""
    lo, hi = await _id_range(s)
    if lo is None or hi is None:
        return []
    every = list(range(hi // ORDER_BLOCK_IDS, lo // ORDER_BLOCK_IDS - 1, -1))
    return [every[i : i + per_query] for i in range(0, len(every), per_query)]


async def _id_range(s: AsyncSession) -> tuple[int | None, int | None]:
    """The lowest and highest order id, each a lookup in the primary key (SQLite answers one ``min`` or one
    ``max`` of a statement that way, both at once by a scan)."""
    lo = (await s.execute(select(func.min(Order.id)))).scalar()
    hi = (await s.execute(select(func.max(Order.id)))).scalar()
    return lo, hi


def _no_index(column: Any) -> Any:
    """The same value, for which no index of the column is chosen."""
    return column + 0


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
        walk = model is Order and filters.get("assignment_id") is not None  # see _orders_of
        q = select(model).where(_no_index(model.owner_id) == self.user_id) if walk else self.select(model)
        for column, value in filters.items():
            if value is not None:
                q = q.where(getattr(model, column) == value)
        if before_id is not None:
            q = q.where(model.id < before_id)
        q = q.order_by(model.id.desc())
        if walk:
            return [r[0] for r in await self._orders_of(q, limit, before_id)]
        return (await self.s.execute(q.limit(limit))).scalars().all()

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
        """The user's newest evaluations (of one assignment), newest first, before ``before_id``."""
        q = (
            select(Evaluation)
            .join(Assignment, Assignment.id == Evaluation.assignment_id)
            .where(Assignment.owner_id == self.user_id)
        )
        if before_id is not None:
            q = q.where(Evaluation.id < before_id)
        if assignment_id is not None:
            return await self._evaluations_of(q, limit, before_id, assignment_id)
        return (await self.s.execute(q.order_by(Evaluation.id.desc()).limit(limit))).scalars().all()

    async def _evaluations_of(
        self, q: Select[Evaluation], limit: int, before_id: int | None, assignment_id: int
    ) -> Sequence[Evaluation]:
        """One assignment's newest evaluations, hour by hour back in candle time from the newest (or from
        ``before_id``'s), each hour one lookup in ``ix_evaluations_hour``: no index leads with the
        assignment (issue 17: its inserts would rewrite a leaf per assignment per candle)."""
        e = Evaluation
        upper = None
        if before_id is not None:  # that row's candle (the cursor is a row of this assignment's)
            upper = (await self.s.execute(select(e.candle_time).where(e.id == before_id))).scalar()
        if upper is None:
            upper = (await self.s.execute(select(func.max(e.candle_time)))).scalar()
        lowest = (await self.s.execute(select(func.min(e.candle_time)))).scalar()
        if upper is None or lowest is None:
            return []
        q = q.where(e.assignment_id == assignment_id).order_by(e.id.desc())

        def hours(newest: int, oldest: int) -> list[Any]:  # PostgreSQL: only these months' partitions
            return [e.candle_time >= oldest * HOUR_MS, e.candle_time < (newest + 1) * HOUR_MS]

        rows = await self._walk(q, limit, EVALUATION_HOUR, upper // HOUR_MS, lowest // HOUR_MS, hours)
        return [r[0] for r in rows]

    async def _walk(
        self,
        q: Any,
        limit: int,
        bucket: Any,
        top: int,
        bottom: int,
        bounds: Callable[[int, int], list[Any]] | None = None,
    ) -> list[Any]:
        """The first ``limit`` rows of ``q`` (newest first) bucket by bucket down from ``top`` to ``bottom``,
        ``bucket`` being the leading expression of an index whose second column ``q`` names: a day's worth
        of buckets first, where a running assignment's newest rows are, then more at a time, up to a list
        that SQLite still plans as lookups (it scans a range instead past about a thousand)."""
        out: list[Any] = []
        at, step = top, FIRST_BUCKETS
        while at >= bottom and len(out) < limit:
            chunk = list(range(at, max(bottom, at - step + 1) - 1, -1))
            step = min(step * 4, MAX_BUCKETS)
            where = [bucket.in_(chunk), *(bounds(chunk[0], chunk[-1]) if bounds else [])]
            out.extend((await self.s.execute(q.where(*where).limit(limit - len(out)))).all())
            at = chunk[-1] - 1
        return out

    async def _orders_of(self, q: Any, limit: int, before_id: int | None) -> list[Any]:
        """``q``, of one assignment's orders newest first, block of ids by block (``ix_orders_block``). Its
        owner's condition must be ``_no_index``'s: SQLite, without statistics, would rather walk the owner's
        index (ix_orders_owner, which needs no sort) through every order of the owner's other assignments."""
        bottom, top = await _id_range(self.s)
        if top is None or bottom is None:
            return []
        if before_id is not None:
            top = min(top, before_id - 1)
        return await self._walk(q, limit, ORDER_BLOCK, top // ORDER_BLOCK_IDS, bottom // ORDER_BLOCK_IDS)

    async def order_counts(self, assignment_id: int, *where: Any) -> dict[tuple[str, str], int]:
        """How many of one assignment's orders there are per (status, side) among those ``where`` keeps, block
        of ids by block (``order_blocks``), for the reason ``_orders_of`` gives."""
        q = (
            select(Order.status, Order.side, func.count())
            .where(_no_index(Order.owner_id) == self.user_id, Order.assignment_id == assignment_id, *where)
            .group_by(Order.status, Order.side)
        )
        totals: dict[tuple[str, str], int] = {}
        for part in await order_blocks(self.s):
            for status, side, n in (await self.s.execute(q.where(ORDER_BLOCK.in_(part)))).all():
                totals[status, side] = totals.get((status, side), 0) + n
        return totals

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
            .where(
                (Order.owner_id if assignment_id is None else _no_index(Order.owner_id)) == self.user_id,
                or_(Order.filled > 0, f.id.is_not(None)),
            )
        )
        if trader_id is not None:
            q = q.where(Order.trader_id == trader_id)
        q = q.order_by(Order.id.desc())
        if assignment_id is not None:
            return await self._orders_of(q.where(Order.assignment_id == assignment_id), limit, None)
        return (await self.s.execute(q.limit(limit))).all()

    def audit_log(self, action: str, address: str | None = None, **detail: Any) -> None:
        self.s.add(AuditEntry(user_id=self.user_id, action=action, detail=detail, address=address))
