"""The lead's review page (/admin) in a real Chromium, at 1280x900 and 360x740.

A real server with a records file of its own gets real asks (answered and declined), a question
holding HTML mark-up, and real thumbs-down votes with reasons and comments, all over its HTTP API.
Then, in the browser: the token is typed into the form; the page shows the unanswered questions
grouped with their counts, the thumbs-down answers with reason, comment, answer and citation, and
the most asked questions, exactly as the JSON endpoints give them; the CSV and JSON downloads hold
what the endpoints hold; a wrong token says so; mark-up shows as text; the token is in no URL the
page requests; everything works from the keyboard with a visible focus; nothing scrolls sideways;
axe-core reports nothing on the sign-in form, the loaded page or the error state.

``QA_ADMIN_SCREENSHOT=docs/admin.png`` (``make screenshot``) writes the README's picture of the page.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.qa_service.axe import assert_no_axe_violations
from tests.qa_service.browser import new_page
from tests.qa_service.test_review import csv_rows, thumbs_down_csv, unanswered_csv

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 360, "height": 740}}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TOKEN_KEY = "qa-review-token"

ANSWERED = "How is an overdose of baclofen treated?"
DECLINED = ("Is ibuprofen safe with alcohol?", "ibuprofen with alcohol: safe?", "IS IBUPROFEN SAFE WITH ALCOHOL")
MARKUP = '<img src=x onerror="alert(1)"><b>Warfarin</b> & aspirin together?'
FORMULA = "=HYPERLINK(\"http://evil.example\") paracetamol"
REASON_LABELS = {"wrong_medicine": "Wrong medicine", "wrong_section": "Wrong section", "outdated": "Outdated",
                 "other": "Other"}
"""The page's words for the four reasons (the widget's choice)."""
VOTES = (("wrong_section", "Not the <i>treatment</i> part"), (None, None), ("outdated", "an older leaflet"))


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory, seed_settings: ServiceSettings) -> Iterator[LiveServer]:
    """The real app over the seed index, with a records file of its own holding real asks and votes."""
    path = tmp_path_factory.mktemp("admin-page") / "records.sqlite3"
    with LiveServer(create_app(seed_settings.model_copy(update={"feedback_db": path}))) as live:
        with httpx.Client(base_url=live.url, timeout=60) as http:
            answers = {}
            live.asked = []  # type: ignore[attr-defined]
            for question in (ANSWERED, ANSWERED, *DECLINED, DECLINED[0], MARKUP, FORMULA):
                response = http.post("/v1/ask", json={"question": question})
                assert response.status_code == 200, response.text
                answers[question] = response.json()
                live.asked.append(response.json())  # type: ignore[attr-defined]
            assert answers[ANSWERED]["answered"]
            assert not any(answers[q]["answered"] for q in (*DECLINED, MARKUP, FORMULA))  # no such medicines
            answer = answers[ANSWERED]["answers"][0]
            for reason, comment in VOTES:
                sent = {"question": ANSWERED, "citation": answer["citation"], "vote": "down", "reason": reason,
                        "comment": comment}
                assert http.post("/v1/feedback", json=sent).status_code == 201
        yield live


def report(server: LiveServer, path: str, limit: int, fmt: str | None = None) -> httpx.Response:
    params: dict[str, object] = {"limit": limit}
    if fmt:
        params["format"] = fmt
    response = httpx.get(server.url + path, headers=ADMIN, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def sized(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page at each size that records every URL it requests (as ``page.requested``); the test fails
    on any script error, alert or policy violation."""
    page, errors = new_page(browser, viewport=VIEWPORTS[request.param])
    page.requested = []  # type: ignore[attr-defined]
    page.on("request", lambda r: page.requested.append(r))  # type: ignore[attr-defined]
    yield page
    page.context.close()
    assert not errors, errors


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def assert_no_sideways_scroll(page: Page) -> None:
    width = page.viewport_size["width"]  # type: ignore[index]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    overflowing = page.evaluate(
        "(width) => [...document.querySelectorAll('body *')].filter((el) => {"
        " const box = el.getBoundingClientRect(); return box.width > 0 && (box.left < 0 || box.right > width + 0.5);"
        "}).map((el) => el.tagName + '.' + el.className)", width)
    assert overflowing == []


