"""Fixtures of the browser tests: one platform and one Chromium for the whole session (see browser.py)."""

from __future__ import annotations

import pytest

from .browser import start_browser, start_platform


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    yield from start_platform(tmp_path_factory)


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    yield from start_browser()
