"""Fixtures of the browser tests: one platform for all of them (this package), stopped when the last one
ends, and one Chromium per test module (see shared.py)."""

from __future__ import annotations

import pytest

from .shared import start_browser, start_platform


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    yield from start_platform(tmp_path_factory)


# Per module, not per session: Playwright's sync API keeps an event loop running in this thread while
# it is open, and every asyncio test after it would fail ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    yield from start_browser()
