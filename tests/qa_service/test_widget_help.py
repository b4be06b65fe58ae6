"""The widget's help around a question, in a real browser (Debian's Chromium driven by Playwright) against
the real app: the start panel (what the index covers, example questions), the choices of a misspelt name,
the chips of an answer list about several medicines, the reason of a thumbs-down, and the conversation
kept across a reload. Each new state is checked by axe-core at 1280 px and at 360 px, where the page must
not scroll sideways.

The index is the seed corpus plus two leaflets of medicines one letter apart (Cetrabine, Cetrapine;
tests/qa_service/test_coverage.py): a misspelling between them is ambiguous, and a question naming no
medicine is answered from leaflets of different ones. Every expectation is read from the API's own
responses to the same question."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ingest.embedding import Embedder
from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer, seed_corpus_plus
from tests.qa_service.axe import assert_no_axe_violations
from tests.qa_service.browser import HostSite, ask, new_page
from tests.qa_service.test_coverage import AMBIGUOUS, CLOSE_NAMES, close_leaflets

WIDTHS = [1280, 360]
NOTICE_QUESTION = "How should I store my tablets?"
MISSPELT_QUESTION = f"How should I store {AMBIGUOUS}?"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
W = "#drugqa-widget"


@pytest.fixture(scope="module")
def help_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ServiceSettings:
    return seed_corpus_plus(tmp_path_factory.mktemp("widget-help"), embedder, close_leaflets(),
                            admin_rate_limit="10000/minute")


@pytest.fixture(scope="module")
def api(help_settings: ServiceSettings) -> Iterator[LiveServer]:
    with LiveServer(create_app(help_settings)) as live:
        yield live


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def sized(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page at 1280 px, then at 360 px (a phone), failing on any script error or policy violation."""
    width = request.param
    page, errors = new_page(browser, viewport={"width": width, "height": 900 if width > 600 else 740})
    yield page
    page.context.close()
    assert not errors, errors


