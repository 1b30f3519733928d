"""The editor says what the server refused and why a save failed; the layout a trader lives in: a Markets page in
the navigation, accounts edited in place, one labelled clock, short rows for long pause reasons, a favicon, and a
first visit that is not greeted "Welcome back"."""

from __future__ import annotations

import re

import pytest

from .shared import DESKTOP, PHONE, log_in, nav, set_code, shot, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# A typo on line 3 (`= =`).
BROKEN = """function decide(c, params)
  local fast = ta.sma(c.close, params.fast or 5)
  local slow = = ta.sma(c.close, params.slow or 20)
  if fast[#fast] > slow[#slow] then return "long" end
  return "short"
end
"""
FIXED = BROKEN.replace("= =", "=")
SIZE_REFUSED = "the code is 102,400 characters long; the limit is 65,536 (64 KiB)"
UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$")
# Fails on every candle with a long message (its traceback-like text): paused after 5 failures, with it as reason.
FAILING = 'function decide(c, p)\n  error(string.rep("the data feed returned nothing usable for this candle; ", 40))\nend\n'


def _big_code() -> str:
    """A real strategy padded with comments to exactly 100 KiB, with a compile error on line 3 as well."""
    body = BROKEN + "\n"
    pad = "-- " + "this comment only makes the strategy large " * 2 + "\n"
    while len(body) + len(pad) <= 102_400:
        body += pad
    return body + "-" * (102_400 - len(body))


def _diagnostics(page) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text("[data-testid=diagnostics]")


