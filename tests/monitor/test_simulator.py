"""Tests of the demo traffic simulator: determinism, the event contract and seeded rate bands."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from monitor.demo.simulator import (
    NOVEL_TOOL,
    RARE_LANG,
    TOOLS,
    EventDict,
    Scenario,
    TrafficSimulator,
    generate,
    write_jsonl,
)
from monitor.events import ActionEvent, InferenceEvent, OutcomeEvent, Rejection, decode

N_REQUESTS = 200_000
BASELINE = Scenario().baseline
CANDIDATE = Scenario().candidate

COMMON_FIELDS = {"kind", "id", "time", "request_id"}
INFERENCE_FIELDS = COMMON_FIELDS | {
    "model",
    "version",
    "score",
    "decision",
    "segments",
    "latency_ms",
}
ESCALATION_FIELDS = COMMON_FIELDS | {"model", "version", "action", "status"}
TOOL_CALL_FIELDS = ESCALATION_FIELDS | {"tool", "privileged"}
OUTCOME_FIELDS = COMMON_FIELDS | {"label", "source"}


@pytest.fixture(scope="module")
def degraded() -> list[EventDict]:
    """The default demo scenario with the novel privileged tool switched on as well."""
    return list(generate(Scenario(novel_privileged_tool=True), N_REQUESTS))


@pytest.fixture(scope="module")
def identical() -> list[EventDict]:
    """A candidate that behaves exactly as the baseline."""
    return list(generate(Scenario.identical(), N_REQUESTS))


def _time(event: EventDict) -> datetime:
    value = event["time"]
    assert isinstance(value, str)
    return datetime.fromisoformat(value)


def _inferences(events: Iterable[EventDict], version: str) -> list[EventDict]:
    return [e for e in events if e["kind"] == "inference" and e["version"] == version]


def _lang(event: EventDict) -> object:
    segments = event["segments"]
    assert isinstance(segments, dict)
    return segments["lang"]


class _ByVersion:
    """Inferences and actions of one stream split by version, for rate checks."""

    def __init__(self, events: list[EventDict]) -> None:
        self.inferences = {v: _inferences(events, v) for v in (BASELINE, CANDIDATE)}
        self.actions: dict[object, list[EventDict]] = {BASELINE: [], CANDIDATE: []}
        for event in events:
            if event["kind"] == "action":
                self.actions[event["version"]].append(event)

    def action_rate(self, version: str, **where: object) -> float:
        matching = sum(all(e.get(k) == v for k, v in where.items()) for e in self.actions[version])
        return matching / len(self.inferences[version])

    def decision_rate(self, version: str, decision: str, lang: str | None = None) -> float:
        rows = [e for e in self.inferences[version] if lang is None or _lang(e) == lang]
        return sum(e["decision"] == decision for e in rows) / len(rows)

    def values(self, version: str, field: str) -> npt.NDArray[np.float64]:
        return np.array([e[field] for e in self.inferences[version]], dtype=np.float64)


@pytest.fixture(scope="module")
def degraded_split(degraded: list[EventDict]) -> _ByVersion:
    """The degraded stream split by version."""
    return _ByVersion(degraded)


@pytest.fixture(scope="module")
def identical_split(identical: list[EventDict]) -> _ByVersion:
    """The identical-candidate stream split by version."""
    return _ByVersion(identical)


def _line(event: EventDict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def test_same_seed_gives_byte_identical_jsonl(tmp_path: Path) -> None:
    """Two runs of the same scenario write the same bytes, and the count matches the lines."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    n_first = write_jsonl(first, Scenario(label_delay_days=1.0), 20_000)
    n_second = write_jsonl(str(second), Scenario(label_delay_days=1.0), 20_000)
    assert first.read_bytes() == second.read_bytes()
    assert n_first == n_second == first.read_text(encoding="utf-8").count("\n")
    assert n_first > 20_000
    assert b" " not in first.read_bytes().split(b"\n", 1)[0]


