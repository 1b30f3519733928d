"""The web app in headless Chromium (Debian's), as users go through it; screenshots go to docs/screenshots/.

The platform is started the way a user starts it (`tradewind up`), with the simulated exchange at 60x
speed (a 1m candle per second), so decisions and fills arrive within seconds.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ..platform_helpers import wait_until
from .shared import DESKTOP, PASSWORD, PHONE, SHOTS, log_in, nav, set_code, shot, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# A typo on line 3 (`= =`): the editor must flag that line, and no other.
BROKEN = """-- an SMA crossover: long while the fast average is above the slow one
function decide(c, params)
  local fast = = ta.sma(c.close, params.fast or 5)
  local slow = ta.sma(c.close, params.slow or 20)
  if fast[#fast] > slow[#slow] then return {position = "long", note = "fast above slow"} end
  return {position = "short", note = "fast below slow"}
end
"""
FIXED = BROKEN.replace("= =", "=")


def test_write_assign_and_watch_a_strategy_trade(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "trader@example.com")
    page.wait_for_selector("td >> text=BTC/USD")
    page.wait_for_selector("[data-testid=stream-status]:text('live')", timeout=10_000)

    # A strategy with a syntax error is flagged on its line (and only there); fixed, it saves.
    nav(page, "Strategies")
    page.get_by_role("link", name="New strategy").click()
    page.fill("input[name=name]", "SMA 5/20")
    page.fill("input[name=params]", "fast=5, slow=20")
    set_code(page, BROKEN)
    page.wait_for_selector("[data-testid=diagnostics] >> text=Line 3:", timeout=15_000)
    lines = page.locator(".cm-content .cm-line")
    lines.nth(2).locator(".cm-lintRange-error").wait_for(timeout=5_000)
    assert page.locator(".cm-lintRange-error").count() == lines.nth(2).locator(".cm-lintRange-error").count()
    assert "unexpected symbol" in page.inner_text("[data-testid=diagnostics]")
    page.fill("input[name=description]", "Long while SMA 5 is above SMA 20, flat otherwise")
    shot(page, "strategy-editor")
    set_code(page, FIXED)
    page.wait_for_selector("[data-testid=diagnostics] >> text=No errors", timeout=15_000)
    assert page.locator(".cm-lintRange-error").count() == 0
    page.click("[data-testid=save-strategy]")
    page.wait_for_url(re.compile(r".*/app/strategies/\d+$"))
    page.wait_for_selector("text=Saved: version 1")
    strategy_id = int(page.url.rsplit("/", 1)[1])

    # With unsaved changes, leaving asks first; declining stays on the editor.
    page.click(".cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("-- a note\n")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("header.top nav").get_by_role("link", name="Accounts").click()
    assert page.url.endswith(f"/app/strategies/{strategy_id}")
    page.once("dialog", lambda dialog: dialog.accept())

    # A paper account, then the assignment to sim BTC/USD 1m.
    nav(page, "Accounts")
    page.click("[data-testid=create-account]")
    page.wait_for_selector("[data-testid=accounts] >> text=Paper account")
    page.wait_for_selector("[data-testid=accounts] >> text=USD")  # the simulator's balance
    shot(page, "accounts")
    nav(page, "Assignments")
    page.click("[data-testid=create-assignment]")  # nothing chosen: the form says what is missing
    page.wait_for_selector(".field.has-error >> text=choose a strategy")
    page.select_option("select[name=strategy]", label="SMA 5/20")
    assert page.input_value("input[name=assign-params]") == "fast=5, slow=20"  # the strategy's defaults
    page.select_option("select[name=market]", label="sim · BTC/USD")
    page.select_option("select[name=timeframe]", "1m")
    page.select_option("select[name=account]", label="Paper account (sim)")
    page.fill("input[name=allocation]", "0")
    page.click("[data-testid=create-assignment]")
    page.wait_for_selector(".field.has-error >> text=must be greater than 0")
    page.fill("input[name=allocation]", "1000")
    page.click("[data-testid=create-assignment]")
    page.wait_for_selector("[data-testid=assignments] >> text=running")

    # On the market page, decisions and fills appear live, on the chart and in the tables.
    page.click("[data-testid=assignments] >> text=BTC/USD · 1m")
    page.wait_for_url(re.compile(r".*/app/markets/\d+\?assignment=\d+$"))
    page.wait_for_selector("[data-testid=chart] canvas")
    bars_before = int(page.get_attribute("[data-testid=chart]", "data-bars") or 0)
    page.wait_for_selector("[data-testid=decisions] tr", timeout=30_000)
    page.wait_for_selector(
        "[data-testid=decision-note] >> text=/fast (above|below) slow/"
    )  # the strategy's note
    page.wait_for_selector("[data-testid=fills] tr", timeout=60_000)
    # How fast its candles became decisions and order calls, in milliseconds.
    page.wait_for_function(
        "/decision [0-9.]+ ms \\(p99 [0-9.]+ ms\\) · → order [0-9.]+ ms/.test("
        "document.querySelector('[data-testid=latency]')?.textContent ?? '')",
        timeout=30_000,
    )
    # A decision arrow and a fill dot on the chart, and a new candle, without a reload.
    chart = "document.querySelector('[data-testid=chart]').dataset"
    page.wait_for_function(f"Number({chart}.arrows) >= 1 && Number({chart}.fills) >= 1", timeout=30_000)
    page.wait_for_function(f"Number({chart}.bars) > {bars_before}", timeout=15_000)
    shot(page, "market")
    nav(page, "Assignments")
    page.wait_for_selector("[data-testid=assignments] [data-testid=last-decision]")
    shot(page, "assignments")
    nav(page, "Dashboard")
    page.wait_for_selector("[data-testid=recent-orders] >> text=filled", timeout=30_000)
    shot(page, "dashboard")

    # Pausing says why it stopped; resuming clears it.
    nav(page, "Assignments")
    page.get_by_role("button", name="pause").click()
    page.wait_for_selector("[data-testid=paused-reason] >> text=paused by you")
    page.get_by_role("button", name="resume").click()
    page.wait_for_selector("[data-testid=assignments] >> text=running")

    # The kill switch asks first, then pauses everything and says so until it is released.
    page.click("[data-testid=kill-switch]")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()  # asked, and declined
    page.wait_for_selector("[data-testid=kill-dialog]", state="detached")
    assert not page.locator("[role=status] >> text=The kill switch is on").count()
    page.click("[data-testid=kill-switch]")
    page.click("[data-testid=confirm-kill]")
    page.wait_for_selector("[role=status] >> text=The kill switch is on")
    page.wait_for_selector("[data-testid=paused-reason] >> text=kill switch")
    assert page.get_by_role("button", name="resume").is_disabled()
    page.get_by_role("button", name="Release kill switch").click()
    page.wait_for_selector("text=The kill switch is on", state="detached")
    page.get_by_role("button", name="resume").click()
    page.wait_for_selector("[data-testid=assignments] >> text=running")
    nav(page, "Accounts")
    page.wait_for_selector("[data-testid=audit] >> text=Kill switch released")

    # Log out, and back in on a phone: the same data, a usable layout.
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for()
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    p2 = phone.new_page()
    log_in(p2, platform, "trader@example.com")
    p2.wait_for_selector("[data-testid=recent-orders] >> text=filled")
    width = p2.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the dashboard scrolls sideways on a phone ({width}px)"
    shot(p2, "dashboard-phone")
    p2.get_by_role("button", name="Menu").click()
    p2.get_by_role("link", name="Strategies").click()
    p2.wait_for_selector("text=SMA 5/20")
    phone.close()

    # A second user sees none of the first user's objects, in the app or through the API.
    other = browser.new_context(viewport=DESKTOP)
    p3 = other.new_page()
    sign_up(p3, platform, "second@example.com")
    p3.wait_for_selector("text=Nothing running")
    nav(p3, "Strategies")
    p3.wait_for_selector("text=No strategies yet")
    nav(p3, "Accounts")
    p3.wait_for_selector("text=No accounts yet")
    nav(p3, "Assignments")
    p3.wait_for_selector("text=No assignments yet")
    p3.goto(f"{platform}/app/strategies/{strategy_id}")
    p3.wait_for_selector("text=does not exist, or is not yours")
    for path in ("/api/strategies", "/api/assignments", "/api/traders", "/api/orders", "/api/evaluations"):
        assert p3.request.get(f"{platform}{path}").json()["items"] == [], path
    assert p3.request.get(f"{platform}/api/strategies/{strategy_id}").status == 404
    assert p3.request.get(f"{platform}/api/positions").json() == []
    other.close()
    ctx.close()


def test_backtest_shows_equity_drawdown_and_trades(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "backtester@example.com")
    nav(page, "Strategies")
    page.get_by_role("link", name="New strategy").click()
    page.fill("input[name=name]", "SMA 5/20")
    set_code(page, FIXED)
    page.wait_for_selector("[data-testid=diagnostics] >> text=No errors", timeout=15_000)
    page.click("[data-testid=save-strategy]")
    page.wait_for_url(re.compile(r".*/app/strategies/\d+$"))
    page.get_by_role("link", name="Backtest", exact=True).click()
    page.select_option("select[name=bt-market]", label="sim · BTC/USD")
    page.select_option("select[name=bt-timeframe]", "5m")
    page.click("[data-testid=run-backtest]")
    page.wait_for_url(re.compile(r".*/app/backtests/\d+$"))
    page.wait_for_selector("[data-testid=metrics], [role=alert]", timeout=60_000)
    alert = page.locator("[role=alert]")
    assert not alert.count(), alert.inner_text()  # `tradewind up` runs backtests on its eval worker
    page.wait_for_selector("[data-testid=metrics]")
    page.wait_for_selector("[data-testid=equity-chart] canvas")
    page.wait_for_selector("[data-testid=trades] tr")
    page.wait_for_function(
        "Number(document.querySelector('[data-testid=chart]').dataset.markers) > 0", timeout=15_000
    )
    shot(page, "backtest", full_page=True)
    ctx.close()


def market_maker() -> str:
    """The example strategy of docs/strategies.md's market-making section, as it is written there."""
    docs = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"
    section = docs.read_text().split("## Market making: `on_tick` and quotes", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```lua\n(.*?)```", section, re.S)
    assert found, "the market-making section has a Lua example"
    return found.group(1)


def test_backtest_of_a_quoting_strategy_shows_its_mode_and_fills(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    """The documented market maker backtested from the editor: the form offers the quoting fields, the run
    (over yesterday's candles, before any tick was stored) says it used a synthetic spread and lists its fills."""
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "maker@example.com")
    nav(page, "Strategies")
    page.get_by_role("link", name="New strategy").click()
    page.fill("input[name=name]", "Market maker")
    page.fill("input[name=params]", "")
    set_code(page, market_maker())
    page.wait_for_selector("[data-testid=diagnostics] >> text=No errors", timeout=15_000)
    page.click("[data-testid=save-strategy]")
    page.wait_for_url(re.compile(r".*/app/strategies/\d+$"))
    page.get_by_role("link", name="Backtest", exact=True).click()
    page.wait_for_selector("[data-testid=quoting-fields]")  # on_tick and no decide: it quotes by default
    page.select_option("select[name=bt-market]", label="sim · BTC/USD")
    page.select_option("select[name=bt-timeframe]", "1m")
    page.fill("input[name=bt-to]", page.input_value("input[name=bt-from]"))  # one day, two days ago: no ticks
    page.fill("input[name=bt-spread-bps]", "0")
    page.click("[data-testid=run-backtest]")
    page.wait_for_selector(".field.has-error >> text=above 0")
    page.fill("input[name=bt-spread-bps]", "5")
    page.fill("input[name=bt-max-position]", "0.05")
    page.click("[data-testid=run-backtest]")
    page.wait_for_url(re.compile(r".*/app/backtests/\d+$"))
    page.wait_for_selector("[data-testid=metrics], [role=alert]", timeout=60_000)
    alert = page.locator("[role=alert]")
    assert not alert.count(), alert.inner_text()
    assert "candles with a synthetic spread of 5 bps" in page.inner_text("[data-testid=quote-mode]")
    page.wait_for_selector("[data-testid=fills] tr[data-kind=quote]")
    fills = page.inner_text("[data-testid=quote-fills]")
    assert re.fullmatch(r"[1-9][\d,]* / [1-9][\d,]*", fills.strip()), fills
    page.wait_for_selector("[data-testid=equity-chart] canvas")
    page.wait_for_function(
        "Number(document.querySelector('[data-testid=chart]').dataset.markers) > 0", timeout=15_000
    )
    shot(page, "backtest-quotes")
    nav(page, "Backtests")
    page.wait_for_selector("[data-testid=run-mode] >> text=quotes on candles")
    ctx.close()


def test_sign_up_errors_are_shown_next_to_the_field(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(f"{platform}/")
    page.get_by_role("button", name="No account? Sign up").click()
    page.fill("input[name=email]", "weak@example.com")
    page.fill("input[name=password]", "password123")
    page.get_by_role("button", name="Sign up").click()
    err = page.wait_for_selector(".field.has-error .field-error")
    assert "common" in err.inner_text()  # the server's verdict, under the password field
    page.fill("input[name=password]", "short")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_selector(".field.has-error >> text=use at least 10 characters")
    page.get_by_role("button", name="Have an account? Log in").click()
    page.fill("input[name=email]", "nobody@example.com")
    page.fill("input[name=password]", "not the right one")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("[role=alert]")
    page.close()


# Long in 5-minute blocks (5 s at 60x), each entry protected by a stop 2 % under it and a target 3 % over it.
PROTECTED = """-- long in 5-minute blocks, protected by a stop-loss and a take-profit
function decide(c, params)
  local n = #c.close
  if math.floor(c.time[n] / 300000) % 2 == 0 then
    return {position = "long", stop_loss = 0.02, take_profit = 0.03}
  end
  return "short"
end
"""


def test_protected_position_shows_its_stop_target_and_open_orders(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    """The market page draws an open position's stop and target and lists the protective orders resting
    for it; fills say their order type and why they closed; a backtest sums its trades by exit reason."""
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "protected@example.com")
    csrf = next(c["value"] for c in ctx.cookies() if c["name"] == "tw_csrf")

    def post(path: str, body: dict) -> dict:  # type: ignore[type-arg]
        r = page.request.post(f"{platform}{path}", data=body, headers={"X-CSRF-Token": csrf})
        assert r.ok, (path, r.status, r.text())
        return r.json()  # type: ignore[no-any-return]

    markets = page.request.get(f"{platform}/api/markets").json()["items"]
    market = next(m for m in markets if m["exchange"] == "sim" and m["symbol"] == "BTC/USD")
    strategy = post("/api/strategies", {"name": "Protected blocks", "code": PROTECTED})
    trader = post("/api/traders", {"name": "Paper", "exchange": "sim"})
    aid = post(
        "/api/assignments",
        {
            "strategy_id": strategy["id"],
            "market_id": market["id"],
            "timeframe": "1m",
            "trader_id": trader["id"],
            "allocation": "1000",
        },
    )["id"]

    page.goto(f"{platform}/app/markets/{market['id']}?assignment={aid}")
    page.wait_for_selector("[data-testid=chart] canvas")
    lines = "(document.querySelector('[data-testid=chart]')?.dataset.lines ?? '')"
    page.wait_for_function(
        f"{lines}.includes('stop #{aid}@') && {lines}.includes('target #{aid}@')"
        " && document.querySelector('[data-testid=open-orders]')?.textContent.includes('take-profit')",
        timeout=60_000,
    )
    page.wait_for_selector("[data-testid=protection-legend]")
    shot(page, "market-protection")
    page.wait_for_selector("[data-testid=fills] [data-testid=exit-reason]", timeout=60_000)
    assert "market" in page.inner_text("[data-testid=fills]")

    # The dashboard lists the orders with their types; the open ones apart, with the prices they wait for.
    nav(page, "Dashboard")
    page.wait_for_selector("[data-testid=recent-orders] [data-testid=order-type]")
    page.wait_for_selector("[data-testid=open-orders] >> text=take-profit", timeout=30_000)
    assert "target" in page.inner_text("[data-testid=open-orders]")

    # A backtest of the same strategy: its trades say how they were entered and why they ended.
    page.goto(f"{platform}/app/backtests?strategy={strategy['id']}")
    page.select_option("select[name=bt-market]", label="sim · BTC/USD")
    page.select_option("select[name=bt-timeframe]", "5m")
    page.click("[data-testid=run-backtest]")
    page.wait_for_url(re.compile(r".*/app/backtests/\d+$"))
    page.wait_for_selector("[data-testid=trades] tr", timeout=60_000)
    page.wait_for_selector("[data-testid=exits-by-reason] tr[data-reason=signal]")
    assert page.locator("[data-testid=trades] [data-testid=entry-type]").first.inner_text() == "market"
    ctx.close()


SMA_SPACE = """\
params = {
  fast = {type = "int", min = 3, max = 15, default = 5, description = "the fast average's length"},
  slow = {type = "int", min = 16, max = 40, step = 2, default = 20},
}
function decide(c, params)
  local fast, slow = ta.sma(c.close, params.fast), ta.sma(c.close, params.slow)
  if fast[#fast] > slow[#slow] then return "long" end
  return "short"
end
"""


def test_an_optimisation_runs_from_the_research_page(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    """Research: start a two-objective optimisation of a strategy's declared parameters, watch it run on the
    platform's own backtest worker, open the best trial, and create an assignment with its parameters."""
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "researcher@example.com")
    csrf = next(c["value"] for c in ctx.cookies() if c["name"] == "tw_csrf")
    r = page.request.post(
        f"{platform}/api/strategies",
        data={"name": "SMA search", "code": SMA_SPACE},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.ok, r.text()
    nav(page, "Research")
    page.select_option("select[name=study-strategy]", label="SMA search (v1)")
    page.select_option("select[name=study-market]", label="sim · BTC/USD")
    page.select_option("select[name=study-timeframe]", "5m")
    page.check("input[name=objective-max_drawdown]")
    page.fill("input[name=study-trials]", "0")
    page.click("[data-testid=start-study]")
    page.wait_for_selector("text=a whole number from 1 to 2000")  # checked before sending
    page.fill("input[name=study-trials]", "12")
    page.click("[data-testid=start-study]")
    page.wait_for_url(re.compile(r".*/app/research/\d+$"))
    page.wait_for_function(
        "document.querySelector('[data-testid=study-status]')?.textContent === 'done'", timeout=90_000
    )
    assert page.inner_text("[data-testid=study-trials]") == "12 / 12"
    page.wait_for_selector("[data-testid=pareto] circle.front")
    page.wait_for_selector("[data-testid=importances] .bar-fill")
    best = page.inner_text("[data-testid=best-params]")
    assert "fast=" in best and "slow=" in best
    page.click("[data-testid=open-best]")
    assert page.inner_text("[data-testid=trial-params]") == best
    shot(page, "research", full_page=True)
    page.click("[data-testid=create-assignment]")
    page.wait_for_url(re.compile(r".*/app/assignments\?.*"))
    page.get_by_role("heading", name="Assignments").wait_for()
    for pair in best.split(", "):  # the declared parameters' own fields, filled with the trial's values
        name, value = pair.split("=")
        assert page.input_value(f"input[name=assign-param-{name}]") == value
    ctx.close()


# Long on every candle, saying so with print(): its position is there to be closed, its logs to be read.
PRINTS = """-- always long, and says what it saw
function decide(c, params)
  local n = #c.close
  print("saw " .. n .. " candles, last close " .. c.close[n])
  print("going long")
  return {position = "long", note = "always long"}
end
"""


def api_for(page, base: str):  # type: ignore[no-untyped-def]
    """The page's own session, for the API calls a test makes beside the clicks (CSRF header included)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "tw_csrf")

    def post(path: str, body: dict | None = None, expect: int = 200):  # type: ignore[no-untyped-def,type-arg]
        r = page.request.post(f"{base}{path}", data=body or {}, headers={"X-CSRF-Token": csrf})
        assert r.status == expect, (path, r.status, r.text())
        return r.json()

    return post


def test_close_a_position_flatten_all_and_the_kill_switchs_flatten(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    """A position is closed from the market page (paused: the state says why, Resume is offered), a decision
    row opens to the strategy's print() output, "Flatten all" on the dashboard and the kill switch's flatten
    close what it holds again; each close is one sell at the market, "closed by you"."""
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "closer@example.com")
    post = api_for(page, platform)
    market = next(
        m for m in page.request.get(f"{platform}/api/markets").json()["items"] if m["symbol"] == "BTC/USD"
    )
    strategy = post("/api/strategies", {"name": "Always long", "code": PRINTS}, expect=201)
    trader = post("/api/traders", {"name": "Paper", "exchange": "sim"}, expect=201)
    aid = post(
        "/api/assignments",
        {
            "strategy_id": strategy["id"],
            "market_id": market["id"],
            "timeframe": "1m",
            "trader_id": trader["id"],
            "allocation": "1000",
        },
        expect=201,
    )["id"]

    def assignment() -> dict:  # type: ignore[type-arg]
        return page.request.get(f"{platform}/api/assignments/{aid}").json()  # type: ignore[no-any-return]

    def manual_sells() -> list[dict]:  # type: ignore[type-arg]
        orders = page.request.get(f"{platform}/api/orders?assignment_id={aid}&limit=500").json()["items"]
        return [o for o in orders if o["side"] == "sell" and o["exit_reason"] == "manual"]

    def wait_holding() -> None:
        wait_until(lambda: Decimal(assignment()["position_qty"]) > 0, timeout=60, what="a position")

    page.goto(f"{platform}/app/markets/{market['id']}?assignment={aid}")
    state = page.locator("[data-testid=assignment-state]")
    state.locator("text=running").wait_for()
    wait_holding()

    # A decision opens to what the strategy printed.
    page.locator("[data-testid=decision-row]").first.wait_for(timeout=30_000)
    assert "2 printed lines" in page.locator("[data-testid=decision-row]").first.inner_text()
    page.locator("[data-testid=decision-row]").first.click()
    logs = page.locator("[data-testid=decision-logs]").first.inner_text()
    assert re.search(r"saw \d+ candles, last close [0-9.]+\ngoing long", logs), logs
    page.locator("[data-testid=decision-detail]").first.scroll_into_view_if_needed()
    shot(page, "market-decision-logs")

    # Paused, the market page says so and why, and offers Resume; the paused position is closed from there.
    state.get_by_role("button", name="Pause").click()
    state.locator("[data-testid=paused-reason] >> text=paused by you").wait_for()
    state.get_by_role("button", name="Resume").wait_for()
    wait_holding()  # a buy that was on its way when it paused has filled
    page.reload()
    state.locator("[data-testid=close-position]").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    state.locator("[data-testid=close-position]").click()
    state.locator("[data-testid=close-result]").wait_for()
    closed = state.locator("[data-testid=close-result]").inner_text()
    assert re.fullmatch(r"Selling [0-9.,]+ at the market \(order tw-\d+-c\d+\)\.", closed), (
        closed,
        page.request.get(f"{platform}/api/orders?assignment_id={aid}&limit=20").json()["items"],
    )
    page.wait_for_selector(
        "[data-testid=fills] [data-testid=exit-reason] >> text=closed by you", timeout=30_000
    )
    state.locator("text=flat").wait_for(timeout=15_000)
    assert len(manual_sells()) == 1 and manual_sells()[0]["status"] == "filled"
    assert assignment()["enabled"] is False and Decimal(assignment()["position_qty"]) == 0
    r = page.request.post(
        f"{platform}/api/assignments/{aid}/close",
        headers={"X-CSRF-Token": next(c["value"] for c in ctx.cookies() if c["name"] == "tw_csrf")},
    )
    assert r.status == 409 and "nothing to close" in r.json()["detail"]
    shot(page, "market-closed")

    # Resumed, it buys again; "Flatten all" on the dashboard sells it.
    state.get_by_role("button", name="Resume").click()
    state.locator("text=running").wait_for()
    wait_holding()
    nav(page, "Dashboard")
    page.wait_for_selector("[data-testid=flatten-all]:not([disabled])", timeout=15_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=flatten-all]")
    page.wait_for_selector("[data-testid=flatten-result] >> text=Closing 1 position at the market.")
    wait_until(
        lambda: [o["status"] for o in manual_sells()] == ["filled"] * 2, timeout=30, what="the second close"
    )

    # The kill switch with its flatten option: everything paused, and what was bought since is sold.
    wait_holding()
    page.click("[data-testid=kill-switch]")
    page.get_by_role("dialog").get_by_label("Also close every open position at the market (flatten)").check()
    shot(page, "kill-switch")
    page.click("[data-testid=confirm-kill]")
    page.wait_for_selector("[role=status] >> text=The kill switch is on")
    note = page.locator("[data-testid=kill-note]").inner_text()
    assert note.strip() == "Closing 1 position at the market.", note
    wait_until(
        lambda: not assignment()["enabled"] and Decimal(assignment()["position_qty"]) == 0,
        timeout=30,
        what="paused and flat",
    )
    assert len(manual_sells()) == 3
    assert assignment()["paused_reason"] == "kill switch"
    nav(page, "Accounts")
    page.wait_for_selector("[data-testid=audit] >> text=Flatten all asked")
    page.wait_for_selector("[data-testid=audit] >> text=Close position asked")
    page.get_by_role("button", name="Release kill switch").click()

    # Someone else cannot close it, nor flatten it away.
    other = browser.new_context(viewport=DESKTOP)
    p2 = other.new_page()
    sign_up(p2, platform, "not-the-closer@example.com")
    csrf = next(c["value"] for c in other.cookies() if c["name"] == "tw_csrf")
    assert (
        p2.request.post(f"{platform}/api/assignments/{aid}/close", headers={"X-CSRF-Token": csrf}).status
        == 404
    )
    assert p2.request.post(f"{platform}/api/flatten", headers={"X-CSRF-Token": csrf}).status == 409
    other.close()
    assert len(manual_sells()) == 3
    ctx.close()


def test_a_backtest_run_again_later_sees_the_new_candles(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    """With "To" left empty, two runs a few seconds apart (a few candles at 60x) do not answer the same data:
    each says which range it ran over, and the second has more candles."""
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "fresh@example.com")
    post = api_for(page, platform)
    strategy = post("/api/strategies", {"name": "Always long", "code": PRINTS}, expect=201)

    def run() -> int:
        page.goto(f"{platform}/app/backtests?strategy={strategy['id']}")
        page.select_option("select[name=bt-market]", label="sim · BTC/USD")
        page.select_option("select[name=bt-timeframe]", "1m")
        assert page.input_value("input[name=bt-to]") == ""
        page.click("[data-testid=run-backtest]")
        page.wait_for_url(re.compile(r".*/app/backtests/\d+$"))
        text = page.locator("[data-testid=run-range]").inner_text(timeout=60_000)
        found = re.search(r"Ran over ([\d,]+) candles from .+ to .+ · data up to ", text)
        assert found, text
        return int(found.group(1).replace(",", ""))

    first = run()
    page.wait_for_timeout(4_000)  # four more 1m candles at 60x
    second = run()
    assert second > first, (first, second)
    ctx.close()


def test_a_right_password_is_not_refused_for_other_accounts_failures(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    """Ten wrong passwords from this address, at two other accounts: alice still logs in from it; a locked
    account says what happened and when to try again, once. (Last: the address is slowed from here on.)"""
    first = browser.new_context(viewport=DESKTOP)
    sign_up(first.new_page(), platform, "alice@example.com")
    first.close()
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    for name in ("bob", "carol"):
        httpx.post(
            f"{platform}/api/auth/register", json={"email": f"{name}@example.com", "password": PASSWORD}
        )
        for i in range(5):
            r = page.request.post(
                f"{platform}/api/auth/login",
                data={"email": f"{name}@example.com", "password": f"guess {i} of many"},
            )
            assert r.status == 401, r.text()
    page.goto(f"{platform}/")
    page.fill("input[name=email]", "bob@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    alert = page.locator("[role=alert]").inner_text()
    assert re.fullmatch(r"5 failed logins to this account from your address; try again in \d+ s", alert), (
        alert
    )
    page.fill("input[name=email]", "alice@example.com")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    ctx.close()
