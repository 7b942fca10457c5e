"""`/docs` and `/redoc` work offline: every asset they reference is served by the gateway, and in a real browser
(Debian's chromium, through Playwright) no request leaves it while both pages render the API."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from tests.browser import needs_chromium

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_a_docs_page_references_is_served_by_the_gateway(gateway_url: str, page: str) -> None:
    html = httpx.get(gateway_url + page)
    assert html.status_code == 200
    assert "https://" not in html.text
    assert "http://" not in html.text
    assert "img-src 'self' data:" in html.headers["content-security-policy"]
    references = _REFERENCE.findall(html.text)
    assert len(references) >= 2  # the favicon, the scripts (and Swagger UI's styles)
    for reference in references:
        asset = httpx.get(urljoin(gateway_url + page, reference))
        assert asset.status_code == 200, reference
        assert asset.headers["content-type"].split(";")[0] in ("text/javascript", "text/css", "image/png"), reference


def visit(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """Open `url`, refusing (and noting) any request that is not to the gateway."""
    page = browser.new_page()
    outside: list[str] = []
    origin = urlsplit(url).netloc

    def guard(route: Route) -> None:
        requested = urlsplit(route.request.url)
        if requested.scheme in ("data", "blob") or requested.netloc == origin:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(url)
    return page, outside


@needs_chromium
def test_swagger_ui_renders_offline(browser: Browser, gateway_url: str) -> None:
    page, outside = visit(browser, gateway_url + "/docs")
    try:
        page.locator(".swagger-ui .info .title").filter(has_text="Memory gateway").wait_for()
        page.locator(".opblock-summary-path", has_text="/v1/chat/completions").first.wait_for()
        assert outside == []
    finally:
        page.close()


@needs_chromium
def test_redoc_renders_offline(browser: Browser, gateway_url: str) -> None:
    page, outside = visit(browser, gateway_url + "/redoc")
    try:
        page.locator("h1", has_text="Memory gateway").wait_for()
        page.locator("h2", has_text="Create a chat completion").first.wait_for()
        assert outside == []
    finally:
        page.close()