def _post(page, base: str, path: str, body: dict) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """An API call in the page's own session (CSRF header included), beside the clicks."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "tw_csrf")
    r = page.request.post(f"{base}{path}", data=body, headers={"X-CSRF-Token": csrf})
    assert r.status == 201, (path, r.status, r.text())
    return r.json()  # type: ignore[no-any-return]


def test_the_editor_shows_every_refusal_and_says_why_a_save_failed(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "honest-editor@example.com")
    nav(page, "Strategies")
    page.get_by_role("link", name="New strategy").click()
    page.fill("input[name=name]", "Too big")

    # 100 KiB: the server refuses to check it; the editor says so, on line 1 and under the editor.
    big = _big_code()
    assert len(big) == 102_400
    set_code(page, big)
    page.wait_for_selector(f"[data-testid=diagnostics] >> text={SIZE_REFUSED}", timeout=15_000)
    assert "No errors" not in _diagnostics(page)
    page.keyboard.press("Control+Home")  # the whole code's error is marked on its first line
    page.locator(".cm-inline-error", has_text="102,400 characters").wait_for(timeout=5_000)
    page.click("[data-testid=save-strategy]")
    assert page.locator("[data-testid=save-error]").inner_text(timeout=10_000) == f"Not saved: {SIZE_REFUSED}"
    assert page.url.endswith("/app/strategies/new")

    # A syntax error: Save says which line, and why, beside the button; the editor goes to that line.
    set_code(page, BROKEN)
    page.wait_for_selector("[data-testid=save-error]", state="detached")  # the old reason went with the edit
    page.wait_for_selector("[data-testid=diagnostics] >> text=Line 3:", timeout=15_000)
    page.click("[data-testid=save-strategy]")
    said = page.locator("[data-testid=save-error]").inner_text(timeout=10_000)
    assert said.startswith("Not saved: line 3 has an error: ") and "unexpected symbol" in said, said
    assert page.url.endswith("/app/strategies/new")
    shot(page, "strategy-editor-not-saved")

    # The server out of reach: the check says it did not happen (and tries again), Save says why it failed.
    page.route("**/api/strategies/validate", lambda route: route.abort())
    set_code(page, FIXED)
    page.wait_for_selector(
        "[data-testid=diagnostics] >> text=Not checked: Cannot reach the server", timeout=15_000
    )
    assert "No errors" not in _diagnostics(page)
    page.route("**/api/strategies", lambda route: route.abort())
    page.click("[data-testid=save-strategy]")
    said = page.locator("[data-testid=save-error]").inner_text(timeout=10_000)
    assert said.startswith("Not saved: Cannot reach the server"), said
    page.unroute("**/api/strategies/validate")
    page.unroute("**/api/strategies")
    page.wait_for_selector("[data-testid=diagnostics] >> text=No errors", timeout=15_000)  # checked again
    page.click("[data-testid=save-strategy]")
    page.wait_for_url(re.compile(r".*/app/strategies/\d+$"))
    page.wait_for_selector("text=Saved: version 1")
    assert not page.locator("[data-testid=save-error]").count()
    ctx.close()


def test_markets_accounts_times_and_a_first_visit(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()

    # A first visit is not greeted as a return; the tab has an icon.
    page.goto(f"{platform}/")
    page.get_by_role("heading", name="Log in").wait_for()
    assert "Welcome back" not in page.inner_text("body")
    icon = page.get_attribute("link[rel=icon]", "href")
    assert icon, "no favicon"
    r = page.request.get(f"{platform}{icon}")
    assert r.status == 200 and r.headers["content-type"].startswith("image/"), (icon, r.status, r.headers)

    sign_up(page, platform, "layout@example.com")

    # Markets in the navigation: every market, filtered, each opening its page (Markets stays highlighted).
    nav(page, "Markets")
    page.wait_for_selector("[data-testid=markets] >> text=BTC/USD")
    page.fill("input[name=market-filter]", "eth")
    rows = page.locator("[data-testid=markets] tr")
    rows.filter(has_text="ETH/USD").wait_for()
    assert rows.count() == 1
    page.get_by_role("link", name="ETH/USD").click()
    page.wait_for_url(re.compile(r".*/app/markets/\d+$"))
    page.get_by_role("heading", name="ETH/USD").wait_for()
    active = page.locator("header.top nav a.active")
    assert active.count() == 1 and active.inner_text() == "Markets"

    # An account is edited in place: its name and a risk limit; the security log says so, in UTC with the year.
    nav(page, "Accounts")
    page.click("[data-testid=create-account]")
    page.wait_for_selector("[data-testid=accounts] >> text=Paper account")
    page.locator("[data-testid=accounts]").get_by_role("button", name="edit", exact=True).click()
    form = page.locator("[data-testid=edit-account]")
    form.locator("input[name=edit-name]").fill("")
    form.locator("[data-testid=save-account]").click()
    form.locator(".field.has-error >> text=enter a name").wait_for()
    form.locator("input[name=edit-name]").fill("Swing book")
    form.locator("input[name=edit-max_position]").fill("250")
    assert not form.locator("input[name=edit-api-key]").count()  # a paper account has no key to change
    form.locator("[data-testid=save-account]").click()
    page.wait_for_selector("[data-testid=accounts] >> text=Swing book")
    page.wait_for_selector("[data-testid=audit] >> text=Risk limits changed")
    page.locator("[data-testid=accounts]").get_by_role("button", name="edit", exact=True).click()
    assert page.input_value("input[name=edit-max_position]") == "250"
    shot(page, "accounts-edit")
    when = page.locator("[data-testid=audit] time").first.inner_text()
    assert UTC_TIME.match(when), when

    # A strategy that fails with a long message is paused with it as the reason: its row stays short.
    strategy = _post(page, platform, "/api/strategies", {"name": "Fails loudly", "code": FAILING})
    market = next(
        m for m in page.request.get(f"{platform}/api/markets").json()["items"] if m["symbol"] == "BTC/USD"
    )
    aid = _post(
        page,
        platform,
        "/api/assignments",
        {"strategy_id": strategy["id"], "market_id": market["id"], "timeframe": "1m"},
    )["id"]
    nav(page, "Assignments")
    reason = page.locator("[data-testid=paused-reason]")
    reason.wait_for(timeout=60_000)
    full = reason.get_attribute("title") or ""
    assert full.startswith("paused after 5 failed evaluations") and len(full) > 900, full
    row = page.locator("[data-testid=assignments] tr", has=reason)
    height = row.evaluate("r => r.getBoundingClientRect().height")
    assert height < 120, f"a long pause reason makes its row {height:.0f} px tall"

    # The market page says which clock its times are on: candles on the market's, orders on the wall clock.
    page.goto(f"{platform}/app/markets/{market['id']}?assignment={aid}")
    page.wait_for_selector("[data-testid=decisions] tr")
    assert page.locator("th", has_text="Candle (market clock)").count() == 1
    candle = page.locator("[data-testid=decisions] time").first
    assert UTC_TIME.match(candle.inner_text()) and "exchange's clock" in (candle.get_attribute("title") or "")

    # Logged out, this browser has been here before: now it is "Welcome back".
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in").wait_for()
    page.wait_for_selector("text=Welcome back")
    ctx.close()

    # On a phone, Markets is in the folded menu.
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    p2 = phone.new_page()
    log_in(p2, platform, "layout@example.com")
    p2.get_by_role("button", name="Menu").click()
    p2.locator("header.top nav").get_by_role("link", name="Markets").click()
    p2.get_by_role("heading", name="Markets", level=1).wait_for()
    p2.wait_for_selector("[data-testid=markets] >> text=SOL/USD")
    width = p2.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the markets page scrolls sideways on a phone ({width}px)"
    phone.close()
