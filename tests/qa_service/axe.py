"""axe-core (the npm dev dependency in package.json, installed by `make test`) run in a page under
test, failing with the list of what it reports.

The script is handed to the page through the DevTools protocol (``page.evaluate``), not added as a
<script> element: the page's Content-Security-Policy (script-src 'self', Trusted Types with no
policy allowed) stays exactly as served, and the widget is checked under it. axe walks open shadow
roots itself, so the widget inside ``#drugqa-widget``'s open shadow root is checked with the page.

    from tests.qa_service.axe import assert_no_axe_violations
    assert_no_axe_violations(page)                       # the whole document
    assert_no_axe_violations(page, "#drugqa-widget")     # or a CSS selector of the page
    assert_no_axe_violations(page, {"fromShadowDom": ["#drugqa-widget", ".panel"]}, state="open")
                                                         # a part inside the shadow root (axe's context
                                                         # object; a bare [[host, part]] names frames)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
AXE_SCRIPT = REPO / "node_modules" / "axe-core" / "axe.min.js"

# axe's defaults: every rule but the experimental ones (WCAG 2.0 to 2.2 A and AA, and best practices;
# label-content-name-mismatch among them). Only the violations are gathered. Of what axe preloads, the
# media (for no-autoplay-audio) but not the CSSOM: axe rebuilds the page's style sheets as <style>
# elements, which a page whose style-src is 'self' refuses; only css-orientation-lock reads them, an
# experimental rule that does not run.
RUN_OPTIONS: dict[str, Any] = {"resultTypes": ["violations"], "preload": {"assets": ["media"]}}


@cache
def axe_source() -> str:
    if not AXE_SCRIPT.is_file():
        raise AssertionError(
            f"axe-core is not installed ({AXE_SCRIPT.relative_to(REPO)} is missing): run `make test`, which "
            "installs the npm dev dependencies of package-lock.json (npm ci) before the tests"
        )
    return AXE_SCRIPT.read_text(encoding="utf-8")


def inject_axe(page: Page) -> str:
    """Loads axe into the page's main frame (once per document); returns its version."""
    if not page.evaluate("() => typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        page.evaluate(axe_source())
    return page.evaluate("() => window.axe.version")


def axe_violations(page: Page, context: str | dict | None = None) -> list[dict]:
    """axe's violations on the document (or ``context``): each with id, impact, help, helpUrl and nodes."""
    version = inject_axe(page)
    assert version.startswith("4."), f"axe-core 4 expected, found {version}"
    return page.evaluate(
        """async ([context, options]) => {
            const results = await window.axe.run(context === null ? document : context, options);
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary || '', html: n.html })),
            }));
        }""",
        [context, RUN_OPTIONS],
    )


def format_violations(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
        for node in v["nodes"]:
            target = " >> ".join(_target(part) for part in node["target"])
            lines.append(f"    at {target}: {node['html'][:160]}")
            for detail in node["summary"].splitlines():
                if detail.strip():
                    lines.append(f"      {detail.strip()}")
    return "\n".join(lines)


def _target(part: str | list[str]) -> str:
    """One step of a node's target: a selector, or a list of selectors into nested shadow roots."""
    return " >>> ".join(part) if isinstance(part, list) else part


def assert_no_axe_violations(page: Page, context: str | dict | None = None, state: str = "") -> None:
    """Fails, listing each violation (rule id, impact, where, what to fix), if axe reports any."""
    violations = axe_violations(page, context)
    if violations:
        where = f" ({state})" if state else ""
        viewport = page.viewport_size or {}
        raise AssertionError(
            f"axe-core reports {len(violations)} violation(s) on {page.url}{where} at "
            f"{viewport.get('width')}x{viewport.get('height')}:\n{format_violations(violations)}"
        )
