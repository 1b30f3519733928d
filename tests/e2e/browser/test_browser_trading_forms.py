"""The trading forms in headless Chromium: parameter fields made from what a strategy declares, an allocation
above the account's value said before and at saving (and the order that came out smaller, with why), a version
pinned or followed, the old-version banner, a backtest of unsaved code from the editor, and every assignment's
actions in sight on a desktop and on a phone."""

from __future__ import annotations

import re

import pytest

from .shared import DESKTOP, PHONE, log_in, nav, set_code, shot, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

EMAIL = "forms@example.com"
DECLARED = """-- always long, with declared parameters
params = {
  fast = {type = "int", min = 5, max = 50, default = 10, description = "the fast average's length"},
  mode = {choices = {"cross", "trend"}, default = "cross"},
  strict = {type = "bool", default = false, description = "only on a fresh cross"},
}
function decide(c, params)
  return {position = "long", note = "v1 fast " .. params.fast}
end
"""
V2 = DECLARED.replace('note = "v1', 'note = "v2')
WIDE = {"width": 1440, "height": 900}


def in_sight(page, locator) -> bool:  # type: ignore[no-untyped-def]
    """Whether a click at the middle of the element reaches it where it is: inside the window and not hidden in
    a scroller (the window is scrolled down to it; nothing is scrolled sideways)."""
    locator.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 120)")
    box = locator.bounding_box()
    if box is None:
        return False
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    if not (0 <= x <= page.viewport_size["width"] and 0 <= y <= page.viewport_size["height"]):
        return False
    return bool(locator.evaluate("(el, [x, y]) => el.contains(document.elementFromPoint(x, y))", [x, y]))


