"""The review's history read from a real Prometheus scraping a real `shiftwatch run`."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.broker import EmbeddedBroker, create_topics, free_port
from monitor.history.rows import CheckSample
from monitor.policy import load_policy
from monitor.review import promql
from monitor.review.prometheus import PrometheusError, PrometheusHistory
from tests.conftest import (
    DEMO_POLICY,
    Monitor,
    committed_total,
    demo_traffic,
    produce,
    wait_kafka,
)
from tests.monitor.review.tables import markdown_table
from tests.servers import Prometheus, wait_until

pytestmark = pytest.mark.kafka

MODEL, CANDIDATE, BASELINE = "fraud-scorer", "v7-int8", "v7-fp32"
DEMO_CHECKS = load_policy(DEMO_POLICY).models[0].checks


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b


def _counters(port: int, name: str) -> dict[tuple[str, ...], float]:
    """The monitor's own counter ``name`` for the model, by its other label values."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        tuple(v for k, v in sorted(s.labels.items()) if k != "model"): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels["model"] == MODEL
    }


def _model_events(port: int) -> dict[tuple[str, ...], float]:
    """shiftwatch_model_events_total and the latency observations, by (version, kind)."""
    events = _counters(port, "shiftwatch_model_events_total")  # (kind, version)
    latency = _counters(port, "shiftwatch_inference_latency_observations_total")
    return {
        **{(version, kind): n for (kind, version), n in events.items()},
        **{(version, "latency"): n for (version,), n in latency.items()},
    }


def _latest(samples: list[CheckSample]) -> dict[tuple[str, str], CheckSample]:
    latest: dict[tuple[str, str], CheckSample] = {}
    for s in samples:  # in time order
        if s.version == CANDIDATE:
            latest[(s.check, s.segment)] = s
    return latest


def _last_scrape(prom: Prometheus) -> float:
    """Sample time of Prometheus's newest scrape of the monitor (0 before the first)."""
    answer = prom.query("timestamp(shiftwatch_rollback_required)")
    return max((float(s["value"][1]) for s in answer), default=0.0)


def _settled(mon: Monitor, prom: Prometheus) -> tuple[dict[str, Any], dict[Any, float]]:
    """The monitor's verdict and event counts once Prometheus has scraped them unchanged, and
    one more second has passed (so a one-second step grid has a point after that scrape)."""
    while True:
        verdict, counts = mon.verdict(), _model_events(mon.port)
        asked = time.time()
        wait_until(lambda: _last_scrape(prom) > asked, timeout=20)  # noqa: B023 (called here)
        if mon.verdict() == verdict and _model_events(mon.port) == counts:
            scraped = _last_scrape(prom)
            time.sleep(max(0.0, scraped + 1.0 - time.time()))
            return verdict, counts


