"""Charts and the trades view in headless Chromium: a strategy's own series drawn on the market page, the
candle legend on hover, an account's round trips (one clicked moves the chart to it), and a paper account's
reset from the Accounts page. Shares `tradewind up` with the other browser tests (the sim at 60x speed)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ..platform_helpers import wait_until
from .shared import DESKTOP, PHONE, SHOTS, log_in, nav, shot, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Long on even minutes, out on odd ones: a round trip every two candles (seconds, at 60x), with two series.
PLOTTING = """function decide(c, params)
  local fast, slow = ta.sma(c.close, 3), ta.sma(c.close, 8)
  local pos = (c.time[#c.time] // 60000) % 2 == 0 and "long" or "short"
  return {position = pos, plot = {sma_fast = fast[#fast], sma_slow = slow[#slow]}}
end
"""


def call(page, method: str, path: str, body: Any = None) -> Any:  # type: ignore[no-untyped-def]
    """The API as the page's own session calls it (its cookie and CSRF token)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "tw_csrf")
    r = page.request.fetch(
        page.url.split("/app")[0] + path, method=method, data=body, headers={"X-CSRF-Token": csrf}
    )
    assert r.ok, f"{method} {path}: {r.status} {r.text()}"
    return r.json() if r.status != 204 else None


def test_plots_legend_trades_and_a_paper_reset(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "charts@example.com")
    market = next(m for m in call(page, "GET", "/api/markets")["items"] if m["symbol"] == "BTC/USD")
    strategy = call(page, "POST", "/api/strategies", {"name": "SMA plotted", "code": PLOTTING})
    trader = call(page, "POST", "/api/traders", {"name": "Paper account", "exchange": "sim", "paper": True})
    a = call(
        page,
        "POST",
        "/api/assignments",
        {
            "strategy_id": strategy["id"],
            "market_id": market["id"],
            "timeframe": "1m",
            "trader_id": trader["id"],
            "allocation": "1000",
        },
    )

    # The market page draws the strategy's two series and volume; hovering a candle shows its numbers.
    page.goto(f"{platform}/app/markets/{market['id']}?assignment={a['id']}")
    chart = "(document.querySelector('[data-testid=chart]')?.dataset ?? {})"
    page.wait_for_function(f"{chart}.plots === 'sma_fast,sma_slow'", timeout=60_000)
    assert page.get_attribute("[data-testid=chart]", "data-volume") == "1"
    page.wait_for_selector("[data-testid=plot-legend] >> text=sma_slow")
    # The legend: the newest candle's numbers and the series' values there; a hovered candle's instead.
    legend = page.locator("[data-testid=ohlc-legend]")
    page.wait_for_function(
        "document.querySelector('[data-testid=ohlc-legend]').textContent.includes('sma_slow')"
    )
    newest = legend.get_attribute("data-time")
    box = page.locator("[data-testid=chart] canvas").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    shown = "Number(document.querySelector('[data-testid=ohlc-legend]').dataset.time)"
    page.wait_for_function(f"{shown} < {int(newest or 0) - 600}")  # a candle well before the newest
    text = legend.inner_text().replace("\n", " ")
    assert re.search(r"O [\d,.]+ ?H [\d,.]+ ?L [\d,.]+ ?C [\d,.]+ ?V [\d,.]+", text), text
    hovered = legend.get_attribute("data-time")
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
    page.wait_for_function(f"{shown} < {int(hovered or 0) - 600}")

    # The trades view lists the account's round trips; one clicked opens its market's chart on it.
    wait_until(
        lambda: call(page, "GET", f"/api/trades?trader_id={trader['id']}")["summary"]["trades"] >= 2,
        timeout=60,
        what="two round trips",
    )
    nav(page, "Trades")
    page.wait_for_selector("[data-testid=round-trip] >> text=BTC/USD")
    page.wait_for_selector("[data-testid=account-equity] canvas")
    page.wait_for_selector("[data-testid=daily] tr")
    assert "Profit factor" in page.inner_text("[data-testid=trade-stats]")
    shot(page, "trades")
    closed = page.locator("[data-testid=round-trip]", has=page.locator("[data-testid=exit-reason]")).last
    closed.click()
    page.wait_for_url(re.compile(rf".*/app/markets/{market['id']}\?assignment={a['id']}&at=\d+$"))
    at = int(page.url.rsplit("=", 1)[1]) // 1000
    page.wait_for_function(f"Number({chart}.focus) === {at}")
    page.wait_for_function(f"Number({chart}.from) <= {at} && {at} <= Number({chart}.to)")
    shot(page, "market-plot")

    # On a phone the trades view fits the screen, its equity curve whole.
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    p2 = phone.new_page()
    log_in(p2, platform, "charts@example.com", f"/trades?trader={trader['id']}")
    p2.wait_for_selector("[data-testid=account-equity] canvas")
    width = p2.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the trades view scrolls sideways on a phone ({width}px)"
    shot(p2, "trades-phone")
    phone.close()

    # A paper account is reset from the Accounts page once its assignment is flat and paused.
    call(page, "POST", f"/api/assignments/{a['id']}/pause")

    def held() -> float:
        return float(
            next(x for x in call(page, "GET", "/api/assignments")["items"] if x["id"] == a["id"])[
                "position_qty"
            ]
        )

    if held() > 0:
        call(page, "POST", f"/api/assignments/{a['id']}/close")

    def flat() -> bool:
        return (
            held() == 0 and not call(page, "GET", f"/api/orders?assignment_id={a['id']}&status=open")["items"]
        )

    wait_until(flat, timeout=30, what="a flat assignment")
    nav(page, "Accounts")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=reset-account]")
    page.wait_for_selector('[role=status] >> text="Paper account" is back to 10,000.00 USD')
    page.wait_for_selector("[data-testid=audit] >> text=Paper account reset")
    page.wait_for_selector("[data-testid=accounts] >> text=10,000.00 USD")
    assert "BTC" not in page.inner_text("[data-testid=accounts]")
    ctx.close()
