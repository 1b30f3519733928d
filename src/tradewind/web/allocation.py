"""Whether an account's assignments are allocated more than the account is worth.

Checked, not enforced: core sizes every buy within the account's free balance (``trading.risk``), so an
allocation above it is never spent, but the assignments that buy last get less than their allocation, or
nothing. The check tells a person so when they set an allocation, instead of letting them find out from an
order smaller than asked.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from sqlalchemy import or_, select

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.domain import split_symbol
from tradewind.storage.models import Assignment, Market, Trader
from tradewind.storage.repositories import Owned
from tradewind.web.deps import WebState
from tradewind.web.schemas import AllocationOut, WarningOut

log = logging.getLogger(__name__)
ZERO = Decimal(0)
BALANCE_TIMEOUT_S = 3.0  # an account's balances, asked of its exchange's adapter while a form waits


async def check(
    repo: Owned,
    st: WebState,
    trader: Trader,
    market: Market,
    allocation: Decimal,
    assignment_id: int | None = None,
) -> AllocationOut:
    """The allocations of ``trader``'s assignments that run or hold a position on markets quoted in
    ``market``'s currency, with ``allocation`` in place of ``assignment_id``'s own, against the account's
    value in that currency; a warning when they add up to more, or when the value cannot be read."""
    quote = split_symbol(market.symbol)[1]
    rows = (
        await repo.s.execute(
            repo.select(Assignment)
            .add_columns(Market.symbol)
            .join(Market, Market.id == Assignment.market_id)
            .where(
                Assignment.trader_id == trader.id,
                or_(Assignment.enabled.is_(True), Assignment.position_qty > 0),
            )
        )
    ).all()
    others = [
        a.allocation for a, symbol in rows if a.id != assignment_id and split_symbol(symbol)[1] == quote
    ]
    allocated = allocation + sum(others, ZERO)
    value, why = await value_of(repo, st, trader, quote)
    warnings = []
    if value is None:
        warnings.append(
            WarningOut(field="allocation", message=f"not checked against the account's value: {why}")
        )
    elif allocated > value:
        over = f"more than the account is worth ({value:,.2f} {quote})"
        if others:
            n = len(others)
            said = (
                f"the assignments of {trader.name} are allocated {allocated:,.2f} {quote} in all (this one "
                f"{allocation:,.2f}, {n} other{'s' if n > 1 else ''} {allocated - allocation:,.2f}), {over}: "
                "buys are cut to its free balance, and once that is spent the others buy less than their "
                "allocation, or nothing"
            )
        else:
            said = (
                f"the allocation, {allocation:,.2f} {quote}, is {over}: its buys are cut to the account's free "
                "balance, and another assignment on the account then buys less than its allocation, or nothing"
            )
        warnings.append(WarningOut(field="allocation", message=said))
    return AllocationOut(
        currency=quote,
        allocated=format(allocated, "f"),
        value=None if value is None else format(value.quantize(Decimal("0.01")), "f"),
        warnings=warnings,
    )


async def value_of(repo: Owned, st: WebState, trader: Trader, quote: str) -> tuple[Decimal | None, str]:
    """What the account holds, in ``quote``: its free balances as its exchange's adapter reports them, each
    asset at the last price of its market in ``quote`` (assets without one are left out); or None and why."""
    if st.nc is None:
        return None, "no message bus to ask the exchange"
    try:
        raw = await st.nc.request(
            subjects.exchange_balance(trader.exchange),
            m.encode(m.BalanceRequest(trader_id=trader.id)),
            timeout=BALANCE_TIMEOUT_S,
        )
        reply = m.decode(raw.data, m.BalanceReply)
    except Exception as exc:  # no responders, a timeout, a lost connection, an unreadable answer
        log.info("allocation check: balances of trader %s: %s", trader.id, type(exc).__name__)
        return None, f"exchange {trader.exchange} did not answer"
    if reply.error:
        return None, f"{trader.exchange}: {reply.error}"
    prices = dict(
        (
            await repo.s.execute(
                select(Market.symbol, Market.last_price).where(Market.exchange == trader.exchange)
            )
        ).all()
    )
    total = ZERO
    for asset, text in reply.balances.items():
        try:
            amount = Decimal(text)
        except InvalidOperation:
            continue
        if not amount.is_finite():
            continue
        if asset == quote:
            total += amount
        elif prices.get(f"{asset}/{quote}") is not None:
            total += amount * Decimal(repr(prices[f"{asset}/{quote}"]))
    return total, ""