def post_ask(api: LiveServer, question: str, **extra: object) -> dict:
    body = {"question": question, "top_k": 5, "highlight": True, **extra}
    response = httpx.post(api.url + "/v1/ask", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def check_state(page: Page, state: str) -> None:
    """No axe violation in this state; at 360 px nothing wider than the screen (no sideways scroll)."""
    assert_no_axe_violations(page, state=state)
    width = page.viewport_size["width"]
    if width <= 400:
        assert page.evaluate("document.documentElement.scrollWidth") <= width, state
        box = page.locator(f"{W} .panel").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, state
        for scroller in (".log", ".start"):
            overflow = page.locator(f"{W} {scroller}").evaluate("el => el.scrollWidth - el.clientWidth")
            assert overflow <= 1, (state, scroller)


def focused(page: Page) -> dict:
    """The focused element inside the widget: its class, text and value."""
    return page.evaluate(
        """() => {
            const el = document.querySelector('#drugqa-widget').shadowRoot.activeElement;
            return el ? { cls: String(el.className || el.tagName), text: el.textContent, value: el.value || '' }
                      : { cls: '', text: '', value: '' };
        }"""
    )


def tab_to(page: Page, cls: str, backwards: bool = True, most: int = 30) -> dict:
    """Presses (Shift+)Tab until the focused element has class ``cls``; returns it."""
    for _ in range(most):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        now = focused(page)
        if cls in now["cls"].split():
            return now
    raise AssertionError(f"no .{cls} reached by {'Shift+' if backwards else ''}Tab")


def screenshot(page: Page, name: str) -> None:
    """With QA_WIDGET_SCREENSHOT set (`make screenshot`), the panel as docs/<name> beside docs/widget.png."""
    target = os.environ.get("QA_WIDGET_SCREENSHOT")
    if target and page.viewport_size["width"] == 1280:
        page.locator(f"{W} .panel").screenshot(path=str(Path(target).with_name(name)))


# --- the start --------------------------------------------------------------------------------


def test_the_empty_panel_says_what_it_covers_and_its_examples_ask(sized: Page, api: LiveServer) -> None:
    page = sized
    coverage = httpx.get(api.url + "/v1/coverage").json()
    page.goto(api.url + "/")
    start = page.locator(f"{W} .start")
    expect(start).to_be_visible()
    covers = start.locator(".start-covers")
    expect(covers).to_contain_text(f"{coverage['documents']} documents")
    for name in coverage["subjects"]:
        expect(covers).to_contain_text(name)
    examples = start.locator("button.example")
    expect(examples).to_have_text(coverage["examples"])
    assert len(coverage["examples"]) >= 3
    check_state(page, "the start panel")
    screenshot(page, "widget-start.png")

    # clicking one asks it, and the start gives way to the conversation
    chosen = coverage["examples"][1]
    examples.nth(1).click()
    expect(page.locator(f"{W} .turn-question")).to_have_text([chosen])
    answers = page.locator(f"{W} .turn-answers article.answer")
    expected = post_ask(api, chosen)
    assert expected["answered"]
    expect(answers).to_have_count(len(expected["answers"]))
    expect(answers.first.locator(".answer-text")).to_have_text(expected["answers"][0]["text"])
    expect(start).to_be_hidden()


# --- choices ----------------------------------------------------------------------------------


def test_a_misspelt_name_offers_its_choices_which_ask_again(sized: Page, api: LiveServer) -> None:
    page = sized
    declined = post_ask(api, MISSPELT_QUESTION)
    assert not declined["answered"] and declined["choices"], declined
    [choice] = declined["choices"]
    page.goto(api.url + "/")
    ask(page, MISSPELT_QUESTION)
    turn = page.locator(f"{W} .turn-declined").last
    expect(turn.locator(".reason")).to_have_text(declined["reason"])  # the sentence stays
    group = turn.locator(".choices")
    expect(group).to_have_attribute("role", "group")
    expect(group.locator(".choices-label")).to_contain_text(choice["word"])
    expect(group.locator("button.choice")).to_have_text(choice["names"])
    check_state(page, "a misspelt name's choices")
    screenshot(page, "widget-choice.png")

    # the second name: the question again, the word replaced by it, answered from its leaflet
    name = choice["names"][1]
    group.locator("button.choice").nth(1).click()
    again = MISSPELT_QUESTION.replace(AMBIGUOUS, name)
    expect(page.locator(f"{W} .turn-question").last).to_have_text(again)
    expected = post_ask(api, again)
    assert expected["answered"] and expected["subjects"] == [name]
    answers = page.locator(f"{W} .turn-answers").last.locator("article.answer")
    expect(answers).to_have_count(len(expected["answers"]))
    assert {a.get_attribute("data-doc-id") for a in answers.all()} == {
        a["citation"]["doc_id"] for a in expected["answers"]}
    expect(page.locator(f"{W} .turn-answers").last.locator(".subjects-note")).to_contain_text(name)


def test_the_choices_by_keyboard_alone(page: Page, api: LiveServer, host: HostSite) -> None:
    declined = post_ask(api, MISSPELT_QUESTION)
    names = declined["choices"][0]["names"]
    page.goto(host.page("help-keyboard.html", api.url, open_=False))
    page.locator("#host-button").focus()
    page.keyboard.press("Tab")
    assert "launcher" in focused(page)["cls"]
    page.keyboard.press("Enter")  # opens the panel, the question box focused
    expect(page.locator(f"{W} .panel")).to_be_visible()
    assert "question" in focused(page)["cls"]
    page.keyboard.type(MISSPELT_QUESTION)
    page.keyboard.press("Enter")
    expect(page.locator(f"{W} .choices button.choice")).to_have_count(len(names))
    assert "question" in focused(page)["cls"]  # the focus stays where the next question is typed
    # back from the question box: the last name first, then the one before it
    last = tab_to(page, "choice")
    assert last["text"] == names[-1]
    page.keyboard.press("Shift+Tab")
    first = focused(page)
    assert "choice" in first["cls"].split() and first["text"] == names[0], first
    expect(page.locator(f"{W} .choices button.choice").first).to_be_focused()
    page.keyboard.press("Space")
    again = MISSPELT_QUESTION.replace(AMBIGUOUS, names[0])
    expect(page.locator(f"{W} .turn-question").last).to_have_text(again)
    expect(page.locator(f"{W} .turn-answers article.answer").first).to_be_visible()
    expected = post_ask(api, again)
    expect(page.locator(f"{W} .turn-answers article.answer .answer-text").first).to_have_text(
        expected["answers"][0]["text"])
    # and Enter on the other name asks it (reached again by Shift+Tab from the question box)
    assert tab_to(page, "choice")["text"] == names[-1]
    page.keyboard.press("Enter")
    expect(page.locator(f"{W} .turn-question").last).to_have_text(MISSPELT_QUESTION.replace(AMBIGUOUS, names[-1]))
    expect(page.locator(f"{W} .turn-answers")).to_have_count(2)


def test_a_medicine_the_corpus_lacks_is_declined_naming_those_it_has(page: Page, api: LiveServer) -> None:
    question = "Is ibuprofen safe in pregnancy?"
    declined = post_ask(api, question)
    coverage = httpx.get(api.url + "/v1/coverage").json()
    assert not declined["answered"] and declined["choices"] == []
    page.goto(api.url + "/")
    ask(page, question)
    reason = page.locator(f"{W} .turn-declined .reason")
    expect(reason).to_have_text(declined["reason"])
    expect(reason).to_contain_text("ibuprofen")
    for name in coverage["subjects"]:
        expect(reason).to_contain_text(name)


def test_answers_about_several_medicines_show_the_notice_and_a_chip_for_each(sized: Page, api: LiveServer) -> None:
    page = sized
    several = post_ask(api, NOTICE_QUESTION)
    assert several["answered"] and several["subjects"] == [] and several["notice"], several
    names = several["notice_subjects"]
    assert len(names) >= 2
    page.goto(api.url + "/")
    ask(page, NOTICE_QUESTION)
    answers = page.locator(f"{W} .turn-answers").last
    expect(answers.locator(".subjects-note.warning")).to_have_text(several["notice"])
    chips = answers.locator(".narrow button.chip")
    expect(chips).to_have_text(names)
    expect(answers.locator(".narrow")).to_have_attribute("role", "group")
    check_state(page, "the notice's chips")

    # a chip asks the same question of that medicine's documents only
    name = next(n for n in names if n in CLOSE_NAMES)
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/ask") else None)
    chips.nth(names.index(name)).click()
    expect(page.locator(f"{W} .turn-answers")).to_have_count(2)
    assert sent == [{"question": NOTICE_QUESTION, "top_k": 5, "highlight": True, "filter": {"subject": [name]}}]
    narrowed = post_ask(api, NOTICE_QUESTION, filter={"subject": [name]})
    assert narrowed["answered"] and narrowed["notice"] is None
    last = page.locator(f"{W} .turn").last
    expect(last.locator(".turn-question")).to_have_text(NOTICE_QUESTION)
    expect(last.locator(".turn-scope")).to_contain_text(name)
    expect(last.locator("article.answer .answer-text")).to_have_text([a["text"] for a in sorted(
        narrowed["answers"], key=lambda a: [x["citation"]["doc_id"] for x in narrowed["answers"]].index(
            a["citation"]["doc_id"]))])
    expect(last.locator(".subjects-note")).to_have_count(0)
    expect(last.locator(".narrow")).to_have_count(0)


# --- memory -----------------------------------------------------------------------------------


def test_the_conversation_survives_a_reload_until_a_new_one(page: Page, api: LiveServer) -> None:
    page.goto(api.url + "/")
    question = "What should I do if I miss a dose of <b>Cetrabine</b>?"  # mark-up typed stays text
    ask(page, question)
    first = page.locator(f"{W} .turn-answers article.answer")
    expect(first.first).to_be_visible()
    shown = [t.inner_text() for t in page.locator(f"{W} .turn-answers .answer-text").all()]
    ask(page, MISSPELT_QUESTION)
    expect(page.locator(f"{W} .choices button.choice")).to_have_count(2)
    page.locator(f"{W} article.answer .vote-up").first.click()
    expect(page.locator(f"{W} article.answer .feedback-status").first).to_contain_text("Thanks")

    stored = page.evaluate("() => Object.entries(sessionStorage)")
    assert len(stored) == 1
    data = json.loads(stored[0][1])  # data, not mark-up: the questions and the API's replies
    assert [t["question"] for t in data["turns"]] == [question, MISSPELT_QUESTION]
    assert data["turns"][1]["result"]["data"]["choices"] == post_ask(api, MISSPELT_QUESTION)["choices"]

    page.reload()
    expect(page.locator(f"{W} .turn-question")).to_have_text([question, MISSPELT_QUESTION])
    expect(page.locator(f"{W} .turn-answers .answer-text")).to_have_text(shown)
    expect(page.locator(f"{W} .choices button.choice")).to_have_text(post_ask(api, MISSPELT_QUESTION)["choices"][0]["names"])
    expect(page.locator(f"{W} article.answer .vote-up").first).to_have_attribute("aria-pressed", "true")
    expect(page.locator(f"{W} .start")).to_be_hidden()
    assert page.evaluate(f"() => document.querySelector('{W}').shadowRoot.querySelectorAll('.log b').length") == 0
    # the restored turns work: a choice asks again
    page.locator(f"{W} .choices button.choice").first.click()
    expect(page.locator(f"{W} .turn-answers")).to_have_count(2)

    new = page.locator(f"{W} .new-conversation")
    expect(new).to_be_visible()
    new.click()
    expect(page.locator(f"{W} .turn")).to_have_count(0)
    expect(page.locator(f"{W} .start")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    page.reload()
    expect(page.locator(f"{W} .start button.example").first).to_be_visible()
    expect(page.locator(f"{W} .turn")).to_have_count(0)


def test_a_stored_conversation_is_drawn_as_text(page: Page, api: LiveServer) -> None:
    """What sessionStorage holds is data, drawn with textContent: mark-up planted in it stays text."""
    page.goto(api.url + "/")
    expect(page.locator(f"{W} .start")).to_be_visible()
    key = f"drugqa-conversation:{api.url}"
    planted = {"v": 1, "turns": [{"question": "<img src=x onerror=\"window.__xss=1\">", "votes": {}, "result": {
        "ok": True, "status": 200, "data": {"answered": False, "answers": [], "reason": "<script>window.__xss=2</script>",
                                             "choices": [{"word": "x", "names": ["<b>bold</b>"]}]}}}]}
    page.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [key, json.dumps(planted)])
    page.reload()
    expect(page.locator(f"{W} .turn-question")).to_have_text(planted["turns"][0]["question"])
    expect(page.locator(f"{W} .turn-declined .reason")).to_have_text("<script>window.__xss=2</script>")
    expect(page.locator(f"{W} .choices button.choice")).to_have_text("<b>bold</b>")
    count = f"() => document.querySelector('{W}').shadowRoot.querySelectorAll('.log img, .log script, .log b').length"
    assert page.evaluate(count) == 0 and page.evaluate("typeof window.__xss") == "undefined"
    # and a stored turn that is no conversation of ours is dropped, not drawn
    page.evaluate("([k]) => sessionStorage.setItem(k, '{\"v\": 1, \"turns\": [42, {\"question\": 7}]}')", [key])
    page.reload()
    expect(page.locator(f"{W} .start")).to_be_visible()
    expect(page.locator(f"{W} .turn")).to_have_count(0)


# --- the reason of a thumbs-down ----------------------------------------------------------------


def test_a_thumbs_down_s_reason_by_keyboard_is_stored_with_the_citation(page: Page, api: LiveServer) -> None:
    question = "What should I do if I miss a dose of Cetrapine?"
    expected = post_ask(api, question)
    assert expected["answered"]
    page.goto(api.url + "/")
    page.locator(f"{W} input.question").focus()
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    answers = page.locator(f"{W} .turn-answers article.answer")
    expect(answers).to_have_count(len(expected["answers"]))
    # back from the question box to the last answer's thumbs-down; Enter opens the reason form
    tab_to(page, "vote-down")
    last = answers.last
    down = last.locator(".vote-down")
    expect(down).to_be_focused()
    expect(down).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    form = last.locator("form.reason-form")
    expect(form).to_be_visible()
    expect(down).to_have_attribute("aria-expanded", "true")
    expect(form.locator("input[value=wrong_medicine]")).to_be_focused()
    expect(form.locator("legend")).to_have_text("What was wrong with this answer?")
    # Escape closes it without sending, back on the thumb; Space opens it again
    page.keyboard.press("Escape")
    expect(form).to_be_hidden()
    expect(down).to_be_focused()
    expect(page.locator(f"{W} .panel")).to_be_visible()
    page.keyboard.press("Space")
    expect(form).to_be_visible()
    page.keyboard.press("ArrowDown")  # the radio group: the next reason, chosen
    expect(form.locator("input[value=wrong_section]")).to_be_checked()
    page.keyboard.press("Tab")
    expect(form.locator("textarea")).to_be_focused()
    page.keyboard.type("It quotes the storage section")
    page.keyboard.press("Tab")
    expect(form.locator("button.send-reason")).to_be_focused()
    page.keyboard.press("Enter")
    expect(last.locator(".feedback-status")).to_contain_text("Thanks")
    expect(form).to_be_hidden()
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(down).to_be_focused()

    export = httpx.get(api.url + "/v1/admin/feedback", headers=ADMIN)
    assert export.status_code == 200
    mine = [r for r in map(json.loads, export.text.splitlines()) if r["question"] == question]
    [answer] = [a for a in expected["answers"] if a["text"] == last.locator(".answer-text").inner_text()]
    assert len(mine) == 1, mine
    row = mine[0]
    assert (row["vote"], row["reason"], row["comment"]) == ("down", "wrong_section", "It quotes the storage section")
    assert row["doc_id"] == answer["citation"]["doc_id"] == last.get_attribute("data-doc-id")
    assert row["citation"] == answer["citation"]  # rebuilt by the server from the index: the answer's own
    assert row["answer"] == answer["text"]


def test_the_reason_form_passes_axe_and_cancel_sends_nothing(sized: Page, api: LiveServer) -> None:
    page = sized
    question = "How should Cetrabine be stored?"
    page.goto(api.url + "/")
    ask(page, question)
    answer = page.locator(f"{W} .turn-answers article.answer").first
    expect(answer).to_be_visible()
    answer.locator(".vote-down").click()
    form = answer.locator("form.reason-form")
    expect(form).to_be_visible()
    expect(form.locator("input[type=radio]")).to_have_count(4)
    check_state(page, "the thumbs-down reason form")
    before = httpx.get(api.url + "/v1/admin/feedback", headers=ADMIN).text
    form.locator(".cancel-reason").click()
    expect(form).to_be_hidden()
    expect(answer.locator(".vote-down")).to_have_attribute("aria-pressed", "false")
    expect(answer.locator(".vote-down")).to_be_focused()
    assert httpx.get(api.url + "/v1/admin/feedback", headers=ADMIN).text == before  # nothing was sent
    # sent without a reason or comment, it is a plain thumbs-down
    answer.locator(".vote-down").click()
    form.locator(".send-reason").click()
    expect(answer.locator(".feedback-status")).to_contain_text("Thanks")
    rows = [r for r in map(json.loads, httpx.get(api.url + "/v1/admin/feedback", headers=ADMIN).text.splitlines())
            if r["question"] == question]
    assert [(r["vote"], r["reason"], r["comment"]) for r in rows][-1] == ("down", None, None)
