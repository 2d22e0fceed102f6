"""The Grafana dashboards: the committed JSON is what the code builds, and every query
(panels, annotations, template variables) parses and returns data from a real Prometheus
scraping ``shiftwatch demo`` under simulated traffic."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from dashboards.build import OUTPUTS, render
from monitor.broker import free_port
from tests.conftest import REPO
from tests.servers import Prometheus, get_json, wait_until

#: What the test puts in for each template variable: every value, as the dashboards' All.
VARIABLES = {
    "$__rate_interval": "5s",
    "$model": ".*",
    "$version": ".*",
    "$segment": ".*",
    "$check": ".*",
}


def _boards() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in render().items()}


def _fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def _queries() -> list[tuple[str, str, str]]:
    """(dashboard, where, PromQL) of every panel target, annotation and variable."""
    out = []
    for name, board in _boards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append((name, f"panel {panel['title']!r}", _fill(target["expr"])))
        for note in board["annotations"].get("list", []):
            out.append((name, f"annotation {note['name']!r}", _fill(note["expr"])))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                match = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"]["query"])
                assert match, var
                expr, label = match.groups()
                out.append(
                    (name, f"variable {var['name']!r}", _fill(f"count by ({label}) ({expr})"))
                )
    return out


def test_the_committed_json_is_what_the_code_builds() -> None:
    """dashboards/json and the chart's copy match ``python -m dashboards.build``."""
    for name, text in render().items():
        for folder in OUTPUTS:
            path = folder / name
            assert path.read_text(encoding="utf-8") == text, (
                f"{path}: run python -m dashboards.build"
            )


def test_the_boards_have_their_variables_and_panels() -> None:
    """Both boards take datasource, model and version; on-call adds segment; every panel
    reads the chosen datasource."""
    boards = _boards()
    names = {
        board["title"]: [v["name"] for v in board["templating"]["list"]]
        for board in boards.values()
    }
    assert names["shiftwatch / on-call"][:4] == ["datasource", "model", "version", "segment"]
    assert names["shiftwatch / pipeline"] == ["datasource", "model", "version"]
    for board in boards.values():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    oncall = boards["shiftwatch-oncall.json"]
    types = {p["title"]: p["type"] for p in oncall["panels"]}
    assert types["Check state by segment"] == "state-timeline"
    assert len(oncall["annotations"]["list"]) >= 1


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """``shiftwatch demo`` (its embedded broker, simulated traffic, an unreachable
    Alertmanager so the outbox has a backlog) scraped every second by a real Prometheus
    with the shipped rules, their `for` cut to 0s so ALERTS has data."""
    workdir = tmp_path_factory.mktemp("dash")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    demo = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--duration", "150",
         "--metrics-port", str(port), "--rate", "1500",
         "--alertmanager-url", f"http://127.0.0.1:{free_port()}",
         "--outbox", str(workdir / "outbox.sqlite3")],
        stdout=subprocess.DEVNULL, stderr=(workdir / "demo.log").open("wb"), env=env, cwd=workdir,
    )  # fmt: skip
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "shiftwatch-rules.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
    prom = Prometheus(workdir / "prom", [f"127.0.0.1:{port}"], [workdir / "rules.yaml"])
    try:
        prom.start()
        yield prom
    finally:
        prom.stop()
        demo.terminate()
        demo.wait(timeout=30)


def _has_data(prom: Prometheus, expr: str, start: float) -> tuple[bool, str]:
    """Whether a range query since ``start`` returns a series; the error if it fails."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{time.time():.3f}", "step": "1"}
    try:
        body = get_json(f"{prom.url}/api/v1/query_range?" + urllib.parse.urlencode(params))
    except Exception as exc:  # an HTTP 400 is a query that does not parse
        return False, str(exc)
    return bool(body["data"]["result"]), ""


def test_every_query_returns_data(prometheus: Prometheus) -> None:
    """Each panel, annotation and variable query parses and returns data within a minute
    and a half of the demo starting."""
    start = time.time()
    wait_until(lambda: bool(prometheus.query('up{job="shiftwatch"} == 1')), timeout=30)
    queries = _queries()
    missing: dict[str, str] = {}

    def all_have_data() -> bool:
        missing.clear()
        for board, where, expr in queries:
            ok, error = _has_data(prometheus, expr, start)
            if not ok:
                missing[f"{board} {where}: {expr}"] = error
        return not missing

    try:
        wait_until(all_have_data, timeout=90, interval=3)
    except BaseException:
        pytest.fail("queries without data:\n" + "\n".join(f"{k} {v}" for k, v in missing.items()))
