"""Accessibility of the chat widget in a real Chromium, at 1280x900 and at 360x740: axe-core 4
(tests/qa_service/axe.py, run under the pages' own Content-Security-Policy) reports nothing in any
state the widget has (closed, open and empty, with answers and their passage and document, with the
service's notice, declined, with an error), nothing scrolls sideways and the panel stays inside the
viewport; and every control works from the keyboard alone, with a visible focus.

The index is the seed corpus (two documents about baclofen) plus the leaflet of a second, made-up
medicine, so that a question naming none is answered from leaflets of different medicines."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ingest.build import IndexBuilder
from ingest.embedding import Embedder
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, CORPUS, LiveServer
from tests.qa_service import axe
from tests.qa_service.axe import assert_no_axe_violations
from tests.qa_service.browser import HostSite, ask, new_page

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 360, "height": 740}}

SECOND_MEDICINE = (
    "Corvalex 20 mg film-coated tablets: package leaflet\n\n"
    "What Corvalex is and what it is used for\n\n"
    "Corvalex contains the active substance corvalexin. Corvalex tablets are used to lower raised blood "
    "pressure in adults.\n\n"
    "How to store Corvalex\n\n"
    "Store Corvalex tablets below 30 degrees in the original package to protect them from moisture. "
    "Keep the tablets out of the sight and reach of children.\n\n"
    "If you take more Corvalex than you should\n\n"
    "If you take too many Corvalex tablets, contact your doctor or the nearest hospital emergency "
    "department at once. Take the pack with you.\n"
)
QUESTION = "How long does baclofen stay in the system?"
DECLINED = "What's the maximum daily dose of ibuprofen?"
SEVERAL_MEDICINES = "How should I store my tablets?"
FOCUSABLE = "button, input, textarea, select, a[href], [tabindex]:not([tabindex='-1'])"


@pytest.fixture(scope="module")
def a11y_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ServiceSettings:
    root = tmp_path_factory.mktemp("a11y")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "corvalex-tablets-leaflet.txt").write_text(SECOND_MEDICINE, encoding="utf-8")
    settings = ServiceSettings(corpus_dir=corpus, index_dir=root / "index", admin_token=ADMIN_TOKEN)
    IndexBuilder(settings, embedder).build()
    return settings


@pytest.fixture(scope="module")
def api(a11y_settings: ServiceSettings) -> Iterator[LiveServer]:
    with LiveServer(create_app(a11y_settings)) as live:
        yield live


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def sized(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page at each of the two sizes; fails the test on any script error, alert or policy violation."""
    page, errors = new_page(browser, viewport=VIEWPORTS[request.param])
    yield page
    page.context.close()
    assert not errors, errors


def host_page(host: HostSite, name: str, api_url: str, open_: bool) -> str:
    """A plain, accessible page of another origin that embeds the widget (its own lang and landmark)."""
    (host.root / name).write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Support portal</title></head>"
        "<body><main><h1>Support portal</h1><p>Opening hours and contact details.</p>"
        "<button id='host-button' type='button'>Host button</button></main>"
        f"<script src='{api_url}/widget.js' data-api='{api_url}' data-open='{str(open_).lower()}'></script>"
        "</body></html>",
        encoding="utf-8",
    )
    return f"{host.origin}/{name}"


def widget(page: Page, selector: str):  # noqa: ANN201 - a Locator
    return page.locator(f"#drugqa-widget {selector}")


def assert_fits(page: Page) -> None:
    """No sideways scroll, and the launcher and (when open) the panel wholly inside the viewport."""
    size = page.viewport_size
    scroll = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll[0] <= scroll[1], f"the page scrolls sideways: scrollWidth {scroll[0]} > clientWidth {scroll[1]}"
    for name in (".launcher", ".panel"):
        part = widget(page, name)
        if not part.is_visible():
            continue
        box = part.bounding_box()
        assert box["x"] >= 0 and box["y"] >= 0, (name, box)
        assert box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"], (name, box)
    for scroller in (".log", ".document-text"):  # nothing inside scrolls sideways either
        part = widget(page, scroller)
        if part.is_visible():
            assert part.evaluate("el => el.scrollWidth - el.clientWidth") <= 1, scroller


def check(page: Page, state: str) -> None:
    assert_no_axe_violations(page, state=state)
    assert_fits(page)


# --- the helper itself --------------------------------------------------------------------


