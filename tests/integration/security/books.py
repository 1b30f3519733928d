"""The books of one example, read from the database, and invariants 1 and 2 over them: whose orders are
on which accounts, and whether each account's money moved only by its own fills."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from tradewind.domain import assignment_of, split_symbol
from tradewind.storage.db import SessionFactory
from tradewind.storage.models import Assignment, Order, PaperBalance, PaperFill, Strategy, Trader, User

RISK = ("max_order_notional", "max_position", "daily_loss_limit")


@dataclass
class Books:
    traders: dict[int, int]  # id -> owner
    trader_rows: dict[int, tuple[Any, ...]]
    strategies: dict[int, int]  # id -> owner
    assignments: dict[int, Any]  # id -> row
    orders: list[Any]
    fills: list[Any]
    balances: dict[int, dict[str, Decimal]]
    killed: dict[int, bool]


async def read_books(sf: SessionFactory) -> Books:
    async with sf() as s:
        traders = (
            await s.execute(select(Trader.id, Trader.owner_id, *[getattr(Trader, k) for k in RISK]))
        ).all()
        strategies = (await s.execute(select(Strategy.id, Strategy.owner_id))).all()
        assignments = (
            await s.execute(
                select(
                    Assignment.id,
                    Assignment.owner_id,
                    Assignment.strategy_id,
                    Assignment.trader_id,
                    Assignment.allocation,
                    Assignment.enabled,
                    Assignment.paused_reason,
                    Assignment.position_qty,
                )
            )
        ).all()
        orders = (await s.execute(select(Order).order_by(Order.id))).scalars().all()
        fills = (await s.execute(select(PaperFill).order_by(PaperFill.id))).scalars().all()
        balances: dict[int, dict[str, Decimal]] = defaultdict(dict)
        for b in (await s.execute(select(PaperBalance))).scalars():
            balances[b.trader_id][b.asset] = b.amount
        killed = dict((await s.execute(select(User.id, User.killed))).all())
    return Books(
        traders={r.id: r.owner_id for r in traders},
        trader_rows={r.id: tuple(r) for r in traders},
        strategies={r.id: r.owner_id for r in strategies},
        assignments={r.id: r for r in assignments},
        orders=list(orders),
        fills=list(fills),
        balances=dict(balances),
        killed=killed,
    )


def expected_balances(books: Books, cash: Decimal) -> dict[int, dict[str, Decimal]]:
    """Each account's balances as its starting cash and its own filled paper orders make them."""
    out: dict[int, dict[str, Decimal]] = {t: {"USD": cash} for t in books.traders}
    for f in books.fills:
        if f.status != "filled" or f.trader_id not in out:
            continue
        base, quote = split_symbol(f.symbol)
        bal = out[f.trader_id]
        if f.side == "buy":
            bal[quote] = bal.get(quote, Decimal(0)) - f.amount * f.price - f.fee
            bal[base] = bal.get(base, Decimal(0)) + f.amount
        else:
            bal[base] = bal.get(base, Decimal(0)) - f.amount
            bal[quote] = bal.get(quote, Decimal(0)) + f.amount * f.price - f.fee
    return out


def same_balances(a: dict[str, Decimal], b: dict[str, Decimal]) -> bool:
    return all(a.get(k, Decimal(0)) == b.get(k, Decimal(0)) for k in {*a, *b})


def ownership_problems(books: Books, owners: dict[int, int] | None = None) -> list[str]:
    """Invariant 1: every order is on an account of its assignment's owner, and is that owner's.
    ``owners``: assignment id -> owner's user id, for orders whose assignment is deleted since."""
    problems = []
    for o in books.orders:
        trader_owner = books.traders.get(o.trader_id)
        if trader_owner != o.owner_id:
            problems.append(
                f"order {o.client_order_id} of user {o.owner_id} ({o.side} {o.amount}, {o.status}) "
                f"is on account {o.trader_id} of user {trader_owner}"
            )
        if o.assignment_id is not None:
            a = books.assignments.get(o.assignment_id)
            aid, owner = o.assignment_id, a.owner_id if a is not None else None
        else:  # the client order id names it (tw-<candle>-<assignment>-<target>, and the other forms)
            aid = assignment_of(o.client_order_id)
            owner = (owners or {}).get(aid) if aid is not None else None
        if owner is not None and owner != o.owner_id:
            problems.append(
                f"order {o.client_order_id} of user {o.owner_id} belongs to assignment {aid} of user {owner}"
            )
    return problems


def paper_problems(books: Books, cash: Decimal) -> list[str]:
    """Invariant 2: balances are the starting cash plus the account's fills; each fill is an order of the
    account's owner on that account."""
    problems = []
    orders = {o.client_order_id: o for o in books.orders}
    for f in books.fills:
        o = orders.get(f.client_order_id)
        owner = books.traders.get(f.trader_id)
        if o is None or o.trader_id != f.trader_id or o.owner_id != owner:
            who = "no order" if o is None else f"an order of user {o.owner_id} on account {o.trader_id}"
            problems.append(
                f"paper fill {f.client_order_id} ({f.side} {f.amount} {f.status}) on account "
                f"{f.trader_id} of user {owner} is {who}"
            )
        elif f.status == "filled" and (o.status != "filled" or o.filled != f.amount):
            problems.append(
                f"order {o.client_order_id} is {o.status} {o.filled}, the exchange filled {f.amount}"
            )
    fills = {f.client_order_id: f for f in books.fills}
    for o in books.orders:
        f = fills.get(o.client_order_id)
        if o.status == "filled" and (f is None or f.status != "filled" or f.trader_id != o.trader_id):
            problems.append(
                f"order {o.client_order_id} on account {o.trader_id} is filled, but the exchange "
                f"recorded {'no fill' if f is None else f'{f.status} on account {f.trader_id}'}"
            )
    expected = expected_balances(books, cash)
    for t, actual in books.balances.items():
        if not same_balances(actual, expected.get(t, {})):
            problems.append(
                f"account {t} of user {books.traders.get(t)} holds {fmt_balances(actual)}; its own fills "
                f"make {fmt_balances(expected.get(t, {}))}"
            )
    for t in {f.trader_id for f in books.fills if f.status == "filled"} - books.balances.keys():
        problems.append(f"account {t} has fills but no balances")
    return problems


def fmt_balances(bal: dict[str, Decimal]) -> str:
    return ", ".join(f"{k} {v.normalize():f}" for k, v in sorted(bal.items()) if v) or "nothing"
