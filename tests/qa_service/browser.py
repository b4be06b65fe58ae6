"""What every browser test shares: Debian's Chromium driven by Playwright, pages in fresh
contexts that record every script error, alert and policy violation, a second origin to embed
the widget in, and asking through the widget. The fixtures are in this folder's conftest.py."""

from __future__ import annotations

import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

# A real model answers on a shared 2-core machine: one generous wait for every
# Playwright action and assertion, which always wait on state, never on sleeps.
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def new_page(browser: Browser, **options) -> tuple[Page, list[str]]:
    """A page in a fresh context with the generous default wait, and the errors it logs:
    script errors, alerts, and anything the Content-Security-Policy blocked."""
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}") or dialog.dismiss())
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    # every violation of the page's policy, whether or not the browser logs it (a Trusted Types one
    # inside a caught exception, say), is logged as one
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => console.error("
        "`Content Security Policy violation: ${e.violatedDirective} ${e.sample || ''}`));"
    )
    return page, errors


def wait_until(page: Page, condition, what: str) -> None:  # noqa: ANN001
    """Let the browser run until ``condition()`` holds (route handlers run while it waits)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(20)


class HostSite:
    """A second origin (another loopback port) serving pages that embed the widget."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # any free port
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def page(self, name: str, api_url: str, extra: str = "", open_: bool = True, timeout_ms: int = 20000,
             api_key: str | None = None, title: str | None = None) -> str:
        key = f' data-api-key="{api_key}"' if api_key else ""
        key += f' data-title="{title}"' if title else ""
        snippet = (
            f'<script src="{api_url}/widget.js" data-api="{api_url}" data-open="{str(open_).lower()}" '
            f'data-timeout="{timeout_ms}"{key}></script>'
        )
        (self.root / name).write_text(
            "<!doctype html><html><head><meta charset='utf-8'><title>Support portal</title>"
            f"{extra}</head><body><h1>Support portal</h1><button id='host-button'>Host button</button>"
            f"{snippet}</body></html>",
            encoding="utf-8",
        )
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def ask(page: Page, question: str) -> None:
    box = page.locator("#drugqa-widget input.question")
    box.fill(question)
    box.press("Enter")