def test_axe_runs_under_the_demo_page_s_policy_and_lists_what_it_finds(browser: Browser, api: LiveServer) -> None:
    """The demo page's CSP forbids inline script and every HTML sink (Trusted Types): axe still runs, reaches into
    the widget's open shadow root, and a violation put there fails with its rule, impact, place and help."""
    page, errors = new_page(browser, viewport=VIEWPORTS["desktop"])
    try:
        page.goto(api.url + "/")
        expect(widget(page, ".panel")).to_be_visible()
        policy = httpx.get(api.url + "/").headers["content-security-policy"]
        assert "trusted-types 'none'" in policy and "script-src 'self'" in policy
        assert page.evaluate("() => window.trustedTypes.defaultPolicy") is None
        assert_no_axe_violations(page)
        # a button whose accessible name leaves out its visible text, built with DOM calls (no HTML parsed)
        page.evaluate(
            """() => {
                const root = document.querySelector('#drugqa-widget').shadowRoot;
                const b = document.createElement('button');
                b.className = 'planted';
                b.textContent = 'Visible words';
                b.setAttribute('aria-label', 'Something else');
                root.querySelector('.panel-header').append(b);
            }"""
        )
        with pytest.raises(AssertionError) as failure:
            assert_no_axe_violations(page, state="planted")
        message = str(failure.value)
        assert "label-content-name-mismatch (serious)" in message, message
        assert "#drugqa-widget >>> .planted" in message, message
        assert "visible text as part of their accessible name" in message, message
        assert "planted" in message and "1280x900" in message
        # a context limits the run: the page outside the widget has nothing to report
        assert_no_axe_violations(page, "main")
    finally:
        page.context.close()
    assert not errors, errors  # axe ran without anything the policy refused


def test_without_node_modules_the_check_fails_saying_to_run_make_test(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setattr(axe, "AXE_SCRIPT", tmp_path / "node_modules" / "axe-core" / "axe.min.js")
    monkeypatch.setattr(axe, "REPO", tmp_path)
    axe.axe_source.cache_clear()
    try:
        with pytest.raises(AssertionError, match="run `make test`"):
            axe.axe_source()
    finally:
        axe.axe_source.cache_clear()


# --- every state, at both sizes -----------------------------------------------------------


def test_closed_launcher_only(sized: Page, api: LiveServer, host: HostSite) -> None:
    sized.goto(host_page(host, "closed.html", api.url, open_=False))
    launcher = widget(sized, ".launcher")
    expect(launcher).to_be_visible()
    expect(widget(sized, ".panel")).to_be_hidden()
    # named by its visible text (label-content-name-mismatch was axe's one finding before)
    expect(launcher).to_have_accessible_name(launcher.inner_text())
    check(sized, "closed")


def test_open_and_empty(sized: Page, api: LiveServer) -> None:
    sized.goto(api.url + "/")
    expect(widget(sized, ".panel")).to_be_visible()
    expect(widget(sized, ".turn")).to_have_count(0)
    check(sized, "open and empty")


def test_with_answers_their_passage_and_document(sized: Page, api: LiveServer) -> None:
    sized.goto(api.url + "/")
    ask(sized, QUESTION)
    first = widget(sized, "article.answer").first
    expect(first).to_be_visible()
    body = httpx.post(api.url + "/v1/ask", json={"question": QUESTION, "top_k": 5, "highlight": True}).json()
    expect(widget(sized, "article.answer")).to_have_count(len(body["answers"]))
    check(sized, "with answers")
    first.locator(".show-passage").click()
    expect(first.locator(".passage")).to_be_visible()
    check(sized, "with a passage shown")
    first.locator(".open-document").click()
    expect(widget(sized, ".document-view mark.answer-mark")).to_be_visible()
    check(sized, "with the document open")


def test_answers_about_several_medicines_with_the_notice(sized: Page, api: LiveServer) -> None:
    body = httpx.post(api.url + "/v1/ask", json={"question": SEVERAL_MEDICINES, "top_k": 5}).json()
    assert body["answered"] and body["subjects"] == [] and body["notice"], body
    sized.goto(api.url + "/")
    ask(sized, SEVERAL_MEDICINES)
    note = widget(sized, ".turn-answers .subjects-note.warning")
    expect(note).to_have_text(body["notice"])
    expect(note).to_have_attribute("role", "note")
    check(sized, "with the notice")


def test_declined(sized: Page, api: LiveServer) -> None:
    body = httpx.post(api.url + "/v1/ask", json={"question": DECLINED, "top_k": 5}).json()
    assert not body["answered"] and body["reason"], body
    sized.goto(api.url + "/")
    ask(sized, DECLINED)
    declined = widget(sized, ".turn-declined")
    expect(declined.locator(".reason")).to_have_text(body["reason"])
    check(sized, "declined")


def test_with_an_error(sized: Page, api: LiveServer) -> None:
    sized.goto(api.url + "/")
    sized.route("**/v1/ask", lambda route: route.abort("connectionrefused"))  # the service can't be reached
    ask(sized, QUESTION)
    error = widget(sized, ".turn-error")
    expect(error).to_contain_text("can't be reached")
    expect(error.locator(".retry")).to_be_visible()
    check(sized, "with an error")
    # a 5xx from the service is the same state, said the same way
    sized.route("**/v1/ask", lambda route: route.fulfill(status=502, body="Bad gateway"))
    ask(sized, DECLINED)
    expect(widget(sized, ".turn-error")).to_have_count(2)
    check(sized, "with a 5xx")
    sized.unroute("**/v1/ask")
    widget(sized, ".turn-error .retry").last.click()  # the service is back: the error gives way
    expect(widget(sized, ".turn-declined")).to_be_visible()
    check(sized, "retried")
