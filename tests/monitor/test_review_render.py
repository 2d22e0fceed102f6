"""Tests of the rendered review: safe to share, parses, self-contained, every plot present."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from monitor.history.rows import SignOff
from monitor.review.build import build_review
from monitor.review.html import render_html
from monitor.review.markdown import render_markdown
from tests.monitor.review_history import DAY, EDGES, PAYLOAD, POLICY, REQUEST_ID, START, week

SVG_NS = "{http://www.w3.org/2000/svg}"
XMLNS = re.compile(r'\sxmlns(?::\w+)?="[^"]*"')


@pytest.fixture(scope="module")
def rendered() -> tuple[str, str]:
    """The week's review as HTML and Markdown, with a hostile sign-off note."""
    history, _ = week()
    history.decisions.append(
        SignOff("fraud-scorer", "v7-int8", START + 8 * DAY, "retune", "dana", "<script>x</script>")
    )
    review = build_review(history, START, START + 7 * DAY, latency_edges=EDGES)
    return render_html(review), render_markdown(review)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.plots: list[str] = []
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "figure":
            self.plots.append(values.get("data-plot") or "")
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag not in ("meta", "path", "use", "rect", "stop", "br"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("meta", "path", "use", "rect", "stop", "br"):
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()


def test_no_request_id_or_payload_reaches_the_report(rendered: tuple[str, str]) -> None:
    """Evidence keys outside the documented ones (a request id, a payload) are not rendered."""
    for text in rendered:
        assert REQUEST_ID not in text
        assert PAYLOAD not in text and "sample_event" not in text
        assert "statistic 13.4 / threshold 13.3" in text
        assert "events.jsonl:0:42,030" in text


def test_history_strings_are_escaped(rendered: tuple[str, str]) -> None:
    """A note with markup shows as text in both formats."""
    html, md = rendered
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<script>" not in md


def test_html_parses_and_every_svg_is_xml(rendered: tuple[str, str]) -> None:
    """Tags balance, and each inline SVG parses as XML with an svg root."""
    html, _ = rendered
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert parser.open == [] and parser.scripts == 0
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert svgs
    for svg in svgs:
        assert ET.fromstring(svg).tag == f"{SVG_NS}svg"


def test_every_plot_is_present(rendered: tuple[str, str]) -> None:
    """One plot per check of the policy, one for the tool mix, one for latency."""
    html, md = rendered
    parser = _Collector()
    parser.feed(html)
    want = [f"trend-{c['name']}" for c in POLICY["checks"]] + ["tools", "latency"]
    assert parser.plots == want
    assert len(re.findall(r"<figure[^>]*><svg", html)) == len(want)
    assert "see the HTML report" in md and "<svg" not in md


def test_self_contained_no_external_url(rendered: tuple[str, str]) -> None:
    """No link or source leaves the file; the only URL is the policy's runbook, shown as text."""
    html, _ = rendered
    parser = _Collector()
    parser.feed(html)
    assert all(link.startswith("#") for link in parser.links), parser.links
    assert "url(" not in html.replace("url(#", "")
    runbook = POLICY["runbook_url"]
    assert f"<p>Runbook: {runbook}</p>" in html
    # SVG namespace declarations name a namespace; they are never fetched.
    rest = XMLNS.sub("", html).replace(runbook, "")
    assert "http://" not in rest and "https://" not in rest


def test_rendering_is_deterministic() -> None:
    """The same history gives the same file, byte for byte."""
    history, _ = week()
    review = build_review(history, START, START + 7 * DAY, latency_edges=EDGES)
    assert render_html(review) == render_html(review)