def test_different_seed_gives_different_stream() -> None:
    """Changing the seed changes the traffic."""
    a = list(generate(Scenario(seed=1), 2_000))
    b = list(generate(Scenario(seed=2), 2_000))
    assert a != b


def test_stream_does_not_depend_on_batch_size() -> None:
    """Cutting the stream into different batches yields the same events in the same order."""
    reference = list(generate(Scenario(), 30_000, batch=30_000))
    assert list(generate(Scenario(), 30_000, batch=997)) == reference
    sim = TrafficSimulator(Scenario())
    pieces: list[EventDict] = []
    for size in (1, 0, 4095, 2, 9000, 16_902):
        pieces += sim.next_batch(size)
    pieces += sim.drain_outcomes()
    assert pieces == reference


def test_events_are_in_event_time_order(degraded: list[EventDict]) -> None:
    """The whole stream, drained tail included, never goes back in event time."""
    times = [_time(e) for e in degraded]
    assert all(a <= b for a, b in pairwise(times))
    assert times[0] == Scenario().start


def test_actions_and_outcomes_follow_their_inference(degraded: list[EventDict]) -> None:
    """Every action and outcome comes after the inference of its request, actions within seconds."""
    inferred: dict[object, datetime] = {}
    action_delays = []
    for event in degraded:
        if event["kind"] == "inference":
            inferred[event["request_id"]] = _time(event)
            continue
        assert event["request_id"] in inferred
        delay = _time(event) - inferred[event["request_id"]]
        assert delay > timedelta(0)
        if event["kind"] == "action":
            action_delays.append(delay.total_seconds())
    assert 0.1 < float(np.median(action_delays)) < 1.0
    # Inside the demo policy's action_window_seconds (5), so every action joins.
    assert max(action_delays) < 5.0


def test_ids_are_unique(degraded: list[EventDict]) -> None:
    """No two events share an id."""
    ids = [e["id"] for e in degraded]
    assert len(set(ids)) == len(ids)


def test_every_event_has_the_contract_fields_and_types(degraded: list[EventDict]) -> None:
    """Each kind carries its fields of docs/events.md, with their types and values."""
    kinds = Counter(e["kind"] for e in degraded)
    assert kinds["inference"] == N_REQUESTS
    assert kinds["action"] > N_REQUESTS
    assert kinds["outcome"] > 0
    for event in degraded:
        assert isinstance(event["id"], str)
        assert isinstance(event["request_id"], str)
        time = event["time"]
        assert isinstance(time, str) and time.endswith("Z")
        assert _time(event).tzinfo is not None
        if event["kind"] == "inference":
            assert set(event) == INFERENCE_FIELDS
            assert event["model"] == "fraud-scorer"
            assert event["version"] in (BASELINE, CANDIDATE)
            score = event["score"]
            assert isinstance(score, float) and 0.0 <= score <= 1.0
            expected = "deny" if score > 0.8 else "review" if score > 0.5 else "allow"
            assert event["decision"] == expected
            segments = event["segments"]
            assert isinstance(segments, dict) and set(segments) == {"lang", "amount_band"}
            assert segments["lang"] in ("en", "de", "fr", "ga")
            assert segments["amount_band"] in ("low", "mid", "high")
            latency = event["latency_ms"]
            assert isinstance(latency, float) and latency > 0
        elif event["kind"] == "action":
            assert event["status"] == "ok"
            assert event["version"] in (BASELINE, CANDIDATE)
            if event["action"] == "tool_call":
                assert set(event) == TOOL_CALL_FIELDS
                assert event["tool"] in (*TOOLS, NOVEL_TOOL)
                assert isinstance(event["privileged"], bool)
                assert event["privileged"] == (event["tool"] in ("refund.issue", NOVEL_TOOL))
            else:
                assert event["action"] == "escalation"
                assert set(event) == ESCALATION_FIELDS
        else:
            assert event["kind"] == "outcome"
            assert set(event) == OUTCOME_FIELDS
            assert (event["label"], event["source"]) in (
                ("fraud", "chargeback"),
                ("legit", "audit"),
            )