def assert_token_never_in_a_url(page: Page, tokens: tuple[str, ...] = (ADMIN_TOKEN,)) -> None:
    """No token typed or kept (``tokens``) is in any URL the page requested: each went in a header."""
    requested: list[Request] = page.requested  # type: ignore[attr-defined]
    assert requested, "no request was recorded"
    for request in requested:
        assert not any(token in request.url for token in tokens), request.url
        assert "token" not in request.url.lower(), request.url
    assert not any(token in page.url for token in tokens)
    admin_calls = [r for r in requested if "/v1/admin/" in r.url]
    assert admin_calls
    assert {r.headers.get("authorization") for r in admin_calls} <= {f"Bearer {token}" for token in tokens}


def card_texts(page: Page, list_id: str, part: str) -> list[str]:
    return page.locator(f"#{list_id} > li {part}").evaluate_all("(nodes) => nodes.map((n) => n.textContent)")


def when(iso: str) -> str:
    return f"{iso[:10]} {iso[11:16]} UTC"


def test_the_review_shows_what_the_endpoints_give(sized: Page, review: LiveServer) -> None:
    page = sized
    groups = report(review, "/v1/admin/unanswered/groups", 200).json()
    votes = report(review, "/v1/admin/thumbs-down", 200).json()
    asked = report(review, "/v1/admin/most-asked", 20).json()

    page.goto(review.url + "/admin")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#review")).to_be_hidden()
    assert_no_axe_violations(page, state="sign-in form")
    assert page.get_by_label("Admin token").get_attribute("type") == "password"
    sign_in(page, ADMIN_TOKEN)

    # (a) the unanswered groups, in the endpoint's order, with their counts
    expect(page.locator("#unanswered-list > li")).to_have_count(len(groups))
    assert card_texts(page, "unanswered-list", ".question") == [g["question"] for g in groups]
    assert card_texts(page, "unanswered-list", ".count") == [str(g["count"]) for g in groups]
    ibuprofen = next(g for g in groups if {w["question"] for w in g["wordings"]} == set(DECLINED))
    assert ibuprofen["count"] == 4
    card = page.locator("#unanswered-list > li").nth(groups.index(ibuprofen))
    expect(card.locator(".counts")).to_have_text(
        f"4 times: 4 declined, 0 thumbs-down, last {when(ibuprofen['last_asked'])}")
    declined_for = {r["reason"].casefold() for r in review.asked if r["question"] in DECLINED}  # type: ignore[attr-defined]
    assert len(ibuprofen["reasons"]) == len(declined_for) and {r.casefold() for r in ibuprofen["reasons"]} == declined_for
    assert card.locator(".reasons li").all_text_contents() == [r.replace("_", " ") for r in ibuprofen["reasons"]]
    card.get_by_text("Asked 3 ways").click()
    for wording in ibuprofen["wordings"]:
        expect(card.get_by_text(f"{wording['question']} ({wording['count']})", exact=True)).to_be_visible()

    # (b) the thumbs-down, newest first, with reason, comment, answer and citation
    assert len(votes) == len(VOTES)
    expect(page.locator("#thumbs-down-list > li")).to_have_count(len(votes))
    assert card_texts(page, "thumbs-down-list", ".reason .value") == [
        REASON_LABELS[v["reason"]] if v["reason"] else "none given" for v in votes]
    assert [v["reason"] for v in votes] == [reason for reason, _ in reversed(VOTES)]
    assert card_texts(page, "thumbs-down-list", ".comment .value") == [v["comment"] for v in votes if v["comment"]]
    assert card_texts(page, "thumbs-down-list", ".answer") == [v["answer"] for v in votes]
    assert card_texts(page, "thumbs-down-list", ".question") == [ANSWERED] * 3
    cited = votes[0]["citation"]
    assert cited["section"], "the seed answer's citation has a section"
    assert card_texts(page, "thumbs-down-list", ".citation") == [
        f"{cited['title']} — {cited['section']}, characters {cited['start']}–{cited['end']} ({cited['doc_id']})"] * 3

    # (c) the most asked, with counts
    expect(page.locator("#most-asked-list > li")).to_have_count(len(asked))
    assert card_texts(page, "most-asked-list", ".question") == [g["question"] for g in asked]
    assert card_texts(page, "most-asked-list", ".count") == [str(g["count"]) for g in asked]
    overdose = next(g for g in asked if g["question"] == ANSWERED)
    assert (overdose["count"], overdose["answered"]) == (2, 2)

    # mark-up in a question is text: shown as typed, no element made of it
    expect(page.locator("#unanswered-list .question", has_text="<b>Warfarin</b>")).to_have_text(MARKUP)
    assert page.locator("#review img, #review b, #review i").count() == 0
    expect(page.locator("#thumbs-down-list .comment .value").first).to_have_text("an older leaflet")

    expect(page.get_by_role("status")).to_contain_text("Loaded")
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, state="loaded, one group's wordings open")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == ADMIN_TOKEN
    assert_token_never_in_a_url(page)

    if os.environ.get("QA_ADMIN_SCREENSHOT") and page.viewport_size["width"] == 1280:  # type: ignore[index]
        # `make screenshot` refreshes docs/admin.png: the page's top, with the groups and the first thumbs-down
        page.set_viewport_size({"width": 1100, "height": 1400})
        page.screenshot(path=os.environ["QA_ADMIN_SCREENSHOT"])


