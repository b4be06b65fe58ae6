"""Accessibility of the chat widget in a real Chromium, at 1280x900 and at 360x740: axe-core 4
(tests/qa_service/axe.py, run under the pages' own Content-Security-Policy) reports nothing in any
state the widget has (closed, open and empty, with answers and their passage and document, with the
service's notice, declined, with an error), nothing scrolls sideways and the panel stays inside the
viewport; and every control works from the keyboard alone, with a visible focus.

The index is the seed corpus (two documents about baclofen) plus the leaflet of a second, made-up
medicine, so that a question naming none is answered from leaflets of different medicines."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ingest.embedding import Embedder
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, SECOND_MEDICINE, SEVERAL_MEDICINES, LiveServer, seed_corpus_plus
from tests.qa_service import axe
from tests.qa_service.axe import assert_no_axe_violations
from tests.qa_service.browser import HostSite, ask, new_page

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 360, "height": 740}}

QUESTION = "How long does baclofen stay in the system?"
DECLINED = "What's the maximum daily dose of ibuprofen?"
FOCUSABLE = "button, input, textarea, select, a[href], [tabindex]:not([tabindex='-1'])"


@pytest.fixture(scope="module")
def a11y_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ServiceSettings:
    return seed_corpus_plus(tmp_path_factory.mktemp("a11y"), embedder,
                            {"corvalex-tablets-leaflet.txt": SECOND_MEDICINE})


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


def host_page(host: HostSite, name: str, api_url: str, open_: bool, title: str | None = None) -> str:
    """A plain, accessible page of another origin that embeds the widget (its own lang and landmark)."""
    titled = f" data-title='{html.escape(title, quote=True)}'" if title else ""
    (host.root / name).write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Support portal</title></head>"
        "<body><main><h1>Support portal</h1><p>Opening hours and contact details.</p>"
        "<button id='host-button' type='button'>Host button</button></main>"
        f"<script src='{api_url}/widget.js' data-api='{api_url}' data-open='{str(open_).lower()}'{titled}></script>"
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
        # a context limits the run: the page outside the widget has nothing to report, nor has the launcher;
        # the panel's header, reached through the shadow root, has the planted button
        assert_no_axe_violations(page, "main")
        assert_no_axe_violations(page, {"fromShadowDom": ["#drugqa-widget", ".launcher"]})
        with pytest.raises(AssertionError, match="label-content-name-mismatch"):
            assert_no_axe_violations(page, {"fromShadowDom": ["#drugqa-widget", ".panel-header"]})
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


def test_a_long_title_names_the_panel_and_wraps(sized: Page, api: LiveServer, host: HostSite) -> None:
    title = "Pharmacy help line of the Northern Region <beta>: questions about your medicines, day and night"
    sized.goto(host_page(host, "long-title.html", api.url, open_=True, title=title))
    panel = widget(sized, ".panel")
    expect(widget(sized, ".panel-header .title")).to_have_text(title)  # as text, all of it
    expect(panel).to_have_accessible_name(title)
    expect(panel).to_have_role("dialog")
    header = widget(sized, ".panel-header")
    assert header.evaluate("el => el.scrollWidth - el.clientWidth") <= 0  # wraps, never pushes the buttons out
    for control in (".new-conversation", ".close"):
        box, frame = widget(sized, control).bounding_box(), panel.bounding_box()
        assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"], control
    check(sized, "with a long title")


def test_feedback_that_cannot_be_sent_says_so_and_presses_nothing(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    ask(page, QUESTION)
    first = widget(page, "article.answer").first
    expect(first).to_be_visible()
    page.route("**/v1/feedback", lambda route: route.abort("connectionrefused"))
    first.locator(".vote-down").click()  # opens the reason form; its Send sends the vote
    first.locator(".reason-form .send-reason").click()
    expect(first.locator(".feedback-status")).to_have_text("Feedback could not be sent.")
    expect(first.locator(".reason-form")).to_be_visible()  # kept open, to be sent again
    expect(first.locator(".vote-down")).to_have_attribute("aria-pressed", "false")
    expect(first.locator(".vote-up")).to_have_attribute("aria-pressed", "false")
    check(page, "feedback not sent")
    page.unroute("**/v1/feedback")
    first.locator(".reason-form .send-reason").click()  # sent once the service is back
    expect(first.locator(".vote-down")).to_have_attribute("aria-pressed", "true")
    expect(first.locator(".feedback-status")).to_have_text("Thanks for the feedback.")


# --- the keyboard alone -------------------------------------------------------------------

FOCUS_STATE = """() => {
    const root = document.querySelector('#drugqa-widget').shadowRoot;
    const el = root.activeElement;
    if (!el) return null;
    const style = getComputedStyle(el);
    return {
        cls: el.className || el.tagName.toLowerCase(),
        visible: el.matches(':focus-visible'),
        outline: style.outlineStyle === 'none' ? 0 : parseFloat(style.outlineWidth),
        shadow: style.boxShadow,
    };
}"""
CONTROLS = """(selector) => {
    const root = document.querySelector('#drugqa-widget').shadowRoot;
    return [...root.querySelectorAll(selector)]
        .filter((el) => !el.disabled && !el.closest('[inert]') && el.checkVisibility())
        .map((el) => el === root.activeElement ? '*' + el.className : el.className);
}"""


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def keyboard_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    page, errors = new_page(browser, viewport=VIEWPORTS[request.param],
                            permissions=["clipboard-read", "clipboard-write"])
    yield page
    page.context.close()
    assert not errors, errors


def focused(page: Page, cls: str) -> None:
    """Focus is on the widget's control of class ``cls``, and it shows: a :focus-visible outline or shadow."""
    state = page.evaluate(FOCUS_STATE)
    assert state and cls in state["cls"].split(), f"focus is on {state and state['cls']}, not .{cls}"
    assert state["visible"], f".{cls} is focused but not :focus-visible"
    assert state["outline"] > 0 or state["shadow"] != "none", f".{cls} shows no focus indicator: {state}"


