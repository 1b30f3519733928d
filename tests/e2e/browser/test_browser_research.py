"""The research pages in a real browser, on `tradewind up`: an optimisation run from the Research page, its best
trial opened (its parameters run in full), two runs compared side by side, the HTML report exported and opened
with the network cut off; and a walk-forward started from its tab, with its result and the run history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .shared import DESKTOP, nav, shot, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SMA = """\
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


def api(page, base: str):  # type: ignore[no-untyped-def]
    """The page's own session for the calls a test makes beside the clicks (CSRF header included)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "tw_csrf")

    def call(method: str, path: str, body: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
        r = page.request.fetch(f"{base}{path}", method=method, data=body, headers={"X-CSRF-Token": csrf})
        assert r.ok, (path, r.status, r.text())
        return r.json()

    return call


def percent(text: str) -> float:
    """ "+1,234.50 %" as 1234.5."""
    return float(text.replace("%", "").replace(",", "").replace("+", "").strip())


def test_an_optimisations_best_trial_a_comparison_and_the_offline_report(
    platform: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = ctx.new_page()
    sign_up(page, platform, "historian@example.com")
    call = api(page, platform)
    strategy = call("POST", "/api/strategies", {"name": "SMA history", "code": SMA})
    market = next(m for m in call("GET", "/api/markets")["items"] if m["symbol"] == "BTC/USD")
    backtest = call(
        "POST",
        "/api/backtests",
        {
            "strategy_id": strategy["id"],
            "market_id": market["id"],
            "timeframe": "5m",
            "params": {"fast": 4, "slow": 30},
        },
    )

    # an optimisation from the Research page, and its best trial
    nav(page, "Research")
    page.select_option("select[name=study-strategy]", label="SMA history (v1)")
    page.select_option("select[name=study-market]", label="sim · BTC/USD")
    page.select_option("select[name=study-timeframe]", "5m")
    page.fill("input[name=study-trials]", "10")
    page.click("[data-testid=start-study]")
    page.wait_for_url(re.compile(r".*/app/research/\d+$"))
    study_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_function(
        "document.querySelector('[data-testid=study-status]')?.textContent === 'done'", timeout=90_000
    )
    page.click("[data-testid=open-best]")
    panel = page.locator("[data-testid=trial-detail]")
    # the best trial's parameters, run again in full once the study ended: the trial's own result, with its curve
    panel.locator("[data-testid=best-run] [data-testid=equity-chart] canvas").first.wait_for()
    trial_return = panel.locator(".stat", has_text="Return").first.locator("b").inner_text()
    full_return = panel.locator("[data-testid=best-run] .stat", has_text="Return").locator("b").inner_text()
    assert percent(trial_return) == pytest.approx(percent(full_return), abs=0.006), (
        trial_return,
        full_return,
    )
    assert page.locator("[data-testid=exports] [data-testid=export-html]").count() == 1  # on the study's page

    # the run history: the backtest and the optimisation, two of them compared
    for _ in range(60):  # the backtest ran beside the study (long done by now)
        if call("GET", f"/api/backtests/{backtest['id']}")["status"] != "queued":
            break
        page.wait_for_timeout(1000)
    nav(page, "Research")
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_url(re.compile(r".*/app/research/runs$"))
    rows = page.locator("[data-testid=runs] tr")
    rows.first.wait_for()
    assert rows.count() == 2
    assert page.inner_text(f"tr[data-ref='backtest:{backtest['id']}'] .pill") == "done"
    assert not page.is_enabled("[data-testid=compare-runs]")  # one run is no comparison
    page.check(f"tr[data-ref='study:{study_id}'] input[type=checkbox]")
    page.check(f"tr[data-ref='backtest:{backtest['id']}'] input[type=checkbox]")
    shot(page, "research-runs")
    page.click("[data-testid=compare-runs]")
    page.wait_for_url(
        re.compile(rf".*/app/research/compare\?runs=study%3A{study_id},backtest%3A{backtest['id']}$")
    )
    table = page.locator("[data-testid=compare-metrics]")
    table.wait_for()
    runs = {r["ref"]: r for r in call("GET", "/api/runs")["items"]}
    shown = table.locator("tr[data-metric=return_pct] td").all_inner_texts()
    expected = [
        runs[f"study:{study_id}"]["metrics"]["return_pct"],
        runs[f"backtest:{backtest['id']}"]["metrics"]["return_pct"],
    ]
    assert [percent(t.rstrip(" ★")) for t in shown] == pytest.approx(expected, abs=0.006)
    if expected[0] != expected[1]:  # the better return is marked
        best = 0 if expected[0] > expected[1] else 1
        assert shown[best].endswith("★") and not shown[1 - best].endswith("★")
    page.wait_for_selector("[data-testid=compare-chart] canvas")
    assert page.get_attribute("[data-testid=compare-chart]", "data-series") == "2"
    shot(page, "research-compare", full_page=True)

    # the optimisation's HTML report, downloaded from the comparison
    with page.expect_download() as download:
        table.locator("[data-testid=export-html]").first.click()
    report = tmp_path / download.value.suggested_filename
    download.value.save_as(report)
    assert report.name == f"tradewind-study-{study_id}.html"

    # ... opened with no server and no network: it needs nothing but itself
    offline = browser.new_context(viewport=DESKTOP, offline=True)
    view = offline.new_page()
    fetched: list[str] = []
    view.on("request", lambda r: fetched.append(r.url))
    view.goto(report.as_uri())
    assert fetched == [report.as_uri()]
    assert view.title() == f"Optimisation #{study_id}: SMA history v1"
    curve = view.locator("svg polyline").first.get_attribute("points") or ""
    assert len(curve.split()) > 100  # the equity curve, drawn
    assert view.locator("svg").count() == 2 and "Best trial #" in view.inner_text("body")
    stat = view.locator("#metrics .stat", has_text="Return %").locator("b").inner_text()
    assert percent(stat) == pytest.approx(expected[0], abs=0.006)
    assert view.locator("pre").inner_text().strip() == SMA.strip()  # the code it ran
    shot(view, "research-report", full_page=True)
    offline.close()
    ctx.close()


def test_a_walkforward_runs_from_the_research_page(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    sign_up(page, platform, "walker@example.com")
    api(page, platform)("POST", "/api/strategies", {"name": "SMA walk", "code": SMA})
    nav(page, "Research")
    page.get_by_role("tab", name="Walk-forward").click()
    page.wait_for_url(re.compile(r".*/app/research/walkforward$"))
    page.select_option("select[name=wf-strategy]", label="SMA walk (v1)")
    page.select_option("select[name=wf-market]", label="sim · BTC/USD")
    page.select_option("select[name=wf-timeframe]", "5m")
    page.fill("input[name=wf-split]", "1.5")
    page.click("[data-testid=start-walkforward]")
    page.wait_for_selector(".field.has-error >> text=a share between 0 and 1")  # checked before sending
    page.select_option("select[name=wf-mode]", "rolling")
    page.fill("input[name=wf-train]", "half a day")
    page.click("[data-testid=start-walkforward]")
    page.wait_for_selector(".field.has-error >> text=a length such as 30d")
    page.fill("input[name=wf-train]", "12h")
    page.fill("input[name=wf-test]", "6h")
    page.fill("input[name=wf-trials]", "6")
    page.click("[data-testid=start-walkforward]")
    page.wait_for_url(re.compile(r".*/app/research/walkforward/\d+$"))
    wf_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_function(
        "document.querySelector('[data-testid=wf-status]')?.textContent === 'done'", timeout=150_000
    )
    doc = page.request.get(f"{platform}/api/walkforwards/{wf_id}").json()
    windows = doc["result"]["windows"]
    assert len(windows) >= 5 and all(w["train"]["candles"] == 144 for w in windows)  # 12 h of 5m candles
    assert page.locator("[data-testid=wf-windows] tr").count() == len(windows)
    wfe = doc["result"]["wfe"]
    assert page.inner_text("[data-testid=wfe]") == (f"{wfe:,.3f}" if wfe is not None else "n/a")
    page.wait_for_selector("[data-testid=equity-chart] canvas")  # out of sample, stitched
    assert int(page.get_attribute("[data-testid=wf-in-sample]", "data-points") or 0) > len(windows)
    assert int(page.get_attribute("[data-testid=wf-out-of-sample]", "data-points") or 0) > len(windows)
    assert page.locator("[data-testid=exports] [data-testid=export-csv]").count() == 1
    shot(page, "research-walkforward", full_page=True)
    page.get_by_role("link", name="All walk-forwards").click()
    page.locator("[data-testid=walkforwards] a", has_text=re.compile(f"^#{wf_id}$")).wait_for()
    page.get_by_role("tab", name="Runs").click()
    row = page.locator(f"tr[data-ref='walkforward:{wf_id}']")
    row.wait_for()
    assert "Walk-forward" in row.inner_text() and "rolling 12h/6h" in row.inner_text()
    ctx.close()