def test_declared_parameters_allocations_and_pinned_versions(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, EMAIL)

    # A strategy that declares its parameters, saved from the editor (the template's defaults would not fit it).
    nav(page, "Strategies")
    page.get_by_role("link", name="New strategy").click()
    page.fill("input[name=name]", "Declared")
    set_code(page, DECLARED)
    page.wait_for_selector("[data-testid=diagnostics] >> text=No errors", timeout=15_000)
    page.click("[data-testid=save-strategy]")
    page.wait_for_selector(".field.has-error >> text=the strategy declares no parameter 'slow'")
    page.fill("input[name=params]", "")
    page.click("[data-testid=save-strategy]")
    page.wait_for_url(re.compile(r".*/app/strategies/\d+$"))
    page.wait_for_selector("text=Saved: version 1")
    strategy_id = int(page.url.rsplit("/", 1)[1])
    nav(page, "Accounts")
    page.click("[data-testid=create-account]")
    page.wait_for_selector("[data-testid=accounts] >> text=Paper account")

    # The form is made of the declaration: a number within its range, a list of its choices, a checkbox.
    nav(page, "Assignments")
    page.select_option("select[name=strategy]", label="Declared")
    fast = page.locator("input[name=assign-param-fast]")
    assert (fast.get_attribute("type"), fast.get_attribute("min"), fast.get_attribute("max")) == (
        "number",
        "5",
        "50",
    )
    assert fast.get_attribute("step") == "1" and fast.input_value() == "10"
    assert page.locator("select[name=assign-param-mode] option").all_inner_texts() == ["cross", "trend"]
    assert not page.is_checked("input[name=assign-param-strict]")
    assert "the fast average's length — 5 to 50 · default 10" in page.inner_text(
        "[data-testid=assign-param-fields]"
    )
    assert page.locator("input[name=assign-params]").count() == 0
    assert page.input_value("select[name=version]") == ""  # follows the latest
    page.fill("input[name=assign-param-fast]", "99")
    page.select_option("select[name=market]", label="sim · BTC/USD")
    page.select_option("select[name=account]", label="Paper account (sim)")
    page.fill("input[name=allocation]", "50000")
    # Said before it is saved: more than the paper account's 10,000 USD.
    page.wait_for_selector(
        "[data-testid=allocation-warning] >> text=more than the account is worth (10,000.00 USD)"
    )
    page.click("[data-testid=create-assignment]")  # the server's check, on its field:
    page.wait_for_selector(".field.has-error >> text=must be from 5 to 50, got 99")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "assignment-params", full_page=True)
    page.fill("input[name=assign-param-fast]", "12")
    page.select_option("select[name=assign-param-mode]", label="trend")
    page.check("input[name=assign-param-strict]")
    page.click("[data-testid=create-assignment]")
    page.wait_for_selector("[data-testid=saved-warning] >> text=more than the account is worth")
    page.wait_for_selector("[data-testid=assignments] >> text=fast=12, mode=trend, strict=true")
    # A second one, pinned to version 1: the allocations add up to 51,000.
    page.select_option("select[name=strategy]", label="Declared")
    page.select_option("select[name=version]", "1")
    page.select_option("select[name=market]", label="sim · BTC/USD")
    page.select_option("select[name=account]", label="Paper account (sim)")
    page.fill("input[name=allocation]", "1000")
    page.wait_for_selector("[data-testid=allocation-warning] >> text=51,000.00 USD in all")
    page.click("[data-testid=create-assignment]")
    page.wait_for_selector("[data-testid=saved-warning] >> text=51,000.00 USD in all")
    tags = page.locator("[data-testid=assignments] [data-testid=version-tag]")
    tags.nth(1).wait_for()
    assert sorted(tags.all_inner_texts()) == ["v1 · latest", "v1 · pinned"]

    # What the account could not pay for: the smaller order says why, and the assignments what they hold.
    nav(page, "Dashboard")
    page.wait_for_selector(
        "[data-testid=recent-orders] [data-testid=size-note] >> text=smaller than asked", timeout=60_000
    )
    assert "capped by the account's free balance" in page.inner_text("[data-testid=recent-orders]")
    nav(page, "Assignments")
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=in-use]')].some("
        "e => /in use [1-9][\\d,]*\\.\\d\\d/.test(e.textContent))",
        timeout=30_000,
    )

    # The editor says who a save switches and who stays; saving version 2 does just that.
    page.goto(f"{platform}/app/strategies/{strategy_id}")
    note = page.locator("[data-testid=version-note]")
    note.wait_for()
    assert "switches this assignment, which follows the latest" in note.inner_text()
    assert "on v1" in note.inner_text()
    set_code(page, V2)
    page.wait_for_selector("[data-testid=diagnostics] >> text=No errors", timeout=15_000)
    page.click("[data-testid=save-strategy]")
    page.wait_for_selector("text=Saved: version 2")
    nav(page, "Assignments")
    page.wait_for_selector("[data-testid=assignments] [data-testid=version-tag] >> text=v2 · latest")
    page.wait_for_selector("[data-testid=assignments] [data-testid=version-tag] >> text=v1 · pinned")
    shot(page, "assignments-versions")

    # The pinned one's version opens in the editor with a banner: it is not the latest, and who still runs it.
    page.click("[data-testid=assignments] [data-testid=version-tag] >> text=v1 · pinned")
    page.wait_for_url(re.compile(rf".*/app/strategies/{strategy_id}\?version=1$"))
    banner = page.locator("[data-testid=old-version]")
    banner.wait_for()
    assert "Version 1, not the latest (v2)" in banner.inner_text()
    # who runs it comes with the assignments, which may load after the banner shows
    page.wait_for_selector("[data-testid=old-version] >> text=this assignment runs this code")
    page.wait_for_function("document.querySelector('.cm-content').textContent.includes('note = \"v1 fast')")
    shot(page, "strategy-old-version")

    # "Backtest this code": the editor's code, unsaved, run over history; the versions stay as they are.
    page.click(".cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("-- not saved\n")
    page.click("[data-testid=backtest-draft]")
    page.select_option("select[name=draft-timeframe]", "5m")
    page.click("[data-testid=run-draft-backtest]")
    link = page.locator("[data-testid=draft-started] a")
    link.wait_for()
    with ctx.expect_page() as opened:
        link.click()
    run = opened.value
    run.wait_for_selector("[data-testid=metrics], [role=alert]", timeout=60_000)
    alert = run.locator("[role=alert]")
    assert not alert.count(), alert.inner_text()
    assert run.inner_text("[data-testid=draft-run]") == "unsaved code"
    run.close()
    assert page.locator("[data-testid=old-version]").count() == 1, "the editor kept its code"
    assert [
        v["version"] for v in page.request.get(f"{platform}/api/strategies/{strategy_id}/versions").json()
    ] == [2, 1]

    # The backtest form is made of the declaration too, and its errors land on the field.
    page.once("dialog", lambda dialog: dialog.accept())  # leaving the unsaved editor
    nav(page, "Backtests")
    page.goto(f"{platform}/app/backtests?strategy={strategy_id}")
    page.wait_for_selector("input[name=bt-param-fast]")
    assert page.input_value("input[name=bt-param-fast]") == "10"
    page.fill("input[name=bt-param-fast]", "4")
    page.click("[data-testid=run-backtest]")
    page.wait_for_selector(".field.has-error >> text=must be from 5 to 50, got 4")
    ctx.close()


def test_free_form_parameters_and_row_actions_on_a_wide_screen_and_a_phone(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=WIDE)
    page = ctx.new_page()
    sign_up(page, platform, "rows@example.com")
    csrf = next(c["value"] for c in ctx.cookies() if c["name"] == "tw_csrf")
    headers = {"X-CSRF-Token": csrf}
    code = 'function decide(c, params) return "neutral" end'
    strategy = page.request.post(
        f"{platform}/api/strategies", data={"name": "Plain", "code": code}, headers=headers
    )
    assert strategy.ok, strategy.text()
    trader = page.request.post(
        f"{platform}/api/traders", data={"name": "Paper", "exchange": "sim", "paper": True}, headers=headers
    ).json()
    market = page.request.get(f"{platform}/api/markets").json()["items"][0]["id"]
    for allocation in ("500", "250"):
        r = page.request.post(
            f"{platform}/api/assignments",
            headers=headers,
            data={
                "strategy_id": strategy.json()["id"],
                "market_id": market,
                "trader_id": trader["id"],
                "allocation": allocation,
                "params": {"label": "a long label that takes room", "window": 14},
            },
        )
        assert r.ok, r.text()

    # A strategy that declares nothing keeps the free-form field; a number no double holds is refused there.
    nav(page, "Assignments")
    page.select_option("select[name=strategy]", label="Plain")
    page.select_option("select[name=market]", label="sim · BTC/USD")
    page.fill("input[name=assign-params]", "fast=1e400")
    page.click("[data-testid=create-assignment]")
    page.wait_for_selector(".field.has-error >> text=fast=1e400 is not a finite number")
    page.fill("input[name=assign-params]", "fast=5..20")
    page.click("[data-testid=create-assignment]")
    page.wait_for_selector(".field.has-error >> text=one value per parameter")

    # Every row's actions can be clicked where they are, at 1440 px and on a phone.
    page.wait_for_selector("[data-testid=assignments] tr >> nth=1")
    for name in ("pause", "edit", "delete"):
        for button in (
            page.locator("[data-testid=assignments]").get_by_role("button", name=name, exact=True).all()
        ):
            assert in_sight(page, button), f"{name} is out of sight at 1440 px"
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    p2 = phone.new_page()
    log_in(p2, platform, "rows@example.com", "/assignments")
    p2.wait_for_selector("[data-testid=assignments] tr >> nth=1")
    width = p2.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the assignments page scrolls sideways on a phone ({width}px)"
    for name in ("pause", "edit", "delete"):
        for button in (
            p2.locator("[data-testid=assignments]").get_by_role("button", name=name, exact=True).all()
        ):
            assert in_sight(p2, button), f"{name} is out of sight on a phone"
    p2.locator("[data-testid=assignments]").get_by_role("button", name="pause", exact=True).first.click()
    p2.wait_for_selector("[data-testid=paused-reason] >> text=paused by you")
    shot(p2, "assignments-phone", full_page=True)
    phone.close()
    ctx.close()
