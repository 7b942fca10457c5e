"""A real browser for the tests of the gateway's pages: Debian's chromium, driven by Playwright.

Playwright cannot download its own browsers on these machines, so it launches the system's (`.ci/run` installs
it, so CI always runs these tests; elsewhere they run wherever a Chromium is installed). The fixtures are
module-scoped: Playwright's sync driver is stopped before another module's event loops run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it"
)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    try:
        yield launched
    finally:
        launched.close()
