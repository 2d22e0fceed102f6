"""The weekly review end to end: a week of demo traffic replayed with ``--state``, then reviewed.

The week is ``shiftwatch simulate --preset week``: the candidate's escalation
shift acts from day 1 to day 3 and is fixed, and a deny-rate shift in the rare
``lang=ga`` segment starts at day 3.5 and stays. The report's numbers are
cross-checked against what the replay itself wrote: the alert log and the
summary (``--summary-json``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from monitor.review.screenshot import is_blank, screenshot
from monitor.review.text import number
from tests.conftest import read_jsonl
from tests.monitor.review.tables import markdown_table
from tests.servers import require_binary

POLICY = Path(__file__).resolve().parents[2] / "monitor" / "demo" / "policy.yaml"
MODEL, CANDIDATE = "fraud-scorer", "v7-int8"


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _stamp(rfc3339: str) -> str:
    """An alert record's time as the report prints it (RFC 3339 UTC, whole seconds)."""
    at = datetime.fromisoformat(rfc3339).astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The week replayed once with --state; its alerts, summary and both reports."""
    root = tmp_path_factory.mktemp("week")
    events, state = root / "week.jsonl", root / "state"
    _cli("simulate", "--preset", "week", "--out", events)
    replay = _cli(
        "replay", events, "--policy", POLICY, "--alerts-out", root / "alerts.jsonl",
        "--state", state, "--no-progress", "--summary-json",
    )  # fmt: skip
    _cli("review", "--state", state, "--since", "30d", "--out", root / "review.html")
    _cli("review", "--state", state, "--since", "30d", "--out", root / "review.md")
    return {
        "root": root,
        "state": state,
        "alerts": read_jsonl(root / "alerts.jsonl"),
        "summary": json.loads(replay.stdout),
        "html": (root / "review.html").read_text(encoding="utf-8"),
        "md": (root / "review.md").read_text(encoding="utf-8"),
    }


def test_the_story_of_the_week_is_in_the_alert_log(week: dict[str, Any]) -> None:
    """The preset does what the review is meant to show: a fixed breach and a standing one."""
    by_id: dict[str, list[str]] = {}
    for record in week["alerts"]:
        by_id.setdefault(record["alert_id"], []).append(record["status"])
    escalations = [a for a in week["alerts"] if a["check"] == "escalations" and not a["segment"]]
    deny_ga = [
        a for a in week["alerts"] if a["check"] == "deny-rate" and a["segment"] == {"lang": "ga"}
    ]
    assert [a["status"] for a in escalations] == ["firing", "resolved"]
    assert [a["status"] for a in deny_ga] == ["firing"]
    day = 86_400.0
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
    fired = datetime.fromisoformat(deny_ga[0]["event_time"]).timestamp()
    assert fired > start + 3.5 * day  # the deny shift starts mid-week


def test_every_alert_is_reported_with_its_times(week: dict[str, Any]) -> None:
    """Each alert id of the log is in both reports, with its event time and what followed."""
    md, html = week["md"], week["html"]
    rows = {row[0]: row for row in markdown_table(md, "### Alerts")}
    firing = [a for a in week["alerts"] if a["status"] == "firing"]
    resolved = {a["alert_id"]: a for a in week["alerts"] if a["status"] == "resolved"}
    assert set(rows) == {a["alert_id"] for a in firing}
    for alert in firing:
        row = rows[alert["alert_id"]]
        assert alert["alert_id"] in html
        assert _stamp(alert["event_time"]) in row
        followed = row[-1]
        if alert["alert_id"] in resolved:
            assert followed == f"resolved at {_stamp(resolved[alert['alert_id']]['resolved_at'])}"
        else:
            assert followed == "firing"


def test_the_check_table_matches_the_replay_summary(week: dict[str, Any]) -> None:
    """The final state and values of each overall check are the replay's own."""
    (model,) = week["summary"]["models"]
    (candidate,) = model["candidates"]
    rows = {row[0]: row for row in markdown_table(week["md"], "### Checks against their tolerance")}
    overall = [c for c in candidate["checks"] if not c["segment"]]
    assert set(rows) == {c["check"] for c in overall}
    for check in overall:
        _, metric, _, _, state, observed, reference, *_ = rows[check["check"]]
        assert (metric, state) == (check["metric"], check["state"])
        assert observed == number(check["observed"])
        assert reference == number(check["reference"])
    watched = f"{candidate['inferences']:,} inferences"
    assert watched in week["md"] and watched in week["html"]
    assert f"verdict at the end of the period: {candidate['verdict']}" in week["md"].lower()


def test_segments_rank_the_standing_breach_first(week: dict[str, Any]) -> None:
    """lang=ga's deny rate, breached at the end, heads the segments that got worse."""
    rows = markdown_table(week["md"], "### Segments that got worse")
    assert rows[0][1:4] == ["deny-rate", "lang=ga", "breach"]


def test_the_html_is_one_self_contained_file_with_every_plot(week: dict[str, Any]) -> None:
    """It parses (every inline SVG as XML too); no external URL anywhere; one trend per
    check of the policy, the tool mix, latency."""
    html = week["html"]
    parser = HTMLParser()
    parser.feed(html)
    parser.close()
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert [ET.fromstring(svg).tag for svg in svgs] == ["{http://www.w3.org/2000/svg}svg"] * len(
        svgs
    )
    assert re.findall(r'(?:src|href)="(?!#)', html) == []
    assert "<script" not in html
    plots = re.findall(r'<figure data-plot="([^"]+)"><svg', html)
    checks = [c["check"] for c in week["summary"]["models"][0]["candidates"][0]["checks"]]
    assert set(plots) == {f"trend-{c}" for c in checks} | {"tools", "latency"}
    assert len(svgs) == len(plots)


def test_a_screenshot_of_the_report_is_not_blank(week: dict[str, Any]) -> None:
    """Headless Chromium renders the report: text, tables and plots, not an empty page."""
    chromium = require_binary("chromium", packages="chromium")
    png = screenshot(week["root"] / "review.html", week["root"] / "review.png", chromium=chromium)
    assert not is_blank(png)


def test_a_sign_off_shows_in_the_next_report(week: dict[str, Any]) -> None:
    """`review sign` records the decision; the next report carries it."""
    assert "No decision recorded yet." in week["md"]
    signed = _cli(
        "review", "sign", "--state", week["state"], "--model", MODEL, "--decision", "accept",
        "--by", "dana.owner", "--note", "escalations fixed by the hotfix of day 3",
    )  # fmt: skip
    assert "recorded: accept" in signed.stdout
    out = week["root"] / "signed.md"
    _cli("review", "--state", week["state"], "--since", "30d", "--out", out)
    text = out.read_text(encoding="utf-8")
    assert "No decision recorded yet." not in text
    latest = re.search(r"Latest decision: (\w+) by (\S+) at \S+: (.*)", text)
    assert latest is not None
    assert latest.groups() == ("accept", "dana.owner", "escalations fixed by the hotfix of day 3")
    ((_, decision, by, note),) = markdown_table(text, "### Sign-off")
    assert (decision, by, note) == (
        "accept",
        "dana.owner",
        "escalations fixed by the hotfix of day 3",
    )
