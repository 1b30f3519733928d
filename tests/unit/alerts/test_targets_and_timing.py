"""Where alerts may go (no private addresses on a shared platform), when the daily summary is due, and when
an exchange counts as disconnected."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from pathlib import Path

import pytest

from tradewind.alerts import summary
from tradewind.alerts.targets import Refused, check_host, check_resolved, check_url, masked, private_allowed
from tradewind.alerts.watch import ExchangeWatch
from tradewind.config import Settings


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/x",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://api.localhost/",
    ],
)
def test_a_shared_platform_refuses_local_and_private_webhook_addresses(url: str) -> None:
    with pytest.raises(Refused, match="private"):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True) == url  # embedded: the machine is the user's own


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://example.com/", "http"),
        ("https:///path", "no host"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com:99999/", "port"),
        ("https://ex_ample.com/", "host name"),
        ("x" * 2001, "2000"),
    ],
)
def test_a_malformed_webhook_url_is_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(Refused, match=why):
        check_url(url, allow_private=True)


def test_the_app_shows_a_webhook_without_its_path_query_or_credentials() -> None:
    assert masked("https://user:pw@hooks.slack.com/services/T0/B0/XYZ?x=1") == "https://hooks.slack.com/…"
    assert (
        masked("http://[::1]:8080/a") == "http://[::1]:8080/…"
        and masked("https://example.com") == "https://example.com/"
    )


def test_private_targets_are_allowed_embedded_and_refused_distributed_unless_set(tmp_path: Path) -> None:
    assert private_allowed(Settings(data_dir=tmp_path))
    assert not private_allowed(Settings(data_dir=tmp_path, mode="distributed"))
    assert private_allowed(Settings(data_dir=tmp_path, mode="distributed", alerts_private_targets=True))
    assert not private_allowed(Settings(data_dir=tmp_path, alerts_private_targets=False))
    check_host("smtp.example.com", allow_private=False)


async def test_a_name_that_resolves_to_a_private_address_is_refused_before_delivery(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    answers = {"rebound.example.com": "10.0.0.5", "hooks.example.com": "93.184.216.34"}

    async def getaddrinfo(host, port, **_):  # type: ignore[no-untyped-def]  # DNS as an attacker would set it
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    with pytest.raises(Refused, match="rebound.example.com resolves to a local or private address"):
        await check_resolved("rebound.example.com", 443, allow_private=False)
    await check_resolved("hooks.example.com", 443, allow_private=False)
    await check_resolved("rebound.example.com", 443, allow_private=True)


def test_the_summary_due_now_covers_the_24_hours_before_the_hour() -> None:
    t = dt.datetime(2026, 12, 4, 0, 0, 30, tzinfo=dt.UTC)
    assert summary.due(t, 0) == (
        "2026-12-04",
        dt.datetime(2026, 12, 3, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 4, tzinfo=dt.UTC),
    )
    before = dt.datetime(2026, 12, 4, 7, 59, tzinfo=dt.UTC)  # an 08:00 summary is not due yet: yesterday's is
    key, start, end = summary.due(before, 8)
    assert (
        key == "2026-12-03"
        and end == dt.datetime(2026, 12, 3, 8, tzinfo=dt.UTC)
        and end - start == dt.timedelta(days=1)
    )
    assert summary.due(before.replace(hour=8), 8)[0] == "2026-12-04"
    assert summary.label(start, end) == "2026-12-02 08:00 to 2026-12-03 08:00 UTC"
    assert summary.label(*summary.due(t, 0)[1:]) == "2026-12-03"


def test_an_exchange_is_disconnected_after_its_silence_and_back_with_its_next_candle() -> None:
    w = ExchangeWatch(silence_s=60)
    assert w.silent(1000) == []  # never heard from: not watched
    assert w.seen("sim", 1000) is None and w.seen("bitfinex", 1010) is None
    assert w.silent(1059) == []
    assert w.silent(1061) == [("sim", 61)]
    assert w.silent(1100) == [("bitfinex", 90)]  # each said once
    assert w.silent(2000) == []
    assert w.seen("sim", 2000) == 1000 and w.seen("sim", 2001) is None
    assert w.silent(2070) == [("sim", 69)]  # and again after the next silence