def test_the_downloads_hold_what_the_endpoints_give(sized: Page, review: LiveServer, tmp_path: Path) -> None:
    page = sized
    page.goto(review.url + "/admin")
    sign_in(page, ADMIN_TOKEN)
    expect(page.locator("#unanswered-list > li").first).to_be_visible()
    files = {}
    for section, name in (("Unanswered questions", "unanswered"), ("Thumbs-down answers", "thumbs-down")):
        region = page.get_by_role("region", name=section)
        for fmt in ("CSV", "JSON"):
            with page.expect_download() as started:
                region.get_by_role("button", name=f"Download {fmt}").click()
            download = started.value
            assert re.fullmatch(rf"{name}-\d{{4}}-\d{{2}}-\d{{2}}\.{fmt.lower()}", download.suggested_filename)
            assert download.url.startswith("blob:")  # made in the page: the token went in a header
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            files[name, fmt.lower()] = saved.read_bytes()
            expect(page.get_by_role("status")).to_have_text(f"Downloaded {download.suggested_filename}.")

    groups = report(review, "/v1/admin/unanswered/groups", 10000).json()
    votes = report(review, "/v1/admin/thumbs-down", 10000).json()
    assert json.loads(files["unanswered", "json"]) == groups
    assert json.loads(files["thumbs-down", "json"]) == votes
    assert files["unanswered", "csv"] == report(review, "/v1/admin/unanswered/groups", 10000, "csv").content
    assert csv_rows(files["unanswered", "csv"]) == unanswered_csv(groups)
    assert csv_rows(files["thumbs-down", "csv"]) == thumbs_down_csv(votes)
    # the question that would be a spreadsheet formula is text in the file
    assert "'" + FORMULA in {row["question"] for row in csv_rows(files["unanswered", "csv"])}
    assert_token_never_in_a_url(page)


def test_a_wrong_token_says_so_and_keeps_nothing(sized: Page, review: LiveServer) -> None:
    page = sized
    page.goto(review.url + "/admin")
    sign_in(page, "not-the-admin-token")  # a wrong one
    alert = page.locator("#sign-in-error")
    expect(alert).to_have_text("That admin token was not accepted. Check it and try again.")
    expect(alert).to_have_attribute("role", "alert")
    expect(page.locator("#review")).to_be_hidden()
    expect(page.get_by_label("Admin token")).to_be_focused()
    expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, state="wrong token")

    # an empty form is refused without asking the service
    page.get_by_label("Admin token").fill("")
    page.get_by_role("button", name="Sign in").click()
    expect(alert).to_have_text("Enter the admin token.")

    sign_in(page, ADMIN_TOKEN)
    expect(page.locator("#review")).to_be_visible()
    expect(alert).to_be_empty()
    # a reload keeps the tab signed in; a token the server no longer takes sends the reader back
    page.reload()
    expect(page.locator("#unanswered-list > li").first).to_be_visible()
    expect(page.locator("#sign-in")).to_be_hidden()
    page.evaluate(f"sessionStorage.setItem('{TOKEN_KEY}', 'a-token-since-changed')")
    page.reload()
    expect(alert).to_have_text("The saved admin token is no longer accepted. Sign in again.")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    assert_token_never_in_a_url(page, (ADMIN_TOKEN, "not-the-admin-token", "a-token-since-changed"))


def focused(page: Page) -> dict:
    """The focused element: its tag, its text or label, and its outline as drawn."""
    return page.evaluate(
        """() => { const el = document.activeElement; const style = getComputedStyle(el);
            return { tag: el.tagName, text: (el.getAttribute('aria-label') || el.textContent || '').trim(),
                     id: el.id, outline: style.outlineStyle, width: parseFloat(style.outlineWidth) }; }""")


def assert_focus_visible(page: Page) -> dict:
    now = focused(page)
    assert now["outline"] != "none" and now["width"] >= 2, now
    return now


