"""How each event reads, and that no secret can reach a message or a stored error."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tradewind.alerts import events
from tradewind.alerts.channels import redact
from tradewind.alerts.events import render

NOW = dt.datetime(2026, 12, 4, 9, 30, tzinfo=dt.UTC)


def test_a_fill_says_side_amount_market_price_and_the_assignment() -> None:
    a = render(
        7,
        "fill",
        {
            "side": "buy",
            "filled": "0.0100000",
            "amount": "0.01",
            "symbol": "BTC/USD",
            "price": "50000.00",
            "fee": "0.5000",
            "assignment_id": 3,
            "status": "filled",
        },
        NOW,
    )
    assert a.title == "Filled: buy 0.01 BTC at 50000 USD"
    assert "Buy 0.01 BTC/USD at 50000, fee 0.5." in a.text and "assignment #3" in a.text
    sell = render(
        7,
        "fill",
        {"side": "sell", "filled": "1E+1", "symbol": "ETH/USD", "price": "2000", "exit_reason": "stop_loss"},
        NOW,
    )
    assert sell.title == "Filled: sell 10 ETH at 2000 USD" and "Closed by stop-loss." in sell.text


def test_a_pause_says_why_and_names_the_strategy_and_market() -> None:
    a = render(
        1,
        "paused",
        {
            "assignment_id": 4,
            "reason": "paused after 5 failed evaluations in a row; last error: x",
            "strategy": "SMA",
            "exchange": "sim",
            "symbol": "BTC/USD",
            "timeframe": "1m",
        },
        NOW,
    )
    assert a.title == "Paused: assignment #4 (SMA)"
    assert "Assignment #4 (SMA on sim BTC/USD 1m) was paused: paused after 5 failed evaluations" in a.text


def test_kill_switch_loss_limit_exchange_and_test_alerts_read_as_sentences() -> None:
    kill = render(
        1, "kill_switch", {"engaged": True, "paused_assignments": 3, "cancel_requests": 2, "flatten": True}
    )
    assert (
        kill.title == "Kill switch engaged"
        and "3 were running" in kill.text
        and "closed at the market" in kill.text
    )
    assert render(1, "kill_switch", {"engaged": False}).title == "Kill switch released"
    loss = render(
        1, "loss_limit", {"trader_id": 2, "trader_name": "Paper", "loss": "12.50", "limit": "10", "paused": 2}
    )
    assert loss.title == "Daily loss limit reached on Paper" and "lost 12.5 today (limit 10)" in loss.text
    down = render(1, "exchange", {"exchange": "bitfinex", "connected": False, "silent_s": 240})
    assert down.title == "Exchange bitfinex disconnected" and "4 min" in down.text
    assert (
        render(1, "exchange", {"exchange": "bitfinex", "connected": True, "down_s": 30}).title
        == "Exchange bitfinex is back"
    )
    assert render(1, events.TEST, {"channel": "ops"}).title == "Test alert from tradewind"


def test_the_daily_summary_lists_pnl_by_currency_fills_and_paused_assignments() -> None:
    a = render(
        1,
        "summary",
        {
            "day": "2026-12-03",
            "pnl": {"USD": "-12.346", "EUR": "3"},
            "fills": 14,
            "paused_count": 1,
            "paused": [{"assignment_id": 9, "reason": "paused by you"}],
        },
        NOW,
    )
    assert a.title == "Daily summary for 2026-12-03"
    assert "Realized P&L: +3.00 EUR, -12.35 USD" in a.text and "Fills: 14" in a.text
    assert "Paused assignments: 1" in a.text and "assignment #9: paused by you" in a.text


def test_titles_stay_on_one_line_and_long_texts_are_cut() -> None:
    a = render(
        1, "paused", {"assignment_id": 1, "strategy": "evil\r\nBcc: x@example.com", "reason": "e" * 5000}
    )
    assert "\n" not in a.title and "\r" not in a.title  # an e-mail subject cannot be split into headers
    assert len(a.text) < 1000 and a.text.count("e") < events.MAX_TEXT + 20


@pytest.mark.parametrize("event", [*events.EVENTS, events.TEST])
def test_every_event_renders_from_its_data_alone_and_serializes(event: str) -> None:
    a = render(5, event, {}, NOW)
    doc = json.loads(json.dumps(a.as_json()))
    assert (
        doc["event"] == event and doc["time"] == "2026-12-04T09:30:00+00:00" and doc["title"] and doc["text"]
    )
    assert len(a.id) == 32 and a.id != render(5, event, {}, NOW).id


def test_errors_are_scrubbed_of_every_secret_and_of_a_webhooks_path() -> None:
    secrets = {
        "url": "https://hooks.example.com/services/T000/B000/XXXXSECRET?key=k3y-value",
        "secret": "whsec_abcdef",
        "bot_token": "123456:AAE-token-value-1234567890",
    }
    text = (
        "POST https://hooks.example.com/services/T000/B000/XXXXSECRET?key=k3y-value failed; "
        "bot 123456:AAE-token-value-1234567890 unauthorized; path /services/T000/B000/XXXXSECRET; "
        "query key=k3y-value; signed with whsec_abcdef"
    )
    clean = redact(text, secrets)
    for secret in (*secrets.values(), "/services/T000/B000/XXXXSECRET", "key=k3y-value"):
        assert secret not in clean
    assert "hooks.example.com" in clean and "unauthorized" in clean


def test_httpx_request_log_lines_never_show_a_bot_token(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from tradewind.alerts.senders import hide_tokens_in_http_logs

    hide_tokens_in_http_logs()
    token = "123456:AAE-secret-token-0123456789"
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: %s %s "%s"',
            "POST",
            f"https://api.telegram.org/bot{token}/sendMessage",
            "HTTP/1.1 200 OK",
        )
    assert token not in caplog.text and "/bot***/sendMessage" in caplog.text