def test_events_pass_the_event_decoder() -> None:
    """The real decoder of monitor.events accepts every simulated event as the right kind."""
    models = {"inference": InferenceEvent, "action": ActionEvent, "outcome": OutcomeEvent}
    scenario = Scenario(novel_privileged_tool=True, score_shift=0.03)
    for event in generate(scenario, 5_000):
        decoded = decode(_line(event))
        assert not isinstance(decoded, Rejection), decoded
        assert isinstance(decoded, models[str(event["kind"])])


def test_canary_share_shows_in_the_traffic(degraded_split: _ByVersion) -> None:
    """About 30 % of requests are served by the candidate."""
    share = len(degraded_split.inferences[CANDIDATE]) / N_REQUESTS
    assert 0.29 <= share <= 0.31


def test_escalation_factor_shows_in_the_actions(degraded_split: _ByVersion) -> None:
    """The candidate escalates about half as often as the baseline, which escalates ~8 %."""
    base = degraded_split.action_rate(BASELINE, action="escalation")
    cand = degraded_split.action_rate(CANDIDATE, action="escalation")
    assert 0.06 <= base <= 0.10
    assert 0.4 <= cand / base <= 0.6


def test_rare_language_deny_factor_shows_in_segment_ga(degraded_split: _ByVersion) -> None:
    """In lang=ga the candidate denies about three times as often; elsewhere it does not."""
    base = degraded_split.decision_rate(BASELINE, "deny", lang=RARE_LANG)
    cand = degraded_split.decision_rate(CANDIDATE, "deny", lang=RARE_LANG)
    assert 0.01 <= base <= 0.035
    assert 2.2 <= cand / base <= 4.0
    base_en = degraded_split.decision_rate(BASELINE, "deny", lang="en")
    cand_en = degraded_split.decision_rate(CANDIDATE, "deny", lang="en")
    assert 0.8 <= cand_en / base_en <= 1.2


def test_rare_language_scores_barely_drift(degraded_split: _ByVersion) -> None:
    """The lang=ga deny stretch moves borderline scores only: the KS distance stays under 0.1."""
    scores = {
        v: np.sort([e["score"] for e in degraded_split.inferences[v] if _lang(e) == RARE_LANG])
        for v in (BASELINE, CANDIDATE)
    }
    grid = np.linspace(0.0, 1.0, 1001)
    cdf = {v: np.searchsorted(x, grid, side="right") / len(x) for v, x in scores.items()}
    assert 0.02 <= float(np.max(np.abs(cdf[BASELINE] - cdf[CANDIDATE]))) <= 0.08


def test_identical_scenario_gives_matching_rates(identical_split: _ByVersion) -> None:
    """With every degradation off, candidate and baseline rates agree within sampling error."""
    split = identical_split
    for where in ({"action": "escalation"}, {"action": "tool_call"}, {"tool": "kyc.verify"}):
        ratio = split.action_rate(CANDIDATE, **where) / split.action_rate(BASELINE, **where)
        assert 0.93 <= ratio <= 1.07, where
    for decision in ("deny", "review"):
        ratio = split.decision_rate(CANDIDATE, decision) / split.decision_rate(BASELINE, decision)
        assert 0.9 <= ratio <= 1.1, decision
    base_scores, cand_scores = split.values(BASELINE, "score"), split.values(CANDIDATE, "score")
    assert abs(base_scores.mean() - cand_scores.mean()) < 0.005
    base_ms, cand_ms = split.values(BASELINE, "latency_ms"), split.values(CANDIDATE, "latency_ms")
    assert float(np.median(cand_ms) / np.median(base_ms)) == pytest.approx(1.0, abs=0.02)
    assert split.action_rate(CANDIDATE, tool=NOVEL_TOOL) == 0.0


