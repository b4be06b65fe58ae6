"""The chat widget in a real browser (Debian's Chromium driven by Playwright)
against the real app on a real index: the seed corpus plus a document full of
mark-up that must show as text."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ingest.embedding import Embedder
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer, seed_corpus_plus
from tests.qa_service.browser import HostSite, ask, new_page, wait_until

XSS_TEXT = (
    "Zebrafen test leaflet\n\n"
    "Storage\n\n"
    'Zebrafen tablets <script>window.__xss = 1</script> must be kept below 25 degrees in a dry place '
    '<img src=x onerror="window.__xss = 2"> out of the reach of children.\n'
)
XSS_QUESTION = "How should Zebrafen tablets be stored?"
QUESTION = "How long does baclofen stay in the system?"


@pytest.fixture(scope="module")
def widget_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ServiceSettings:
    """An index of the seed corpus plus the mark-up document."""
    return seed_corpus_plus(tmp_path_factory.mktemp("widget"), embedder, {"zebrafen-xss-leaflet.txt": XSS_TEXT})


@pytest.fixture(scope="module")
def api(widget_settings: ServiceSettings) -> Iterator[LiveServer]:
    with LiveServer(create_app(widget_settings)) as live:
        yield live


# --- helpers ------------------------------------------------------------------------------


def last_turn_answers(page: Page):
    return page.locator("#drugqa-widget .turn-answers").last


def marked_ranges(block) -> list[tuple[int, int]]:  # noqa: ANN001 - a Locator
    """(start, end) of each <mark> in the block's text, in characters (code points), and no other element."""
    found = block.evaluate(
        """(node) => {
            const out = [];
            let at = 0;
            for (const child of node.childNodes) {
                const length = Array.from(child.textContent).length;
                if (child.nodeType === Node.ELEMENT_NODE) out.push([child.tagName, at, at + length]);
                at += length;
            }
            return out;
        }"""
    )
    assert all(tag == "MARK" for tag, _, _ in found), found
    return [(start, end) for _, start, end in found]


def highlight_ranges(answer: dict) -> list[tuple[int, int]]:
    """The answer's highlights in the answer's own offsets, clipped to it, overlapping ones merged."""
    offset, length = answer["citation"]["start"], len(answer["text"])
    ranges = sorted((max(0, h["start"] - offset), min(length, h["end"] - offset)) for h in answer["highlights"])
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if start >= end:
            continue
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def active_class(page: Page) -> str:
    """Class of the focused element, inside the widget's shadow root when focus is there."""
    return page.evaluate(
        """() => {
            const root = document.querySelector('#drugqa-widget').shadowRoot;
            const el = root.activeElement || document.activeElement;
            return el ? (el.className || el.tagName) : '';
        }"""
    )


# --- the tests ----------------------------------------------------------------------------