def test_keyboard_only(sized: Page, review: LiveServer) -> None:
    page = sized
    page.goto(review.url + "/admin")
    expect(page.get_by_label("Admin token")).to_be_focused()  # the page starts in the field
    page.keyboard.type(ADMIN_TOKEN)
    assert_focus_visible(page)
    page.keyboard.press("Tab")
    assert assert_focus_visible(page)["text"] == "Sign in"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # submits from the field
    expect(page.get_by_role("heading", name="Unanswered questions")).to_be_focused()
    expect(page.locator("#unanswered-list > li").first).to_be_visible()

    # Tab order: the two downloads of the section, then the first group with several wordings
    page.keyboard.press("Tab")
    assert assert_focus_visible(page)["text"] == "Download CSV of the unanswered questions"
    with page.expect_download() as started:
        page.keyboard.press("Enter")
    assert started.value.suggested_filename.endswith(".csv")
    page.keyboard.press("Tab")
    assert assert_focus_visible(page)["text"] == "Download JSON of the unanswered questions"
    with page.expect_download() as started:
        page.keyboard.press(" ")
    assert started.value.suggested_filename.endswith(".json")
    page.keyboard.press("Tab")
    summary = assert_focus_visible(page)
    assert summary["tag"] == "SUMMARY" and re.fullmatch(r"Asked \d+ ways", summary["text"])
    page.keyboard.press("Enter")
    expect(page.locator("#unanswered-list details[open]")).to_have_count(1)

    # every control reachable forwards, each with a visible focus, up to the last of the page
    seen = []
    for _ in range(60):
        page.keyboard.press("Tab")
        if focused(page)["tag"] == "BODY":
            break
        seen.append(assert_focus_visible(page)["text"])
    else:
        pytest.fail(f"Tab never left the page: {seen}")
    assert "Download CSV of the thumbs-down answers" in seen and "Download JSON of the thumbs-down answers" in seen

    # backwards to Refresh and Sign out, before the reports
    for _ in range(80):
        page.keyboard.press("Shift+Tab")  # from outside the page: its last control first
        assert focused(page)["tag"] != "BODY", "Shift+Tab left the page before Refresh"
        if assert_focus_visible(page)["text"] == "Refresh":
            break
    else:
        pytest.fail("Shift+Tab never reached Refresh")
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Updated")
    page.keyboard.press("Tab")
    assert assert_focus_visible(page)["text"] == "Sign out"
    page.keyboard.press("Enter")
    expect(page.get_by_label("Admin token")).to_be_focused()
    expect(page.locator("#review")).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text("Signed out.")
    expect(page.get_by_role("status")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    assert_no_sideways_scroll(page)
    assert_token_never_in_a_url(page)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two servers without an index (the review reads only the records): one with the admin token and an
    empty records file, one with no admin token at all."""
    root = tmp_path_factory.mktemp("bare")
    with_token = ServiceSettings(index_dir=root / "index", feedback_db=root / "records.sqlite3",
                                 admin_token=ADMIN_TOKEN)
    without = ServiceSettings(index_dir=root / "index", feedback_db=root / "other.sqlite3")
    with LiveServer(create_app(with_token, load=False), ready_path="/healthz") as empty, \
            LiveServer(create_app(without, load=False), ready_path="/healthz") as disabled:
        yield empty, disabled


def test_an_empty_records_file_says_so(sized: Page, bare: tuple[LiveServer, LiveServer]) -> None:
    page = sized
    page.goto(bare[0].url + "/admin")
    sign_in(page, ADMIN_TOKEN)
    expect(page.get_by_text("No unanswered question yet.")).to_be_visible()
    expect(page.get_by_text("No answer has been voted down yet.")).to_be_visible()
    expect(page.get_by_text("No question has been asked yet.")).to_be_visible()
    expect(page.locator("#review .cards > li")).to_have_count(0)
    with page.expect_download() as started:
        page.get_by_role("button", name="Download CSV of the thumbs-down answers").click()
    saved = started.value.path()
    assert csv_rows(Path(saved).read_bytes()) == []  # the header alone
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, state="empty records")
    assert_token_never_in_a_url(page)


def test_a_server_without_an_admin_token_says_the_review_is_off(sized: Page, bare: tuple[LiveServer, LiveServer]) -> None:
    page = sized
    page.goto(bare[1].url + "/admin")
    sign_in(page, ADMIN_TOKEN)
    expect(page.locator("#sign-in-error")).to_have_text(
        "The review is switched off on this server: it has no admin token set (QA_ADMIN_TOKEN).")
    expect(page.locator("#review")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    assert_no_sideways_scroll(page)
    assert_no_axe_violations(page, state="admin disabled")
