"""The widget's theme: every CSS custom property widget.css documents, set by the host page on
#drugqa-widget or on :root, changes the computed style of the parts it is documented for; unset,
each part shows the documented default. (The accent alone was tested before, in test_widget.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.qa_service.browser import HostSite, ask

WIDGET_CSS = Path(__file__).resolve().parents[2] / "qa_service" / "static" / "widget.css"
QUESTION = "How long does baclofen stay in the system?"

# property -> (a host page's value, its computed form, where it shows: [(selector, computed property)])
THEME: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "--drugqa-accent": ("rgb(120, 20, 90)", "rgb(120, 20, 90)", [
        (".launcher", "background-color"), (".send", "background-color"), (".panel-header", "background-color"),
        (".turn-question", "background-color")]),
    "--drugqa-accent-text": ("rgb(255, 240, 150)", "rgb(255, 240, 150)", [
        (".launcher", "color"), (".send", "color"), (".title", "color"), (".turn-question", "color")]),
    "--drugqa-bg": ("rgb(240, 248, 235)", "rgb(240, 248, 235)", [
        (".panel", "background-color"), (".question", "background-color"), (".copy", "background-color")]),
    "--drugqa-fg": ("rgb(40, 20, 60)", "rgb(40, 20, 60)", [
        (".panel", "color"), (".answer-text", "color"), (".question", "color")]),
    "--drugqa-muted": ("rgb(90, 60, 30)", "rgb(90, 60, 30)", [
        (".disclaimer", "color"), (".meta", "color"), (".feedback-status", "color")]),
    "--drugqa-mark": ("rgb(150, 230, 250)", "rgb(150, 230, 250)", [(".answer-text mark", "background-color")]),
    "--drugqa-font": ("Georgia, serif", "Georgia, serif", [
        (".panel", "font-family"), (".launcher", "font-family"), (".question", "font-family"),
        (".send", "font-family")]),
    "--drugqa-radius": ("3px", "3px", [
        (".panel", "border-top-left-radius"), (".turn-question", "border-top-left-radius")]),
    "--drugqa-z": ("4321", "4321", [(".panel", "z-index"), (".launcher", "z-index")]),
}


def documented() -> dict[str, str]:
    """The custom properties listed in widget.css's header comment, with their documented defaults."""
    header = WIDGET_CSS.read_text(encoding="utf-8").split("*/", 1)[0]
    return dict(re.findall(r"^\s*\*\s+(--drugqa-[a-z-]+)\s+.*\((.+)\)\s*$", header, flags=re.MULTILINE))


def computed_default(value: str) -> str:
    """A documented default as getComputedStyle gives it back."""
    short = re.fullmatch(r"#([0-9a-f])([0-9a-f])([0-9a-f])", value)
    if short:
        value = "#" + "".join(c * 2 for c in short.groups())
    full = re.fullmatch(r"#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})", value)
    if full:
        return "rgb({}, {}, {})".format(*(int(part, 16) for part in full.groups()))
    return value


def styles(page: Page) -> dict[str, dict[tuple[str, str], str]]:
    """Every probe's computed value, read inside the widget's shadow root."""
    out = {}
    for name, (_, _, probes) in THEME.items():
        out[name] = {}
        for selector, prop in probes:
            out[name][(selector, prop)] = page.locator(f"#drugqa-widget {selector}").first.evaluate(
                "(el, prop) => getComputedStyle(el).getPropertyValue(prop)", prop)
    return out


def open_with_an_answer(page: Page, url: str) -> None:
    page.goto(url)
    ask(page, QUESTION)
    answer = page.locator("#drugqa-widget article.answer").first
    expect(answer).to_be_visible()
    expect(answer.locator(".answer-text mark").first).to_be_visible()  # the service's highlights
    answer.locator(".vote-up").click()
    expect(answer.locator(".feedback-status")).not_to_be_empty()


def test_every_documented_property_is_tested_here() -> None:
    assert set(documented()) == set(THEME), documented()


def test_unset_each_part_shows_the_documented_default(page: Page, server: LiveServer, host: HostSite) -> None:
    open_with_an_answer(page, host.page("plain.html", server.url))
    found = styles(page)
    defaults = documented()
    for name, values in found.items():
        expected = computed_default(defaults[name])
        assert set(values.values()) == {expected}, (name, expected, values)


@pytest.mark.parametrize("where", ["#drugqa-widget", ":root"])
def test_the_host_page_s_value_of_each_property_shows(page: Page, server: LiveServer, host: HostSite,
                                                      where: str) -> None:
    rules = "; ".join(f"{name}: {value}" for name, (value, _, _) in THEME.items())
    # the host page's own rules for the same elements never reach inside the shadow root
    extra = f"<style>{where} {{ {rules} }} button, input, mark {{ color: red; font-family: monospace; }}</style>"
    page_name = "theme-root.html" if where == ":root" else "theme-host.html"
    open_with_an_answer(page, host.page(page_name, server.url, extra=extra))
    found = styles(page)
    for name, (_, expected, _) in THEME.items():
        assert set(found[name].values()) == {expected}, (name, expected, found[name])
