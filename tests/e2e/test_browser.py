"""The web app in headless Chromium, as a new user goes through it; screenshots go to docs/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from .platform_helpers import Proc, env_for, free_port, wait_until

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
STATIC = Path(__file__).resolve().parents[2] / "src" / "tradewind" / "web" / "static" / "app" / "index.html"

BROKEN = """-- an SMA crossover, with a typo on line 3
function decide(c, params)
  local fast = ta.sma(c.close, params.fast or 5
  local slow = ta.sma(c.close, params.slow or 20)
  if fast[#fast] > slow[#slow] then return "long" end
  return "short"
end
"""
FIXED = BROKEN.replace("params.fast or 5\n", "params.fast or 5)\n").replace("with a typo on line 3", "fixed")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium")
    if not STATIC.exists():
        pytest.fail("the web app is not built: `make install` builds it")
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    proc = Proc(["up", "--data-dir", str(tmp / "data"), "--port", str(port)],
                env_for(sim_speed=120, history_days=2), tmp / "up.log").start()  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/api/health", timeout=2).status_code == 200, timeout=90, what="tradewind up", proc=proc)
    yield base
    proc.stop()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])  # fmt: skip
        yield b
        b.close()


def sign_up(page, base: str, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/")
    page.get_by_role("button", name="No account? Sign up").click()
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "correct horse battery staple")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("link", name="Dashboard").wait_for()


def set_code(page, code: str) -> None:  # type: ignore[no-untyped-def]
    page.click(".cm-content")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)


def test_write_assign_and_watch_a_strategy_trade(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1360, "height": 860})
    page = ctx.new_page()
    sign_up(page, platform, "trader@example.com")
    page.wait_for_selector("text=BTC/USD")

    # A strategy with a syntax error is flagged on its line; fixed, it saves.
    page.goto(f"{platform}/app/strategies/new")
    page.fill("input[name=name]", "SMA 5/20")
    set_code(page, BROKEN)
    page.wait_for_selector("[data-testid=diagnostics] >> text=/Line [34]:/", timeout=15_000)
    page.wait_for_selector(".cm-lintRange-error", timeout=5_000)
    set_code(page, FIXED)
    page.wait_for_selector("[data-testid=diagnostics] >> text=No errors", timeout=15_000)
    page.click("[data-testid=save-strategy]")
    page.wait_for_url("**/app/strategies/1")
    page.screenshot(path=str(SHOTS / "strategy-editor.png"))

    # A paper account, then the assignment.
    page.click("text=Accounts")
    page.click("[data-testid=create-account]")
    page.wait_for_selector("td >> text=Paper account")
    page.screenshot(path=str(SHOTS / "accounts.png"))
    page.click("text=Assignments")
    page.select_option("select[name=strategy]", label="SMA 5/20")
    page.select_option("select[name=market]", label="sim · BTC/USD")
    page.select_option("select[name=account]", index=1)
    page.click("[data-testid=create-assignment]")
    page.wait_for_selector("text=running")

    # On the market page, decisions and a fill appear live on the chart.
    page.click("td >> text=BTC/USD 1m")
    page.wait_for_selector("[data-testid=chart] canvas")
    page.wait_for_selector("[data-testid=decisions] tr", timeout=60_000)
    page.wait_for_selector("[data-testid=fills] tr", timeout=90_000)
    page.wait_for_function("Number(document.querySelector('[data-testid=chart]').dataset.markers) > 1", timeout=30_000)
    page.screenshot(path=str(SHOTS / "market.png"))
    page.click("text=Assignments")
    page.wait_for_selector("text=running")
    page.screenshot(path=str(SHOTS / "assignments.png"))
    page.click("text=Dashboard")
    page.wait_for_selector("text=Recent orders")
    page.wait_for_selector("td >> text=filled", timeout=30_000)
    page.screenshot(path=str(SHOTS / "dashboard.png"))

    # On a phone the same pages stay usable.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    p2 = phone.new_page()
    sign_up(p2, platform, "phone@example.com")
    p2.wait_for_selector("text=BTC/USD")
    p2.screenshot(path=str(SHOTS / "dashboard-phone.png"))

    # A second user sees none of the first user's objects.
    assert "Nothing running" in p2.content()
    for path in ("/api/strategies", "/api/assignments", "/api/traders", "/api/orders"):
        assert p2.request.get(f"{platform}{path}").json()["items"] == []
    assert p2.request.get(f"{platform}/api/strategies/1").status == 404
    phone.close()
    ctx.close()


def test_login_errors_are_shown_next_to_the_field(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(f"{platform}/")
    page.get_by_role("button", name="No account? Sign up").click()
    page.fill("input[name=email]", "weak@example.com")
    page.fill("input[name=password]", "password123")
    page.get_by_role("button", name="Sign up").click()
    err = page.wait_for_selector(".field.has-error .field-error")
    assert "common" in err.inner_text()
    page.close()