@pytest.fixture(scope="module")
def scraped(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A monitor on the demo policy that consumed the demo's degraded traffic to a rollback,
    scraped every second by Prometheus; yields (monitor, prometheus, verdict, counts, since)."""
    workdir = tmp_path_factory.mktemp("review-prometheus")
    topic = f"review-{uuid.uuid4().hex[:8]}"
    group = f"review-{uuid.uuid4().hex[:6]}"
    create_topics(broker.bootstrap_servers, {topic: 1, f"{topic}.dlq": 1})
    mon = Monitor(broker, topic, group, workdir / "monitor")
    since = time.time()
    mon.start()
    try:
        with Prometheus(workdir / "prom", [f"127.0.0.1:{mon.port}"], []) as prom:
            assert isinstance(prom, Prometheus)
            # Scraped once before any event, so the history starts from the idle monitor.
            wait_until(lambda: _last_scrape(prom) > 0, timeout=30)
            (events,) = demo_traffic(29, 50_000)
            total = produce(broker.bootstrap_servers, topic, events)
            wait_kafka(lambda: committed_total(broker.bootstrap_servers, topic, group) == total)
            wait_kafka(lambda: mon.verdict()["verdict"] == "fail", timeout=30)
            verdict, counts = _settled(mon, prom)
            yield mon, prom, verdict, counts, since
    finally:
        if mon.proc is not None and mon.proc.poll() is None:
            mon.kill(signal.SIGTERM)


def test_latest_check_samples_are_the_verdicts_check_table(scraped: Any) -> None:
    """Each (check, segment) of the candidate's /verdict is the latest sample read back:
    state, observed, reference, allowed band, statistic, threshold and sample counts."""
    _, prom, verdict, _, since = scraped
    history = PrometheusHistory(prom.url, since=since, until=time.time(), step=1.0)
    latest = _latest(history.check_samples(MODEL, since, time.time()))
    table = {(v["check"], v["segment"]): v for v in verdict["checks"]}
    assert len(table) > 7  # segments as well as the overall streams
    # The metrics show a not-yet-seen check as inconclusive overall; /verdict leaves it out.
    extra = {k: s for k, s in latest.items() if k not in table}
    assert all(s.state == "inconclusive" and s.observed is None for s in extra.values())
    assert set(latest) - set(extra) == set(table)
    for key, view in table.items():
        got = latest[key]
        assert got.state == view["state"], key
        for field, want in (
            ("observed", view["observed"]),
            ("reference", view["reference"]),
            ("lower", view["allowed"]["lower"]),
            ("upper", view["allowed"]["upper"]),
            ("statistic", view["statistic"]),
            ("threshold", view["threshold"]),
            ("candidate_seen", view["seen"]["candidate"]),
            ("baseline_seen", view["seen"]["baseline"]),
        ):
            assert _close(getattr(got, field), want), (key, field, getattr(got, field), want)
    assert any(v["state"] == "breach" for v in table.values())


def test_counts_verdict_and_model_read_back(scraped: Any) -> None:
    """Inferences, actions and outcomes per version add up to the monitor's counters; the
    reconstructed verdict ends in fail like /verdict; the model's checks are named."""
    mon, prom, verdict, counts, since = scraped
    until = time.time()
    history = PrometheusHistory(prom.url, since=since, until=until, step=1.0)
    served = history.version_samples(MODEL, since, until)
    for version in (BASELINE, CANDIDATE):
        mine = [s for s in served if s.version == version]
        assert {s.baseline for s in mine} == {version == BASELINE}
        for kind, field in (("inference", "inferences"), ("action", "actions"),
                            ("outcome", "outcomes")):  # fmt: skip
            assert sum(getattr(s, field) for s in mine) == counts[(version, kind)], (version, kind)
        assert sum(s.latency_count for s in mine) == counts[(version, "latency")] > 0
        assert all(s.latency_sum_ms > 0 for s in mine if s.latency_count)
    spans = {s.version: s for s in history.versions(MODEL)}
    assert spans[CANDIDATE].inferences == counts[(CANDIDATE, "inference")]
    assert since <= spans[CANDIDATE].first_at <= spans[CANDIDATE].last_at <= until
    changes = history.verdict_changes(MODEL, since, until)
    assert verdict["verdict"] == "fail"
    assert changes[0].verdict == "inconclusive" and changes[-1].verdict == "fail"
    # Reasons are those of the step the verdict turned: breaches of rollback checks that
    # still stand at the end (later ones may have joined them).
    failed_on = {(r["check"], r["segment"]) for r in changes[-1].reasons}
    assert failed_on and failed_on <= {(r["check"], r["segment"]) for r in verdict["reasons"]}
    assert {r["state"] for r in changes[-1].reasons} == {"breach"}
    (record,) = history.models()
    assert {c["name"] for c in record.policy["checks"]} == {
        c.name for c in load_policy(DEMO_POLICY).models[0].checks
    }
    assert record.policy["baseline"] == BASELINE
    assert history.drift_samples(MODEL, since, until)
    gaps = " ".join(history.gaps())
    fired = [a for a in mon.alerts() if a["status"] == "firing"]
    rollbacks = sum(a["action"] == "rollback" for a in fired)
    assert rollbacks >= 1 and f"{rollbacks} firing rollback" in gaps
    assert "give the policy file" in gaps and "per-tool" in gaps


def test_a_policy_file_fills_what_prometheus_lacks(scraped: Any) -> None:
    """With the policy given, the model record is the policy (owner, tolerances, controls)."""
    _, prom, _, _, since = scraped
    policy = load_policy(DEMO_POLICY)
    history = PrometheusHistory(prom.url, since=since, until=time.time(), policy=policy)
    (record,) = history.models()
    assert record.policy == policy.models[0].model_dump(mode="json")
    assert not any("give the policy file" in g for g in history.gaps())


def test_a_long_range_is_read_in_pieces_with_the_same_rows(
    scraped: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Range queries split at the points-per-query limit give the rows of one query."""
    _, prom, _, _, since = scraped
    until = time.time()
    whole = PrometheusHistory(prom.url, since=since, until=until, step=1.0)
    monkeypatch.setattr(promql, "MAX_POINTS", 7)
    pieces = PrometheusHistory(prom.url, since=since, until=until, step=1.0)
    assert pieces.checks == whole.checks and pieces.served == whole.served
    assert pieces.verdicts == whole.verdicts and pieces.drift == whole.drift


def test_unreachable_prometheus_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusError, match=f"cannot reach Prometheus at {url}"):
        PrometheusHistory(url, since=0.0, until=60.0)


def test_a_server_that_is_not_prometheus_is_named(scraped: Any) -> None:
    """The monitor's own port answers, but not with Prometheus's API."""
    mon = scraped[0]
    url = f"http://127.0.0.1:{mon.port}"
    with pytest.raises(PrometheusError, match=f"{url} answered .* is it Prometheus"):
        PrometheusHistory(url, since=0.0, until=60.0)


def test_a_prometheus_without_shiftwatch_series_says_so(tmp_path: Path) -> None:
    with Prometheus(tmp_path / "prom", [], []) as prom:
        now = time.time()
        with pytest.raises(
            PrometheusError,
            match=f"no shiftwatch_check_state series at {prom.url} .*is Prometheus scraping",
        ):
            PrometheusHistory(prom.url, since=now - 600, until=now)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="since"):
        PrometheusHistory("http://127.0.0.1:9", since=10.0, until=0.0)
    with pytest.raises(ValueError, match="step"):
        PrometheusHistory("http://127.0.0.1:9", since=0.0, until=10.0, step=0.0)
    with pytest.raises(ValueError, match="larger step"):
        PrometheusHistory("http://127.0.0.1:9", since=0.0, until=1e9, step=1.0)
    with pytest.raises(PrometheusError, match="not an http"):
        PrometheusHistory("prometheus:9090", since=0.0, until=10.0)


def test_one_monitor_scraped_by_two_jobs_is_read_once(scraped: Any, tmp_path: Path) -> None:
    """Two scrape targets exporting the same series: one is read, and the gap names both."""
    mon = scraped[0]
    target = f"127.0.0.1:{mon.port}"
    prom = Prometheus(tmp_path / "prom", [target], [])
    prom.config.write_text(
        prom.config.read_text()
        + f"  - job_name: shiftwatch-again\n    static_configs:\n      - targets: ['{target}']\n"
    )
    with prom:
        wait_until(
            lambda: len({s["metric"]["job"] for s in prom.query("shiftwatch_check_state")}) == 2
        )
        now = time.time()
        history = PrometheusHistory(prom.url, since=now - 3, until=now, step=1.0)
    keys = [(s.version, s.check, s.segment, s.at) for s in history.checks]
    assert keys and len(keys) == len(set(keys))
    (gap,) = [g for g in history.gaps() if "Several scrape targets" in g]
    assert f"shiftwatch/{target}" in gap and f"shiftwatch-again/{target}" in gap


def test_the_review_from_prometheus_has_the_check_table_of_the_history(
    scraped: Any, tmp_path: Path
) -> None:
    """`review --prometheus URL --policy P` and `review --state` of the same monitor show the
    same check table: each check's metric, action, tolerance, state, observed, reference
    and allowed band at the end. (Runs last: it stops the monitor, whose history then
    takes its final sample.)"""
    mon, prom, _, _, _ = scraped
    mon.kill(signal.SIGTERM)
    reports = {}
    for name, source in (
        ("history", ["--state", str(mon.workdir)]),
        ("prometheus", ["--prometheus", prom.url, "--policy", str(DEMO_POLICY)]),
    ):
        out = tmp_path / f"{name}.md"
        done = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "review", *source, "--since", "1d",
             "--out", str(out)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        reports[name] = out.read_text(encoding="utf-8")
    tables = {
        name: [row[:8] for row in markdown_table(text, "### Checks against their tolerance")]
        for name, text in reports.items()
    }
    assert len(tables["history"]) == len(DEMO_CHECKS)
    assert tables["prometheus"] == tables["history"]
