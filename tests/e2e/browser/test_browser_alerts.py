"""Alerts in the web app, as a user sets them up: a webhook (a local server started here) and the in-browser
channel; a pause makes an alert that the webhook receives signed and the open app shows as a toast and a
system notification; a test alert to an endpoint that fails shows the failure on the channel."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tradewind.alerts import signing

from ..platform_helpers import wait_until
from .shared import DESKTOP, PASSWORD, SHOTS, nav, shot, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
LONG = 'function decide(c, p) return "long" end'
# The browser's Notification, wrapped to record what the app shows (the permission is granted for real).
RECORD_NOTIFICATIONS = """
window.__notes = [];
const Real = window.Notification;
if (Real) {
  window.Notification = new Proxy(Real, { construct(target, args) {
    window.__notes.push({ title: args[0], body: args[1] && args[1].body });
    return Reflect.construct(target, args);
  } });
}
"""


class Hook:
    """A webhook endpoint on 127.0.0.1: records each POST; answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-path-123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, event: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.received if json.loads(b).get("event") == event]


@pytest.fixture
def hook():  # type: ignore[no-untyped-def]
    h = Hook()
    yield h
    h.server.shutdown()


def test_alerts_reach_a_webhook_and_the_open_app_and_failures_show(
    platform: str, browser, hook: Hook
) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport=DESKTOP)
    ctx.grant_permissions(["notifications"], origin=platform)
    ctx.add_init_script(RECORD_NOTIFICATIONS)
    page = ctx.new_page()
    email = "alerts@example.com"
    sign_up(page, platform, email)

    # A webhook: its signing secret is shown once.
    nav(page, "Alerts")
    page.wait_for_selector("text=No channels yet")
    page.fill("input[name=alert-name]", "My endpoint")
    page.fill("input[name=alert-url]", hook.url)
    page.click("[data-testid=add-channel]")
    secret = page.inner_text("[data-testid=webhook-secret] code")
    assert secret.startswith("whsec_")
    page.wait_for_selector("[data-testid=alert-channels] >> text=My endpoint")
    assert "secret-path-123" not in page.inner_text("[data-testid=alert-channels]")  # the path stays secret
    page.get_by_role("button", name="I have copied it").click()

    # The in-browser channel, with system notifications allowed.
    page.get_by_role("tab", name="In the browser").click()
    page.wait_for_selector("[data-testid=notify-state] >> text=allowed")
    page.click("[data-testid=add-channel]")
    page.wait_for_selector("[data-testid=alert-channels] >> text=the open web app")

    # An event: the user's assignment is paused (through the API, as a script of theirs would).
    with httpx.Client(base_url=platform, timeout=15) as api:
        token = api.post("/api/auth/login", json={"email": email, "password": PASSWORD}).json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        s = api.post("/api/strategies", json={"name": "Always long", "code": LONG}).json()
        markets = api.get("/api/markets").json()["items"]
        market = next(m for m in markets if (m["exchange"], m["symbol"]) == ("sim", "BTC/USD"))
        a = api.post("/api/assignments", json={"strategy_id": s["id"], "market_id": market["id"]}).json()
        assert api.post(f"/api/assignments/{a['id']}/pause").status_code == 200

    title = f"Paused: assignment #{a['id']} (Always long)"
    toast = page.locator("[data-testid=toast]", has_text=title)
    toast.wait_for(timeout=20_000)
    assert "paused by you" in toast.inner_text()
    page.wait_for_function("t => window.__notes.some(n => n.title === t)", arg=title, timeout=10_000)
    browser_row = page.locator("[data-testid=alert-channels] tr", has_text="the open web app")
    browser_row.locator("[data-testid=channel-status] >> text=delivering").wait_for(
        timeout=10_000
    )  # no reload
    shot(page, "alerts")
    headers, body = wait_until(
        lambda: hook.events("paused") and hook.events("paused")[0],
        timeout=20,
        what="the alert at the webhook",
    )
    assert json.loads(body)["title"] == title
    assert signing.verify(secret, headers["x-tradewind-timestamp"], body, headers["x-tradewind-signature"])

    # The channel shows what it delivered; an endpoint that fails shows as failing, with its error.
    page.reload()
    row = page.locator("[data-testid=alert-channels] tr", has_text="My endpoint")
    row.locator("[data-testid=channel-status] >> text=delivering").wait_for(timeout=10_000)
    hook.status = 500
    row.locator("[data-testid=test-channel]").click()
    row.locator("[data-testid=test-result] >> text=/Test failed: .*HTTP 500/").wait_for(timeout=20_000)
    row.locator("[data-testid=channel-status] >> text=failing").wait_for(timeout=10_000)
    assert "HTTP 500" in row.locator("[data-testid=channel-error]").inner_text()
    row.get_by_role("button", name="deliveries").click()
    page.locator("[data-testid=deliveries] >> text=Test alert from tradewind").wait_for()
    ctx.close()