def test_candidate_is_faster_by_default(degraded_split: _ByVersion) -> None:
    """The quantised candidate's median latency is about 0.8 times the baseline's."""
    base = np.median(degraded_split.values(BASELINE, "latency_ms"))
    cand = np.median(degraded_split.values(CANDIDATE, "latency_ms"))
    assert 0.75 <= float(cand / base) <= 0.85


def test_novel_privileged_tool_only_from_candidate(degraded_split: _ByVersion) -> None:
    """Only the candidate calls iam.grant_admin, on about 0.5 % of its requests."""
    assert degraded_split.action_rate(BASELINE, tool=NOVEL_TOOL) == 0.0
    assert 0.004 <= degraded_split.action_rate(CANDIDATE, tool=NOVEL_TOOL) <= 0.006
    calls = [e for e in degraded_split.actions[CANDIDATE] if e.get("tool") == NOVEL_TOOL]
    assert all(e["privileged"] is True and e["action"] == "tool_call" for e in calls)
    assert not any(e.get("tool") == NOVEL_TOOL for e in generate(Scenario(), 20_000))


def test_refund_tool_is_rare_and_privileged(degraded_split: _ByVersion) -> None:
    """refund.issue is the baseline's only privileged tool, called on ~0.2 % of requests."""
    privileged = {e["tool"] for e in degraded_split.actions[BASELINE] if e.get("privileged")}
    assert privileged == {"refund.issue"}
    assert 0.001 <= degraded_split.action_rate(BASELINE, tool="refund.issue") <= 0.004


def test_chargebacks_only_for_allowed_requests(degraded: list[EventDict]) -> None:
    """Fraud labels come from chargebacks, which only an allowed request can produce."""
    decision = {e["request_id"]: e["decision"] for e in degraded if e["kind"] == "inference"}
    outcomes = [e for e in degraded if e["kind"] == "outcome"]
    fraud = [e for e in outcomes if e["label"] == "fraud"]
    assert fraud
    assert all(decision[e["request_id"]] == "allow" for e in fraud)
    legit_share = (len(outcomes) - len(fraud)) / N_REQUESTS
    assert 0.015 <= legit_share <= 0.025


def test_fn_segment_factor_raises_fraud_among_allowed_in_ga() -> None:
    """With fn_segment_factor=8, fraud among allowed lang=ga requests rises several-fold."""
    scenario = Scenario.identical(fn_segment_factor=8.0, canary_share=0.5)
    events = list(generate(scenario, N_REQUESTS))
    rates = {}
    for version in (BASELINE, CANDIDATE):
        allowed = {
            e["request_id"]
            for e in _inferences(events, version)
            if e["decision"] == "allow" and _lang(e) == RARE_LANG
        }
        fraud = sum(
            1
            for e in events
            if e["kind"] == "outcome" and e["label"] == "fraud" and e["request_id"] in allowed
        )
        rates[version] = fraud / len(allowed)
    assert 4.0 <= rates[CANDIDATE] / rates[BASELINE] <= 16.0


def test_score_shift_quantises_only_candidate_scores() -> None:
    """A score shift puts candidate scores on a shifted 1/16 grid and leaves the baseline alone."""
    events = list(generate(Scenario.identical(score_shift=0.02), 5_000))
    split = _ByVersion(events)
    cand, base = split.values(CANDIDATE, "score"), split.values(BASELINE, "score")
    interior = cand[(cand > 0.02) & (cand < 1.0)]
    assert np.allclose(np.round((interior - 0.02) * 16), (interior - 0.02) * 16)
    assert len(np.unique(base)) > 1000 > len(np.unique(cand))


