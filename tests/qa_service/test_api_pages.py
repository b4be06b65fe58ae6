"""The API's reading pages (/docs; /redoc leads there) in real Chromium: served from this machine, under their policy."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import LiveServer
from tests.qa_service.browser import new_page


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_pages_render_offline_under_their_policy(browser: Browser, server: LiveServer,  # noqa: F811
                                                         path: str) -> None:
    page, errors = new_page(browser, viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(server.url + path)
        expect(page.locator(".opblock-summary-path", has_text="/v1/ask").first).to_be_visible()
        origin = urlsplit(server.url).netloc
        elsewhere = [url for url in requested if urlsplit(url).scheme in ("http", "https")
                     and urlsplit(url).netloc != origin]
        assert not elsewhere, elsewhere
        assert not errors, errors  # nothing the page's Content-Security-Policy blocked, no script error
    finally:
        page.context.close()
