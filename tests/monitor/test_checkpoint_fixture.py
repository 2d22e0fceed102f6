"""A checkpoint written by this release's format, committed: it must keep restoring.

``tests/data/checkpoints/format-2.ckpt`` is a sealed checkpoint (the envelope of
:mod:`monitor.envelope`, the pipeline state of :meth:`Pipeline.state`) taken
after replaying a degraded candidate's traffic, with the verdict it published
then (``format-2.verdict.json``) and the policy it ran under. A change that
breaks existing checkpoints — a renamed state key, a new envelope layout
without a format bump and a migration — fails here. Regenerate the fixture
only with a new format number, as ``python -m tests.monitor.test_checkpoint_fixture``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts import AlertRecord
from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.envelope import FORMAT, Checkpoint, CheckpointError, open_sealed, seal
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import load_policy
from monitor.replay import LogDeadLetterSink
from monitor.state import policy_digest, restore_pipeline

DATA = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
FIXTURE = DATA / "format-2.ckpt"
VERDICT = DATA / "format-2.verdict.json"
POLICY = DATA / "policy.yaml"
KEY = b"shiftwatch checkpoint fixture key"
VERSION = "v7-int8"


def _pipeline() -> Pipeline:
    return Pipeline(
        load_policy(POLICY), dead_letters=LogDeadLetterSink(), clock="event", quiet=True
    )


def _messages(requests: int, seed: int = 21) -> list[Message]:
    sim = TrafficSimulator(replace(Scenario(seed=seed), requests_per_second=300.0))
    events = []
    while sim.requests < requests:
        events.extend(sim.next_batch(1000))
    return [Message(json.dumps(e).encode(), "fixture", 0, i) for i, e in enumerate(events)]


def _digest(messages: list[Message]) -> str:
    return hashlib.sha256(b"\n".join(m.value for m in messages)).hexdigest()


def _checks(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("check", "segment", "state", "observed", "reference", "statistic", "threshold")
    return [{k: view.get(k) for k in keep} for view in verdict["checks"]]


def write_fixture() -> None:
    """Replay 24,000 simulated requests and seal the pipeline's checkpoint (the fixture)."""
    pipeline = _pipeline()
    messages = _messages(24_000)
    for i in range(0, len(messages), 2000):
        pipeline.process(messages[i : i + 2000])
    checkpoint = Checkpoint(
        policy=policy_digest(pipeline.policy),
        state=pipeline.state(),
        positions={"file": [0, len(messages)], "input_sha256": _digest(messages)},
    )
    FIXTURE.write_bytes(seal(checkpoint, KEY, compress=True))
    verdict = pipeline.verdicts.get("fraud-scorer", VERSION)
    assert verdict is not None
    VERDICT.write_text(json.dumps(verdict, indent=1, sort_keys=True) + "\n")


def test_the_committed_checkpoint_restores_with_its_verdict() -> None:
    """The fixture opens, restores into this release's pipeline and shows the verdict it had."""
    checkpoint = open_sealed(FIXTURE.read_bytes(), KEY)
    assert checkpoint.format == FORMAT == 2
    pipeline = _pipeline()
    assert checkpoint.policy == policy_digest(pipeline.policy)
    restore_pipeline(pipeline, checkpoint.state)
    expected = json.loads(VERDICT.read_text())
    got = pipeline.verdicts.get("fraud-scorer", VERSION)
    assert got is not None
    assert got["verdict"] == expected["verdict"] == "fail"
    assert _checks(got) == _checks(expected)
    assert pipeline.ledger.processed == checkpoint.state["ledger"]["processed"] > 40_000


def _continue(pipeline: Pipeline, messages: list[Message], done: int) -> list[AlertRecord]:
    alerts: list[AlertRecord] = []
    for i in range(done, len(messages), 2000):
        alerts += pipeline.process(messages[i : i + 2000]).alerts
    return alerts


def _binned_checks(verdict: dict[str, Any]) -> set[str]:
    return {v["check"] for v in verdict["checks"] if v["metric"] == "score_distribution"}


def _rate_checks(verdict: dict[str, Any]) -> set[str]:
    rates = {"decision_rate", "action_rate", "false_negative_rate"}
    return {v["check"] for v in verdict["checks"] if v["metric"] in rates}