def test_delayed_outcomes_come_days_later_and_drain() -> None:
    """With a two-day mean label delay, outcomes trail by days and come from the drain."""
    sim = TrafficSimulator(Scenario(label_delay_days=2.0))
    live: list[EventDict] = []
    for _ in range(10):
        live += sim.next_batch(2_000)
    assert sim.now == Scenario().start + timedelta(seconds=19.999)
    assert sum(e["kind"] == "outcome" for e in live) <= 2
    assert sim.pending > 500
    inferred = {e["request_id"]: _time(e) for e in live if e["kind"] == "inference"}
    tail = sim.drain_outcomes()
    outcomes = [e for e in tail if e["kind"] == "outcome"]
    assert len(outcomes) > 300
    assert {e["kind"] for e in tail} == {"action", "outcome"}
    tail_times = [_time(e) for e in tail]
    assert all(a <= b for a, b in pairwise(tail_times))
    assert tail_times[0] >= _time(live[-1])
    delays = [(_time(e) - inferred[e["request_id"]]).total_seconds() / 86_400 for e in outcomes]
    assert 1.7 <= float(np.mean(delays)) <= 2.3
    assert min(delays) > 0
    assert sim.drain_outcomes() == []
    with pytest.raises(RuntimeError):
        sim.next_batch(1)


def test_fast_outcomes_arrive_within_minutes_and_memory_stays_bounded() -> None:
    """Without a label delay, outcomes stream within minutes and the pending heap stops growing."""
    sim = TrafficSimulator(Scenario(requests_per_second=500.0))
    inferred: dict[object, object] = {}
    delays = []
    pending = []
    batches = []
    for _ in range(60):
        batches.append(sim.next_batch(2_000))
        pending.append(sim.pending)
    assert sim.now == Scenario().start + timedelta(seconds=239.998)
    streamed = sum(e["kind"] == "outcome" for batch in batches for e in batch)
    batches.append(sim.drain_outcomes())
    for event in (e for batch in batches for e in batch):
        if event["kind"] == "inference":
            inferred[event["request_id"]] = event["time"]
        elif event["kind"] == "outcome":
            start = datetime.fromisoformat(str(inferred[event["request_id"]]))
            delays.append((_time(event) - start).total_seconds())
    assert streamed > 0.6 * len(delays)
    assert 45 <= float(np.mean(delays)) <= 75
    assert max(delays) < 15 * 60
    # 240 s of traffic against a one-minute mean delay: the heap has plateaued.
    assert max(pending[40:]) < 1.3 * max(pending[20:40])
    assert max(pending) < 5_000


@pytest.mark.parametrize(
    "change",
    [
        {"canary_share": 1.5},
        {"requests_per_second": 0.0},
        {"escalation_factor": -1.0},
        {"rare_lang_deny_factor": 0.0},
        {"label_delay_days": float("nan")},
        {"seed": -1},
        {"candidate": "v7-fp32"},
        {"start": datetime(2026, 1, 1)},
    ],
)
def test_scenario_rejects_bad_parameters(change: dict[str, Any]) -> None:
    """Out-of-range scenario parameters raise ValueError."""
    with pytest.raises(ValueError):
        replace(Scenario(), **change)


def test_identical_keeps_overrides() -> None:
    """Scenario.identical turns the degradations off but keeps explicit overrides."""
    scenario = Scenario.identical(
        seed=11, escalation_factor=0.9, start=datetime(2027, 1, 1, tzinfo=UTC)
    )
    assert scenario.seed == 11
    assert scenario.escalation_factor == 0.9
    assert scenario.rare_lang_deny_factor == 1.0
    assert scenario.latency_factor == 1.0
    assert not scenario.novel_privileged_tool
    first = next(generate(scenario, 1))
    assert first["time"] == "2027-01-01T00:00:00.000000Z"


def test_negative_batch_sizes_are_rejected() -> None:
    """Negative request counts raise ValueError."""
    with pytest.raises(ValueError):
        TrafficSimulator(Scenario()).next_batch(-1)
    with pytest.raises(ValueError):
        list(generate(Scenario(), 10, batch=0))