def test_ask_and_see_an_answer_with_its_citation(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    held = []
    page.route("**/v1/ask", lambda route: held.append(route))  # hold the request to see the working state
    ask(page, QUESTION)
    expect(page.locator("#drugqa-widget .working")).to_be_visible()
    expect(page.locator("#drugqa-widget .send")).to_be_disabled()
    wait_until(page, lambda: held, "the held request")
    assert len(held) == 1
    assert held[0].request.post_data_json == {"question": QUESTION, "top_k": 5, "highlight": True}
    held[0].continue_()
    page.unroute("**/v1/ask")

    answers = last_turn_answers(page)
    expect(answers.locator("article.answer").first).to_be_visible()
    expect(page.locator("#drugqa-widget .working")).to_have_count(0)
    first = answers.locator("article.answer").first
    body = httpx.post(api.url + "/v1/ask", json={"question": QUESTION, "top_k": 5, "highlight": True}).json()
    expected = body["answers"][0]
    expect(first.locator(".answer-text")).to_have_text(expected["text"])
    citation = expected["citation"]
    expect(first.locator(".citation")).to_contain_text(citation["title"])
    assert citation["section"]  # the passage lies under a heading of the document
    expect(first.locator(".citation")).to_contain_text(citation["section"])
    expect(first.locator(".confidence")).to_have_text(expected["confidence"])
    # the marks are exactly the service's highlights (document offsets, moved into the answer), in
    # every answer (shown grouped by document, in the order each document first answers)
    articles = answers.locator("article.answer")
    expect(articles).to_have_count(len(body["answers"]))
    order = list(dict.fromkeys(a["citation"]["doc_id"] for a in body["answers"]))
    shown = sorted(body["answers"], key=lambda a: order.index(a["citation"]["doc_id"]))
    assert any(a["highlights"] for a in shown)
    for article, answer in zip(articles.all(), shown, strict=True):
        expect(article.locator(".answer-text")).to_have_text(answer["text"])
        assert marked_ranges(article.locator(".answer-text")) == highlight_ranges(answer)
    offset = expected["citation"]["start"]  # here nothing is clipped or merged: the ranges as sent
    assert expected["highlights"]
    assert highlight_ranges(expected) == [(h["start"] - offset, h["end"] - offset) for h in expected["highlights"]]
    assert first.locator(".answer-text mark").all_inner_texts() == [
        expected["text"][a:b] for a, b in highlight_ranges(expected)]
    # the medicine the question names is said
    assert body["subjects"]
    expect(answers.locator(".subjects-note")).to_contain_text(body["subjects"][0])
    # answers of one document sit in one group
    docs = {a["citation"]["doc_id"] for a in body["answers"]}
    expect(answers.locator(".source-group")).to_have_count(len(docs))
    expect(page.locator("#drugqa-widget .disclaimer")).to_contain_text("not medical advice")
    expect(page.locator("#drugqa-widget input.question")).to_have_value("")

    # answers of different documents sit in separate groups, with a note that they are several
    ask(page, "What is the maximum daily dose?")
    expect(page.locator("#drugqa-widget .turn-answers")).to_have_count(2)
    both = httpx.post(api.url + "/v1/ask", json={"question": "What is the maximum daily dose?"}).json()
    assert len({a["citation"]["doc_id"] for a in both["answers"]}) == 2
    second = last_turn_answers(page)
    expect(second.locator(".source-group")).to_have_count(2)
    expect(second.locator(".sources-note")).to_contain_text("2 documents")
    assert both["subjects"] == [] and both["notice"] is None  # no medicine named; both pages are about baclofen
    expect(second.locator(".subjects-note")).to_have_count(0)

    if os.environ.get("QA_WIDGET_SCREENSHOT"):  # `make screenshot` refreshes docs/widget.png
        page.locator("#drugqa-widget .panel").screenshot(path=os.environ["QA_WIDGET_SCREENSHOT"])


def test_show_the_passage_and_open_the_document(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    ask(page, "How is an overdose treated?")
    answer = last_turn_answers(page).locator("article.answer").first
    expect(answer).to_be_visible()
    text = answer.locator(".answer-text").inner_text()

    toggle = answer.locator(".show-passage")
    expect(answer.locator(".passage")).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    passage = answer.locator(".passage")
    expect(passage).to_be_visible()
    expect(passage.locator("mark.answer-mark")).to_have_text(text)
    toggle.click()
    expect(passage).to_be_hidden()

    doc_id = answer.get_attribute("data-doc-id")
    full = httpx.get(f"{api.url}/v1/documents/{doc_id}").json()
    answer.locator(".open-document").click()
    viewer = page.locator("#drugqa-widget .document-view")
    expect(viewer).to_be_visible()
    expect(viewer.locator(".document-title")).to_have_text(full["title"])
    mark = viewer.locator("mark.answer-mark")
    expect(mark).to_have_text(text)  # the document has loaded (the title shows while it loads)
    assert viewer.locator(".document-text").text_content() == full["text"]
    expect(mark).to_be_in_viewport()
    viewer.locator(".back").click()
    expect(viewer).to_be_hidden()
    assert "open-document" in active_class(page)


def test_a_declined_question_says_so_and_shows_no_passage(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    ask(page, "What's the maximum daily dose of ibuprofen?")
    declined = page.locator("#drugqa-widget .turn-declined").last
    expect(declined).to_contain_text("don't answer")
    expect(declined.locator(".reason")).to_contain_text("ibuprofen")
    expect(declined).to_contain_text("rephras")
    expect(page.locator("#drugqa-widget article.answer")).to_have_count(0)
    expect(page.locator("#drugqa-widget .passage")).to_have_count(0)


def test_server_stopped_mid_conversation_then_retry(page: Page, widget_settings: ServiceSettings) -> None:
    first = LiveServer(create_app(widget_settings)).__enter__()
    port = first.port
    try:
        page.goto(first.url + "/")
        ask(page, QUESTION)
        expect(last_turn_answers(page).locator("article.answer").first).to_be_visible()
    finally:
        first.__exit__(None, None, None)

    ask(page, "How is an overdose treated?")
    error = page.locator("#drugqa-widget .turn-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("can't be reached")
    expect(page.locator("#drugqa-widget .send")).to_be_enabled()  # never a frozen panel
    expect(page.locator("#drugqa-widget .working")).to_have_count(0)
    expect(page.locator("#drugqa-widget .turn-question")).to_have_count(2)  # earlier turns stay
    expect(page.locator("#drugqa-widget .turn-answers")).to_have_count(1)

    with LiveServer(create_app(widget_settings), port=port):
        error.locator(".retry").click()
        expect(page.locator("#drugqa-widget .turn-answers")).to_have_count(2)
        expect(page.locator("#drugqa-widget .turn-error")).to_have_count(0)

    page.locator("#drugqa-widget .new-conversation").click()
    expect(page.locator("#drugqa-widget .turn-question")).to_have_count(0)


def test_a_slow_service_times_out_with_a_retry(page: Page, api: LiveServer, host: HostSite) -> None:
    url = host.page("slow.html", api.url, timeout_ms=1500)
    held = []
    page.route("**/v1/ask", lambda route: held.append(route))  # the service never answers
    page.goto(url)
    ask(page, QUESTION)
    error = page.locator("#drugqa-widget .turn-error")
    expect(error).to_be_visible(timeout=10_000)
    expect(page.locator("#drugqa-widget .working")).to_have_count(0)
    page.unroute("**/v1/ask")
    error.locator(".retry").click()
    expect(last_turn_answers(page).locator("article.answer").first).to_be_visible()


def test_keyboard_only(page: Page, api: LiveServer, host: HostSite) -> None:
    page.goto(host.page("keyboard.html", api.url, open_=False))
    launcher = page.locator("#drugqa-widget .launcher")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    page.locator("#host-button").focus()
    page.keyboard.press("Tab")
    assert "launcher" in active_class(page)
    page.keyboard.press("Enter")
    expect(page.locator("#drugqa-widget .panel")).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    assert "question" in active_class(page)
    page.keyboard.type("What is the maximum daily dose?")
    page.keyboard.press("Enter")
    expect(last_turn_answers(page).locator("article.answer").first).to_be_visible()
    assert "question" in active_class(page)  # ready for the next question
    # the answer's buttons are reachable by Tab (backwards from the input)
    for _ in range(12):
        page.keyboard.press("Shift+Tab")
        if "vote-down" in active_class(page):
            break
    assert "vote-down" in active_class(page)
    page.keyboard.press("Escape")
    expect(page.locator("#drugqa-widget .panel")).to_be_hidden()
    assert "launcher" in active_class(page)
    # labelled controls and a live region for screen readers
    log = page.locator("#drugqa-widget .log")
    expect(log).to_have_attribute("aria-live", "polite")
    for button in page.locator("#drugqa-widget button").all():
        assert (button.get_attribute("aria-label") or button.inner_text()).strip()


def test_copy_puts_the_quote_and_its_source_on_the_clipboard(browser: Browser, api: LiveServer) -> None:
    page, errors = new_page(browser, permissions=["clipboard-read", "clipboard-write"])
    context = page.context
    try:
        page.goto(api.url + "/")
        ask(page, QUESTION)
        answer = last_turn_answers(page).locator("article.answer").first
        expect(answer).to_be_visible()
        body = httpx.post(api.url + "/v1/ask", json={"question": QUESTION, "top_k": 5}).json()["answers"][0]
        answer.locator(".copy").click()
        expect(answer.locator(".copy")).to_have_text("Copied")
        c = body["citation"]
        source = f"{c['title']}, {c['section']}" if c["section"] else c["title"]
        assert page.evaluate("navigator.clipboard.readText()") == f"\"{body['text']}\"\nSource: {source}"
    finally:
        context.close()
    assert not errors, errors


def test_feedback_is_stored_and_exported(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    question = "Can baclofen be taken during pregnancy?"
    ask(page, question)
    answer = last_turn_answers(page).locator("article.answer").first
    expect(answer).to_be_visible()
    answer.locator(".vote-up").click()
    expect(answer.locator(".feedback-status")).to_contain_text("Thanks")
    expect(answer.locator(".vote-up")).to_have_attribute("aria-pressed", "true")
    export = httpx.get(api.url + "/v1/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    records = [json.loads(line) for line in export.text.splitlines()]
    mine = [r for r in records if r["question"] == question]
    assert len(mine) == 1
    assert mine[0]["vote"] == "up" and mine[0]["doc_id"] == answer.get_attribute("data-doc-id")
    assert mine[0]["answer"] == answer.locator(".answer-text").inner_text()


def test_a_thumbs_down_is_stored_and_lists_the_question_as_unanswered(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    question = "Can baclofen be stopped suddenly?"
    ask(page, question)
    answer = last_turn_answers(page).locator("article.answer").first
    expect(answer).to_be_visible()
    answer.locator(".vote-down").click()
    answer.locator(".reason-form .send-reason").click()  # the form a thumbs-down opens, sent without a reason
    expect(answer.locator(".feedback-status")).to_contain_text("Thanks")
    expect(answer.locator(".vote-down")).to_have_attribute("aria-pressed", "true")
    expect(answer.locator(".vote-up")).to_have_attribute("aria-pressed", "false")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    export = httpx.get(api.url + "/v1/admin/feedback", headers=admin)
    mine = [r for r in map(json.loads, export.text.splitlines()) if r["question"] == question]
    assert [(r["vote"], r["doc_id"]) for r in mine] == [("down", answer.get_attribute("data-doc-id"))]
    unanswered = httpx.get(api.url + "/v1/admin/unanswered", headers=admin).json()
    assert [q for q in unanswered if q["question"] == question], unanswered  # what the documents lack


def test_answers_from_leaflets_of_different_medicines_carry_the_service_s_notice(page: Page, api: LiveServer) -> None:
    # The widget's corpus holds leaflets of two medicines (baclofen and the mark-up one's Zebrafen):
    # a question naming neither may be answered from both, and the service's notice says so.
    question = "How should I store my tablets?"
    body = httpx.post(api.url + "/v1/ask", json={"question": question, "top_k": 5}).json()
    assert body["subjects"] == [] and body["notice"], body  # the service gives a notice here
    page.goto(api.url + "/")
    ask(page, question)
    answers = last_turn_answers(page)
    expect(answers.locator("article.answer").first).to_be_visible()
    note = answers.locator(".subjects-note.warning")
    expect(note).to_have_text(body["notice"])
    expect(note).to_have_attribute("role", "note")


def test_the_host_page_names_the_widget(page: Page, api: LiveServer, host: HostSite) -> None:
    page.goto(host.page("titled.html", api.url, title="Pharmacy help line &lt;beta&gt;"))
    heading = page.locator("#drugqa-widget .panel-header h2")
    expect(heading).to_have_text("Pharmacy help line <beta>")  # as text
    expect(page.locator("#drugqa-widget .panel")).to_have_attribute("aria-labelledby", heading.get_attribute("id"))
    page.goto(host.page("untitled.html", api.url))
    expect(page.locator("#drugqa-widget .panel-header h2")).to_have_text("Drug information")


def test_markup_in_a_document_shows_as_text_and_runs_nothing(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    ask(page, XSS_QUESTION)
    answer = page.locator('#drugqa-widget article.answer[data-doc-id="zebrafen-xss-leaflet"]').first
    expect(answer).to_be_visible()
    answer.locator(".show-passage").click()
    expect(answer.locator(".passage")).to_contain_text("<script>window.__xss = 1</script>")
    answer.locator(".open-document").click()
    text = page.locator("#drugqa-widget .document-text")
    expect(text).to_contain_text('<img src=x onerror="window.__xss = 2">')
    assert page.evaluate("typeof window.__xss") == "undefined"
    root_has = "sel => document.querySelector('#drugqa-widget').shadowRoot.querySelectorAll(sel).length"
    assert page.evaluate(root_has, ".document-view img, .log img, .document-view script, .log script") == 0
    # the page itself forbids inline script, and parsing any string as HTML: the widget's whole
    # conversation above ran under that policy (the page fixture fails on any violation)
    policy = httpx.get(api.url + "/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "require-trusted-types-for 'script'" in policy


def test_the_demo_page_refuses_to_parse_any_string_as_html(browser: Browser, api: LiveServer) -> None:
    """What the policy of the page above refuses, and that the page fixture hears of each refusal."""
    page, errors = new_page(browser)
    try:
        page.goto(api.url + "/")
        expect(page.locator("#drugqa-widget .panel")).to_be_visible()
        sinks = ["document.body.innerHTML = '<b>x</b>'", "document.body.insertAdjacentHTML('beforeend', '<b>x</b>')",
                 "document.createElement('div').outerHTML = '<b>x</b>'",
                 "new DOMParser().parseFromString('<b>x</b>', 'text/html')", "document.write('<b>x</b>')"]
        for sink in sinks:
            refused = page.evaluate(f"() => {{ try {{ {sink}; return null; }} catch (e) {{ return e.message; }} }}")
            assert refused and "TrustedHTML" in refused, (sink, refused)
        assert page.locator("b").count() == 0
    finally:
        page.context.close()
    assert len(errors) == len(sinks) and all("require-trusted-types-for" in e for e in errors), errors


def test_embedded_on_an_allowed_origin_it_answers(
    page: Page, host: HostSite, widget_settings: ServiceSettings
) -> None:
    settings = widget_settings.model_copy(update={"cors_origins": [host.origin], "cors_origin_regex": None})
    with LiveServer(create_app(settings)) as other:
        page.goto(host.page("allowed.html", other.url))
        ask(page, QUESTION)
        expect(last_turn_answers(page).locator("article.answer").first).to_be_visible()


def test_with_api_keys_set_the_widget_sends_its_key(
    page: Page, host: HostSite, widget_settings: ServiceSettings
) -> None:
    settings = widget_settings.model_copy(
        update={"cors_origins": [host.origin], "cors_origin_regex": None, "api_keys": ["portal-key"]}
    )
    with LiveServer(create_app(settings)) as other:
        page.goto(host.page("keyed.html", other.url, api_key="portal-key"))
        ask(page, QUESTION)
        expect(last_turn_answers(page).locator("article.answer").first).to_be_visible()
        # the same page without the key is told so, in words
        page.goto(host.page("keyless.html", other.url))
        ask(page, QUESTION)
        expect(page.locator("#drugqa-widget .turn-error")).to_contain_text("API key")
        # (the first page's turn is still there: the conversation follows the tab), and no answer in this one
        expect(page.locator("#drugqa-widget .turn").last.locator("article.answer")).to_have_count(0)
        expect(page.locator("#drugqa-widget .turn").last.locator(".turn-error")).to_contain_text("API key")


def test_embedded_on_a_refused_origin_it_says_so(page: Page, host: HostSite, widget_settings: ServiceSettings) -> None:
    settings = widget_settings.model_copy(update={"cors_origins": [], "cors_origin_regex": None})
    with LiveServer(create_app(settings)) as other:
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        page.goto(host.page("refused.html", other.url))
        expect(page.locator("#drugqa-widget .panel")).to_be_visible()  # the script and styles load
        ask(page, QUESTION)
        # the browser refused the answer for its origin, and the widget says it can't reach the service
        expect(page.locator("#drugqa-widget .turn-error")).to_contain_text("can't be reached")
        expect(page.locator("#drugqa-widget .turn-error button")).to_be_visible()  # with a retry
        expect(page.locator("#drugqa-widget article.answer")).to_have_count(0)
        assert any("blocked by CORS policy" in line and "/v1/ask" in line for line in console), console


def test_styles_are_scoped_themable_and_fit_a_narrow_screen(browser: Browser, api: LiveServer, host: HostSite) -> None:
    extra = (
        "<style>button { background: rgb(0, 255, 0) !important; font-size: 40px; }"
        " #drugqa-widget { --drugqa-accent: rgb(200, 0, 0); }</style>"
    )
    page, errors = new_page(browser, viewport={"width": 360, "height": 740})
    context = page.context
    try:
        page.goto(host.page("themed.html", api.url, extra=extra))
        send = page.locator("#drugqa-widget .send")
        expect(send).to_be_visible()
        colour = send.evaluate("el => getComputedStyle(el).backgroundColor")
        assert colour == "rgb(200, 0, 0)"  # the host's theme variable, not its button rule
        assert page.locator("#host-button").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(0, 255, 0)"
        ask(page, QUESTION)
        expect(last_turn_answers(page).locator("article.answer").first).to_be_visible()
        box = page.locator("#drugqa-widget .panel").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        overflow = page.locator("#drugqa-widget .log").evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 1
    finally:
        context.close()
    assert not errors, errors
