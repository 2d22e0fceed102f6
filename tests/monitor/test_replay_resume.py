"""`shiftwatch replay --state`: SIGKILLed at random moments, the same output in the end."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.demo.simulator import write_jsonl
from monitor.policy import load_policy
from monitor.replay import replay
from monitor.state import SqliteStateStore
from tests.conftest import DEMO_POLICY, checkpointed_line, demo_scenario


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-like stream with a malformed line every 997 lines (alerts and dead letters)."""
    path = tmp_path_factory.mktemp("resume") / "events.jsonl"
    write_jsonl(path, demo_scenario(23), 60_000)
    lines = path.read_bytes().splitlines(keepends=True)
    for i in range(0, len(lines), 997):
        lines[i] = b'{"kind": "inference", "id": "broken"\n'
    path.write_bytes(b"".join(lines))
    return path


def _cmd(events: Path, out: Path, state: Path | None) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "monitor.cli",
        "replay",
        str(events),
        "--policy",
        str(DEMO_POLICY),
        "--alerts-out",
        str(out / "alerts.jsonl"),
        "--dead-letter-out",
        str(out / "dead.jsonl"),
        "--batch-size",
        "2000",
        "--no-progress",
    ]
    if state is not None:
        cmd += ["--state", str(state), "--checkpoint-seconds", "0.2"]
    return cmd


def test_sigkill_mid_file_gives_the_uninterrupted_output(events: Path, tmp_path: Path) -> None:
    """Killed twice (past 30% and 60% of the file, at a random moment), then run to the end."""
    whole, pieces, state = tmp_path / "whole", tmp_path / "pieces", tmp_path / "state"
    whole.mkdir()
    pieces.mkdir()
    subprocess.run(_cmd(events, whole, None), check=True, capture_output=True, timeout=300)
    total = events.read_bytes().count(b"\n")
    rng = random.Random(5)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for fraction in (0.3, 0.6):
        proc = subprocess.Popen(
            _cmd(events, pieces, state),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 120
        while checkpointed_line(state) < fraction * total:
            assert proc.poll() is None, "the replay ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint progress"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))  # land anywhere in a batch or a checkpoint
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
    finished = subprocess.run(_cmd(events, pieces, state), capture_output=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    reference = (whole / "alerts.jsonl").read_bytes()
    assert reference.count(b"\n") >= 1, "the scenario raised no alert"
    assert (pieces / "alerts.jsonl").read_bytes() == reference
    assert (pieces / "dead.jsonl").read_bytes() == (whole / "dead.jsonl").read_bytes()


def test_a_completed_state_replays_from_the_start(events: Path, tmp_path: Path) -> None:
    policy = load_policy(DEMO_POLICY)
    out = tmp_path / "a.jsonl"
    first = replay(events, policy, alerts_out=out, state_dir=tmp_path / "s", show_progress=False)
    text = out.read_bytes()
    again = replay(events, policy, alerts_out=out, state_dir=tmp_path / "s", show_progress=False)
    assert again.consumed == first.consumed
    assert out.read_bytes() == text


def test_state_is_refused_for_stdin_and_for_another_policy(events: Path, tmp_path: Path) -> None:
    policy = load_policy(DEMO_POLICY)
    with pytest.raises(ValueError, match="standard input"):
        replay("-", policy, alerts_out=None, state_dir=tmp_path / "s", show_progress=False)
    # Leave an unfinished checkpoint behind, then change the policy.
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"".join(events.read_bytes().splitlines(keepends=True)[:20_000]))
    replay(
        small,
        policy,
        alerts_out=None,
        state_dir=tmp_path / "t",
        show_progress=False,
        checkpoint_seconds=0.0,
        batch_size=1000,
    )
    store = SqliteStateStore(tmp_path / "t" / "replay.sqlite3")
    checkpoint = store.load()
    assert checkpoint is not None
    checkpoint.positions["done"] = False
    store.save(checkpoint)
    store.close()
    other = policy.model_copy(
        update={"models": [policy.models[0].model_copy(update={"owner": "x"})]}
    )
    with pytest.raises(ValueError, match="another policy"):
        replay(small, other, alerts_out=None, state_dir=tmp_path / "t", show_progress=False)
