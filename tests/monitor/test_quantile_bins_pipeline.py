"""Quantile bins end to end: scores piled near 0 and 1 alert; edges freeze once and checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

from monitor.alerts import AlertRecord
from monitor.binning import REFERENCE_SAMPLE, SCORE_BINS
from monitor.envelope import Checkpoint, open_sealed, seal
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.runners.distributions import DistributionRunner
from monitor.state import policy_digest, restore_pipeline
from tests.conftest import DRIFT, RATE, START, one_model_pipeline

Draw = Callable[[np.random.Generator, int], np.ndarray]
KEY = b"quantile bins test key"


def piled(rng: np.random.Generator, n: int) -> np.ndarray:
    """Half piled in [1e-6, 1e-3], 40% in [1 - 1e-3, 1 - 1e-6], 10% uniform."""
    kind = rng.choice(3, n, p=[0.5, 0.4, 0.1])
    near = 10.0 ** rng.uniform(-6, -3, n)
    return np.where(kind == 0, near, np.where(kind == 1, 1.0 - near, rng.uniform(0, 1, n)))


def piled_elsewhere(rng: np.random.Generator, n: int) -> np.ndarray:
    """The same shape, its piles an order of magnitude nearer the middle (in [3e-5, 1e-2])."""
    kind = rng.choice(3, n, p=[0.5, 0.4, 0.1])
    near = 10.0 ** rng.uniform(-4.5, -2, n)
    return np.where(kind == 0, near, np.where(kind == 1, 1.0 - near, rng.uniform(0, 1, n)))


class Feed:
    """Both versions second by second, RATE inferences each, one batch per second."""

    def __init__(self, baseline: Draw, candidate: Draw, seed: int) -> None:
        self.draws = {"v1": baseline, "v2": candidate}
        self.rng = np.random.default_rng(seed)
        self.t, self.i = START, 0
        self.seen: dict[str, list[float]] = {"v1": [], "v2": []}

    def batches(self, seconds: int) -> list[list[Message]]:
        out = []
        for _ in range(seconds):
            batch = []
            for version, draw in self.draws.items():
                scores = draw(self.rng, RATE)
                self.seen[version].extend(scores.tolist())
                for k in range(RATE):
                    self.i += 1
                    at = self.t + timedelta(microseconds=int(1e6 * k / RATE))
                    event = {
                        "kind": "inference",
                        "id": f"e{self.i}",
                        "time": at.isoformat(),
                        "request_id": f"r{self.i}",
                        "model": "m",
                        "version": version,
                        "score": float(scores[k]),
                    }
                    batch.append(Message(json.dumps(event).encode(), "t", 0, self.i))
            self.t += timedelta(seconds=1)
            out.append(batch)
        return out


def _run(pipeline: Pipeline, batches: list[list[Message]]) -> list[AlertRecord]:
    alerts: list[AlertRecord] = []
    for batch in batches:
        alerts.extend(pipeline.process(batch).alerts)
    return alerts


def _runner(pipeline: Pipeline) -> DistributionRunner:
    (runner,) = [r for r in pipeline.models["m"].runners if isinstance(r, DistributionRunner)]
    return runner


def _checkpoint(pipeline: Pipeline) -> Pipeline:
    """A new pipeline restored from a sealed checkpoint of ``pipeline``."""
    blob = seal(Checkpoint(policy_digest(pipeline.policy), pipeline.state(), {}), KEY)
    restored = one_model_pipeline(DRIFT)
    restore_pipeline(restored, open_sealed(blob, KEY).state)
    restored.assigned(["t:0"])  # its input, read again after the restart
    return restored


def _drift_views(pipeline: Pipeline) -> list[dict[str, Any]]:
    verdict = pipeline.verdicts.get("m", "v2")
    assert verdict is not None
    return [r for r in verdict["reasons"] + verdict["checks"] if r["check"] == "drift"]


def test_scores_piled_near_0_and_1_differently_alert() -> None:
    """Piles an order of magnitude apart near 0 and 1 (exact KS ~0.2, 2x the tolerance) fire
    the score check; equal-width bins put both piles in the end bins and saw almost nothing."""
    feed = Feed(piled, piled_elsewhere, seed=1)
    pipeline = one_model_pipeline(DRIFT)
    alerts = _run(pipeline, feed.batches(240))
    exact = float(ks_2samp(feed.seen["v1"], feed.seen["v2"]).statistic)
    assert exact >= 1.5 * 0.1
    assert [a.check for a in alerts] == ["drift"]
    assert alerts[0].evidence["statistic"] > 0.1
    (status,) = [s for s in _runner(pipeline).statuses.values() if not s.stream]
    assert abs(status.detector.observed_distance - exact) <= 0.01
    assert status.detector.n_bins <= SCORE_BINS["ks"]


def test_an_identical_candidate_does_not_alert() -> None:
    """The same piled distribution for both versions: no alert, the check ends ok."""
    feed = Feed(piled, piled, seed=2)
    pipeline = one_model_pipeline(DRIFT)
    assert _run(pipeline, feed.batches(400)) == []
    assert [v["state"] for v in _drift_views(pipeline) if "statistic" in v] == ["ok"]


def test_inconclusive_until_the_edges_freeze() -> None:
    """Before the baseline's REFERENCE_SAMPLE values are released there is no status: the
    verdict says "no candidate data yet"; afterwards the held seconds are all counted."""
    seconds = REFERENCE_SAMPLE // RATE
    feed = Feed(piled, piled, seed=3)
    pipeline = one_model_pipeline(DRIFT)
    _run(pipeline, feed.batches(seconds - 5))
    runner = _runner(pipeline)
    assert runner.statuses == {}
    assert [v["reason"] for v in _drift_views(pipeline)] == ["no candidate data yet"]
    _run(pipeline, feed.batches(10))
    (status,) = runner.statuses.values()
    # Every released second reached the detectors, the held ones included.
    assert status.detector.reference_exposure == status.detector.exposure
    assert status.detector.reference_exposure >= REFERENCE_SAMPLE


def test_a_restored_pipeline_goes_on_identically_before_and_after_the_freeze() -> None:
    """Checkpointed while values wait raw, and again after the freeze: the restored pipelines
    end with the same alerts and detector states as one that never stopped."""
    feed = Feed(piled, piled_elsewhere, seed=4)
    batches = feed.batches(200)
    unbroken = one_model_pipeline(DRIFT)
    expected = _run(unbroken, batches)
    for cut in (20, 60):
        first = one_model_pipeline(DRIFT)
        got = _run(first, batches[:cut])
        restored = _checkpoint(first)
        got += _run(restored, batches[cut:])
        assert got == expected
        assert _runner(restored).state()["bins"]["drift"]["edges"] is not None
        mine, theirs = _runner(restored), _runner(unbroken)
        assert {k: s.detector.state() for k, s in mine.statuses.items()} == {
            k: s.detector.state() for k, s in theirs.statuses.items()
        }
        edges = [r.state()["bins"]["drift"]["edges"] for r in (mine, theirs)]
        assert np.array_equal(*edges)


def test_a_checkpoint_from_before_quantile_bins_continues_with_equal_width_bins() -> None:
    """A runner state without edges (0.2's layout) restores into 50 equal-width bins."""
    feed = Feed(piled, piled, seed=5)
    batches = feed.batches(120)
    pipeline = one_model_pipeline(DRIFT)
    _run(pipeline, batches[:60])
    state = pipeline.state()
    runner_states = [s for s in _find(state, "bins")]
    assert runner_states
    for runner_state in runner_states:
        bins = runner_state.pop("bins")
        # 0.2 kept each score check's equal-width buckets under "buckets".
        runner_state["buckets"] = {
            name: {
                **b["buckets"],
                "index": np.zeros(0, dtype=np.int64),
                "owner": np.zeros(0, dtype=np.int64),
                "rows": np.zeros((0, 51)),
            }
            for name, b in bins.items()
        }
        for item in runner_state["reference"]:  # 0.2's baseline histograms had 50 bins
            item["hist"] = np.zeros(50)
        for status in runner_state["statuses"]:
            det = status["detector"]
            det["params"].pop("widths")
            det["params"]["n_bins"] = 50
            det["state"]["ref"] = [0] * 50
            det["state"]["cand"] = [0] * 50
    old = one_model_pipeline(DRIFT)
    restore_pipeline(old, state)
    old.assigned(["t:0"])
    runner = _runner(old)
    _run(old, batches[60:])
    (status,) = runner.statuses.values()
    assert status.detector.n_bins == 50 and status.detector.exposure > 0
    assert runner.state()["bins"]["drift"]["layout"] == "equal-width"


def _find(state: Any, key: str) -> list[dict[str, Any]]:
    """Every dict in ``state`` (nested dicts and lists) that has ``key``."""
    found = []
    if isinstance(state, dict):
        if key in state:
            found.append(state)
        for value in state.values():
            found += _find(value, key)
    elif isinstance(state, list):
        for value in state:
            found += _find(value, key)
    return found
