"""What every browser test shares: one `tradewind up` (the simulated exchange at 60x speed) and one
headless Chromium per test module, and the steps users take in every test (sign up, log in, ...).

A browser test file imports what it needs from here; the fixtures come from conftest.py beside it. One
platform for all of them keeps the suite's time down: each `tradewind up` costs seconds to start.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from ..platform_helpers import Proc, env_for, free_port, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The pictures in docs/screenshots are rewritten only on request (`TRADEWIND_SCREENSHOTS=1 make test`),
# so that a test run leaves the working tree as it was; otherwise they go to a temporary folder.
SHOTS = (
    Path(__file__).resolve().parents[3] / "docs" / "screenshots"
    if os.environ.get("TRADEWIND_SCREENSHOTS")
    else Path(tempfile.mkdtemp(prefix="tradewind-shots-"))
)
STATIC = Path(__file__).resolve().parents[3] / "src" / "tradewind" / "web" / "static" / "app" / "index.html"
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1360, "height": 860}
PHONE = {"width": 390, "height": 844}


def start_platform(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium")
    if not STATIC.exists():
        pytest.fail("the web app is not built: `make install` builds it")
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    proc = Proc(
        ["up", "--data-dir", str(tmp / "data"), "--port", str(port)],
        env_for(sim_speed=60, history_days=2),
        tmp / "up.log",
    ).start()
    base = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{base}/api/health", timeout=2).status_code == 200,
        timeout=90,
        what="tradewind up",
        proc=proc,
    )
    yield base
    proc.stop()


def start_browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def sign_up(page, base: str, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/")
    page.get_by_role("button", name="No account? Sign up").click()
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def log_in(page, base: str, email: str, path: str = "/") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/app{path}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("[data-testid=stream-status]").wait_for()


def set_code(page, code: str) -> None:  # type: ignore[no-untyped-def]
    page.click(".cm-content")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)


def shot(page, name: str, full_page: bool = False) -> None:  # type: ignore[no-untyped-def]
    """A screenshot for the docs, in 256 colours (a third of the size, no visible change for flat UI)."""
    from PIL import Image

    page.mouse.move(1, 1)  # no hover state or chart crosshair in the picture
    page.wait_for_timeout(300)
    image = Image.open(io.BytesIO(page.screenshot(full_page=full_page))).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        SHOTS / f"{name}.png", optimize=True
    )


def nav(page, label: str) -> None:  # type: ignore[no-untyped-def]
    page.locator("header.top nav").get_by_role("link", name=label).click()
    page.get_by_role("heading", name=label if label != "Accounts" else "Trading accounts").wait_for()
