"""Sizing a buy within an account's money (``trading.risk.size_buy``): an allocation above the free balance is
cut to it and says so, and the next assignment of the account sizes from what is left."""

from __future__ import annotations

from decimal import Decimal

from tradewind.trading import risk


def test_an_allocation_above_the_free_balance_is_cut_and_says_by_what() -> None:
    book = risk.AccountBook(limits=risk.Limits(), free=Decimal("10000"))
    sized = risk.size_buy(book, "BTC/USD", Decimal("50000"), 1.0, Decimal("100"))
    assert sized.reason is None and 99 < sized.amount <= 100
    assert (
        sized.note == "smaller than asked (50000.00 USD): capped by the account's free balance (10000.00 USD)"
    )


def test_the_next_assignment_of_the_account_gets_what_is_left_and_says_so() -> None:
    book = risk.AccountBook(limits=risk.Limits(), free=Decimal("10000"))
    first = risk.size_buy(book, "BTC/USD", Decimal("9500"), 1.0, Decimal("100"))
    assert first.note is None and first.reason is None
    second = risk.size_buy(book, "BTC/USD", Decimal("1000"), 1.0, Decimal("100"))
    left = Decimal("10000") - first.amount * 100 * risk.BUY_HEADROOM
    assert second.amount * 100 <= left < 1000
    assert (
        second.note
        == f"smaller than asked (1000.00 USD): capped by the account's free balance ({left:.2f} USD)"
    )


def test_nothing_is_bought_once_the_balance_is_spent_and_the_reason_says_so() -> None:
    book = risk.AccountBook(limits=risk.Limits(), free=Decimal("0.4"))
    sized = risk.size_buy(book, "BTC/USD", Decimal("1000"), 1.0, Decimal("100"))
    assert sized.amount == 0 and sized.reason == "insufficient USD balance for this allocation (0.40 free)"


def test_a_buy_within_the_balance_is_as_asked_without_a_note() -> None:
    book = risk.AccountBook(limits=risk.Limits(), free=Decimal("10000"))
    sized = risk.size_buy(book, "BTC/USD", Decimal("1000"), 0.5, Decimal("100"))
    assert sized.note is None and sized.reason is None and 4.9 < float(sized.amount) <= 5