def press_until(page: Page, key: str, cls: str, limit: int = 60) -> list[str]:
    """Presses ``key`` (Tab or Shift+Tab) until the control of class ``cls`` has focus; checks the focus
    indicator of every control passed on the way and returns their classes."""
    passed = []
    for _ in range(limit):
        page.keyboard.press(key)
        state = page.evaluate(FOCUS_STATE)
        if state is None:
            continue  # outside the widget (the host page, or the browser's own UI)
        focused(page, state["cls"].split()[0])
        passed.append(state["cls"])
        if cls in state["cls"].split():
            return passed
    raise AssertionError(f"{key} never reached .{cls}; passed {passed}")


def test_every_control_by_keyboard_alone_with_a_visible_focus(keyboard_page: Page, api: LiveServer,
                                                              host: HostSite) -> None:
    page = keyboard_page
    page.goto(host_page(host, "keyboard.html", api.url, open_=False))
    launcher, panel = widget(page, ".launcher"), widget(page, ".panel")
    expect(launcher).to_be_visible()
    page.locator("#host-button").focus()
    press_until(page, "Tab", "launcher", limit=1)
    page.keyboard.press("Enter")  # opens, focus in the question box
    expect(panel).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    focused(page, "question")
    page.keyboard.press("Escape")  # closes, focus back on the launcher
    expect(panel).to_be_hidden()
    focused(page, "launcher")
    page.keyboard.press("Space")  # Space opens it too
    expect(panel).to_be_visible()
    focused(page, "question")

    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    answers = widget(page, "article.answer")
    expect(answers.first).to_be_visible()
    focused(page, "question")  # ready for the next question
    first = answers.first

    # every control is reached by Tab and by Shift+Tab, each showing its focus
    controls = [c.lstrip("*") for c in page.evaluate(CONTROLS, FOCUSABLE)]
    assert {"launcher", "new-conversation", "close", "show-passage", "open-document", "copy", "vote-up",
            "vote-down", "question", "send"} <= set(controls), controls
    backwards = press_until(page, "Shift+Tab", "launcher")
    assert backwards == list(reversed(controls[:-2])), backwards  # from the box back: all but it and Ask
    forwards = press_until(page, "Tab", "send")
    assert forwards == controls[1:], forwards

    # Show passage: Space opens, Enter closes
    press_until(page, "Shift+Tab", "launcher")
    press_until(page, "Tab", "show-passage")
    page.keyboard.press("Space")
    expect(first.locator(".show-passage")).to_have_attribute("aria-expanded", "true")
    expect(first.locator(".passage")).to_be_visible()
    page.keyboard.press("Enter")
    expect(first.locator(".passage")).to_be_hidden()

    # Open document: the answer in it gets focus; Shift+Tab reaches the scrollable text and Back; Enter on
    # Back returns to the opener; Space opens it again and Escape closes it (the panel stays)
    press_until(page, "Tab", "open-document")
    page.keyboard.press("Enter")
    viewer = widget(page, ".document-view")
    expect(viewer.locator("mark.answer-mark")).to_be_focused()
    focused(page, "answer-mark")
    press_until(page, "Shift+Tab", "document-text", limit=1)
    press_until(page, "Shift+Tab", "back", limit=1)
    page.keyboard.press("Enter")
    expect(viewer).to_be_hidden()
    focused(page, "open-document")
    page.keyboard.press("Space")
    expect(viewer.locator("mark.answer-mark")).to_be_focused()
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(panel).to_be_visible()
    focused(page, "open-document")

    # Copy with Enter
    press_until(page, "Tab", "copy", limit=1)
    page.keyboard.press("Enter")
    expect(first.locator(".copy")).to_have_text("Copied")
    assert first.locator(".answer-text").inner_text() in page.evaluate("navigator.clipboard.readText()")

    # the thumbs: up with Space, then down with Enter, each stored as the latest vote
    press_until(page, "Tab", "vote-up", limit=1)
    page.keyboard.press("Space")
    expect(first.locator(".vote-up")).to_have_attribute("aria-pressed", "true")
    press_until(page, "Tab", "vote-down", limit=1)
    page.keyboard.press("Enter")  # opens the reason form (the first reason focused); its Send sends the vote
    focused(page, "reason-choice")
    press_until(page, "Tab", "send-reason", limit=2)  # past the comment
    page.keyboard.press("Enter")
    expect(first.locator(".vote-down")).to_have_attribute("aria-pressed", "true")
    expect(first.locator(".vote-down")).to_be_focused()  # the form closed, focus back on the thumb
    focused(page, "vote-down")
    expect(first.locator(".vote-up")).to_have_attribute("aria-pressed", "false")
    expect(first.locator(".feedback-status")).to_contain_text("Thanks")
    export = httpx.get(api.url + "/v1/admin/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    votes = [r["vote"] for r in map(json.loads, export.text.splitlines())
             if r["question"] == QUESTION and r["answer"] == first.locator(".answer-text").inner_text()]
    assert votes[-2:] == ["up", "down"], votes

    # an error's Retry, by keyboard: asked with Space on Ask while the service is unreachable
    page.route("**/v1/ask", lambda route: route.abort("connectionrefused"))
    press_until(page, "Tab", "question")
    page.keyboard.type(DECLINED)
    press_until(page, "Tab", "send", limit=1)
    page.keyboard.press("Space")
    expect(widget(page, ".turn-error")).to_be_visible()
    focused(page, "question")
    page.unroute("**/v1/ask")
    press_until(page, "Shift+Tab", "retry", limit=1)  # the newest turn's control, just before the box
    page.keyboard.press("Enter")
    expect(widget(page, ".turn-declined")).to_be_visible()
    expect(widget(page, ".turn-error")).to_have_count(0)

    # New conversation clears it; Close (Enter) shuts the panel and focus returns to the launcher
    press_until(page, "Shift+Tab", "new-conversation")
    page.keyboard.press("Enter")
    expect(widget(page, ".turn")).to_have_count(0)
    focused(page, "question")
    # back past the start's example questions, shown again in the empty panel
    passed = press_until(page, "Shift+Tab", "close")
    assert passed[:-1] and {c.split()[0] for c in passed[:-1]} == {"example"}, passed
    page.keyboard.press("Enter")
    expect(panel).to_be_hidden()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    focused(page, "launcher")
