"""The log-in page's addresses in headless Chromium: logging in at /app/login lands on the dashboard (it once
showed "Not found: there is no page at /login"), a logged-in user at a log-in address is sent on, and a
logged-out one logs in where they are."""

from __future__ import annotations

import re

import httpx
import pytest

from .shared import DESKTOP, PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def submit_login(page, email: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("input[type=email]", email)
    page.fill("input[type=password]", PASSWORD)
    page.get_by_role("button", name="Log in").click()


def at(page, base: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """The browser shows ``/app{path}`` (the query string included), without the not-found page."""
    page.wait_for_url(re.compile(re.escape(f"{base}/app{path}") + "$"))
    assert page.get_by_role("heading", name="Not found").count() == 0


def test_logging_in_at_the_login_address_and_visiting_it_logged_in(platform: str, browser) -> None:  # type: ignore[no-untyped-def]
    email = "routes@example.com"
    r = httpx.post(f"{platform}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=30)
    assert r.status_code == 201, r.text
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()

    # The address a user types (or a fresh clone's README link): the form, then the dashboard.
    page.goto(f"{platform}/app/login")
    page.get_by_role("heading", name="Log in", exact=True).wait_for()
    submit_login(page, email)
    page.get_by_role("heading", name="Dashboard", exact=True).wait_for()
    at(page, platform, "/")
    page.locator("[data-testid=stream-status]").wait_for()

    # Logged in, a log-in address sends the user on: to the dashboard, or to ?next= when it is a page here.
    for path in ("/app/login", "/login", "/app/register"):
        page.goto(f"{platform}{path}")
        page.get_by_role("heading", name="Dashboard", exact=True).wait_for()
        at(page, platform, "/")
    page.goto(f"{platform}/app/login?next=/strategies")
    page.get_by_role("heading", name="Strategies", exact=True).wait_for()
    at(page, platform, "/strategies")
    page.goto(f"{platform}/app/login?next=//evil.example/")
    page.get_by_role("heading", name="Dashboard", exact=True).wait_for()
    at(page, platform, "/")

    # Logging out lands on the log-in address; logging in again there goes to the dashboard.
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in", exact=True).wait_for()
    at(page, platform, "/login")
    submit_login(page, email)
    page.get_by_role("heading", name="Dashboard", exact=True).wait_for()
    at(page, platform, "/")
    ctx.close()

    # Logged out, any page of the app shows the form at its own address, and is there after logging in.
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.goto(f"{platform}/app/strategies")
    page.get_by_role("heading", name="Log in", exact=True).wait_for()
    at(page, platform, "/strategies")
    submit_login(page, email)
    page.get_by_role("heading", name="Strategies", exact=True).wait_for()
    at(page, platform, "/strategies")
    ctx.close()

    # /app/register opens the sign-up form; /login (outside /app) is the log-in page too.
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.goto(f"{platform}/app/register")
    page.get_by_role("heading", name="Create your account", exact=True).wait_for()
    page.goto(f"{platform}/login")
    page.get_by_role("heading", name="Log in", exact=True).wait_for()
    at(page, platform, "/login")
    ctx.close()
