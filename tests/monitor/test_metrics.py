"""The exported metrics: check bands and sample counts, events per version, freshness,
build and process information, no ``_created`` series, and a scrape promtool accepts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import LimitsSettings
from monitor.demo.simulator import EventDict, Scenario, generate
from monitor.freshness import Freshness
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from monitor.replay import LogDeadLetterSink
from tests.servers import require_binary

DEMO_POLICY = Path(__file__).resolve().parents[2] / "monitor" / "demo" / "policy.yaml"
N_REQUESTS = 40_000


def _messages(events: Iterable[EventDict]) -> list[Message]:
    return [Message(json.dumps(e).encode(), "events", 0, offset) for offset, e in enumerate(events)]


def _run(events: list[EventDict], limits: LimitsSettings | None = None) -> Metrics:
    """The demo policy's pipeline over ``events``, in batches of 5000, and its metrics."""
    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(
        load_policy(DEMO_POLICY),
        dead_letters=LogDeadLetterSink(),
        metrics=metrics,
        limits=limits,
        quiet=True,
    )
    messages = _messages(events)
    for start in range(0, len(messages), 5000):
        pipeline.process(messages[start : start + 5000])
    pipeline.end_of_input()
    return metrics


@pytest.fixture(scope="module")
def scrape() -> str:
    """One scrape after the demo's degraded traffic."""
    metrics = _run(list(generate(Scenario(seed=7), N_REQUESTS)))
    return generate_latest(metrics.registry).decode()


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _one(text: str, name: str, **labels: str) -> float:
    matches = [v for k, v in _samples(text, name).items() if labels.items() <= dict(k).items()]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_the_scrape_passes_promtool_check_metrics(scrape: str) -> None:
    """promtool's linter finds nothing to complain about in a real scrape."""
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == ""


def test_no_created_series_and_build_and_process_info(scrape: str) -> None:
    """Counters come without ``_created``; build, process and platform series are there."""
    assert "_created" not in scrape
    info = _samples(scrape, "shiftwatch_build_info")
    assert len(info) == 1 and next(iter(info.values())) == 1.0
    assert {"version", "python"} == {k for k, _ in next(iter(info))}
    assert _samples(scrape, "process_resident_memory_bytes")
    assert _samples(scrape, "python_info")


def test_rate_checks_export_the_band_around_the_observed_rate(scrape: str) -> None:
    """A breached relative-rate check's observed value lies outside its band, in rate units;
    an ok distance check's band is 0..max_distance with its distance inside."""
    overall = {"model": "fraud-scorer", "version": "v7-int8", "segment": ""}
    lower = _one(scrape, "shiftwatch_check_allowed_lower", check="escalations", **overall)
    upper = _one(scrape, "shiftwatch_check_allowed_upper", check="escalations", **overall)
    reference = _one(scrape, "shiftwatch_check_reference", check="escalations", **overall)
    observed = _one(scrape, "shiftwatch_check_observed", check="escalations", **overall)
    # ±25% of the baseline's rate, widened by the baseline's standard error.
    assert 0 < lower < 0.75 * reference < reference < 1.25 * reference < upper < 1.5 * reference
    assert observed < lower  # the demo's candidate halves its escalations
    assert _one(scrape, "shiftwatch_check_state", check="escalations", **overall) == 2
    assert _one(scrape, "shiftwatch_check_allowed_lower", check="tool-mix", **overall) == 0
    assert _one(scrape, "shiftwatch_check_allowed_upper", check="tool-mix", **overall) == 0.05
    assert _one(scrape, "shiftwatch_check_observed", check="tool-mix", **overall) < 0.05


def test_sample_counts_and_what_each_side_needs(scrape: str) -> None:
    """Each check exports both sides' counts and minimums; the canary's share shows."""
    overall = {"model": "fraud-scorer", "version": "v7-int8", "segment": ""}
    seen = {
        side: _one(scrape, "shiftwatch_check_samples", check="score-drift", side=side, **overall)
        for side in ("candidate", "baseline")
    }
    needed = _one(
        scrape, "shiftwatch_check_samples_needed", check="score-drift", side="candidate", **overall
    )
    assert 0 < seen["candidate"] < seen["baseline"] < N_REQUESTS
    assert needed >= 1


def test_events_per_model_version_and_kind(scrape: str) -> None:
    """Inferences are counted per version and add up to the requests sent."""
    inferences = {
        v: _one(scrape, "shiftwatch_model_events_total", version=v, kind="inference")
        for v in ("v7-fp32", "v7-int8")
    }
    assert sum(inferences.values()) == N_REQUESTS
    assert 0.05 < inferences["v7-int8"] / N_REQUESTS < 0.5
    assert _one(scrape, "shiftwatch_model_events_total", version="v7-int8", kind="action") > 0


def test_freshness_while_both_versions_get_traffic(scrape: str) -> None:
    """Both versions' newest times are close, the watermark is at or behind them, none stale."""
    last = {
        v: _one(scrape, "shiftwatch_last_event_timestamp_seconds", version=v)
        for v in ("v7-fp32", "v7-int8")
    }
    watermark = _one(scrape, "shiftwatch_watermark_timestamp_seconds", model="fraud-scorer")
    assert abs(last["v7-fp32"] - last["v7-int8"]) < 60
    assert watermark <= max(last.values()) + 1
    assert _one(scrape, "shiftwatch_candidate_stale", version="v7-int8") == 0
    assert _one(scrape, "shiftwatch_candidate_stale", version="v7-fp32") == 0


def test_a_candidate_without_traffic_becomes_stale() -> None:
    """Cut the candidate's inferences from the second half: it is stale, the baseline not."""
    events = list(generate(Scenario(seed=3), 20_000))
    half = len(events) // 2
    cut = events[:half] + [
        e for e in events[half:] if e.get("version") != "v7-int8" or e["kind"] != "inference"
    ]
    limits = LimitsSettings(stale_after_seconds=5)
    scrape = generate_latest(_run(cut, limits).registry).decode()
    assert _one(scrape, "shiftwatch_candidate_stale", version="v7-int8") == 1
    assert _one(scrape, "shiftwatch_candidate_stale", version="v7-fp32") == 0


def test_freshness_refuses_a_non_positive_timeout() -> None:
    """A zero timeout is a clear error, as is a negative one in the settings."""
    with pytest.raises(ValueError, match="stale_after"):
        Freshness(0)
    with pytest.raises(ValueError, match="stale_after_seconds"):
        LimitsSettings(stale_after_seconds=-1)
