"""The state machine's model of what each user has and what is in force, and invariant 3 against it: the
limits and states in force when a candle closed held for the orders the candle caused."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import event
from hypothesis.control import currently_in_test_context
from sqlalchemy import select

from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Order
from tradewind.storage.types import utcnow

from .books import RISK, Books
from .conftest import USERS

SEEN: Counter[str] = Counter()  # what the examples did, so that a run that never traded cannot pass


def seen(what: str) -> None:
    if currently_in_test_context():
        event(what)
    SEEN[what] += 1


@dataclass
class Account:
    id: int
    owner: str
    limits: dict[str, Decimal | None]


@dataclass
class Assigned:
    id: int
    owner: str
    strategy_id: int
    trader_id: int | None
    allocation: Decimal
    enabled: bool


@dataclass(frozen=True)
class Ref:
    """What a bundle holds: an object as created. It may have been deleted since (then every request
    with it is a 404), and is tried by other users too."""

    kind: str
    id: int
    owner: str

    def __repr__(self) -> str:
        return f"{self.kind}#{self.id}({self.owner})"


# What a refused creation puts in its bundle: an id never handed out, so every request with it is a 404.
# Bundles then hold as many entries whatever the platform answered, and a replay draws the same steps.
GHOST = Ref("assignment", 999_999_999, USERS[0])


@dataclass
class Model:
    accounts: dict[int, Account] = field(default_factory=dict)
    strategies: dict[int, str] = field(default_factory=dict)  # id -> owner
    assignments: dict[int, Assigned] = field(default_factory=dict)
    killed: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(USERS, False))
    seen: dict[str, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))  # kind -> id -> what
    owners: dict[int, int] = field(default_factory=dict)  # every assignment ever made -> its owner's user id

    def fresh(self, kind: str, object_id: int, what: str) -> None:
        """Invariant 4: a new object never gets an id seen before."""
        before = self.seen[kind].get(object_id)
        assert before is None, f"ids are never reused: the new {what} got id {object_id}, the id of {before}"
        self.seen[kind][object_id] = what


async def losses_today(sf: SessionFactory) -> dict[int, Decimal]:
    """Each account's realized loss since midnight UTC (positive: a loss), as core counts it."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    async with sf() as s:
        rows = (
            await s.execute(
                select(Order.trader_id, Order.pnl).where(Order.pnl.is_not(None), Order.updated_at >= midnight)
            )
        ).all()
    out: dict[int, Decimal] = defaultdict(Decimal)
    for trader_id, pnl in rows:
        out[trader_id] -= pnl
    return out


def limit_problems(
    model: Model,
    before: Books,
    after: Books,
    loss: dict[int, Decimal],
    loss_after: dict[int, Decimal],
    t: int,
    close: Decimal,
    asked: set[int],
) -> list[str]:
    """Invariant 3 for the orders the candle at ``t`` caused, against the model as it stood when it closed.
    ``loss``/``loss_after``: each account's realized loss today before and after the candle; ``asked``: the
    assignments core had evaluated on it."""
    problems = []
    placed = {f.client_order_id for f in after.fills}  # what reached the exchange
    new = [o for o in after.orders if o.candle_time == t]
    buys: dict[int, list[Any]] = defaultdict(list)
    for o in new:
        a = model.assignments.get(o.assignment_id) if o.assignment_id is not None else None
        if a is None or not a.enabled or model.killed[a.owner] or a.trader_id != o.trader_id:
            state = (
                "deleted"
                if a is None
                else "killed"
                if model.killed[a.owner]
                else "paused"
                if not a.enabled
                else f"on account {a.trader_id}"
            )
            problems.append(
                f"order {o.client_order_id} ({o.side} {o.amount} on account {o.trader_id}, {o.status}) "
                f"for assignment {o.assignment_id}, which is {state}"
            )
        if o.side == "buy" and o.client_order_id in placed:
            buys[o.trader_id].append(o)
    for tid, acct in model.accounts.items():
        day = acct.limits["daily_loss_limit"]
        if (
            day is not None
            and loss.get(tid, Decimal(0)) >= day
            and any(
                a.trader_id == tid and a.enabled and not model.killed[a.owner] and a.id in asked
                for a in model.assignments.values()
            )
        ):
            seen("a running assignment asked to trade on an account past its daily loss limit")
    for tid, orders in buys.items():
        acct = model.accounts.get(tid)
        limits = acct.limits if acct else dict.fromkeys(RISK)
        notional = limits["max_order_notional"]
        for o in orders:
            a = model.assignments.get(o.assignment_id)
            if notional is not None and a is not None and a.allocation > notional:
                seen("a buy under a max_order_notional smaller than its allocation")
            if notional is not None and o.amount * close > notional:
                problems.append(
                    f"buy {o.client_order_id} worth {o.amount * close:.2f} on account {tid} "
                    f"(max_order_notional {notional})"
                )
        cap = limits["max_position"]
        if cap is not None:
            held = sum(
                (a.position_qty for a in before.assignments.values() if a.trader_id == tid), Decimal(0)
            )
            if held or len(orders) > 1:
                seen("buys under max_position on an account holding or buying for two assignments")
            total = (held + sum(o.amount for o in orders)) * close
            if total > cap:
                problems.append(
                    f"account {tid} holds {held} and bought {[str(o.amount) for o in orders]}: "
                    f"worth {total:.2f} (max_position {cap})"
                )
        day = limits["daily_loss_limit"]
        if day is not None and loss.get(tid, Decimal(0)) >= day:
            problems.append(
                f"account {tid} lost {loss[tid]:.2f} today (daily_loss_limit {day}) and bought "
                f"{[o.client_order_id for o in orders]}"
            )
    for o in new:
        acct = model.accounts.get(o.trader_id)
        day = acct.limits["daily_loss_limit"] if acct else None
        if (
            o.pnl is not None
            and o.pnl < 0
            and day is not None
            and loss_after.get(o.trader_id, Decimal(0)) >= day
        ):
            running = [a.id for a in after.assignments.values() if a.trader_id == o.trader_id and a.enabled]
            if running:
                problems.append(
                    f"account {o.trader_id} lost {loss_after.get(o.trader_id, Decimal(0)):.2f} today (limit {day}) "
                    f"but its assignments {running} are not paused"
                )
    return problems