def test_the_restored_pipeline_goes_on_like_one_never_stopped() -> None:
    """Restored from the fixture and fed the rest of the stream, the pipeline ends as one
    that processed the whole stream without stopping; a checkpoint of this release is the
    same again, its score bins included.

    The fixture predates bins at the baseline's quantiles: its score check goes on with
    the equal-width bins it started with. It also predates rate boundaries at exact
    confidence bounds: its rate detectors go on with the normal-approximation boundary
    (z = 2) and the thresholds they were calibrated with, so their statistics may differ
    from a run of this release, but they fire on the same checks and segments. Every other
    check and every alert of the other checks must match exactly."""
    checkpoint = open_sealed(FIXTURE.read_bytes(), KEY)
    messages = _messages(36_000)
    done = int(checkpoint.positions["file"][1])
    assert _digest(messages[:done]) == checkpoint.positions["input_sha256"], (
        "the demo simulator changed: the fixture's input is no longer its prefix"
    )
    restored = _pipeline()
    restore_pipeline(restored, checkpoint.state)
    restored.assigned(["fixture:0"])  # its input, read again after the restart
    unbroken = _pipeline()
    for i in range(0, done, 2000):
        unbroken.process(messages[i : min(i + 2000, done)])
    # This release's own checkpoint at the same point, sealed and opened again.
    current = _pipeline()
    sealed = seal(Checkpoint(policy_digest(unbroken.policy), unbroken.state(), {}), KEY)
    restore_pipeline(current, open_sealed(sealed, KEY).state)
    current.assigned(["fixture:0"])

    restored_alerts = _continue(restored, messages, done)
    current_alerts = _continue(current, messages, done)
    unbroken_alerts = _continue(unbroken, messages, done)
    model = "fraud-scorer"
    expected = unbroken.verdicts.get(model, VERSION)
    assert expected is not None
    assert current.ledger == unbroken.ledger and current.ledger.late == 0
    assert current_alerts == unbroken_alerts
    assert current.verdicts.get(model, VERSION) == expected

    assert restored.ledger == unbroken.ledger and restored.ledger.late == 0
    binned, rates = _binned_checks(expected), _rate_checks(expected)
    assert binned == {"score-drift"}
    assert {"deny-rate", "escalations", "refund-tool"} <= rates
    legacy = binned | rates

    def fired(alerts: list[AlertRecord]) -> list[tuple[str, str, str]]:
        return sorted((a.check, json.dumps(a.segment), a.status) for a in alerts)

    assert fired([a for a in restored_alerts if a.check in rates]) == fired(
        [a for a in unbroken_alerts if a.check in rates]
    )
    assert [a for a in restored_alerts if a.check not in legacy] == [
        a for a in unbroken_alerts if a.check not in legacy
    ]
    got = restored.verdicts.get(model, VERSION)
    assert got is not None
    assert [c for c in got["checks"] if c["check"] not in legacy] == [
        c for c in expected["checks"] if c["check"] not in legacy
    ]
    layouts = [
        runner["bins"]["score-drift"]["layout"]
        for runner in restored.state()["models"][model]
        if "bins" in runner
    ]
    assert layouts == ["equal-width"]

    def rate_params(state: dict[str, Any]) -> dict[str, Any]:
        return {
            (item["check"], item["version"], json.dumps(item["stream"])): item["detector"]["params"]
            for runner in state["models"][model]
            for item in runner.get("statuses", [])
            if item["detector"]["type"] == "RateShiftDetector"
        }

    in_fixture = rate_params(checkpoint.state)
    now = rate_params(restored.state())
    assert in_fixture and all(now[key]["z"] == 2.0 for key in in_fixture)


def test_a_fixture_under_another_key_or_edited_is_refused() -> None:
    """The committed blob with one byte flipped, or opened with another key, is refused."""
    blob = bytearray(FIXTURE.read_bytes())
    with pytest.raises(CheckpointError):
        open_sealed(bytes(blob), b"another key")
    blob[len(blob) // 2] ^= 0x01
    with pytest.raises(CheckpointError):
        open_sealed(bytes(blob), KEY)


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("python -m tests.monitor.test_checkpoint_fixture --write  (new format only)")
    write_fixture()
